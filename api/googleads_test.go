package api

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// TestSessionAdConsent: the ad consent the script sends is checked at the edge and kept on
// the session; a later post of the same session replaces it.
func TestSessionAdConsent(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.CreateCustomer(ctx, store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: siteKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ImportNumbers(ctx, "acme", []pool.NumberInput{{Number: "+31850000001"}}); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{AdminToken: token}, p, WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Public())
	t.Cleanup(srv.Close)
	consentOf := func(id string) store.Consent {
		t.Helper()
		var s store.Session
		if err := db.View(func(tx *store.Tx) (err error) { s, err = tx.Session(id); return err }); err != nil {
			t.Fatal(err)
		}
		return s.AdConsent
	}

	r := do(t, "POST", srv.URL+"/v1/sessions", "text/plain", `{"site_key":"acme-site-key","gclid":"Cj0K","ad_consent":"denied"}`)
	if r.status != 201 {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	id := r.body["session_id"].(string)
	steps := []struct {
		name, body string
		status     int
		want       store.Consent
	}{
		{"unknown keeps it", `{"site_key":"acme-site-key","session_id":"` + id + `","ad_consent":"unknown"}`, 200, store.ConsentDenied},
		{"absent keeps it", `{"site_key":"acme-site-key","session_id":"` + id + `"}`, 200, store.ConsentDenied},
		{"granted later", `{"site_key":"acme-site-key","session_id":"` + id + `","ad_consent":"granted"}`, 200, store.ConsentGranted},
		{"not a consent", `{"site_key":"acme-site-key","session_id":"` + id + `","ad_consent":"yes"}`, 400, store.ConsentGranted},
		{"not a string", `{"site_key":"acme-site-key","session_id":"` + id + `","ad_consent":true}`, 400, store.ConsentGranted},
	}
	for _, st := range steps {
		r := do(t, "POST", srv.URL+"/v1/sessions", "text/plain", st.body)
		if r.status != st.status {
			t.Fatalf("%s: %d %v, want %d", st.name, r.status, r.body, st.status)
		}
		if st.status == 400 && st.name == "not a consent" && r.body["field"] != "ad_consent" {
			t.Fatalf("%s: the problem names %v, want ad_consent", st.name, r.body)
		}
		if got := consentOf(id); got != st.want {
			t.Fatalf("%s: consent %s, want %s", st.name, got, st.want)
		}
	}
}
