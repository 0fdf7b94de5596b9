package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// clientLimiter bounds the new sessions one client may make at one site, so that one
// client cannot drain a customer's pool while the site's other visitors still get numbers.
//
// A client at a site may make at most share × the customer's pool numbers (at least one) new
// sessions per window (the lease: the time a number stays with a session that is not
// touched), refilled evenly over the window (a token bucket). So within any lease one client
// holds at most that share of the pool; the rest stays for everyone else.
//
// It is kept in memory only. A bucket is found by a keyed hash (HMAC-SHA256, 128 bits) of
// the site key and the client's address (an IPv6 address by its /64, which one subscriber
// usually has whole). The key is random, made in memory, never written or logged, and
// replaced every rotate period; the buckets of the previous key are still found (and moved
// under the new key) for one more period, so a rotation frees no one, and are then dropped
// with that key. No address is kept, and after two periods not even its hash.
type clientLimiter struct {
	share   float64
	window  time.Duration
	rotate  time.Duration
	maxKeys int // buckets under one key at most; a full generation rotates early
	now     func() time.Time

	mu   sync.Mutex
	cur  *clientGen
	prev *clientGen
	in   []byte            // the HMAC's input, reused (mu)
	sum  [sha256.Size]byte // its output, reused (mu)
}

// clientGen is the buckets under one hashing key.
type clientGen struct {
	mac     hash.Hash // HMAC-SHA256 under the generation's key; used with mu held
	born    time.Time
	buckets map[clientID]*bucket
}

type clientID [16]byte

func newClientLimiter(share float64, window, rotate time.Duration, maxKeys int, now func() time.Time) *clientLimiter {
	return &clientLimiter{share: share, window: window, rotate: rotate, maxKeys: maxKeys, now: now}
}

func newClientGen(now time.Time) *clientGen {
	var key [32]byte
	rand.Read(key[:]) // crypto/rand.Read never fails (Go 1.24+)
	g := &clientGen{mac: hmac.New(sha256.New, key[:]), born: now, buckets: map[clientID]*bucket{}}
	clear(key[:])
	return g
}

// id is the bucket's key of input (the site key, a zero byte, the client's bytes) in g;
// sum is scratch space for the HMAC. Both are the limiter's, so that nothing is allocated.
func (g *clientGen) id(input []byte, sum *[sha256.Size]byte) clientID {
	g.mac.Reset()
	g.mac.Write(input)
	var id clientID
	copy(id[:], g.mac.Sum(sum[:0]))
	return id
}

// allow takes a new session for the client at addr at site, whose customer has poolNumbers
// pool numbers; when there is none it answers false and how long until there is one.
func (l *clientLimiter) allow(site string, addr netip.Addr, poolNumbers int) (bool, time.Duration) {
	capacity := math.Max(1, math.Floor(l.share*float64(poolNumbers)))
	rate := capacity / l.window.Seconds() // sessions per second
	var raw [16]byte
	a := raw[:clientBytes(addr, &raw)]
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil || now.Sub(l.cur.born) >= l.rotate || len(l.cur.buckets) >= l.maxKeys {
		l.prev, l.cur = l.cur, newClientGen(now)
	}
	l.in = append(append(append(l.in[:0], site...), 0), a...)
	id := l.cur.id(l.in, &l.sum)
	b := l.cur.buckets[id]
	if b == nil {
		if l.prev != nil {
			pid := l.prev.id(l.in, &l.sum)
			if b = l.prev.buckets[pid]; b != nil {
				delete(l.prev.buckets, pid)
			}
		}
		if b == nil {
			b = &bucket{tokens: capacity, last: now}
		}
		l.cur.buckets[id] = b
	}
	clear(l.in) // no address stays behind in the scratch space
	b.tokens = min(capacity, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// clientBytes writes what identifies the client of addr into raw and answers its length:
// an IPv4 address whole, an IPv6 address by its /64 prefix. An invalid address (no client
// could be read) is one client of its own.
func clientBytes(addr netip.Addr, raw *[16]byte) int {
	switch {
	case addr.Is4():
		b := addr.As4()
		return copy(raw[:], b[:])
	case addr.Is6():
		b := addr.As16()
		return copy(raw[:], b[:8])
	}
	return 0
}

// clientAddr is the address of the client that sent r: the peer's, or, when the peer is a
// trusted proxy, the nearest address in X-Forwarded-For that is not a trusted proxy (each
// proxy appends the address it saw, so the entries right of the first untrusted one are
// the operator's own proxies; the ones left of it are the client's word and not used). A
// malformed entry ends the walk at the proxy that added it. The address is used for the
// limiter's key only: never logged or stored.
func (a *API) clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if !a.trustedProxy(addr) {
		return addr
	}
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		rest := vals[i]
		for rest != "" {
			var hop string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				hop, rest = rest, ""
			}
			h, ok := parseHop(strings.TrimSpace(hop))
			if !ok {
				return addr
			}
			if !a.trustedProxy(h) {
				return h
			}
			addr = h
		}
	}
	return addr
}

// parseHop reads one X-Forwarded-For entry: an address, or an address with a port.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func (a *API) trustedProxy(addr netip.Addr) bool {
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// admit is the pool's question before it makes a new session (pool.Visit.Admit): the
// client's limit first, then the site key's, so that a client refused for its own flood
// uses up nothing of the site's.
type admit struct {
	a    *API
	w    http.ResponseWriter
	site string
	addr netip.Addr
}

func (ad *admit) check(poolNumbers int) error {
	a := ad.a
	if a.clients != nil {
		if ok, wait := a.clients.allow(ad.site, ad.addr, poolNumbers); !ok {
			a.rejected.WithLabelValues("client_limit").Inc()
			retryAfter(ad.w, int(math.Ceil(wait.Seconds())))
			return errStatus(http.StatusTooManyRequests, "", "too many new sessions from this client; the page keeps its own number")
		}
	}
	if !a.limiter.allow(ad.site) {
		a.rejected.WithLabelValues("rate_limit").Inc()
		retryAfter(ad.w, 1)
		return errStatus(http.StatusTooManyRequests, "", "too many new sessions for this site key")
	}
	return nil
}
