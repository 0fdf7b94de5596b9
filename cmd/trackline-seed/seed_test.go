package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/accounts"
	"github.com/trackline/trackline/store"
)

// TestSeedCallsAndUsers seeds a small store with calls and users and reads back what the web
// app reads: the daily rollups count every call once, the calls are the customer's, and each
// user logs in with the documented password.
func TestSeedCallsAndUsers(t *testing.T) {
	dir := t.TempDir()
	const calls, customers = 3_000, 2
	if err := run(context.Background(), options{dir: dir, sessions: 500, numbers: 20, customers: customers, calls: calls, users: true}); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "listen:\n  app: 127.0.0.1:8082\n") {
		t.Errorf("config.yaml has no listen.app:\n%s", cfg)
	}
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	now := time.Now().UTC()
	var total, answered, busy, missed, first, returning, days int
	for c := range customers {
		id := customerID(c)
		rs, err := db.Rollups(id, now.AddDate(0, 0, -366), now.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		days += len(rs)
		for _, d := range rs {
			for _, st := range d.Channels {
				total += st.Calls
				answered += st.Answered
				busy += st.Busy
				missed += st.Missed
				first += st.FirstTime
				returning += st.Returning
			}
		}
		page, _, err := db.Calls(store.CallFilter{CustomerID: id, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 50 {
			t.Fatalf("%s: %d calls on the first page, want 50", id, len(page))
		}
		for _, call := range page {
			if call.CustomerID != id || call.End.IsZero() || !call.End.Before(now) || call.Dialled == "" || call.CallerPseudonym == "" {
				t.Errorf("%s: call %+v", id, call)
			}
			static := strings.HasPrefix(call.Dialled, "+319")
			if static != (call.SessionID == "") {
				t.Errorf("%s: call %s dialled %s with session %q", id, call.ID, call.Dialled, call.SessionID)
			}
			if call.SessionID == "" {
				continue
			}
			var s store.Session
			if err := db.View(func(tx *store.Tx) (err error) { s, err = tx.Session(call.SessionID); return err }); err != nil {
				t.Fatalf("%s: the session of call %s: %v", id, call.ID, err)
			}
			if s.CustomerID != id || s.Channel != call.Channel || s.LandingPage != call.LandingPage || !s.Created.Before(call.Start) {
				t.Errorf("%s: call %+v\nhas session %+v", id, call, s)
			}
		}
	}
	if total != calls || first+returning != calls || answered+busy+missed != calls {
		t.Errorf("rollups count %d calls (%d first time, %d returning; %d answered, %d busy, %d missed), want %d",
			total, first, returning, answered, busy, missed, calls)
	}
	if answered < calls*6/10 || answered > calls*8/10 || busy < calls/20 || busy > calls*15/100 {
		t.Errorf("dispositions: %d answered, %d busy, %d missed of %d", answered, busy, missed, calls)
	}
	if returning == 0 || first == 0 {
		t.Errorf("%d first-time and %d returning callers: want both", first, returning)
	}
	if days < 300*customers {
		t.Errorf("calls on %d customer-days, want them spread over the year", days)
	}
	tagged, _, err := db.Calls(store.CallFilter{CustomerID: customerID(0), Tag: "lead", Limit: 5})
	if err != nil || len(tagged) == 0 {
		t.Errorf("no call tagged lead (%v)", err)
	}

	for _, email := range []string{operatorEmail, adminEmail(customerID(0)), adminEmail(customerID(1))} {
		u, err := db.UserByEmail(email)
		if err != nil {
			t.Fatalf("%s: %v", email, err)
		}
		if ok, err := accounts.VerifyPassword(u.PasswordHash, benchPassword); !ok || err != nil {
			t.Errorf("%s: the password does not verify (%v)", email, err)
		}
	}
}

// TestSeedSessionsOnly: without -calls and -users the seed writes what it always did, and no
// config for the web app.
func TestSeedSessionsOnly(t *testing.T) {
	dir := t.TempDir()
	if err := run(context.Background(), options{dir: dir, sessions: 100, numbers: 10, customers: 2}); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), "listen") {
		t.Errorf("config.yaml:\n%s", cfg)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys")); !os.IsNotExist(err) {
		t.Errorf("keys made without calls (%v)", err)
	}
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if calls, _, err := db.Calls(store.CallFilter{}); err != nil || len(calls) != 0 {
		t.Errorf("%d calls (%v), want none", len(calls), err)
	}
	if users, err := db.Users(""); err != nil || len(users) != 0 {
		t.Errorf("%d operators (%v), want none", len(users), err)
	}
}
