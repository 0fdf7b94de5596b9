package sip

import (
	"fmt"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Overload control: which new calls the switch takes when more are offered than it can
// carry. A switch past its knee that takes every INVITE collapses: its UDP socket's queue
// grows, answers come late, the trunk retransmits, the retransmissions queue too, and fewer
// calls get through the more are offered. So the switch measures its own delay: the time a
// datagram waits in the socket's receive queue (admitMeter: the kernel's receive timestamp
// against the time sipgo's reader takes it), which grows when the process has no core to
// spare for its reader. While that delay stands above a target (Config.OverloadDelay) it
// admits new calls at an adapted rate and refuses the rest with 503 and Retry-After
// (RFC 3261 §21.5.4): over UDP as the reader takes the INVITE, before sipgo parses it
// (admitConn), over TCP and TLS first thing in the INVITE's handler (Switch.shed). Calls
// in progress, their in-dialog requests and re-INVITEs are never refused. An operator can
// also cap the rate of new calls (Config.MaxCPS).
//
// The time a call's setup takes beyond the socket (the store's fsync, the business line)
// is left out on purpose: a slow disk does not get faster by refusing calls, since the
// store commits many calls per fsync.
//
// The delay signal is read the way CoDel reads a queue: the least delay of the datagrams
// in each 100 ms interval. A burst that the switch works off within the interval leaves some
// datagram or call with a short wait; only a standing queue makes all of them wait longer
// than the target. While the queue stands and does not shrink, the admitted rate is cut to
// 85 % of what was admitted in the interval, then held for twice the delay seen (the time
// the cut takes to show in the queue) before it is cut again; while the queue shrinks the
// limit holds; once it is gone the limit grows by a twentieth of the rate it was first cut
// to every interval, until nothing has been refused for a second: then it is lifted.
// Because the limit follows the queue an interval late, an INVITE over UDP that itself
// waited eight times the target while the queue stands or builds is refused at once: the
// oldest work goes first, and the queue that a step to twice the load builds in its first
// interval does not reach the calls admitted after it. Because the limit follows what the switch itself managed, it
// holds on a slower or a busier machine alike.

// Defaults of the admission control.
const (
	// DefaultOverloadDelay is the least queueing delay of an interval's datagrams above which
	// the switch is overloaded (Config.OverloadDelay).
	DefaultOverloadDelay = 20 * time.Millisecond
	// shedRetryAfter is the Retry-After, in seconds, of a 503 that sheds load: short, since
	// an overload passes and a trunk that honours it stops sending this switch any call for
	// that long.
	shedRetryAfter = "1"
	admitInterval  = 100 * time.Millisecond
	admitCut       = 0.85 // the admitted rate while the queue stands, of the interval's
	admitStep      = 0.05 // the limit's growth per interval without a standing queue, of its first cut
	admitMinRate   = 10   // calls per second the limit never goes under
	admitLiftAfter = 10   // intervals without a standing queue or a refusal that lift the limit
	// admitStale: an INVITE that waited this many times the target in the socket's queue is
	// refused whatever the limit, while the queue stands or builds: the oldest work goes first,
	// before the limit, which follows the queue an interval late, has cut the rate.
	admitStale = 8
)

// Reasons a new call is refused (trackline_sip_shed_total{reason}).
const (
	shedOverload = "overload" // the switch's own delay stands above the target
	shedMaxCPS   = "max_cps"  // the configured cap on new calls a second
)

// admission decides which new calls the switch takes. observe is called for every
// datagram by sipgo's UDP reader goroutine; allow by that goroutine and by INVITE handlers
// (TCP, TLS). Its methods are safe for concurrent use.
type admission struct {
	target time.Duration
	m      *admitMetrics

	mu  sync.Mutex
	cap tokenBucket // the configured cap; rate 0: none
	lim tokenBucket // the adaptive limit; rate 0: none (not overloaded)

	winStart  time.Time
	winMin    time.Duration // least delay of the interval's datagrams
	winN      int           // datagrams observed in the interval
	admitted  int           // new calls admitted in the interval
	refused   int           // refused for overload in the interval
	calm      int           // intervals in a row without a standing queue or a refusal
	lastDelay time.Duration // the delay of the last complete interval (a gauge)
	latest    time.Duration // the delay of the datagram observed last
	holdUntil time.Time     // no cut before: the last one has yet to show in the queue
	step      float64       // the limit's growth an interval: a twentieth of its first cut
}

func newAdmission(target time.Duration, maxCPS float64, m *admitMetrics) *admission {
	if target <= 0 {
		target = DefaultOverloadDelay
	}
	a := &admission{target: target, m: m}
	if maxCPS > 0 {
		a.cap = newTokenBucket(maxCPS)
	}
	return a
}

// observe takes one datagram's wait in the socket's receive queue, as the reader took it
// at now.
func (a *admission) observe(delay time.Duration, now time.Time) {
	if delay < 0 {
		delay = 0 // clocks of the kernel and the process disagree by a little
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.roll(now)
	a.latest = delay
	if a.winN == 0 || delay < a.winMin {
		a.winMin = delay
	}
	a.winN++
}

// roll closes the interval when it is over and adapts the limit. Called under mu.
func (a *admission) roll(now time.Time) {
	if a.winStart.IsZero() {
		a.winStart = now
		return
	}
	elapsed := now.Sub(a.winStart)
	if elapsed < admitInterval {
		return
	}
	delay := a.winMin
	seen := a.winN > 0
	standing := seen && delay > a.target
	// draining: the queue stands but shrinks; the limit in force is working it off.
	draining := standing && a.lim.rate > 0 && delay < a.lastDelay
	if seen {
		a.lastDelay = delay
	} else if elapsed >= 2*admitInterval {
		a.lastDelay = 0 // nothing arrived for a while: no queue
	}
	rate := float64(a.admitted) / elapsed.Seconds()
	switch {
	case draining:
		a.calm = 0
	case standing:
		a.calm = 0
		if now.Before(a.holdUntil) {
			break
		}
		base := rate
		if a.lim.rate > 0 {
			base = min(base, a.lim.rate)
		} else {
			a.step = max(admitMinRate, base*admitCut*admitStep)
		}
		a.lim.setRate(max(admitMinRate, base*admitCut), now)
		a.holdUntil = now.Add(max(admitInterval, 2*delay))
	case a.lim.rate > 0:
		if a.refused == 0 {
			a.calm++
		} else {
			a.calm = 0
		}
		if a.calm >= admitLiftAfter {
			a.lim = tokenBucket{}
		} else {
			a.lim.setRate(a.lim.rate+a.step, now)
		}
	}
	a.winStart, a.winN, a.admitted, a.refused = now, 0, 0, 0
	if a.m != nil {
		a.m.delay.Set(a.lastDelay.Seconds())
		a.m.limit.Set(a.lim.rate)
	}
}

// allow decides on one new call at now: "" admits it, else the reason it is refused. stale
// says the INVITE is the datagram observed last (admitConn, in the reader goroutine), so
// that the time it waited counts.
func (a *admission) allow(now time.Time, stale bool) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.roll(now)
	reason := ""
	switch {
	case a.cap.rate > 0 && !a.cap.take(now):
		reason = shedMaxCPS
	case stale && a.latest > admitStale*a.target && (a.lim.rate > 0 || a.winN > 0 && a.winMin > a.target):
		reason = shedOverload
		a.refused++
	case a.lim.rate > 0 && !a.lim.take(now):
		reason = shedOverload
		a.refused++
	default:
		a.admitted++
		return ""
	}
	if a.m != nil {
		a.m.shed.WithLabelValues(reason).Inc()
	}
	return reason
}

// tokenBucket is a token bucket: rate tokens a second, at most a tenth of a second's worth (and
// at least one) saved up.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate float64) tokenBucket {
	b := tokenBucket{}
	b.setRate(rate, time.Time{})
	b.tokens = b.burst
	return b
}

// setRate changes the rate from now, keeping the tokens saved up (within the new burst).
func (b *tokenBucket) setRate(rate float64, now time.Time) {
	if b.rate > 0 && !now.IsZero() {
		b.fill(now)
	} else {
		b.last = now
	}
	b.rate, b.burst = rate, max(1, rate/10)
	b.tokens = min(b.tokens, b.burst)
}

func (b *tokenBucket) fill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
}

// take takes a token at now if there is one.
func (b *tokenBucket) take(now time.Time) bool {
	b.fill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// admitMetrics are the admission's series.
type admitMetrics struct {
	shed  *prometheus.CounterVec
	delay prometheus.Gauge
	limit prometheus.Gauge
}

func newAdmitMetrics() *admitMetrics {
	m := &admitMetrics{
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_sip_shed_total",
			Help: "New calls (initial INVITEs) refused with 503 to shed load, by reason: overload (the switch's queueing delay stood above sip.overload_delay) or max_cps (the configured cap). Retransmissions of a refused INVITE are not counted again.",
		}, []string{"reason"}),
		delay: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_sip_queue_delay_seconds",
			Help: "The switch's own delay that admission control reads: the least time a SIP datagram waited in the UDP socket's receive queue in the last 100 ms interval.",
		}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_sip_admit_limit_cps",
			Help: "New calls a second the switch admits while overloaded (0: no limit in force).",
		}),
	}
	for _, r := range []string{shedOverload, shedMaxCPS} {
		m.shed.WithLabelValues(r)
	}
	return m
}

func (m *admitMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.shed, m.delay, m.limit}
}

// setupAdmission makes the switch's admission control from its config and registers its
// metrics.
func (s *Switch) setupAdmission() error {
	m := newAdmitMetrics()
	s.adm = newAdmission(s.cfg.OverloadDelay, s.cfg.MaxCPS, m)
	if s.reg == nil {
		return nil
	}
	for _, c := range m.collectors() {
		if err := s.reg.Register(c); err != nil {
			return fmt.Errorf("register sip admission metrics: %w", err)
		}
	}
	return nil
}

// shed refuses a new call with 503 and Retry-After when the admission control does not
// take it, and tells whether it did: for the INVITEs that admitConn did not decide on (over
// TCP and TLS, or unreadable to its scan). The 503 goes through the INVITE's server
// transaction, which answers the INVITE's retransmissions with it and absorbs the ACK.
func (s *Switch) shed(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	if via, id := req.Via(), req.CallID(); via != nil && id != nil && req.Transport() == "UDP" {
		if branch, ok := via.Params.Get("branch"); ok && s.inv.admitted(inviteKey([]byte(branch), []byte(id.Value()))) {
			return false // admitConn took it
		}
	}
	reason := s.adm.allow(s.now(), false)
	if reason == "" {
		return false
	}
	s.respond(req, tx, 503, "Service Unavailable", sipmsg.NewHeader("Retry-After", shedRetryAfter))
	return true
}
