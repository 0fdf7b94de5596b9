package api

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

func TestAMPCacheOrigin(t *testing.T) {
	long := strings.Repeat("a", 30) + "." + strings.Repeat("b", 30) + ".example"
	sum := sha256.Sum256([]byte(long))
	hashed := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
	idn, err := idna.Lookup.ToASCII("bücher-example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ origin, want string }{
		{"https://pub.com", "https://pub-com.cdn.ampproject.org"},
		{"https://www.acme.example", "https://www-acme-example.cdn.ampproject.org"},
		{"https://www.my-shop.example", "https://www-my--shop-example.cdn.ampproject.org"},
		{"http://shop.example", "https://shop-example.cdn.ampproject.org"},
		{"https://WWW.Shop.Example", "https://www-shop-example.cdn.ampproject.org"},
		// "--" at the third and fourth characters would read as an IDNA label.
		{"https://ab-c.example", "https://0-ab--c-example-0.cdn.ampproject.org"},
		// An IDN: to Unicode, then the dashes, then back to IDNA.
		{"https://xn--bcher-kva.example", "https://" + idn + ".cdn.ampproject.org"},
		// Longer than one label may be: the hash of the host.
		{"https://" + long, "https://" + hashed + ".cdn.ampproject.org"},
		{"https://shop.example:8443", ""},
		{"https://192.0.2.1", ""},
		{"https://[2001:db8::1]", ""},
		{"https://localhost", ""},
		{"not a url", ""},
	}
	for _, tt := range tests {
		if got := ampCacheOrigin(tt.origin); got != tt.want {
			t.Errorf("ampCacheOrigin(%q) = %q, want %q", tt.origin, got, tt.want)
		}
	}
	if len(hashed) != 52 {
		t.Fatalf("hashed prefix %d characters", len(hashed))
	}
}

// ampFetch is a request as the AMP runtime's <amp-call-tracking> sends it: a credentialed
// CORS GET of the config URL after variable substitution (session_id=CLIENT_ID(tl_sid)), with
// __amp_source_origin appended, and either an Origin (a cross-origin page: the publisher's
// own or the AMP cache's) or AMP-Same-Origin: true.
type ampFetch struct {
	client   *http.Client
	clientID string // what CLIENT_ID(tl_sid) gave; "" when the config URL has none
	origin   string // the page's origin when it is not the API's; "" for AMP-Same-Origin
	source   string // __amp_source_origin
}

func (f ampFetch) do(t *testing.T, base string) (int, http.Header, map[string]any) {
	t.Helper()
	q := url.Values{"site_key": {siteKey}, "utm_source": {"newsletter"}}
	if f.clientID != "" {
		q.Set("session_id", f.clientID)
	}
	if f.source != "" {
		q.Set("__amp_source_origin", f.source)
	}
	req, err := http.NewRequest("GET", base+"/v1/amp/number?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if f.origin != "" {
		req.Header.Set("Origin", f.origin)
	} else {
		req.Header.Set("AMP-Same-Origin", "true")
	}
	c := f.client
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("answer is not JSON: %s", raw)
	}
	return res.StatusCode, res.Header, body
}

const cacheOrigin = "https://www-acme-example.cdn.ampproject.org"

// TestAMPRequestShape requests the AMP endpoint as the AMP runtime does, from the AMP cache
// and from the publisher's origin, and checks the CORS answer AMP needs and that a visitor
// keeps one session across fetches.
func TestAMPRequestShape(t *testing.T) {
	e := newEnv(t, 100)
	jar, _ := cookiejar.New(nil)
	fromCache := ampFetch{client: &http.Client{Jar: jar}, clientID: "amp-7Qk2x9Vv_Tq3yZb1o2Lr4A", origin: cacheOrigin, source: origin}

	status, h, body := fromCache.do(t, e.public.URL)
	if status != 200 || body["phoneNumber"] != "+31850000001" || body["formattedPhoneNumber"] != "085 000 0001" {
		t.Fatalf("from the AMP cache: %d %v", status, body)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":            cacheOrigin,
		"Access-Control-Allow-Credentials":       "true",
		"AMP-Access-Control-Allow-Source-Origin": origin,
		"Access-Control-Expose-Headers":          "AMP-Access-Control-Allow-Source-Origin",
		"Content-Type":                           "application/json",
		"Cache-Control":                          "no-store",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary %v lacks Origin", h.Values("Vary"))
	}
	cookie := h.Get("Set-Cookie")
	if !strings.HasPrefix(cookie, "tl_amp_"+siteKey+"=") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "Path=/v1/amp/") {
		t.Errorf("Set-Cookie %q", cookie)
	}
	if n := e.sessionsTotal(t); n != 1 {
		t.Fatalf("%v sessions after the first fetch", n)
	}

	// The next page on the cache: the same client id, without the cookie (third-party
	// cookies blocked): the same session.
	again := fromCache
	again.client = http.DefaultClient
	if status, _, body := again.do(t, e.public.URL); status != 200 || body["phoneNumber"] != "+31850000001" {
		t.Fatalf("the same AMP client id again: %d %v", status, body)
	}
	// The cookie alone (a config URL without CLIENT_ID): the same session.
	cookieOnly := fromCache
	cookieOnly.clientID = ""
	if status, _, body := cookieOnly.do(t, e.public.URL); status != 200 || body["phoneNumber"] != "+31850000001" {
		t.Fatalf("the cookie alone: %d %v", status, body)
	}
	if n := e.sessionsTotal(t); n != 1 {
		t.Fatalf("%v sessions after three fetches of one visitor, want 1", n)
	}

	// On the publisher's origin, where the DNI script already made the visitor's session:
	// CLIENT_ID(tl_sid) is that session's id, and the AMP page shows its number.
	r := do(t, "POST", e.public.URL+"/v1/sessions", "text/plain;charset=UTF-8", `{"site_key":"acme-site-key","landing_url":"https://www.acme.example/"}`, "Origin", origin)
	if r.status != 201 {
		t.Fatalf("script session: %d %v", r.status, r.body)
	}
	sameOrigin := ampFetch{clientID: r.body["session_id"].(string), source: origin}
	if status, h, body := sameOrigin.do(t, e.public.URL); status != 200 || body["phoneNumber"] != r.body["number"] ||
		h.Get("AMP-Access-Control-Allow-Source-Origin") != origin {
		t.Fatalf("AMP-Same-Origin with the script's session: %d %v %v", status, h, body)
	}
	// From the publisher's own origin as a cross-origin request (the API on another host).
	crossOrigin := ampFetch{clientID: r.body["session_id"].(string), origin: origin, source: origin}
	if status, h, body := crossOrigin.do(t, e.public.URL); status != 200 || body["phoneNumber"] != r.body["number"] || h.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("from the publisher's origin: %d %v %v", status, h, body)
	}
	if n := e.sessionsTotal(t); n != 2 {
		t.Fatalf("%v sessions, want 2", n)
	}

	// A new visitor on the cache gets a session of its own.
	other := ampFetch{clientID: "amp-someone-else", origin: cacheOrigin, source: origin}
	if status, _, body := other.do(t, e.public.URL); status != 200 || body["phoneNumber"] == "+31850000001" {
		t.Fatalf("another visitor: %d %v", status, body)
	}
}

// TestAMPRefusals: requests AMP's CORS rules refuse get a 403 problem and store nothing.
func TestAMPRefusals(t *testing.T) {
	e := newEnv(t, 100)
	tests := []struct {
		name  string
		f     ampFetch
		extra func(*http.Request)
	}{
		{"another site's AMP cache origin", ampFetch{origin: "https://evil-example.cdn.ampproject.org", source: origin}, nil},
		{"a look-alike of the cache origin", ampFetch{origin: "https://www-acme-example.cdn.ampproject.org.evil.example", source: origin}, nil},
		{"the cache origin over http", ampFetch{origin: "http://www-acme-example.cdn.ampproject.org", source: origin}, nil},
		{"a foreign origin", ampFetch{origin: "https://evil.example", source: origin}, nil},
		{"a foreign source origin from the cache", ampFetch{origin: cacheOrigin, source: "https://evil.example"}, nil},
		{"a foreign source origin, same origin", ampFetch{source: "https://evil.example"}, nil},
		{"the cache origin as source origin", ampFetch{origin: cacheOrigin, source: cacheOrigin}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := tt.f.do(t, e.public.URL)
			if status != 403 || body["status"] != float64(403) || h.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %v %v", status, h, body)
			}
			if h.Get("Access-Control-Allow-Origin") != "" || h.Get("Set-Cookie") != "" {
				t.Fatalf("a refused request got CORS or a cookie: %v", h)
			}
		})
	}
	// Neither Origin nor AMP-Same-Origin: not a request of the AMP runtime.
	if r := do(t, "GET", e.public.URL+"/v1/amp/number?site_key=acme-site-key", "", ""); r.status != 403 {
		t.Fatalf("without Origin and AMP-Same-Origin: %d %v", r.status, r.body)
	}
	if n := e.sessionsTotal(t); n != 0 {
		t.Fatalf("refused requests stored %v sessions", n)
	}
}

// TestAMPClientLimit: a client that fetches the AMP endpoint with a new client id each time
// is held to its share of the pool like POST /v1/sessions.
func TestAMPClientLimit(t *testing.T) {
	e := newEnvWith(t, Config{AdminToken: token, RateLimit: 1000, ClientShare: 0.25})
	codes := map[int]int{}
	for i := range 10 {
		f := ampFetch{clientID: "amp-drainer-" + string(rune('a'+i)), origin: cacheOrigin, source: origin}
		status, h, _ := f.do(t, e.public.URL)
		codes[status]++
		if status == 429 && h.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if codes[200] != 2 || codes[429] != 8 {
		t.Fatalf("codes %v, want 2 then 429", codes)
	}
}
