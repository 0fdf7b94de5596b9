package recordings_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// The export holds the customer's webhook endpoints and Google Ads settings without their
// secrets, and its calls' upload states; a customer with none of them has none of the files.
func TestExportIntegrations(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	const whsec, oldsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_OldOldOldOldOldOldOldOldOldOldOldO"
	sealed := []byte("TLGA1 sealed-oauth-secrets-stand-in")
	err = db.Write(context.Background(), func(tx *store.Tx) error {
		for _, id := range []string{"acme", "bakery"} {
			if err := tx.CreateCustomer(&store.Customer{ID: id, Status: store.StatusActive, SiteKey: id + "-site-key", Created: t0}); err != nil {
				return err
			}
		}
		if err := tx.PutEndpoint(&store.Endpoint{ID: "ep1", CustomerID: "acme", URL: "https://crm.example/hook",
			EventTypes: []store.EventType{"call.completed"}, Secret: whsec, PreviousSecret: oldsec, PreviousExpires: t0.Add(time.Hour),
			Created: t0, Updated: t0}); err != nil {
			return err
		}
		if err := tx.PutGoogleAds(&store.GoogleAds{CustomerID: "acme", AdsCustomerID: "1234567890",
			ConversionAction: "customers/1234567890/conversionActions/77", Currency: "EUR", ClientID: "client.apps.example",
			SealedSecrets: sealed, Rule: store.AdsRule{MinTalkSeconds: 30, Value: store.AdsValueFixed, FixedValue: 10}, Created: t0}); err != nil {
			return err
		}
		return tx.PutConversionUpload(&store.ConversionUpload{CustomerID: "acme", CallID: "01KJPWD6M04Y3C0ND8FTDB9R0A",
			State: store.UploadFailed, Error: "too recent", Updated: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	ex := recordings.NewExporter(db, filepath.Join(dir, "recordings"), keys, recordings.WithExportClock(func() time.Time { return t0 }))
	names := []string{"webhook_endpoints.jsonl", "google_ads.jsonl", "conversion_uploads.jsonl"}
	for _, tt := range []struct {
		customer string
		want     bool
	}{{"acme", true}, {"bakery", false}} {
		var buf bytes.Buffer
		m, err := ex.Write(context.Background(), &buf, tt.customer)
		if err != nil {
			t.Fatal(err)
		}
		files := unzipped(t, buf.Bytes())
		for _, n := range names {
			listed := false
			for _, f := range m.Files {
				listed = listed || f.Name == n
			}
			if (files[n] != nil) != tt.want || listed != tt.want {
				t.Errorf("%s: %s in the archive %v, in the manifest %v, want %v", tt.customer, n, files[n] != nil, listed, tt.want)
			}
		}
		if !tt.want {
			continue
		}
		for n, want := range map[string]string{"webhook_endpoints.jsonl": `"url":"https://crm.example/hook"`,
			"google_ads.jsonl":         `"conversion_action":"customers/1234567890/conversionActions/77"`,
			"conversion_uploads.jsonl": `"error":"too recent"`} {
			if !strings.Contains(string(files[n]), want) {
				t.Errorf("%s: %s", n, files[n])
			}
		}
		for _, secret := range [][]byte{[]byte(whsec), []byte(oldsec), sealed, []byte("sealed-oauth")} {
			for n, b := range files {
				if bytes.Contains(b, secret) {
					t.Errorf("%s holds the secret %q", n, secret)
				}
			}
		}
	}
}
