package api

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientAddr: whatever X-Forwarded-For holds, the client is the peer or an address the
// header names, and nothing panics (TestClientAddress checks which one).
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.9", "6.6.6.6, 203.0.113.9, 10.1.2.3", "garbage", "", ",,,", "[2001:db8::1]:80, 10.0.0.1",
		"2001:db8::7", "::ffff:10.0.0.1", "10.0.0.1 , 10.0.0.2"} {
		f.Add(s)
	}
	a := &API{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}}}
	f.Fuzz(func(t *testing.T, xff string) {
		got := a.clientAddr(httptestRequest("127.0.0.1:4000", []string{xff}))
		if !got.IsValid() {
			t.Fatalf("no client for %q", xff)
		}
		if got == netip.MustParseAddr("127.0.0.1") {
			return
		}
		for _, part := range strings.Split(xff, ",") {
			if h, ok := parseHop(strings.TrimSpace(part)); ok && h == got {
				return
			}
		}
		t.Fatalf("client %s is neither the peer nor an entry of %q", got, xff)
	})
}

// FuzzAMPCacheOrigin: the cache origin of any origin is "" or one valid label under the
// cache's domain, over https.
func FuzzAMPCacheOrigin(f *testing.F) {
	for _, s := range []string{"https://www.acme.example", "https://xn--bcher-kva.example", "https://ab-c.example",
		"https://" + strings.Repeat("a.", 40) + "example", "http://[::1]", "https://a..b", "https://-.example", "ftp://x.y/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		got := ampCacheOrigin(origin)
		if got == "" {
			return
		}
		label, ok := strings.CutPrefix(got, "https://")
		if !ok {
			t.Fatalf("%q -> %q", origin, got)
		}
		label, ok = strings.CutSuffix(label, "."+ampCacheDomain)
		if !ok || label == "" || len(label) > 63 || strings.Contains(label, ".") {
			t.Fatalf("%q -> %q: not one label under the cache", origin, got)
		}
	})
}
