package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// consentHead is each consent page's script before the DNI script: what a site's consent
// banner or tag setup has put in place by then.
var consentHead = map[string]string{
	// No consent state at all.
	"none": ``,
	// Google Consent Mode v2 as gtag.js sites set it: denied by default.
	"gtag-denied": `window.dataLayer = window.dataLayer || [];
function gtag(){dataLayer.push(arguments);}
gtag('consent', 'default', {ad_storage: 'denied', ad_user_data: 'denied', ad_personalization: 'denied', analytics_storage: 'denied'});`,
	// Granted by default through ad_storage alone (the v2 keys fall back to it).
	"gtag-granted": `window.dataLayer = window.dataLayer || [];
function gtag(){dataLayer.push(arguments);}
gtag('consent', 'default', {ad_storage: 'granted'});`,
	// An explicit call queued before the script loads wins over Consent Mode.
	"explicit": `window.dataLayer = window.dataLayer || [];
function gtag(){dataLayer.push(arguments);}
gtag('consent', 'default', {ad_storage: 'denied', ad_user_data: 'denied', ad_personalization: 'denied'});
window.trackline = window.trackline || function () { (trackline.q = trackline.q || []).push(arguments); };
trackline('consent', {ad_user_data: 'granted', ad_personalization: 'granted'});`,
}

// TestDNIConsent loads the DNI script in Chromium on pages whose consent state is set the
// ways sites set it, and reads the consent the session got from the admin API: Consent Mode
// v2 defaults, an update after the visitor clicks the banner (the same session, its consent
// replaced), and an explicit trackline('consent') that wins over Consent Mode.
func TestDNIConsent(t *testing.T) {
	// The consent pages: the shop page with the mode's script before everything else, on
	// an origin the customer allows.
	var s *server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /consent/{mode}", func(w http.ResponseWriter, r *http.Request) {
		head, ok := consentHead[r.PathValue("mode")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		page := strings.ReplaceAll(shopPage, "{{SRC}}", "http://"+s.HTTP+"/v1/script.js")
		page = strings.Replace(page, "<script>", "<script>"+head+"\n</script>\n<script>", 1)
		w.Write([]byte(page))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s = startServer(t, testConfig{origins: []string{srv.URL}})
	b := newBrowser(t)

	visit := func(t *testing.T, mode string) (string, map[string]any) {
		t.Helper()
		b.clearCookies(t)
		u := srv.URL + "/consent/" + mode + "?gclid=Cj0KCQjw-" + mode
		b.run(t, chromedp.Navigate(u))
		b.waitSwapped(t)
		c := b.cookies(t, u)["tl_sid"]
		if c == nil {
			t.Fatal("no tl_sid cookie")
		}
		b.checkConsole(t)
		return c.Value, s.sessionByID(t, c.Value)
	}
	consentOf := func(m map[string]any) string {
		v, _ := m["ad_consent"].(string)
		if v == "" {
			return "unknown"
		}
		return v
	}
	for _, tc := range []struct{ mode, want string }{
		{"none", "unknown"}, {"gtag-denied", "denied"}, {"gtag-granted", "granted"}, {"explicit", "granted"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			_, sess := visit(t, tc.mode)
			if got := consentOf(sess); got != tc.want {
				t.Errorf("ad_consent %q, want %q; session %v", got, tc.want, sess)
			}
			if sess["gclid"] != "Cj0KCQjw-"+tc.mode {
				t.Errorf("gclid %v", sess["gclid"])
			}
		})
	}
	t.Run("banner accepted later", func(t *testing.T) {
		id, sess := visit(t, "gtag-denied")
		if got := consentOf(sess); got != "denied" {
			t.Fatalf("before: %q", got)
		}
		b.run(t, chromedp.Evaluate[chromedp.Void](`gtag('consent', 'update', {ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'granted'})`))
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := consentOf(s.sessionByID(t, id))
			if got == "granted" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the update: %q", got)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if c := b.cookies(t, srv.URL)["tl_sid"]; c == nil || c.Value != id {
			t.Errorf("the update made a new session: %v", c)
		}
		// And withdrawn again through an explicit call.
		b.run(t, chromedp.Evaluate[chromedp.Void](`trackline('consent', {ad_user_data: 'denied'})`))
		for deadline = time.Now().Add(10 * time.Second); consentOf(s.sessionByID(t, id)) != "denied"; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("withdrawn consent not sent")
			}
		}
	})
}
