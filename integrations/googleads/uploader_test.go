package googleads

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// fakeGoogle speaks the documented OAuth2 token endpoint (refresh_token grant) and
// uploadClickConversions. answers, if set, scripts the upload answers in order (status and
// body); past them every upload is answered 200 with no failure.
type fakeGoogle struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	exchanges int
	tokens    map[string]bool // access tokens handed out and still valid
	uploads   []uploadRequest
	headers   []http.Header
	answers   []answer
}

type answer struct {
	status int
	body   string
	revoke bool // invalidate the access tokens before answering (the answer is then 401)
}

func newFakeGoogle(t *testing.T) *fakeGoogle {
	f := &fakeGoogle{t: t, tokens: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v21/customers/{rest}", f.upload)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGoogle) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	if r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != "1//refresh" ||
		r.Form.Get("client_id") != "client.apps.example" || r.Form.Get("client_secret") != "s3cret" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"Bad Request"}`)
		return
	}
	f.mu.Lock()
	f.exchanges++
	tok := "ya29.token-" + string(rune('a'+f.exchanges))
	f.tokens[tok] = true
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3599, "scope": Scope})
}

func (f *fakeGoogle) upload(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("rest") != "1234567890:uploadClickConversions" {
		http.Error(w, "no such method", 404)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var a answer
	if len(f.answers) > 0 {
		a, f.answers = f.answers[0], f.answers[1:]
	}
	if a.revoke {
		clear(f.tokens)
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !f.tokens[tok] {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`)
		return
	}
	var req uploadRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.uploads = append(f.uploads, req)
	f.headers = append(f.headers, r.Header.Clone())
	w.Header().Set("Content-Type", "application/json")
	if a.status != 0 {
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
		return
	}
	results := make([]map[string]string, len(req.Conversions))
	for i, c := range req.Conversions {
		results[i] = map[string]string{"gclid": c.Gclid, "conversionAction": c.ConversionAction, "conversionDateTime": c.ConversionDateTime}
	}
	json.NewEncoder(w).Encode(map[string]any{"results": results, "jobId": "42"})
}

type fixture struct {
	db   *store.DB
	keys *keyring.Keyring
	g    *fakeGoogle
	up   *Uploader
	reg  *prometheus.Registry
	t0   time.Time
}

func newFixture(t *testing.T, rule store.AdsRule, cfg Config) *fixture {
	t.Helper()
	db := storetest.Open(t)
	keys, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(key, Secrets{ClientSecret: "s3cret", RefreshToken: "1//refresh"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, keys: keys, g: newFakeGoogle(t), reg: prometheus.NewRegistry(), t0: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	err = db.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.CreateCustomer(&store.Customer{ID: "acme", SiteKey: "acme-site-key", Status: store.StatusActive}); err != nil {
			return err
		}
		return tx.PutGoogleAds(&store.GoogleAds{CustomerID: "acme", AdsCustomerID: "1234567890", LoginCustomerID: "9999999999",
			ConversionAction: "customers/1234567890/conversionActions/555", Currency: "EUR", TimeZone: "Europe/Amsterdam",
			ClientID: "client.apps.example", SealedSecrets: sealed, Rule: rule, Created: f.t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseURL, cfg.TokenURL, cfg.DeveloperToken = f.g.srv.URL, f.g.srv.URL+"/token", "dev-token"
	f.up, err = New(cfg, db, keys, WithClock(func() time.Time { return f.t0.Add(time.Hour) }),
		WithSleep(func(context.Context, time.Duration) error { return nil }), WithRegisterer(f.reg))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// call writes an ended call of talk seconds, 20 minutes after t0, with a session of the
// given click ids and consent ("" for a call without a session).
func (f *fixture) call(t *testing.T, id string, talk float64, gclid, gbraid, wbraid string, c store.Consent, session bool, value float64) {
	t.Helper()
	start := f.t0.Add(20 * time.Minute)
	err := f.db.Write(context.Background(), func(tx *store.Tx) error {
		call := store.Call{ID: id, CustomerID: "acme", Start: start, Answer: start.Add(5 * time.Second),
			End: start.Add(5*time.Second + time.Duration(talk)*time.Second), TalkSeconds: talk, Disposition: store.DispAnswered}
		if session {
			call.SessionID = "s-" + id
			if err := tx.PutSession(&store.Session{ID: call.SessionID, CustomerID: "acme", Created: f.t0, Channel: "Paid search",
				Gclid: gclid, Gbraid: gbraid, Wbraid: wbraid, AdConsent: c}); err != nil {
				return err
			}
		}
		if err := tx.PutCall(&call); err != nil {
			return err
		}
		if value > 0 {
			_, err := tx.AnnotateCall("acme", id, func(c *store.Call) error { c.Value = value; return nil })
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) state(t *testing.T, id string) store.ConversionUpload {
	t.Helper()
	var u store.ConversionUpload
	err := f.db.View(func(tx *store.Tx) (err error) { u, err = tx.ConversionUpload("acme", id); return err })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return u
}

const (
	callA = "01KJPWD6M04Y3C0ND8FTDB9R0A"
	callB = "01KJPWD6M04Y3C0ND8FTDB9R0B"
	callC = "01KJPWD6M04Y3C0ND8FTDB9R0C"
	callD = "01KJPWD6M04Y3C0ND8FTDB9R0D"
	callE = "01KJPWD6M04Y3C0ND8FTDB9R0E"
	callF = "01KJPWD6M04Y3C0ND8FTDB9R0F"
)

func TestUploadRequestShapeAndConsent(t *testing.T) {
	f := newFixture(t, store.AdsRule{MinTalkSeconds: 30, Value: store.AdsValueCall}, Config{})
	f.call(t, callA, 60, "Cj0KgclidA", "", "", store.ConsentGranted, true, 125.5)
	f.call(t, callB, 60, "", "gbraidB", "", store.ConsentGranted, true, 0)
	f.call(t, callC, 60, "Cj0KgclidC", "", "", store.ConsentDenied, true, 10)
	f.call(t, callD, 60, "Cj0KgclidD", "", "", store.ConsentUnknown, true, 10)
	f.call(t, callE, 60, "", "", "", store.ConsentGranted, true, 10)
	f.call(t, callF, 10, "Cj0KgclidF", "", "", store.ConsentGranted, true, 10) // too short: no conversion

	if err := f.up.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.g.uploads) != 1 {
		t.Fatalf("%d uploads, want 1", len(f.g.uploads))
	}
	h := f.g.headers[0]
	if h.Get("developer-token") != "dev-token" || h.Get("login-customer-id") != "9999999999" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	got, _ := json.Marshal(f.g.uploads[0])
	// Newest call first; the call's start in the customer's zone (CEST, +02:00).
	want := `{"conversions":[` +
		`{"gbraid":"gbraidB","conversionAction":"customers/1234567890/conversionActions/555","conversionDateTime":"2026-05-01 12:20:00+02:00","orderId":"` + callB + `","consent":{"adUserData":"GRANTED","adPersonalization":"GRANTED"}},` +
		`{"gclid":"Cj0KgclidA","conversionAction":"customers/1234567890/conversionActions/555","conversionDateTime":"2026-05-01 12:20:00+02:00","conversionValue":125.5,"currencyCode":"EUR","orderId":"` + callA + `","consent":{"adUserData":"GRANTED","adPersonalization":"GRANTED"}}` +
		`],"partialFailure":true}`
	if string(got) != want {
		t.Errorf("request\n got %s\nwant %s", got, want)
	}
	tests := []struct {
		call   string
		state  store.UploadState
		reason string
	}{
		{callA, store.UploadUploaded, ""},
		{callB, store.UploadUploaded, ""},
		{callC, store.UploadSkipped, store.SkipNoConsent},
		{callD, store.UploadSkipped, store.SkipNoConsent},
		{callE, store.UploadSkipped, store.SkipNoClickID},
		{callF, store.UploadUnknown, ""},
	}
	for _, tt := range tests {
		if u := f.state(t, tt.call); u.State != tt.state || u.Reason != tt.reason {
			t.Errorf("call %s: %+v, want %s %s", tt.call, u, tt.state, tt.reason)
		}
	}
	if v := f.state(t, callA); v.Value != 125.5 || v.Currency != "EUR" {
		t.Errorf("call A's value %+v", v)
	}
	// A second round uploads nothing again.
	if err := f.up.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.g.uploads) != 1 || f.g.exchanges != 1 {
		t.Fatalf("after a second round: %d uploads, %d token exchanges; want 1 and 1", len(f.g.uploads), f.g.exchanges)
	}
}

func TestUploadPartialFailure(t *testing.T) {
	f := newFixture(t, store.AdsRule{MinTalkSeconds: 30, Value: store.AdsValueFixed, FixedValue: 50}, Config{})
	f.call(t, callA, 60, "Cj0KgclidA", "", "", store.ConsentGranted, true, 0)
	f.call(t, callB, 60, "Cj0KgclidB", "", "", store.ConsentGranted, true, 0)
	// Index 0 (call B, the newest) fails.
	f.g.answers = []answer{{status: 200, body: `{"partialFailureError":{"code":3,"message":"The click identifier is not valid.",
		"details":[{"@type":"type.googleapis.com/google.ads.googleads.v21.errors.GoogleAdsFailure","errors":[{"errorCode":{"conversionUploadError":"UNPARSEABLE_GCLID"},
		"message":"The click identifier is not valid.","location":{"fieldPathElements":[{"fieldName":"conversions","index":0},{"fieldName":"gclid"}]}}]}]},
		"results":[{},{"gclid":"Cj0KgclidA"}],"jobId":"7"}`}}
	if err := f.up.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if u := f.state(t, callB); u.State != store.UploadFailed || !strings.Contains(u.Error, "UNPARSEABLE_GCLID") {
		t.Errorf("call B %+v, want failed with Google's error", u)
	}
	if u := f.state(t, callA); u.State != store.UploadUploaded || u.Value != 50 {
		t.Errorf("call A %+v, want uploaded with the fixed value", u)
	}
}

func TestUploadRetriesAndTokenRefresh(t *testing.T) {
	tests := []struct {
		name      string
		answers   []answer
		uploads   int // requests the fake took (401s not counted)
		exchanges int
		state     store.UploadState
		outcomes  map[string]float64 // trackline_googleads_requests_total by outcome
	}{
		{"5xx then ok", []answer{{status: 503, body: `{"error":{"code":503}}`}, {status: 500, body: `{}`}}, 3, 1, store.UploadUploaded,
			map[string]float64{requestRetryable: 2, requestOK: 1}},
		{"429 then ok", []answer{{status: 429, body: `{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}`}}, 2, 1, store.UploadUploaded,
			map[string]float64{requestRetryable: 1, requestOK: 1}},
		{"token revoked: refreshed once", []answer{{revoke: true}}, 1, 2, store.UploadUploaded,
			map[string]float64{requestUnauthorized: 1, requestOK: 1}},
		{"5xx beyond the retries: pending", []answer{{status: 502}, {status: 502}, {status: 502}}, 3, 1, store.UploadPending,
			map[string]float64{requestRetryable: 3}},
		{"400: pending with the error", []answer{{status: 400, body: `{"error":{"code":400,"message":"invalid developer token"}}`}}, 1, 1, store.UploadPending,
			map[string]float64{requestRefused: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, store.AdsRule{MinTalkSeconds: 30, Value: store.AdsValueFixed, FixedValue: 1}, Config{Retries: 2})
			f.call(t, callA, 60, "Cj0KgclidA", "", "", store.ConsentGranted, true, 0)
			f.g.answers = tt.answers
			if err := f.up.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			u := f.state(t, callA)
			if len(f.g.uploads) != tt.uploads || f.g.exchanges != tt.exchanges || u.State != tt.state {
				t.Fatalf("%d uploads, %d exchanges, state %+v; want %d, %d, %s", len(f.g.uploads), f.g.exchanges, u, tt.uploads, tt.exchanges, tt.state)
			}
			if u.State == store.UploadPending && (u.Error == "" || u.Attempts != 1 || !u.NextAttempt.After(f.t0.Add(time.Hour))) {
				t.Fatalf("pending state %+v: want the error, one attempt and a later next attempt", u)
			}
			for _, o := range []string{requestOK, requestRetryable, requestUnauthorized, requestRefused, requestTokenError} {
				if got := testutil.ToFloat64(f.up.m.requests.WithLabelValues(o)); got != tt.outcomes[o] {
					t.Errorf("requests %s = %v, want %v", o, got, tt.outcomes[o])
				}
			}
			if got := testutil.ToFloat64(f.up.m.conversions.WithLabelValues(string(tt.state))); got != 1 {
				t.Errorf("conversions %s = %v, want 1", tt.state, got)
			}
		})
	}
}

func TestUploadBadRefreshToken(t *testing.T) {
	f := newFixture(t, store.AdsRule{MinTalkSeconds: 30, Value: store.AdsValueFixed, FixedValue: 1}, Config{})
	key, err := f.keys.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(key, Secrets{ClientSecret: "s3cret", RefreshToken: "1//revoked"})
	if err != nil {
		t.Fatal(err)
	}
	err = f.db.Write(context.Background(), func(tx *store.Tx) error {
		g, err := tx.GoogleAds("acme")
		if err != nil {
			return err
		}
		g.SealedSecrets = sealed
		return tx.PutGoogleAds(&g)
	})
	if err != nil {
		t.Fatal(err)
	}
	f.call(t, callA, 60, "Cj0KgclidA", "", "", store.ConsentGranted, true, 0)
	if err := f.up.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if u := f.state(t, callA); u.State != store.UploadPending || !strings.Contains(u.Error, "invalid_grant") || len(f.g.uploads) != 0 {
		t.Fatalf("state %+v after %d uploads; want pending with invalid_grant and no upload", u, len(f.g.uploads))
	}
}

func TestSeal(t *testing.T) {
	keys, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := keys.Get("acme")
	other, _ := keys.Get("other")
	s := Secrets{ClientSecret: "s3cret", RefreshToken: "1//refresh"}
	sealed, err := Seal(acme, s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "s3cret") || strings.Contains(string(sealed), "refresh") {
		t.Fatal("sealed secrets hold the clear text")
	}
	if got, err := Unseal(acme, sealed); err != nil || got != s {
		t.Fatalf("Unseal = %+v, %v", got, err)
	}
	if _, err := Unseal(other, sealed); !errors.Is(err, ErrSealed) {
		t.Fatalf("another customer's key: %v, want ErrSealed", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := Unseal(acme, sealed); !errors.Is(err, ErrSealed) {
		t.Fatalf("a changed byte: %v, want ErrSealed", err)
	}
}

// TestRunClose: Run uploads at once, Close stops it and leaves no goroutine behind.
func TestRunClose(t *testing.T) {
	f := newFixture(t, store.AdsRule{MinTalkSeconds: 30, Value: store.AdsValueFixed, FixedValue: 1}, Config{Interval: time.Hour})
	f.call(t, callA, 60, "Cj0KgclidA", "", "", store.ConsentGranted, true, 0)
	before := runtime.NumGoroutine()
	done := make(chan error, 1)
	go func() { done <- f.up.Run(context.Background()) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.state(t, callA).State != store.UploadUploaded {
		if time.Now().After(deadline) {
			t.Fatal("Run did not upload")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.up.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := f.up.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	deadline = time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines leaked: %d before Run, %d after Close\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestRunOncePerCluster: while another node runs the upload round (the job's advisory lock
// on PostgreSQL), Run's rounds on this node upload nothing; once it is done, they do.
func TestRunOncePerCluster(t *testing.T) {
	f := newFixture(t, store.AdsRule{MinTalkSeconds: 30, Value: store.AdsValueFixed, FixedValue: 1}, Config{Interval: 20 * time.Millisecond})
	if !f.db.Shared() {
		t.Skip("PostgreSQL only (make test runs it there): on bbolt, one node, every round runs")
	}
	f.call(t, callA, 60, "Cj0KgclidA", "", "", store.ConsentGranted, true, 0)
	held, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) }) // a failed test does not hold the job
	other := make(chan error, 1)
	go func() {
		_, err := f.db.Exclusive(context.Background(), "google-ads-upload", func(context.Context) error {
			close(held)
			<-release
			return nil
		})
		other <- err
	}()
	<-held
	done := make(chan error, 1)
	go func() { done <- f.up.Run(context.Background()) }()
	defer func() {
		f.up.Close()
		<-done
	}()
	time.Sleep(300 * time.Millisecond) // about 15 rounds
	if s := f.state(t, callA).State; s == store.UploadUploaded || len(f.g.uploads) != 0 {
		t.Fatalf("uploaded while another node held the round: state %v, %d uploads", s, len(f.g.uploads))
	}
	releaseOnce.Do(func() { close(release) })
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.state(t, callA).State != store.UploadUploaded {
		if time.Now().After(deadline) {
			t.Fatal("Run did not upload once the other node's round ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
