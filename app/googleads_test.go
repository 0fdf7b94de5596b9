package app

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/integrations/googleads"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

func TestGoogleAdsPage(t *testing.T) {
	e := newEnv(t)
	keys, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	e.app.keys = keys
	admin, member := e.loggedIn("admin@a.example"), e.loggedIn("member@a.example")
	if a := member.get("/c/a/google-ads"); a.status != 200 || !strings.Contains(a.body, `id="ads-settings"`) || strings.Contains(a.body, "conversions.csv") {
		t.Fatalf("a member's page: %d, CSV link %v", a.status, strings.Contains(a.body, "conversions.csv"))
	}
	form := url.Values{"ads_customer_id": {"123-456-7890"}, "conversion_action": {"customers/1234567890/conversionActions/77"},
		"conversion_name": {"Phone calls"}, "currency": {"eur"}, "time_zone": {"Europe/Amsterdam"}, "min_talk_seconds": {"30"},
		"lead_status": {"qualified"}, "value": {"fixed"}, "fixed_value": {"12,50"},
		"client_id": {"client.apps.example"}, "client_secret": {"the-client-secret"}, "refresh_token": {"1//the-refresh-token"}}
	if a := member.post("/c/a/google-ads", form); a.status != http.StatusForbidden {
		t.Fatalf("a member saves: %d", a.status)
	}
	form.Del("csrf") // the member's
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("ads_customer_id", "12345")
	if a := admin.post("/c/a/google-ads", bad); a.status != http.StatusBadRequest || !strings.Contains(a.body, "ads_customer_id: ") ||
		strings.Contains(a.body, "the-client-secret") {
		t.Fatalf("a bad customer id: %d (the secret echoed: %v)", a.status, strings.Contains(a.body, "the-client-secret"))
	}
	bad.Set("ads_customer_id", "1234567890")
	bad.Del("refresh_token")
	if a := admin.post("/c/a/google-ads", bad); a.status != http.StatusBadRequest || !strings.Contains(a.body, "refresh_token: ") {
		t.Fatalf("no refresh token: %d", a.status)
	}
	if a := admin.post("/c/a/google-ads", form); a.status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", a.status, a.body)
	}
	stored := func() store.GoogleAds {
		t.Helper()
		var g store.GoogleAds
		if err := e.db.View(func(tx *store.Tx) (err error) { g, err = tx.GoogleAds("a"); return err }); err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := stored()
	if g.AdsCustomerID != "1234567890" || g.Currency != "EUR" || g.Rule.FixedValue != 12.5 || len(g.Rule.LeadStatuses) != 1 ||
		g.Rule.MinTalkSeconds != 30 || strings.Contains(string(g.SealedSecrets), "the-client-secret") {
		t.Fatalf("stored %+v", g)
	}
	key, _ := keys.Get("a")
	if sec, err := googleads.Unseal(key, g.SealedSecrets); err != nil || sec.ClientSecret != "the-client-secret" || sec.RefreshToken != "1//the-refresh-token" {
		t.Fatalf("secrets %+v %v", sec, err)
	}
	// Saved again without the secrets: they stay.
	form.Del("client_secret")
	form.Del("refresh_token")
	form.Set("disabled", "on")
	if a := admin.post("/c/a/google-ads", form); a.status != http.StatusSeeOther {
		t.Fatalf("save again: %d %s", a.status, a.body)
	}
	if g2 := stored(); !g2.Disabled || g2.Updated.IsZero() {
		t.Fatalf("again %+v", g2)
	} else if sec, err := googleads.Unseal(key, g2.SealedSecrets); err != nil || sec.RefreshToken != "1//the-refresh-token" {
		t.Fatalf("secrets after a save without them: %+v %v", sec, err)
	}
	if a := admin.get("/c/a/google-ads"); a.status != 200 || strings.Contains(a.body, "the-client-secret") || strings.Contains(a.body, "the-refresh-token") {
		t.Fatalf("the page shows a secret or fails: %d", a.status)
	}

	// A call with a gclid and consent, refused by Google: counted, listed, and on the call's page.
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	const callID = "01KJPWD6M04Y3C0ND8FTDB9R0A"
	err = e.db.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.PutSession(&store.Session{ID: "s1", CustomerID: "a", Created: start, Gclid: "Cj0KCQjw-abc_1", AdConsent: store.ConsentGranted}); err != nil {
			return err
		}
		if err := tx.PutCall(&store.Call{ID: callID, CustomerID: "a", SessionID: "s1", Start: start, Answer: start,
			End: start.Add(time.Minute), TalkSeconds: 60, Disposition: store.DispAnswered}); err != nil {
			return err
		}
		return tx.PutConversionUpload(&store.ConversionUpload{CustomerID: "a", CallID: callID, State: store.UploadFailed,
			Error: "The click is too recent to be imported.", Updated: start})
	})
	if err != nil {
		t.Fatal(err)
	}
	a := member.get("/c/a/google-ads")
	if a.status != 200 || !strings.Contains(a.body, "The click is too recent") || !strings.Contains(a.body, "/c/a/calls/"+callID) {
		t.Fatalf("uploads on the page: %d", a.status)
	}
	if a := member.get("/c/a/calls/" + callID); a.status != 200 || !strings.Contains(a.body, "Refused by Google") {
		t.Fatalf("the call page shows no upload state: %d", a.status)
	}
	if a := member.get("/c/a/google-ads/conversions.csv"); a.status != http.StatusForbidden {
		t.Fatalf("a member downloads the CSV: %d", a.status)
	}
	a = admin.get("/c/a/google-ads/conversions.csv")
	want := "Parameters:TimeZone=Europe/Amsterdam\nGoogle Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency\n" +
		"Cj0KCQjw-abc_1,Phone calls," + start.In(mustZone(t, "Europe/Amsterdam")).Format(time.DateTime) + ",12.5,EUR\n"
	if a.status != 200 || a.header.Get("Content-Type") != "text/csv; charset=utf-8" || a.body != want {
		t.Fatalf("CSV %d %s:\n%s\nwant\n%s", a.status, a.header.Get("Content-Type"), a.body, want)
	}
	if other := e.loggedIn("admin@b.example"); other.get("/c/b/google-ads/conversions.csv").status != http.StatusNotFound {
		t.Fatal("a customer without settings gets a CSV")
	}
	var actions []string
	entries, _, err := e.db.AuditLog(store.AuditFilter{CustomerID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		actions = append(actions, en.Action)
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "googleads.update") || !strings.Contains(got, "googleads.export") {
		t.Fatalf("audit: %s", got)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
