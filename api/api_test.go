package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

const (
	siteKey = "acme-site-key"
	origin  = "https://www.acme.example"
	token   = "test-admin-token"
)

type env struct {
	pool   *pool.Pool
	public *httptest.Server
	admin  *httptest.Server
}

func newEnv(t testing.TB, rate float64) *env {
	t.Helper()
	// One address (the test's) makes every session here: the per-client limit has its own
	// tests (clientlimit_test.go) and is off.
	return newEnvWith(t, Config{AdminToken: token, RateLimit: rate})
}

// newEnvWith is newEnv's customers and numbers (acme: ten pool numbers) under an API of cfg.
func newEnvWith(t testing.TB, cfg Config, opts ...Option) *env {
	t.Helper()
	db := storetest.Open(t)
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.CreateCustomer(ctx, store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: siteKey,
		AllowedOrigins: []string{origin}, DisplayNumbers: []string{"+31852087972"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateCustomer(ctx, store.Customer{ID: "gone", Name: "Gone", Status: store.StatusEnded, SiteKey: "gone-site-key"}); err != nil {
		t.Fatal(err)
	}
	var in []pool.NumberInput
	for i := 1; i <= 10; i++ {
		in = append(in, pool.NumberInput{Number: fmt.Sprintf("+318500000%02d", i)})
	}
	if _, err := p.ImportNumbers(ctx, "acme", in); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, p, append([]Option{WithRegisterer(prometheus.NewRegistry())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{pool: p, public: httptest.NewServer(a.Public()), admin: httptest.NewServer(a.Admin())}
	t.Cleanup(e.public.Close)
	t.Cleanup(e.admin.Close)
	return e
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
}

func do(t testing.TB, method, url, ctype, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header}
	json.Unmarshal(raw, &r.body)
	return r
}

func (e *env) sessionsTotal(t *testing.T) float64 {
	t.Helper()
	st, err := e.pool.Status("acme")
	if err != nil {
		t.Fatal(err)
	}
	return float64(st.SessionsTotal)
}

func TestCreateSessionAndTouch(t *testing.T) {
	e := newEnv(t, 100)
	r := do(t, "POST", e.public.URL+"/v1/sessions", "text/plain;charset=UTF-8",
		`{"site_key":"acme-site-key","landing_url":"https://www.acme.example/?utm_source=x&utm_campaign=spring","referrer":""}`, "Origin", origin)
	if r.status != 201 || r.header.Get("Access-Control-Allow-Origin") != origin || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %v %v", r.status, r.header, r.body)
	}
	if r.body["number"] != "+31850000001" || r.body["formatted_number"] != "085 000 0001" || r.body["campaign"] != "spring" {
		t.Fatalf("create body: %v", r.body)
	}
	id := r.body["session_id"].(string)
	r = do(t, "POST", e.public.URL+"/v1/sessions/"+id+"/touch", "text/plain", `{"site_key":"acme-site-key"}`, "Origin", origin)
	if r.status != 200 || r.body["number"] != "+31850000001" {
		t.Fatalf("touch: %d %v", r.status, r.body)
	}
	r = do(t, "POST", e.public.URL+"/v1/sessions", "application/json", `{"site_key":"acme-site-key","session_id":"`+id+`"}`)
	if r.status != 200 || r.body["session_id"] != id {
		t.Fatalf("reload: %d %v", r.status, r.body)
	}
}

func TestPublicInputIsValidatedAtTheEdge(t *testing.T) {
	e := newEnv(t, 1000)
	long := "https://www.acme.example/" + strings.Repeat("a", 2048)
	tests := []struct {
		name   string
		ctype  string
		body   string
		hdr    []string
		status int
		field  string
	}{
		{"malformed json", "application/json", `{"site_key":`, nil, 400, ""},
		{"trailing data", "application/json", `{"site_key":"acme-site-key"} {}`, nil, 400, ""},
		{"unknown field", "application/json", `{"site_key":"acme-site-key","ip":"1.2.3.4"}`, nil, 400, "ip"},
		{"wrong type", "application/json", `{"site_key":7}`, nil, 400, "site_key"},
		{"empty body", "application/json", ``, nil, 400, ""},
		{"form content type", "application/x-www-form-urlencoded", `site_key=x`, nil, 415, ""},
		{"too large", "application/json", `{"site_key":"acme-site-key","referrer":"` + strings.Repeat("x", 17<<10) + `"}`, nil, 413, ""},
		{"landing url too long", "application/json", `{"site_key":"acme-site-key","landing_url":"` + long + `"}`, nil, 400, "landing_url"},
		{"landing url not http", "application/json", `{"site_key":"acme-site-key","landing_url":"javascript:alert(1)"}`, nil, 400, "landing_url"},
		{"param too long", "application/json", `{"site_key":"acme-site-key","utm_term":"` + strings.Repeat("t", 257) + `"}`, nil, 400, "utm_term"},
		{"control characters", "application/json", `{"site_key":"acme-site-key","gclid":"a\r\nb"}`, nil, 400, "gclid"},
		{"malformed site key", "application/json", `{"site_key":"x"}`, nil, 400, "site_key"},
		{"unknown site key", "application/json", `{"site_key":"nobody-site-key"}`, nil, 404, "site_key"},
		{"disallowed origin", "application/json", `{"site_key":"acme-site-key"}`, []string{"Origin", "https://evil.example"}, 403, ""},
		{"ended customer", "application/json", `{"site_key":"gone-site-key"}`, nil, 410, ""},
		{"malformed session id", "application/json", `{"site_key":"acme-site-key","session_id":"` + strings.Repeat("s", 300) + `"}`, nil, 400, "session_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.sessionsTotal(t)
			r := do(t, "POST", e.public.URL+"/v1/sessions", tt.ctype, tt.body, tt.hdr...)
			if r.status != tt.status || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d (%s), want %d problem+json: %v", r.status, r.header.Get("Content-Type"), tt.status, r.body)
			}
			if tt.field != "" && r.body["field"] != tt.field {
				t.Fatalf("field %v, want %q: %v", r.body["field"], tt.field, r.body)
			}
			if r.body["status"] != float64(tt.status) || r.body["title"] == "" {
				t.Fatalf("problem body %v", r.body)
			}
			if after := e.sessionsTotal(t); after != before {
				t.Fatalf("a refused request stored a session (%v -> %v)", before, after)
			}
		})
	}
}

func TestRateLimitPerSiteKey(t *testing.T) {
	e := newEnv(t, 2) // burst 4
	codes := map[int]int{}
	for range 8 {
		r := do(t, "POST", e.public.URL+"/v1/sessions", "application/json", `{"site_key":"acme-site-key"}`)
		codes[r.status]++
		if r.status == 429 && r.header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if codes[201] < 4 || codes[201] > 5 || codes[429] < 3 {
		t.Fatalf("codes %v, want about 4 created then 429", codes)
	}
}

func TestScriptCaching(t *testing.T) {
	e := newEnv(t, 100)
	res, err := http.Get(e.public.URL + "/v1/script.js")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	etag := res.Header.Get("ETag")
	if res.StatusCode != 200 || etag == "" || !strings.Contains(res.Header.Get("Cache-Control"), "max-age=") ||
		!strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("script: %d %v", res.StatusCode, res.Header)
	}
	if r := do(t, "GET", e.public.URL+"/v1/script.js", "", "", "If-None-Match", etag); r.status != 304 {
		t.Fatalf("conditional GET: %d", r.status)
	}
}

func TestAdminNeedsToken(t *testing.T) {
	e := newEnv(t, 100)
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", token}} {
		if r := do(t, "GET", e.admin.URL+"/v1/customers", "", "", hdr...); r.status != 401 {
			t.Fatalf("admin with %v: %d", hdr, r.status)
		}
	}
	if r := do(t, "GET", e.admin.URL+"/v1/customers", "", "", "Authorization", "Bearer "+token); r.status != 200 {
		t.Fatalf("admin with token: %d", r.status)
	}
}

func TestAdminImportAndCustomers(t *testing.T) {
	e := newEnv(t, 100)
	auth := []string{"Authorization", "Bearer " + token}
	tests := []struct {
		name   string
		ctype  string
		body   string
		status int
		line   float64
	}{
		{"csv bad line", "text/csv", "number,kind\n+31850001001,pool\n+3185,pool\n", 400, 3},
		{"csv duplicate", "text/csv", "+31850001001\n+31850001001\n", 400, 2},
		{"json already tracked", "application/json", `[{"number":"+31850001001"},{"number":"+31850000001"}]`, 400, 2},
		{"csv ok", "text/csv", "number,kind,channel\n+31850001001,pool,\n+31850001002\n", 201, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "POST", e.admin.URL+"/v1/customers/acme/numbers", tt.ctype, tt.body, auth...)
			if r.status != tt.status || tt.line > 0 && r.body["line"] != tt.line {
				t.Fatalf("%d %v", r.status, r.body)
			}
		})
	}
	st := do(t, "GET", e.admin.URL+"/v1/customers/acme/pool", "", "", auth...)
	if st.body["pool_numbers"] != float64(12) {
		t.Fatalf("pool after imports: %v", st.body)
	}
	r := do(t, "POST", e.admin.URL+"/v1/customers", "application/json",
		`{"id":"beta","name":"Beta","site_key":"beta-site-key","allowed_origins":["ftp://x"]}`, auth...)
	if r.status != 400 || r.body["field"] != "allowed_origins[0]" {
		t.Fatalf("bad origin: %d %v", r.status, r.body)
	}
	r = do(t, "POST", e.admin.URL+"/v1/customers", "application/json", `{"id":"beta","name":"Beta","site_key":"acme-site-key"}`, auth...)
	if r.status != 409 {
		t.Fatalf("taken site key: %d %v", r.status, r.body)
	}
	r = do(t, "PATCH", e.admin.URL+"/v1/customers/acme", "application/json", `{"display_format":"international"}`, auth...)
	if r.status != 200 || r.body["display_format"] != "international" {
		t.Fatalf("patch: %d %v", r.status, r.body)
	}
	// Recording, consent and prompts are editable too, validated as the config's are.
	r = do(t, "PATCH", e.admin.URL+"/v1/customers/acme", "application/json",
		`{"recording":{"enabled":true,"professional_secrecy":true,"recording_consent_confirmed":true},"prompts":{"disclaimer":"default"}}`, auth...)
	rec, _ := r.body["recording"].(map[string]any)
	prompts, _ := r.body["prompts"].(map[string]any)
	if r.status != 200 || rec["enabled"] != true || rec["recording_consent_confirmed"] != true || prompts["disclaimer"] != "default" {
		t.Fatalf("patch recording and prompts: %d %v", r.status, r.body)
	}
	r = do(t, "PATCH", e.admin.URL+"/v1/customers/acme", "application/json", `{"prompts":{"whisper":"/nonexistent/whisper.wav"}}`, auth...)
	if r.status != 400 || r.body["field"] != "prompts.whisper" {
		t.Fatalf("a prompt that does not load: %d %v", r.status, r.body)
	}
	if c, _ := e.pool.Customer("acme"); c.Prompts.Whisper != "" || !c.Recording.Enabled {
		t.Fatalf("a refused patch changed the customer: %+v", c)
	}
}

// FuzzCreateSession throws arbitrary bodies at the public endpoint: never a 5xx, never a
// session stored for a refused request.
func FuzzCreateSession(f *testing.F) {
	f.Add(`{"site_key":"acme-site-key","landing_url":"https://www.acme.example/?gclid=1"}`)
	f.Add(`{"site_key":"acme-site-key","session_id":"01M7Y9B7G02XJ06H392AWXD8J6"}`)
	f.Add(`{"site_key":"acme-site-key","referrer":"http://[::1]:80/x","utm_source":"\u0000"}`)
	f.Add(`[]`)
	f.Add(`{"site_key":null}`)
	e := newEnv(f, 1e9)
	h := e.public.Config.Handler
	f.Fuzz(func(t *testing.T, body string) {
		before, _ := e.pool.Status("acme")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/sessions", strings.NewReader(body)))
		after, _ := e.pool.Status("acme")
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code >= 400 && after.SessionsTotal != before.SessionsTotal {
			t.Fatalf("refused (%d) but stored a session: %q", rec.Code, body)
		}
		if rec.Code < 300 {
			var out sessionResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Number == "" {
				t.Fatalf("success without a number: %s", rec.Body)
			}
		}
	})
}

func BenchmarkCreateSession(b *testing.B) {
	// The per-client limit runs, as in production, but admits the one address.
	e := newEnvWith(b, Config{AdminToken: token, RateLimit: 1e9, ClientShare: 1e9})
	h := e.public.Config.Handler
	body := `{"site_key":"acme-site-key","landing_url":"https://www.acme.example/p?utm_source=google&utm_medium=cpc","referrer":"https://www.google.nl/"}`
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/sessions", strings.NewReader(body)))
			if rec.Code != 201 {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
}

func TestAdminQuarantineNumber(t *testing.T) {
	e := newEnv(t, 100)
	auth := []string{"Authorization", "Bearer " + token}
	body := `{"until":"2099-01-01T00:00:00Z"}`
	tests := []struct {
		name, customer, number string
		want                   int
	}{
		{"own number", "acme", "+31850000001", 204},
		{"again, already quarantined", "acme", "+31850000001", 204},
		{"another customer's number", "gone", "+31850000002", 404},
		{"unknown number", "acme", "+31859999999", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "POST", e.admin.URL+"/v1/customers/"+tt.customer+"/numbers/"+tt.number+"/quarantine", "application/json", body, auth...)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %v", r.status, tt.want, r.body)
			}
		})
	}
	if st, _ := e.pool.Status("acme"); st.Quarantined != 1 {
		t.Fatalf("quarantined = %d, want 1", st.Quarantined)
	}
}
