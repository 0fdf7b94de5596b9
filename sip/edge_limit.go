package sip

import (
	"net/netip"
	"sync"
	"time"
)

// sourceLimiter holds, in memory only, a token bucket per source that is no trunk and the
// sources banned for going over theirs. Nothing of it is logged or stored: it ends with
// the process. Its size is bounded (MaxSources): when full, new sources are refused
// until a sweep frees room, so spoofed sources cannot grow it without end.
type sourceLimiter struct {
	rate     float64 // tokens a second
	burst    float64
	banAfter int
	banFor   time.Duration
	max      int
	onBan    func()

	mu        sync.Mutex
	buckets   map[netip.Addr]bucket
	bans      map[netip.Addr]time.Time // until
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
	over   int // requests refused since the bucket was last full
}

func newSourceLimiter(cfg EdgeConfig) *sourceLimiter {
	return &sourceLimiter{rate: cfg.SourceRate, burst: float64(cfg.SourceBurst), banAfter: cfg.BanAfter, banFor: cfg.BanFor,
		max: cfg.MaxSources, onBan: func() {}, buckets: map[netip.Addr]bucket{}, bans: map[netip.Addr]time.Time{}}
}

// isBanned tells whether ip is banned at now.
func (l *sourceLimiter) isBanned(ip netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.bans[ip]
	if !ok {
		return false
	}
	if now.Before(until) {
		return true
	}
	delete(l.bans, ip)
	return false
}

// allow takes a token of ip's bucket. Without one, the request is refused; BanAfter
// refusals in a row ban the source for BanFor.
func (l *sourceLimiter) allow(ip netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[ip]
	if !ok {
		if len(l.buckets)+len(l.bans) >= l.max {
			return false
		}
		b = bucket{tokens: l.burst, last: now}
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		if b.tokens >= l.burst-1 {
			b.over = 0
		}
		l.buckets[ip] = b
		return true
	}
	b.over++
	if b.over >= l.banAfter {
		delete(l.buckets, ip)
		l.bans[ip] = now.Add(l.banFor)
		l.onBan()
		return false
	}
	l.buckets[ip] = b
	return false
}

// sweep drops, at most every 10 s, the buckets that have refilled (a source that came
// back would get a full one anyway) and the bans that ended. Called with mu held.
func (l *sourceLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < 10*time.Second {
		return
	}
	l.lastSweep = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for ip, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, ip)
		}
	}
	for ip, until := range l.bans {
		if !now.Before(until) {
			delete(l.bans, ip)
		}
	}
}

// bannedCount is the number of sources banned at now.
func (l *sourceLimiter) bannedCount(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, until := range l.bans {
		if now.Before(until) {
			n++
		}
	}
	return n
}
