package api

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trackline/trackline/integrations/googleads"
	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// TestSessionAdConsent: the ad consent the script sends is checked at the edge and kept on
// the session; a later post of the same session replaces it.
func TestSessionAdConsent(t *testing.T) {
	db := storetest.Open(t)
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

func newAdsEnv(t *testing.T) (*store.DB, *keyring.Keyring, string) {
	t.Helper()
	db := storetest.Open(t)
	keys, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateCustomer(context.Background(), store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: siteKey}); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{AdminToken: token}, p, WithCalls(db), WithRecordings(db, t.TempDir(), keys), WithRegisterer(prometheus.NewRegistry()),
		WithClock(func() time.Time { return time.Date(2026, 5, 2, 12, 0, 0, 0, time.UTC) }))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Admin())
	t.Cleanup(srv.Close)
	return db, keys, srv.URL
}

func TestGoogleAdsSettings(t *testing.T) {
	db, keys, base := newAdsEnv(t)
	url := base + "/v1/customers/acme/google-ads"
	auth := []string{"Authorization", "Bearer " + token}
	const settings = `"ads_customer_id":"1234567890","conversion_action":"customers/1234567890/conversionActions/77","currency":"EUR",` +
		`"time_zone":"Europe/Amsterdam","client_id":"client.apps.example","rule":{"min_talk_seconds":30,"value":"call"}`

	if r := do(t, "GET", url, "", "", auth...); r.status != 404 {
		t.Fatalf("GET before PUT: %d %v", r.status, r.body)
	}
	bad := []struct{ name, body, field string }{
		{"no secrets with a client id", `{` + settings + `}`, "client_secret"},
		{"no refresh token", `{` + settings + `,"client_secret":"s3cret"}`, "refresh_token"},
		{"dashed customer id", `{"ads_customer_id":"123-456-7890"}`, "ads_customer_id"},
		{"empty secret", `{` + settings + `,"client_secret":"","refresh_token":"1//r"}`, "client_secret"},
		{"unknown member", `{"gclid":"x"}`, ""},
	}
	for _, tt := range bad {
		r := do(t, "PUT", url, "application/json", tt.body, auth...)
		if r.status != 400 || (tt.field != "" && r.body["field"] != tt.field) {
			t.Fatalf("%s: %d %v, want 400 on %q", tt.name, r.status, r.body, tt.field)
		}
	}
	r := do(t, "PUT", url, "application/json", `{`+settings+`,"client_secret":"s3cret-4711","refresh_token":"1//refresh-4711"}`, auth...)
	if r.status != 201 || r.body["has_credentials"] != true || r.body["client_secret"] != nil {
		t.Fatalf("PUT: %d %v", r.status, r.body)
	}
	// A PUT without secrets keeps them; one with a new refresh token replaces that only.
	if r := do(t, "PUT", url, "application/json", `{`+settings+`,"conversion_name":"Calls"}`, auth...); r.status != 200 {
		t.Fatalf("PUT again: %d %v", r.status, r.body)
	}
	if r := do(t, "PUT", url, "application/json", `{`+settings+`,"conversion_name":"Calls","refresh_token":"1//new-4711"}`, auth...); r.status != 200 {
		t.Fatalf("PUT a new refresh token: %d %v", r.status, r.body)
	}
	r = do(t, "GET", url, "", "", auth...)
	if r.status != 200 || r.body["conversion_name"] != "Calls" || r.body["has_credentials"] != true {
		t.Fatalf("GET: %d %v", r.status, r.body)
	}
	var g store.GoogleAds
	if err := db.View(func(tx *store.Tx) (err error) { g, err = tx.GoogleAds("acme"); return err }); err != nil {
		t.Fatal(err)
	}
	key, _ := keys.Get("acme")
	if sec, err := googleads.Unseal(key, g.SealedSecrets); err != nil || sec.ClientSecret != "s3cret-4711" || sec.RefreshToken != "1//new-4711" {
		t.Fatalf("sealed secrets %+v %v", sec, err)
	}
	// Never in the clear: not in the store's file, nor in any row of its database.
	for _, needle := range []string{"s3cret-4711", "-4711"} {
		if where := storetest.RawHolds(t, db, needle); len(where) > 0 {
			t.Fatalf("a secret is in the store in the clear: %q in %v", needle, where)
		}
	}
}

func TestConversionsCSV(t *testing.T) {
	db, _, base := newAdsEnv(t)
	auth := []string{"Authorization", "Bearer " + token}
	if r := do(t, "PUT", base+"/v1/customers/acme/google-ads", "application/json", `{"ads_customer_id":"1234567890",`+
		`"conversion_action":"customers/1234567890/conversionActions/77","conversion_name":"Phone calls","currency":"EUR",`+
		`"time_zone":"Europe/Amsterdam","rule":{"min_talk_seconds":30,"value":"fixed","fixed_value":12.5}}`, auth...); r.status != 201 {
		t.Fatalf("PUT: %d %v", r.status, r.body)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	type fix struct {
		id, gclid string
		consent   store.Consent
		talk      float64
	}
	err := db.Write(context.Background(), func(tx *store.Tx) error {
		for i, f := range []fix{
			{"01KJPWD6M04Y3C0ND8FTDB9R0A", "Cj0KCQjw-abc_1", store.ConsentGranted, 60},
			{"01KJPWD6M04Y3C0ND8FTDB9R0B", "Cj0KCQjw-denied", store.ConsentDenied, 60},
			{"01KJPWD6M04Y3C0ND8FTDB9R0C", "Cj0KCQjw-short", store.ConsentGranted, 10},
			{"01KJPWD6M04Y3C0ND8FTDB9R0D", "=HYPERLINK(1)", store.ConsentGranted, 60},
		} {
			start := t0.Add(time.Duration(i) * time.Hour)
			if err := tx.PutSession(&store.Session{ID: "s" + f.id, CustomerID: "acme", Created: t0, Channel: "Paid search", Gclid: f.gclid, AdConsent: f.consent}); err != nil {
				return err
			}
			if err := tx.PutCall(&store.Call{ID: f.id, CustomerID: "acme", SessionID: "s" + f.id, Start: start, Answer: start,
				End: start.Add(time.Minute), TalkSeconds: f.talk, Disposition: store.DispAnswered}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	status, ctype, body := raw(t, "GET", base+"/v1/customers/acme/conversions.csv", token, "")
	want := "Parameters:TimeZone=Europe/Amsterdam\n" +
		"Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency\n" +
		"Cj0KCQjw-abc_1,Phone calls,2026-05-01 12:00:00,12.5,EUR\n"
	if status != 200 || ctype != "text/csv; charset=utf-8" || body != want {
		t.Fatalf("CSV: %d %s\n%s\nwant\n%s", status, ctype, body, want)
	}
	if status, _, body := raw(t, "GET", base+"/v1/customers/acme/conversions.csv?from=yesterday", token, ""); status != 400 || !strings.Contains(body, `"field":"from"`) {
		t.Fatalf("bad from: %d %s", status, body)
	}
}

func TestListConversions(t *testing.T) {
	db, _, base := newAdsEnv(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	ids := []string{"01KJPWD6M04Y3C0ND8FTDB9R0A", "01KJPWD6M04Y3C0ND8FTDB9R0B", "01KJPWD6M04Y3C0ND8FTDB9R0C"}
	err := db.Write(context.Background(), func(tx *store.Tx) error {
		for i, id := range ids {
			u := store.ConversionUpload{CustomerID: "acme", CallID: id, State: store.UploadUploaded, Updated: t0}
			if i == 1 {
				u.State, u.Error = store.UploadFailed, "conversionUploadError.UNPARSEABLE_GCLID: The click identifier is not valid."
			}
			if err := tx.PutConversionUpload(&u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	list := func(query string) (int, []string, string) {
		t.Helper()
		r := do(t, "GET", base+"/v1/customers/acme/conversions"+query, "", "", "Authorization", "Bearer "+token)
		var got []string
		convs, _ := r.body["conversions"].([]any)
		for _, c := range convs {
			got = append(got, c.(map[string]any)["call_id"].(string))
		}
		next, _ := r.body["next_cursor"].(string)
		return r.status, got, next
	}
	tests := []struct {
		name, query string
		status      int
		want        []string
		next        string
	}{
		{"all", "", 200, ids, ""},
		{"a page", "?limit=2", 200, ids[:2], ids[1]},
		{"the next page", "?limit=2&cursor=" + ids[1], 200, ids[2:], ""},
		{"failed only", "?state=failed", 200, ids[1:2], ""},
		{"bad state", "?state=done", 400, nil, ""},
		{"bad limit", "?limit=0", 400, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got, next := list(tt.query)
			if status != tt.status || strings.Join(got, ",") != strings.Join(tt.want, ",") || next != tt.next {
				t.Fatalf("%d %v next %q; want %d %v next %q", status, got, next, tt.status, tt.want, tt.next)
			}
		})
	}
}
