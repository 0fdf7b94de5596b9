package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/store/keyring"
	bolt "go.etcd.io/bbolt"
)

// fillForMigrate writes what CopyTo copies into a bbolt store: two customers with channels,
// pool and static numbers, more sessions than a page of SessionsOf, counters, assignments
// (one cut short), a quarantined number of nobody and a deleted customer's id; times with
// nanoseconds.
func fillForMigrate(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	err := db.Write(ctx, func(tx *Tx) error {
		for i, id := range []string{"acme", "bolt"} {
			c := Customer{ID: id, Name: strings.ToUpper(id), Status: StatusActive, SiteKey: id + "-site-key-0001",
				AllowedOrigins: []string{"https://" + id + ".example"}, BusinessLines: []string{"sip:+3120555000" + fmt.Sprint(i) + "@127.0.0.1:5090"},
				Created: t0, ActiveSince: t0.Add(time.Hour), RetentionMonths: 6}
			if err := tx.CreateCustomer(&c); err != nil {
				return err
			}
			if err := tx.PutChannel(&Channel{CustomerID: id, ID: "flyer", Name: "Flyer", Order: 1}); err != nil {
				return err
			}
			for n := 0; n < 3; n++ {
				num := Number{E164: fmt.Sprintf("+3185000%d%03d", i, n), CustomerID: id, Kind: KindPool, State: NumberAvailable, Created: t0}
				if n == 2 {
					num.Kind, num.ChannelID = KindStatic, "flyer"
				}
				if err := tx.PutNumber(&num); err != nil {
					return err
				}
			}
			if err := tx.AddStats(id, uint64(1000*(i+1)), uint64(i), 2); err != nil {
				return err
			}
		}
		if err := tx.PutNumber(&Number{E164: "+31850009999", Kind: KindPool, State: NumberQuarantined, QuarantinedUntil: t0.Add(90 * 24 * time.Hour)}); err != nil {
			return err
		}
		return tx.tx.Bucket(bucketPurged).Put([]byte("gone"), binary.BigEndian.AppendUint64(nil, uint64(t0.UnixNano())))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(tx *Tx) error {
		for i := 0; i < 1500; i++ {
			created := t0.Add(time.Duration(i) * time.Second)
			s := Session{ID: fmt.Sprintf("s%05d", i), CustomerID: "acme", Created: created, Channel: "Organic",
				LandingPage: fmt.Sprintf("https://acme.example/p/%d?q=tegels", i), ReferrerHost: "www.google.com", Gclid: "G" + fmt.Sprint(i)}
			a := Assignment{CustomerID: "acme", Number: "+31850000000", SessionID: s.ID, From: created, Until: created.Add(30 * time.Minute)}
			if i%2 == 1 {
				a.Number, a.CutFrom = "+31850000001", created.Add(-time.Second)
			}
			if err := tx.PutSession(&s); err != nil {
				return err
			}
			if err := tx.PutAssignment(&a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fillCallsForMigrate(t, db, t0)
}

// fillCallsForMigrate writes calls (completed, in progress, recorded, without a pseudonym,
// one erased: the usage and rollups count it, no call does), tokens of both kinds, audit
// entries, a month's frozen session count and the caller index's mark.
func fillCallsForMigrate(t *testing.T, db *DB, t0 time.Time) {
	t.Helper()
	ctx := context.Background()
	err := db.Write(ctx, func(tx *Tx) error {
		for i := range 12 {
			at := t0.Add(time.Duration(i) * 7 * time.Hour)
			c := Call{ID: testCallID(at, i), CustomerID: []string{"acme", "bolt"}[i%2], Dialled: "+31850000000",
				Caller: fmt.Sprintf("+316123400%02d", i%5), CallerPseudonym: fmt.Sprintf("ps-%d", i%5), SessionID: fmt.Sprintf("s%05d", i),
				Channel: "Organic", Keyword: "tegels", LandingPage: fmt.Sprintf("https://acme.example/p/%d?q=tegels", i%3),
				ReferrerHost: "www.google.com", Start: at, Answer: at.Add(5 * time.Second), End: at.Add(time.Minute),
				Disposition: DispAnswered, TalkSeconds: 55.5, Tags: []string{"lead"}}
			switch i {
			case 3:
				c.End, c.Disposition, c.TalkSeconds = time.Time{}, "", 0 // in progress
			case 4:
				c.CallerPseudonym = "" // stored before the caller index
			case 5:
				c.RecordingID = "rec-5"
				if err := tx.PutRecording(&Recording{ID: "rec-5", CustomerID: c.CustomerID, CallID: c.ID, Path: "bolt/rec-5.wav",
					Duration: 55 * time.Second, Size: 880000, SHA256: "ab", Created: at.Add(time.Minute)}); err != nil {
					return err
				}
			}
			if err := tx.PutCall(&c); err != nil {
				return err
			}
		}
		for i, kind := range tokenKinds {
			tok := Token{Kind: kind, ID: fmt.Sprintf("tok-%d", i), CustomerID: "acme", Label: "desk", Created: t0}
			if kind == TokenAgent {
				tok.Groups = []string{"sales"}
			}
			if err := tx.PutToken(sha256.Sum256([]byte(tok.ID)), &tok); err != nil {
				return err
			}
		}
		for i := range 3 {
			if err := tx.AppendAudit(&AuditEntry{Time: t0.Add(time.Duration(i) * time.Minute), Actor: "operator", Action: "call.read",
				CustomerID: "acme", IDs: []string{"c" + fmt.Sprint(i)}, Counts: map[string]int{"calls": i}}); err != nil {
				return err
			}
		}
		// A user of the web app, logged in (copied by pg_migrate_users.go's part).
		if err := tx.PutUser(&User{ID: "ann", CustomerID: "acme", Email: "ann@acme.example", Role: RoleAdmin, Created: t0}); err != nil {
			return err
		}
		if err := tx.PutAppSession(&AppSession{IDHash: sha256.Sum256([]byte("session-ann")), UserID: "ann", CustomerID: "acme",
			CSRF: "csrf", Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
			return err
		}
		return tx.AppendAudit(&AuditEntry{Time: t0, Actor: "sweeper", Action: "sweep.run"})
	})
	if err != nil {
		t.Fatal(err)
	}
	// An erased call: gone from the calls, still counted in the usage.
	if err := db.Write(ctx, func(tx *Tx) error { _, _, err := tx.DeleteCall(testCallID(t0.Add(77*time.Hour), 11)); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FreezeSessionCounts(ctx, "acme", t0.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.IndexCallers(ctx, func(c, caller string) (string, error) { return "ps-" + c + caller, nil }); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresMigrate(t *testing.T) {
	ctx := context.Background()
	src, err := Open(filepath.Join(t.TempDir(), "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillForMigrate(t, src)
	keys, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dst := openPostgresTest(t, WithFieldKeys(keyringFields{keys}))

	progressed := 0
	rep, err := src.CopyTo(ctx, dst, func(string, int) { progressed++ })
	if err != nil {
		t.Fatal(err)
	}
	want := MigrateReport{"customers": 2, "channels": 2, "numbers": 7, "sessions": 1500, "stats": 2, "assignments": 1500, "purged_customers": 1,
		"calls": 11, "recordings": 1, "tokens": 2, "usage_months": 2, "rollup_days": 7, "audit_entries": 4, "state": 1, "users": 1, "app_sessions": 1}
	if fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Errorf("report %v, want %v", rep, want)
	}
	if progressed < 6 {
		t.Errorf("progress told %d times, want once a batch at least", progressed)
	}
	// The copy serves the switch's reads as the source did.
	err = dst.View(func(tx *Tx) error {
		s, err := tx.Session("s01499")
		if err != nil || s.LandingPage != "https://acme.example/p/1499?q=tegels" || s.Gclid != "G1499" {
			return fmt.Errorf("session s01499: %+v %v", s, err)
		}
		st, err := tx.Stats("bolt")
		if err != nil || st.SessionsTotal != 2000 || st.Exhaustions != 1 || st.PeakAssigned != 2 {
			return fmt.Errorf("stats of bolt: %+v %v", st, err)
		}
		if !tx.Purged("gone") || tx.Purged("acme") {
			return errors.New("purged ids not copied")
		}
		// The usage counts the erased call, which no call record holds.
		if u, err := tx.Usage("bolt", "2026-03"); err != nil || u.Calls != 6 {
			return fmt.Errorf("usage of bolt: %+v %v", u, err)
		}
		calls, err := tx.CallsOfCaller("acme", "ps-0")
		if err != nil || len(calls) != 2 || calls[0].Caller != "+31612340000" {
			return fmt.Errorf("calls of ps-0: %+v %v", calls, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The caller index's mark came along: IndexCallers does not run again.
	if n, err := dst.IndexCallers(ctx, func(string, string) (string, error) { return "", errors.New("called") }); n != 0 || err != nil {
		t.Errorf("IndexCallers on the copy: %d %v", n, err)
	}
	// The personal fields were sealed on the way: no caller or landing page in the clear.
	for _, needle := range []string{"+31612340000", "31612340001", "acme.example/p/1"} {
		for _, w := range pgRawHolds(t, dst, needle) {
			if !strings.HasPrefix(w, "sessions/") { // the sessions' are the session test's: sealed as well, by hex
				t.Errorf("%q in the clear in %s", needle, w)
			}
		}
	}

	// A second run finds the destination taken.
	if _, err := src.CopyTo(ctx, dst, nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("copy into a full store: %v, want ErrNotEmpty", err)
	}

	// The verification sees a record that differs.
	a, err := src.readAll()
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.readAll()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.same(b); err != nil {
		t.Fatalf("source and copy differ: %v", err)
	}
	b.sessions[700].LandingPage += "x"
	if err := a.same(b); err == nil || !strings.Contains(err.Error(), "sessions") {
		t.Errorf("a changed session: %v, want a difference in sessions", err)
	}
	b.sessions[700].LandingPage = a.sessions[700].LandingPage
	b.assignments = b.assignments[1:]
	if err := a.same(b); err == nil || !strings.Contains(err.Error(), "assignments: 1500 in the source, 1499") {
		t.Errorf("a lost assignment: %v", err)
	}
	b.assignments = a.assignments
	b.audit[2].Counts["calls"]++
	if err := a.same(b); err == nil || !strings.Contains(err.Error(), "audit_entries") {
		t.Errorf("a changed audit entry: %v", err)
	}
	b.audit = a.audit
	b.calls[3].Caller += "1"
	if err := a.same(b); err == nil || !strings.Contains(err.Error(), "calls") {
		t.Errorf("a changed caller: %v", err)
	}
	b.calls = a.calls
	b.rollups["acme"][0].Landing["https://acme.example/p/0"]++
	if err := a.same(b); err == nil || !strings.Contains(err.Error(), "rollups") {
		t.Errorf("a changed rollup: %v", err)
	}
	// New audit entries go on after the copied ones (the sequence was set past theirs).
	t1 := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	if err := dst.Write(ctx, func(tx *Tx) error {
		return tx.AppendAudit(&AuditEntry{Time: t1, Actor: "operator", Action: "calls.list"})
	}); err != nil {
		t.Fatal(err)
	}
	log, _, err := dst.AuditLog(AuditFilter{})
	if err != nil || len(log) != 5 || log[2].Action != "calls.list" || !strings.HasSuffix(log[2].ID, "0000000000000005") {
		t.Errorf("the audit log after a new entry (seq 5 at t0): %+v %v", log, err)
	}
}

// A source with records the PostgreSQL backend does not keep yet is refused before anything
// is written, naming them.
func TestPostgresMigrateRefusesWhatItCannotCopy(t *testing.T) {
	ctx := context.Background()
	src, err := Open(filepath.Join(t.TempDir(), "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillForMigrate(t, src)
	// A bucket of records this build does not know (a later build's, say).
	if err := src.raw().Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("later_records"))
		if err != nil {
			return err
		}
		return b.Put([]byte("r1"), []byte(`{}`))
	}); err != nil {
		t.Fatal(err)
	}
	dst := openPostgresTest(t)
	_, err = src.CopyTo(ctx, dst, nil)
	if err == nil || !strings.Contains(err.Error(), "later_records (1)") {
		t.Fatalf("copy of a store with unknown records: %v, want a refusal naming later_records", err)
	}
	var n int
	if err := dst.View(func(tx *Tx) error { cs, err := tx.Customers(); n = len(cs); return err }); err != nil || n != 0 {
		t.Errorf("refused copy wrote %d customers (%v)", n, err)
	}
}
