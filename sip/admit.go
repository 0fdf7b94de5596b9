package sip

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Overload control: which new calls the switch takes when more are offered than it can
// carry. A switch past its knee that takes every INVITE collapses: its UDP socket's queue
// grows, answers come late, the trunk retransmits, the retransmissions queue too, and fewer
// calls get through the more are offered. So the switch measures its own delay: the time a
// datagram waits between the kernel's receipt (its receive timestamp) and sipgo's reader
// taking it, which grows when the process has no core to spare for the messages it has.
// Over UDP one goroutine reads the socket as fast as the datagrams come into a queue that
// sipgo's reader empties (admitConn), so the wait is in a queue the switch sees, and the
// decision on a new call is made as its INVITE arrives, not after it has waited: its 503
// with Retry-After (RFC 3261 §21.5.4) goes out at once, built from the edge's scan, before
// sipgo parses anything. Over TCP and TLS the decision is made first thing in the
// INVITE's handler (Switch.shed). Calls in progress, their in-dialog requests and
// re-INVITEs are never refused. An operator can also cap the rate of new calls
// (Config.MaxCPS).
//
// The time a call's setup takes beyond the switch's queue (the store's fsync, the business
// line) is left out on purpose: a slow disk does not get faster by refusing calls, since the
// store commits many calls per fsync. The CPU that recorded calls cost shows in the queue
// like any other.
//
// Two rules decide. An INVITE that finds the queue standing for more than admitStale times
// the target (Config.OverloadDelay) is refused at once: the queue, and so the wait of the
// calls admitted, stays bounded from the first interval of an overload on. The queue here
// is the socket's and the switch's, and also the backlog behind them: how long the last
// INVITE admitted waited from its admission until its handler started (observeHandler),
// which the handlers see even while the drain goroutine is starved of the CPU. And the delay
// is read the way CoDel reads a queue: the least delay of the datagrams in each 100 ms
// interval. A burst that the switch works off within the interval leaves some datagram with
// a short wait; only a standing queue makes all of them wait longer than the target. While
// the queue stands and does not shrink, the admitted rate is cut to 85 % of what was
// admitted in the interval, then held for twice the delay seen (the time the cut takes to
// show in the queue) before it is cut again; while the queue shrinks the limit holds; once
// it is gone the limit grows by a twentieth of the rate it was first cut to every interval,
// until nothing has been refused for a second: then it is lifted. Because both follow what
// the switch itself managed, they hold on a slower or a busier machine alike.

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
	// admitStale: an INVITE that finds the queue of datagrams standing for this many times
	// the target is refused at once, whatever the limit, which follows the queue an interval
	// late: the queue a step to twice the load builds in its first interval does not grow
	// past it, and the calls admitted wait no longer than that in it.
	admitStale = 4
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
	holdUntil time.Time     // no cut before: the last one has yet to show in the queue
	// The last INVITE admitted over UDP whose handler started: how long it waited from its
	// admission to its handler's first line (sipgo's reader, parse, goroutine), and when.
	handler   time.Duration
	handlerAt time.Time
	step      float64 // the limit's growth an interval: a twentieth of its first cut

	// strainedUntil (unix ns): the switch's delay was seen out of its quiet range (strain)
	// lately. Read without mu by the drain, per read (strained).
	strainedUntil atomic.Int64
}

// strainHold is how long a sign of strain keeps the drain polling the socket.
const strainHold = time.Second

// strain notes a sign that the switch is near or past its capacity at now. Safe without mu.
func (a *admission) strain(now time.Time) {
	a.strainedUntil.Store(now.Add(strainHold).UnixNano())
}

// strained tells whether the switch showed strain within strainHold of now: a limit in
// force, a call refused for overload, a queueing delay or a handler's wait over half the
// target, a datagram that waited in the socket over a quarter of it (admitConn.drain).
// While it is, the drain polls the socket (admitMeter) even through a lull of datagrams,
// rather than wait in the network poller, whose wake-ups wait at the back of the
// scheduler's global queue when every P is busy.
func (a *admission) strained(now time.Time) bool {
	return now.UnixNano() < a.strainedUntil.Load()
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
	if (seen && delay > a.target/2) || a.lim.rate > 0 {
		a.strain(now)
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

// allow decides on one new call at now: "" admits it, else the reason it is refused. wait
// is how long the queue the INVITE joins has stood (admitConn: the age of the oldest
// datagram in it, or the INVITE's own wait in the socket's queue if longer); 0 when
// unknown (TCP, TLS).
func (a *admission) allow(now time.Time, wait time.Duration) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.roll(now)
	reason := ""
	switch {
	case a.cap.rate > 0 && !a.cap.take(now):
		reason = shedMaxCPS
	case wait > admitStale*a.target:
		reason = shedOverload
		a.refused++
		a.strain(now)
	case a.lim.rate > 0 && !a.lim.take(now):
		reason = shedOverload
		a.refused++
		a.strain(now)
	default:
		a.admitted++
		return ""
	}
	if a.m != nil {
		a.m.shed.WithLabelValues(reason).Inc()
	}
	return reason
}

// observeHandler takes how long an INVITE admitted over UDP waited from its admission to
// its handler's first line, seen at now. That wait is the backlog of work the switch has
// let in and not yet started: the goroutines ahead of the handler's, all on the CPU, none
// on the disk. Under it the drain itself may be starved of the CPU and see the queue only
// late; the handlers, which run all the time, see it as it builds.
func (a *admission) observeHandler(wait time.Duration, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handler, a.handlerAt = max(wait, 0), now
	if wait > a.target/2 {
		a.strain(now)
	}
}

// handlerWait is the last handler's wait (observeHandler) while it is recent: observed
// within two intervals of now, else 0. So a switch that refuses every new call for it admits
// one again within two intervals, and its handler tells whether the backlog is gone.
func (a *admission) handlerWait(now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.handlerAt.IsZero() || now.Sub(a.handlerAt) > 2*admitInterval {
		return 0
	}
	return a.handler
}

// dropped counts a datagram dropped because admitConn's queue was full.
func (a *admission) dropped() {
	if a.m != nil {
		a.m.dropped.Inc()
	}
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
	shed    *prometheus.CounterVec
	delay   prometheus.Gauge
	limit   prometheus.Gauge
	dropped prometheus.Counter
}

func newAdmitMetrics() *admitMetrics {
	m := &admitMetrics{
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_sip_shed_total",
			Help: "New calls (initial INVITEs) refused with 503 to shed load, by reason: overload (the switch's queueing delay stood above sip.overload_delay) or max_cps (the configured cap). Retransmissions of a refused INVITE are not counted again.",
		}, []string{"reason"}),
		delay: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_sip_queue_delay_seconds",
			Help: "The switch's own delay that admission control reads: the least time a SIP datagram over UDP waited, in the socket's receive queue and then the switch's, in the last 100 ms interval.",
		}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_sip_admit_limit_cps",
			Help: "New calls a second the switch admits while overloaded (0: no limit in force).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_sip_queue_dropped_total",
			Help: "SIP datagrams over UDP dropped because the switch's queue of received datagrams was full (new calls are refused with 503 well before).",
		}),
	}
	for _, r := range []string{shedOverload, shedMaxCPS} {
		m.shed.WithLabelValues(r)
	}
	return m
}

func (m *admitMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.shed, m.delay, m.limit, m.dropped}
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
		if branch, ok := via.Params.Get("branch"); ok {
			if at, ok := s.inv.admittedAt(inviteKey([]byte(branch), []byte(id.Value()))); ok {
				now := s.now()
				s.adm.observeHandler(now.Sub(at), now)
				return false // admitConn took it
			}
		}
	}
	reason := s.adm.allow(s.now(), 0)
	if reason == "" {
		return false
	}
	s.respond(req, tx, 503, "Service Unavailable", sipmsg.NewHeader("Retry-After", shedRetryAfter))
	return true
}
