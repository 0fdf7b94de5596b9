package store

import (
	"context"
	"errors"
	"path/filepath"
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

func TestGoogleAdsStoreAndPurge(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	err := db.Write(ctx, func(tx *Tx) error {
		// Before any write the buckets do not exist: reads find nothing.
		if _, err := tx.GoogleAds("acme"); !errors.Is(err, ErrNotFound) {
			return err
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
	err = db.View(func(tx *Tx) error {
		g, err := tx.GoogleAds("acme")
		if err != nil || string(g.SealedSecrets) != "sealed-acme" || g.Rule.FixedValue != 25 {
			t.Errorf("GoogleAds = %+v, %v", g, err)
		}
		rule := g.Rule
		cands, err := tx.ConversionCandidates("acme", &rule, t0.Add(-time.Hour), t0.Add(time.Hour), 10)
		if err != nil {
			return err
		}
		// The short call does not match, the uploaded one is final.
		if len(cands) != 1 || cands[0].Call.ID != "01KJPWD6M04Y3C0ND8FTDB9R01" || cands[0].Session.Gclid != "Cj0K" || cands[0].Session.AdConsent != ConsentGranted {
			t.Errorf("candidates = %+v", cands)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := db.PurgeCustomer(ctx, "acme", PurgeOptions{Batch: 1, At: t0}); err != nil {
		t.Fatal(err)
	}
	for _, w := range rawHolds(t, db, "acme") {
		if w != `customers_purged/"acme"` {
			t.Errorf("acme is still in %s", w)
		}
	}
	err = db.View(func(tx *Tx) error {
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
	db, err := Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
	err = db.View(func(tx *Tx) error { _, err := tx.ConversionUpload("c", c.ID); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("the erased call's upload state: %v", err)
	}
}
