package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func adsFixture(customerID string) GoogleAds {
	return GoogleAds{CustomerID: customerID, AdsCustomerID: "1234567890",
		ConversionAction: "customers/1234567890/conversionActions/987", Currency: "EUR",
		ClientID: "client.apps.example", SealedSecrets: []byte("sealed-" + customerID),
		Rule:    AdsRule{MinTalkSeconds: 30, LeadStatuses: []LeadStatus{LeadStatusQualified}, Value: AdsValueFixed, FixedValue: 25},
		Created: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
}

func TestGoogleAdsCheck(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*GoogleAds)
		field string
	}{
		{"valid", func(*GoogleAds) {}, ""},
		{"dashed customer id", func(g *GoogleAds) { g.AdsCustomerID = "123-456-7890" }, "ads_customer_id"},
		{"action of another account", func(g *GoogleAds) { g.ConversionAction = "customers/1111111111/conversionActions/1" }, "conversion_action"},
		{"action not a resource name", func(g *GoogleAds) { g.ConversionAction = "Calls" }, "conversion_action"},
		{"currency", func(g *GoogleAds) { g.Currency = "eur" }, "currency"},
		{"no client id", func(g *GoogleAds) { g.ClientID = "" }, "client_id"},
		{"no credentials: the CSV only", func(g *GoogleAds) { g.ClientID, g.SealedSecrets = "", nil }, ""},
		{"secrets without a client id", func(g *GoogleAds) { g.ClientID = "" }, "client_id"},
		{"a client id without secrets", func(g *GoogleAds) { g.SealedSecrets = nil }, "client_id"},
		{"time zone", func(g *GoogleAds) { g.TimeZone = "Mars/Olympus" }, "time_zone"},
		{"empty rule", func(g *GoogleAds) { g.Rule.MinTalkSeconds, g.Rule.LeadStatuses = 0, nil }, "rule"},
		{"not_a_lead counts", func(g *GoogleAds) { g.Rule.LeadStatuses = []LeadStatus{LeadStatusNotALead} }, "rule.lead_statuses"},
		{"value source", func(g *GoogleAds) { g.Rule.Value = "mean" }, "rule.value"},
		{"negative value", func(g *GoogleAds) { g.Rule.FixedValue = -1 }, "rule.fixed_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := adsFixture("acme")
			tt.edit(&g)
			err := g.Check()
			var fe *FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
				t.Fatalf("Check = %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
}

func TestAdsRule(t *testing.T) {
	end := time.Date(2026, 5, 1, 10, 5, 0, 0, time.UTC)
	r := AdsRule{MinTalkSeconds: 30, LeadStatuses: []LeadStatus{LeadStatusLead, LeadStatusCustomer}, Value: AdsValueCall}
	tests := []struct {
		name string
		call Call
		want bool
	}{
		{"long answered", Call{Answer: end.Add(-time.Minute), End: end, TalkSeconds: 60}, true},
		{"short answered", Call{Answer: end.Add(-time.Minute), End: end, TalkSeconds: 29}, false},
		{"short but a customer", Call{Answer: end.Add(-time.Minute), End: end, TalkSeconds: 5, LeadStatus: LeadStatusCustomer}, true},
		{"qualified is not in the rule", Call{End: end, LeadStatus: LeadStatusQualified}, false},
		{"in progress", Call{Answer: end, TalkSeconds: 60}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Matches(&tt.call); got != tt.want {
				t.Fatalf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
	if v := r.ValueOf(&Call{Value: 120}); v != 120 {
		t.Fatalf("ValueOf = %v, want the call's 120", v)
	}
}

// adsStoreFixture writes the customers acme and other with settings, a session with a click
// and three ended calls of acme, the third uploaded already.
func adsStoreFixture(t *testing.T, db *DB, t0 time.Time) {
	t.Helper()
	err := db.Write(context.Background(), func(tx *Tx) error {
		// Before any write the buckets do not exist: reads find nothing.
		if _, err := tx.GoogleAds("acme"); !errors.Is(err, ErrNotFound) {
			return err
		}
		if all, err := tx.AllGoogleAds(); err != nil || len(all) != 0 {
			t.Errorf("AllGoogleAds of none = %v %v", all, err)
		}
		for _, id := range []string{"acme", "other"} {
			if err := tx.CreateCustomer(&Customer{ID: id, SiteKey: id + "-site-key", Status: StatusActive}); err != nil {
				return err
			}
			g := adsFixture(id)
			if err := tx.PutGoogleAds(&g); err != nil {
				return err
			}
		}
		g := adsFixture("nobody")
		if err := tx.PutGoogleAds(&g); !errors.Is(err, ErrNotFound) {
			t.Errorf("settings of an unknown customer: %v", err)
		}
		if err := tx.PutSession(&Session{ID: "s1", CustomerID: "acme", Created: t0, Channel: "Paid search", Gclid: "Cj0K", AdConsent: ConsentGranted}); err != nil {
			return err
		}
		calls := []Call{
			{ID: "01KJPWD6M04Y3C0ND8FTDB9R01", CustomerID: "acme", SessionID: "s1", Start: t0, Answer: t0, End: t0.Add(time.Minute), TalkSeconds: 60, Disposition: DispAnswered},
			{ID: "01KJPWD6M04Y3C0ND8FTDB9R02", CustomerID: "acme", Start: t0, Answer: t0, End: t0.Add(10 * time.Second), TalkSeconds: 10, Disposition: DispAnswered},
			{ID: "01KJPWD6M04Y3C0ND8FTDB9R03", CustomerID: "acme", Start: t0, Answer: t0, End: t0.Add(time.Minute), TalkSeconds: 60, Disposition: DispAnswered},
		}
		for i := range calls {
			if err := tx.PutCall(&calls[i]); err != nil {
				return err
			}
		}
		return tx.PutConversionUpload(&ConversionUpload{CustomerID: "acme", CallID: calls[2].ID, State: UploadUploaded, Updated: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGoogleAdsStore(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	adsStoreFixture(t, db, t0)
	candidates := func(now time.Time, limit int) []string {
		t.Helper()
		var ids []string
		err := db.View(func(tx *Tx) error {
			g, err := tx.GoogleAds("acme")
			if err != nil {
				return err
			}
			cands, err := tx.ConversionCandidates("acme", &g.Rule, t0.Add(-time.Hour), now, limit)
			for _, c := range cands {
				if c.Call.ID == "01KJPWD6M04Y3C0ND8FTDB9R01" && (c.Session.Gclid != "Cj0K" || c.Session.AdConsent != ConsentGranted) {
					t.Errorf("candidate's session = %+v", c.Session)
				}
				ids = append(ids, c.Call.ID)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	err := db.View(func(tx *Tx) error {
		g, err := tx.GoogleAds("acme")
		want := adsFixture("acme")
		if err != nil || string(g.SealedSecrets) != "sealed-acme" || g.Rule.FixedValue != 25 || g.ConversionAction != want.ConversionAction ||
			g.Currency != "EUR" || g.ClientID != want.ClientID || !g.Created.Equal(want.Created) || !slices.Equal(g.Rule.LeadStatuses, want.Rule.LeadStatuses) {
			t.Errorf("GoogleAds = %+v, %v", g, err)
		}
		all, err := tx.AllGoogleAds()
		if err != nil || len(all) != 2 || all[0].CustomerID != "acme" || all[1].CustomerID != "other" || string(all[1].SealedSecrets) != "sealed-other" {
			t.Errorf("AllGoogleAds = %+v %v", all, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The short call does not match, the uploaded one is final.
	if got := candidates(t0.Add(time.Hour), 10); !slices.Equal(got, []string{"01KJPWD6M04Y3C0ND8FTDB9R01"}) {
		t.Fatalf("candidates = %v", got)
	}
	// A pending state with a later attempt waits for it; then it is a candidate again.
	pending := ConversionUpload{CustomerID: "acme", CallID: "01KJPWD6M04Y3C0ND8FTDB9R01", State: UploadPending,
		Error: "timeout", Attempts: 2, NextAttempt: t0.Add(2 * time.Hour), Value: 25, Currency: "EUR", Updated: t0}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.PutConversionUpload(&pending) }); err != nil {
		t.Fatal(err)
	}
	if got := candidates(t0.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("candidates before the next attempt = %v", got)
	}
	if got := candidates(t0.Add(2*time.Hour), 10); !slices.Equal(got, []string{"01KJPWD6M04Y3C0ND8FTDB9R01"}) {
		t.Fatalf("candidates at the next attempt = %v", got)
	}
	err = db.View(func(tx *Tx) error {
		u, err := tx.ConversionUpload("acme", pending.CallID)
		if err != nil || u != pending {
			t.Errorf("ConversionUpload = %+v %v, want %+v", u, err, pending)
		}
		if _, err := tx.ConversionUpload("other", pending.CallID); !errors.Is(err, ErrNotFound) {
			t.Errorf("another customer's upload state: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Settings go, upload states stay; a second delete finds none.
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteGoogleAds("acme") }); err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteGoogleAds("acme") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteGoogleAds = %v", err)
	}
	err = db.View(func(tx *Tx) error {
		if _, err := tx.GoogleAds("acme"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted settings: %v", err)
		}
		if all, err := tx.AllGoogleAds(); err != nil || len(all) != 1 || all[0].CustomerID != "other" {
			t.Errorf("AllGoogleAds = %+v %v", all, err)
		}
		if _, err := tx.ConversionUpload("acme", pending.CallID); err != nil {
			t.Errorf("upload state after the settings went: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConversionUploads: a customer's upload states in call id order, after a cursor, until
// the function says stop, across more than a page of PostgreSQL's reads.
func TestConversionUploads(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	const n = 1203
	ids := make([]string, n)
	err := db.Write(ctx, func(tx *Tx) error {
		for i := range n {
			ids[i] = testCallID(t0, i)
			for _, c := range []string{"acme", "acme2", "acm"} {
				u := ConversionUpload{CustomerID: c, CallID: ids[i], State: UploadSkipped, Reason: SkipNoClickID, Updated: t0}
				if err := tx.PutConversionUpload(&u); err != nil {
					return err
				}
			}
		}
		for _, bad := range []ConversionUpload{
			{CustomerID: "acme", CallID: "x", Updated: t0},
			{CustomerID: "acme", State: UploadPending},
			{CustomerID: "acme", CallID: "x\x00y", State: UploadPending},
			{CustomerID: "acme", CallID: "x\xffy", State: UploadPending},
		} {
			if err := tx.PutConversionUpload(&bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("PutConversionUpload(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	walk := func(after string, stop int) []string {
		t.Helper()
		var got []string
		err := db.View(func(tx *Tx) error {
			return tx.ConversionUploads("acme", after, func(u ConversionUpload) bool {
				if u.CustomerID != "acme" || u.State != UploadSkipped || u.Reason != SkipNoClickID {
					t.Errorf("upload state %+v", u)
				}
				got = append(got, u.CallID)
				return len(got) < stop
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	tests := []struct {
		name  string
		after string
		stop  int
		want  []string
	}{
		{"all", "", n + 1, ids},
		{"stopped", "", 3, ids[:3]},
		{"after one", ids[600], n, ids[601:]},
		{"after one not there", ids[600] + "0", n, ids[601:]},
		{"after the last", ids[n-1], n, nil},
		{"after odd bytes", "\xff", n, nil},
		{"after NUL", ids[600] + "\x00", n, ids[601:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := walk(tt.after, tt.stop); !slices.Equal(got, tt.want) {
				t.Fatalf("ConversionUploads after %q: %d states, want %d", tt.after, len(got), len(tt.want))
			}
		})
	}
}

// TestGoogleAdsPurge: a customer's erasure takes its settings and upload states, and
// leaves the other customer's.
func TestGoogleAdsPurge(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	adsStoreFixture(t, db, t0)
	if _, err := db.PurgeCustomer(ctx, "acme", PurgeOptions{Batch: 1, At: t0}); err != nil {
		t.Fatal(err)
	}
	for _, w := range rawHolds(t, db, "acme") {
		if !purgedLeft(w, "acme") {
			t.Errorf("acme is still in %s", w)
		}
	}
	err := db.View(func(tx *Tx) error {
		if _, err := tx.GoogleAds("other"); err != nil {
			t.Errorf("other's settings after acme's purge: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEraseCallTakesItsUpload: deleting a call (a caller's erasure) deletes its Google Ads
// upload state, which may quote Google's error about its click.
func TestEraseCallTakesItsUpload(t *testing.T) {
	db := openTest(t)
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	c := Call{ID: testCallID(start, 1), CustomerID: "c", Start: start, End: start.Add(time.Minute), Gclid: "gclid-probe"}
	putCalls(t, db, c)
	ctx := context.Background()
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.PutConversionUpload(&ConversionUpload{CustomerID: "c", CallID: c.ID, State: UploadFailed, Error: "gclid-probe is too old"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { _, _, err := tx.DeleteCall(c.ID); return err }); err != nil {
		t.Fatal(err)
	}
	err := db.View(func(tx *Tx) error { _, err := tx.ConversionUpload("c", c.ID); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("the erased call's upload state: %v", err)
	}
}

// TestConversionCandidatesPaging: over more calls than one page of Calls, the candidates
// are the matching calls without a final state or a later attempt, newest first, cut at
// the limit.
func TestConversionCandidatesPaging(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	now := t0.Add(24 * time.Hour)
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.CreateCustomer(&Customer{ID: "acme", SiteKey: "acme-site-key", Status: StatusActive})
	}); err != nil {
		t.Fatal(err)
	}
	const n = 1300
	var want []string // newest first
	err := db.Write(ctx, func(tx *Tx) error {
		for i := range n {
			start := t0.Add(time.Duration(i) * time.Second)
			talk := 60.0
			if i%5 == 0 {
				talk = 10 // too short for the rule
			}
			c := Call{ID: testCallID(start, i), CustomerID: "acme", Start: start, Answer: start,
				End: start.Add(time.Minute), TalkSeconds: talk, Disposition: DispAnswered}
			if err := tx.PutCall(&c); err != nil {
				return err
			}
			var u *ConversionUpload
			switch i % 7 {
			case 1:
				u = &ConversionUpload{State: UploadUploaded}
			case 2:
				u = &ConversionUpload{State: UploadPending, NextAttempt: now.Add(time.Minute)}
			case 3:
				u = &ConversionUpload{State: UploadPending, NextAttempt: now, Attempts: 1}
			case 4:
				u = &ConversionUpload{State: UploadSkipped, Reason: SkipNoClickID}
			}
			if u != nil {
				u.CustomerID, u.CallID, u.Updated = "acme", c.ID, t0
				if err := tx.PutConversionUpload(u); err != nil {
					return err
				}
			}
			if talk >= 30 && (u == nil || i%7 == 3) {
				want = append([]string{c.ID}, want...)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rule := AdsRule{MinTalkSeconds: 30, Value: AdsValueFixed, FixedValue: 1}
	for _, limit := range []int{len(want) + 10, 700, 3} {
		var got []string
		err := db.View(func(tx *Tx) error {
			cands, err := tx.ConversionCandidates("acme", &rule, t0, now, limit)
			for _, c := range cands {
				got = append(got, c.Call.ID)
				if (c.Upload.State == UploadPending) != (c.Upload.Attempts == 1) {
					t.Errorf("candidate %s with upload %+v", c.Call.ID, c.Upload)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if w := want[:min(limit, len(want))]; !slices.Equal(got, w) {
			t.Fatalf("limit %d: %d candidates, want %d (first %v, want %v)", limit, len(got), len(w), got[:min(3, len(got))], w[:min(3, len(w))])
		}
	}
}
