package api

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// proxyEnv is an API behind a trusted reverse proxy at 127.0.0.1 (the test's own address),
// so that X-Forwarded-For names the client of each request; the client limit is the
// config's default (a quarter of acme's ten numbers: two new sessions per client per lease).
func proxyEnv(t *testing.T, logs *bytes.Buffer) *env {
	t.Helper()
	return newEnvWith(t, Config{AdminToken: token, RateLimit: 1000, ClientShare: 0.25, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
}

func newSessionFrom(t *testing.T, e *env, client, sessionID string) resp {
	t.Helper()
	body := `{"site_key":"acme-site-key","landing_url":"https://www.acme.example/"`
	if sessionID != "" {
		body += `,"session_id":"` + sessionID + `"`
	}
	return do(t, "POST", e.public.URL+"/v1/sessions", "text/plain;charset=UTF-8", body+"}", "Origin", origin, "X-Forwarded-For", client)
}

// TestClientLimitHammering: one client hammering POST /v1/sessions gets its share of the
// pool, then 429 problems with Retry-After; other visitors of the same site still get
// numbers, the hammering client keeps the sessions it has, and the pool keeps most of its
// numbers for everyone else. No address reaches the logs.
func TestClientLimitHammering(t *testing.T) {
	var logs bytes.Buffer
	e := proxyEnv(t, &logs)
	const hammer = "203.0.113.77"
	codes := map[int]int{}
	var kept string
	for range 40 {
		r := newSessionFrom(t, e, hammer, "")
		codes[r.status]++
		switch r.status {
		case 201:
			kept = r.body["session_id"].(string)
		case 429:
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 30*60 {
				t.Fatalf("429 with Retry-After %q", r.header.Get("Retry-After"))
			}
			if r.header.Get("Content-Type") != "application/problem+json" || r.body["status"] != float64(429) {
				t.Fatalf("429 not a problem: %v %v", r.header, r.body)
			}
		}
	}
	if codes[201] != 2 || codes[429] != 38 {
		t.Fatalf("the hammering client: %v, want 2 created (a quarter of 10 numbers) and 38 refused", codes)
	}
	// Other visitors of the site: each gets a number of its own.
	numbers := map[string]bool{}
	for i := range 6 {
		r := newSessionFrom(t, e, "198.51.100."+strconv.Itoa(10+i), "")
		if r.status != 201 {
			t.Fatalf("visitor %d: %d %v", i, r.status, r.body)
		}
		numbers[r.body["number"].(string)] = true
	}
	if len(numbers) != 6 {
		t.Fatalf("six visitors share %d numbers", len(numbers))
	}
	// The hammering client keeps its session: a known session is not a new one.
	if r := newSessionFrom(t, e, hammer, kept); r.status != 200 || r.body["session_id"] != kept {
		t.Fatalf("the client's own session: %d %v", r.status, r.body)
	}
	st, err := e.pool.Status("acme")
	if err != nil {
		t.Fatal(err)
	}
	if st.SessionsTotal != 8 {
		t.Fatalf("%d sessions stored, want 8 (2 of the hammering client, 6 visitors)", st.SessionsTotal)
	}
	if bytes.Contains(logs.Bytes(), []byte("203.0.113")) || bytes.Contains(logs.Bytes(), []byte("198.51.100")) {
		t.Fatalf("a client address is in the logs:\n%s", logs.String())
	}
}

// TestClientAddress: who the client is, with and without a trusted proxy in front.
func TestClientAddress(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name    string
		proxies []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"no proxy: the peer, X-Forwarded-For ignored", nil, "192.0.2.1:5000", []string{"203.0.113.9"}, "192.0.2.1"},
		{"an untrusted peer's X-Forwarded-For is ignored", trusted, "192.0.2.1:5000", []string{"203.0.113.9"}, "192.0.2.1"},
		{"through the proxy", trusted, "127.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"the client's own entries are not believed", trusted, "127.0.0.1:5000", []string{"6.6.6.6, 203.0.113.9"}, "203.0.113.9"},
		{"two trusted proxies", trusted, "127.0.0.1:5000", []string{"6.6.6.6, 203.0.113.9, 10.1.2.3"}, "203.0.113.9"},
		{"several header lines", trusted, "127.0.0.1:5000", []string{"6.6.6.6", "203.0.113.9", "10.1.2.3"}, "203.0.113.9"},
		{"an entry with a port", trusted, "127.0.0.1:5000", []string{"203.0.113.9:4711"}, "203.0.113.9"},
		{"IPv6", trusted, "127.0.0.1:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"a malformed entry stops at the proxy that added it", trusted, "127.0.0.1:5000", []string{"203.0.113.9, garbage, 10.1.2.3"}, "10.1.2.3"},
		{"no header: the proxy itself", trusted, "127.0.0.1:5000", nil, "127.0.0.1"},
		{"only proxies", trusted, "127.0.0.1:5000", []string{"10.9.9.9"}, "10.9.9.9"},
		{"an IPv4-mapped peer", nil, "[::ffff:192.0.2.1]:5000", nil, "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &API{cfg: Config{TrustedProxies: tt.proxies}}
			r := httptestRequest(tt.remote, tt.xff)
			if got := a.clientAddr(r); got.String() != tt.want {
				t.Fatalf("client %s, want %s", got, tt.want)
			}
		})
	}
}

// TestClientLimiterBuckets: the bucket's size follows the pool, refills over the lease, an
// IPv6 client is its /64, sites are apart, and a key rotation frees no one.
func TestClientLimiterBuckets(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	takes := func(l *clientLimiter, site, addr string, pool int) int {
		n := 0
		for range 100 {
			if ok, _ := l.allow(site, netip.MustParseAddr(addr), pool); !ok {
				break
			}
			n++
		}
		return n
	}
	l := newClientLimiter(0.25, 30*time.Minute, time.Hour, 1<<10, clock)
	if n := takes(l, "s1", "192.0.2.1", 40); n != 10 {
		t.Fatalf("a client of a 40-number pool took %d, want 10", n)
	}
	if n := takes(l, "s1", "192.0.2.2", 2); n != 1 {
		t.Fatalf("a client of a 2-number pool took %d, want 1 (at least one)", n)
	}
	if n := takes(l, "s2", "192.0.2.1", 40); n != 10 {
		t.Fatalf("the same client at another site took %d, want 10", n)
	}
	if n := takes(l, "s1", "2001:db8:1:2::1", 8); n != 2 {
		t.Fatalf("an IPv6 client took %d, want 2", n)
	}
	if n := takes(l, "s1", "2001:db8:1:2:ffff::9", 8); n != 0 {
		t.Fatalf("another address of the same /64 took %d, want 0", n)
	}
	if n := takes(l, "s1", "2001:db8:1:3::1", 8); n != 2 {
		t.Fatalf("the next /64 took %d, want 2", n)
	}
	_, wait := l.allow("s1", netip.MustParseAddr("192.0.2.1"), 40)
	if wait < 2*time.Minute || wait > 3*time.Minute+time.Second {
		t.Fatalf("wait %v, want about 3m (30m / 10)", wait)
	}
	now = now.Add(3 * time.Minute)
	if n := takes(l, "s1", "192.0.2.1", 40); n != 1 {
		t.Fatalf("3 minutes later the client took %d, want 1", n)
	}

	// A lease longer than the key's life: the bucket is found under the previous key.
	l = newClientLimiter(0.25, 4*time.Hour, time.Hour, 1<<10, clock)
	takes(l, "s1", "192.0.2.1", 4)
	for range 3 {
		now = now.Add(61 * time.Minute)
		if ok, _ := l.allow("s1", netip.MustParseAddr("192.0.2.1"), 4); ok {
			t.Fatal("a key rotation freed the client")
		}
	}
	now = now.Add(4 * time.Hour)
	if ok, _ := l.allow("s1", netip.MustParseAddr("192.0.2.1"), 4); !ok {
		t.Fatal("after a lease the client is still refused")
	}

	// A full generation rotates early: memory stays bounded.
	l = newClientLimiter(0.25, 30*time.Minute, time.Hour, 64, clock)
	for i := range 1000 {
		l.allow("s1", netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 8)
	}
	if n := len(l.cur.buckets) + len(l.prev.buckets); n > 128 {
		t.Fatalf("%d buckets kept, want at most 128", n)
	}
}

// TestClientLimiterConcurrent exercises the limiter from many goroutines (run with -race):
// exactly the bucket's size is admitted.
func TestClientLimiterConcurrent(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := newClientLimiter(0.5, 30*time.Minute, time.Hour, 1<<10, func() time.Time { return now })
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if ok, _ := l.allow("s", netip.MustParseAddr("192.0.2.1"), 20); ok {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if admitted != 10 {
		t.Fatalf("admitted %d, want 10", admitted)
	}
}

// BenchmarkClientLimiterAllow is the limiter's cost on a new session: one HMAC and a map
// lookup under a lock, over a rotating set of clients.
func BenchmarkClientLimiterAllow(b *testing.B) {
	l := newClientLimiter(1e9, 30*time.Minute, time.Hour, 1<<18, time.Now)
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.allow("bench-site-key-0001", addrs[i&4095], 100)
		i++
	}
}

func httptestRequest(remote string, xff []string) *http.Request {
	r := httptest.NewRequest("POST", "/v1/sessions", nil)
	r.RemoteAddr = remote
	if xff != nil {
		r.Header["X-Forwarded-For"] = xff
	}
	return r
}
