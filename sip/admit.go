package sip

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trackline/trackline/internal/cputime"
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
// line) is left out of the queue's delay on purpose: a slow disk does not get faster by
// refusing calls, since the store commits many calls per fsync. The CPU that recorded calls
// cost shows in the queue like any other. The limit on setups in flight (below) counts the
// store's commit, against a baseline that follows a slow disk.
//
// Three rules decide, each on a delay of the switch's own (the reasons of
// trackline_sip_shed_total): overload_queue and overload_rate on its queues and its cores
// (here), overload_setups on the time its part of a setup takes (the limit on setups in
// flight, below). An INVITE that finds the queue standing for more than admitStale times
// the target (Config.OverloadDelay) is refused at once: the queue, and so the wait of the
// calls admitted, stays bounded from the first interval of an overload on. Unless the queue
// began to stand while the switch was quiet (it had shed no load for 10 s and carried the
// calls it was offered: quiet), no longer than setupPause ago: that is a pause of the
// process, a collection's assists or a slow commit, which the calls let in wait out
// (ridesOut); an overload sheds at once, by its setups' limit if not by the queue, and from
// its first refusal on the rule holds. The queue here is the socket's and the switch's, and
// also the backlog behind them: how long the last INVITE admitted waited from its admission
// until its handler started (observeHandler), which the handlers see even while the drain
// goroutine is starved of the CPU. And the delay is read the way CoDel reads a queue: the
// least delay of the datagrams in each 100 ms interval. A burst that the switch works off
// within the interval leaves some datagram with a short wait; only a standing queue makes
// all of them wait longer than the target. The switch's goroutines wait too once it has
// read the datagrams: for a core, when the work it took in (business lines' answers, ACKs,
// BYEs, recordings' ends) is more than its cores do. So the Go scheduler's waits count too
// (schedProbe): the mean over the last second of their 90th percentile in each interval,
// standing when it is over a admitSchedScale-th of the target (a call's setup waits for a
// core many times over) while the switch used half a core or more (a switch with little to
// do waits only for other processes) and is not quiet. While the queue or the scheduler's
// waits stand and the queue does not shrink (and the switch does not ride it out, as
// above), the admitted rate is cut to 85 % of what was admitted in the interval (or of the
// setups done a second over the last second, if more: in a stall little is admitted), then
// held for twice the delay seen (the time the cut takes to show in the queue; a second for
// the scheduler's waits, whose mean follows that late) before it is cut again; while the
// queue shrinks the limit holds; once it is gone the limit grows by a twentieth of the rate
// it was first cut to every interval, until nothing has been refused for a second: then it
// is lifted. Because both follow what the switch itself managed, they hold on a slower or a
// busier machine alike.

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
	// The scheduler's waits (schedProbe) stand when the mean of their 90th percentile over
	// the last admitSchedIntervals intervals, the admitSchedTrim highest left out, is over a
	// admitSchedScale-th of the target: a call's setup waits for a core many times over. A
	// mean over a second, because at 1,000 recorded calls a second, well under this
	// machine's capacity, single intervals reach 5-14 ms as the switch works off a burst (a
	// collection, a batch of recordings' ends), while past the knee the mean stands at 5-30
	// ms (docs/benchmarks.md); the highest two left out, because a stall of the process of a
	// tenth of a second or two lifted the plain mean from its 1-3 ms to 7.8-8.8 ms once or
	// twice a minute at 1,000 recorded calls a second, and the cut shed 0.3 % of the calls,
	// while past the knee most intervals stand high.
	admitSchedScale     = 3
	admitSchedIntervals = 10
	admitSchedTrim      = 2
	// admitSchedBusy: the scheduler's waits count only while the switch used at least this
	// much of a core over those intervals. Goroutines of a switch with little to do wait
	// when other processes take the cores; refusing calls would not shorten that.
	admitSchedBusy = 0.5
)

// Reasons a new call is refused (trackline_sip_shed_total{reason}).
const (
	shedStale  = "overload_queue"  // the INVITE found the switch's queue standing over admitStale targets
	shedRate   = "overload_rate"   // the adaptive limit on new calls a second (the switch's delay stood)
	shedSetups = "overload_setups" // the setups in flight were at their limit
	shedMaxCPS = "max_cps"         // the configured cap on new calls a second
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
	// shedAt (unix ns): the last sign that the switch sheds load (shed): a call refused for
	// overload, a cut of the setups' limit, a rate limit in force at an interval's end.
	shedAt int64
	// The episode of shedding in course (shed): when it began (unix ns; 0: none), and the
	// calls refused in it by reason; log tells the operator of its start and end.
	episodeAt      int64
	episodeRefused map[string]int
	log            *slog.Logger
	// admits: the new calls admitted in the last complete intervals (admits[0] the last)
	// and how long each was; lastRate: a second over the last and those short before it
	// (stepRate).
	admits   [quietSpan/admitInterval + 1]admitSpan
	lastRate float64
	// doneLong: setups done a second, a moving average over quietAfter (quiet).
	doneLong float64

	// sched reads the 90th percentile of the scheduler's waits since its last read
	// (schedProbe), and the CPU time the process has used (nil: none, as in tests that do not
	// set it).
	sched     func() (wait, cpu time.Duration)
	cpuLast   [admitSchedIntervals + 1]time.Duration // the process's CPU time at the last intervals' ends
	schedBusy bool                                   // the process used admitSchedBusy of a core over them
	schedWait time.Duration                          // the mean of schedLast, the admitSchedTrim highest left out
	schedLast [admitSchedIntervals]time.Duration     // the 90th percentile of the waits in each of the last complete intervals

	// Setups in flight (setupDone): the INVITEs admitted whose handler has not yet rung the
	// business line (or answered the INVITE without a call), by key, with when each was
	// admitted (unix ns); and the limit on them.
	flight    map[uint64]int64
	conc      float64  // the limit on setups in flight
	ssthresh  float64  // below it the limit grows by one a setup done in time (slow start), above by one a limit's worth
	cutAt     int64    // the last cut of conc (unix ns): setups admitted before it cut it no more
	setupBase baseline // of the setups' times
	// The business lines rung over UDP (ringing), by the key of their INVITE's Call-ID
	// (answerKey): 0 while no final answer has come; once one has come, when it reached the
	// socket (unix ns, > 0), and the call counts as a setup in flight until its goroutine has
	// it (lineDone): the switch's own part of a setup past ringing; -1 once that took over
	// setupExpire.
	lines     map[uint64]int64
	answering int                     // lines whose answer is in flight
	lineBase  baseline                // of the answers' times
	done      [admitLiftAfter + 1]int // setups done in the current interval (done[0]) and the last ones
}

// The limit on setups in flight: how many calls may be in the switch's part of their setup
// at once: between the INVITE's admission and ringing the business line, and between the
// line's final answer reaching the socket (the drain sees it, admitConn) and the caller's
// answer going out, with the business line's ringing and a disclaimer still playing left
// out (they are not the switch's time). Past ringing the switch has to take up the line's
// answer (sipgo's reader, its transaction, the call's goroutine), start the recording and
// answer the caller: a limit on the setups before ringing alone let a recorded overload
// pile up calls there until the descriptors ran out (docs/benchmarks.md). Answers over TCP
// and TLS are not seen arrive, and not counted. The rate limit and the refusals by age
// (above) act on the queue's delay, which a step to twice the load shows only once it has
// built: in the first interval of the step every INVITE is let in, and the switch then
// works for seconds through the backlog it took (the setups' p99 of admitted calls: 0.6-2.4 s
// at 2,400 recorded calls a second offered, docs/benchmarks.md). This limit follows the
// switch's own pace instead, the way TCP's window does: it starts at setupInit, grows by
// one for each setup done within admitStale targets of the least setup time seen lately
// (past the knee setupSlackLimited; so it doubles each round of setups while they come back
// in time: a slow start), by one a round once it has been cut, and only while it is in use
// (at least half of it in flight); a setup that took longer cuts it in the ratio of the
// time allowed to the time taken (a gradient, at most by half), once for the setups
// admitted before the cut. It never stays under what the setups done in the last second
// need at the time allowed (Little's law: done a second times the time allowed): a cut
// stops there, and, while no rate limit is in force, a setup done in time lifts it there.
// While the switch is quiet the time allowed is setupPause at the least, so neither a burst
// the switch works off nor a pause of it (a collection, a slow commit) refuses calls it
// carries in time. The time is the switch's own, from its queues to ringing, the store's
// commit of the call's record included, and past ringing on a baseline of its own: the
// least of the last five to ten seconds is the baseline, so a disk that is slow for a while
// raises what is allowed.
const (
	setupInit       = 64
	setupMin        = 4
	setupMax        = admitQueueLen
	setupBaseWindow = 5 * time.Second
	// setupExpire: an admitted INVITE whose handler never came (sipgo dropped it) leaves
	// the setups in flight after this long, counted as a setup that took that long.
	setupExpire = 4 * time.Second
	setupCalm   = 10 * time.Second // without a cut for this long, the limit slow-starts again
	// setupSlackLimited: past the knee (a rate limit in force) a setup is allowed its
	// baseline and this many targets, not admitStale: the limit grows until the setups take
	// about that long, and the calls it admits have waited up to admitStale targets in the
	// queue already, so their setups' p99 at the trunk is near the sum of the two. At 4,000
	// direct calls offered, the admitted calls' setup p99 was 164-180 ms against 200-216 at
	// admitStale targets, with the same goodput (docs/benchmarks.md).
	setupSlackLimited = 2
	// setupPause: while the switch is quiet (it shed no load lately), a setup done in time
	// lifts the limit to what the setups done in the last second need at this time, the
	// longest the admitted calls' setups should take, and a queue that began to stand no
	// longer ago refuses no call (ridesOut): a pause of the switch that long (a collection's
	// assists, a slow commit) is ridden out with the calls it lets in waiting, not refused.
	// At the time allowed alone, ~100 ms, such pauses refused 16-82 calls in a third of the
	// disclaimer runs at 500 calls a second, and the queue's rule at admitStale targets up to
	// 181 (docs/benchmarks.md). While quiet, a setup is allowed this long (adaptSetups):
	// those the pause slowed do not cut the limit. Once the switch sheds (an overload fills
	// the limit at once) the time allowed is back to its own. Quiet, not free of strain: a
	// datagram that waited 5-18 ms in the socket strains the switch every second or two at
	// that load.
	setupPause = 250 * time.Millisecond
)

// baseline is the least of the times seen in the current and the last setupBaseWindow.
type baseline struct {
	least  [2]time.Duration // of the current window and the last; 0: none yet
	at     time.Time        // when the current window began
	inTime int64            // when the latest setup done in time began (unix ns; adaptSetups)
}

// add takes a time seen at now and returns the baseline.
func (b *baseline) add(took time.Duration, now time.Time) time.Duration {
	if now.Sub(b.at) >= setupBaseWindow {
		b.least[1], b.least[0], b.at = b.least[0], took, now
	} else {
		b.least[0] = min(b.least[0], took)
	}
	if b.least[1] == 0 {
		return b.least[0]
	}
	return min(b.least[0], b.least[1])
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

// shed notes a sign that the switch sheds load at now (shedAt), which strains it too: why
// is a call's refusal (its reason) or the sign, cut (the setups' limit) or limited (a rate
// limit in force). A switch that had shed nothing for quietAfter begins an episode, which
// it logs with what it measured then; roll logs its end. Called under mu.
func (a *admission) shed(now time.Time, why string) {
	if a.episodeAt == 0 {
		a.episodeAt, a.episodeRefused = now.UnixNano(), map[string]int{}
		if a.log != nil {
			// From a goroutine of its own: the logger's writes are not for mu to wait on.
			go a.log.Warn("sip: shedding load", "first", why,
				"setups_in_flight", a.inFlight(), "setup_limit", int(a.conc),
				"queue_delay", a.lastDelay.Round(time.Microsecond).String(),
				"sched_wait", a.schedWait.Round(time.Microsecond).String(),
				"setups_done_per_s", int(a.doneRate()), "quiet_before", a.quiet(now))
		}
	}
	if why != shedCut && why != shedLimited {
		a.episodeRefused[why]++
	}
	a.shedAt = now.UnixNano()
	a.strain(now)
}

// The signs of shedding that are not a call's refusal (shed).
const (
	shedCut     = "cut"
	shedLimited = "limited"
)

// endEpisode ends the episode of shedding when the switch has shed nothing for quietAfter
// at now, and logs it: how long it lasted and the calls it refused. Called under mu.
func (a *admission) endEpisode(now time.Time) {
	if a.episodeAt == 0 || now.UnixNano()-a.shedAt < int64(quietAfter) {
		return
	}
	if a.log != nil {
		go a.log.Info("sip: shedding load ended",
			"lasted", time.Duration(a.shedAt-a.episodeAt).Round(time.Millisecond).String(),
			"refused", a.episodeRefused)
	}
	a.episodeAt, a.episodeRefused = 0, nil
}

// quietAfter is how long a switch that shed load (shedAt) is not quiet: the ride-out of a
// pause is for a switch far from its knee, which goes minutes without a refusal. Past its
// knee the rate limit is lifted after a second without a refusal and the overload is back
// at once; a switch quiet a second later would let its calls wait up to setupPause, with
// the setups' limit lifted to what 2,000 setups a second need at that time.
const quietAfter = 10 * time.Second

// quietStep: an interval that admitted more new calls a second than this many times the
// setups done a second over the last second is a step of the load, not a pause, and a
// switch that did no setup in the last second (idle) cannot tell: neither is quiet, so a
// step from idle to past the knee is not let in for setupPause before its first refusal.
// A pause does not change the calls offered. Nor is a switch quiet whose setups done a
// second over the last second are more than this many times their average over quietAfter
// (doneLong): a step it carries for a while, as a switch does for a second or two at
// twice its knee before its collections and its queues catch up, is not a pause either.
// Counted quiet once it had carried 4,000 direct calls a second from idle for a second, a
// switch let the queue stand to setupPause uncut, and the admitted calls' setup p99 was 648
// ms in the third second (docs/benchmarks.md).
const quietStep = 2

// quietSpan: quiet's step test takes the calls admitted a second over the last interval
// and the ones just before it that fell short (admitted fewer calls a second than setups
// were done), as far back as this: a pause of the whole process (no more than setupPause,
// which a quiet switch rides out) holds the calls offered in the socket, and the interval
// after it admits them at once. Over the pause and that interval the calls admitted are the
// calls offered. With the disclaimer at 500 calls a second, a collection's mark slowed
// setups to 104-240 ms, and the switch, though it had shed nothing for 10 s, was not quiet
// when they were done: their limit cut at the 82 ms allowed a busy switch, and 87-226
// calls were refused in 3 runs of 18; at one such cut the last interval had admitted 870
// calls a second against the 850 the test allowed (docs/benchmarks.md). A step of the load
// comes after an interval that kept up, and shows in its first interval.
const quietSpan = setupPause + admitInterval

// admitSpan is one interval's new calls admitted and its length.
type admitSpan struct {
	n int
	d time.Duration
}

// stepRate is the new calls admitted a second over the last complete interval and the
// ones just before it that fell short, within quietSpan (quiet). Called under mu.
func (a *admission) stepRate() float64 {
	share := a.doneRate()
	n, d := a.admits[0].n, a.admits[0].d
	for _, s := range a.admits[1:] {
		if s.d == 0 || d >= quietSpan || float64(s.n) >= share*s.d.Seconds() {
			break
		}
		n, d = n+s.n, d+s.d
	}
	return float64(n) / d.Seconds()
}

// quiet tells whether the switch has shed no load (shedAt) from quietAfter before since on,
// has no rate limit in force, and carries the calls it is offered, as it has for a while: it
// did setups in the last second, no more calls came in the last interval (and those short
// before it: stepRate) than quietStep times those, and those were no more than quietStep
// times their average over quietAfter. Strain alone is not shedding: a datagram that
// waited 5-18 ms in the socket strains a switch at 500 disclaimer calls a second every
// second or two. Called under mu.
func (a *admission) quiet(since time.Time) bool {
	if a.lim.rate > 0 || a.shedAt >= since.Add(-quietAfter).UnixNano() {
		return false // past the knee this is the answer, without the sum of doneRate
	}
	done := a.doneRate()
	return done > 0 && a.lastRate <= quietStep*done && done <= quietStep*a.doneLong
}

// ridesOut tells whether an INVITE that found the queue standing for wait at now is let in
// all the same: the queue began to stand while the switch was quiet, no longer than
// setupPause ago. That is a pause of the process (a collection's assists, a slow commit),
// which the calls let in wait out, the way the setups' limit rides it out (setupPause). An
// overload sheds at once (its setups fill their limit, its queue cuts the rate), and from
// its first refusal on the queue's rule is back at admitStale targets. roll asks it too, of
// a queue that stood for a whole interval, before it cuts the rate. Called under mu.
func (a *admission) ridesOut(now time.Time, wait time.Duration) bool {
	return wait <= setupPause && a.quiet(now.Add(-wait))
}

func newAdmission(target time.Duration, maxCPS float64, m *admitMetrics) *admission {
	if target <= 0 {
		target = DefaultOverloadDelay
	}
	a := &admission{target: target, m: m, flight: map[uint64]int64{}, lines: map[uint64]int64{}, conc: setupInit, ssthresh: setupMax}
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
	a.readSched()
	delay := a.winMin
	seen := a.winN > 0
	queueStanding := seen && delay > a.target
	// A quiet switch whose goroutines wait for a core still carries its calls in time: at
	// 500 disclaimer calls a second (1.2 cores of 2) the waits' mean stood at 7.0 ms over a
	// second with the queue empty, and the cut refused 10 calls (docs/benchmarks.md).
	// Should its setups fall behind, their limit sheds and the switch is quiet no more.
	schedStanding := a.schedBusy && a.schedWait > a.target/admitSchedScale && !a.quiet(now)
	standing := queueStanding || schedStanding
	// draining: the queue stands but shrinks; the limit in force is working it off.
	draining := queueStanding && a.lim.rate > 0 && delay < a.lastDelay
	if seen {
		a.lastDelay = delay
	} else if elapsed >= 2*admitInterval {
		a.lastDelay = 0 // nothing arrived for a while: no queue
	}
	a.endEpisode(now)
	switch {
	case a.lim.rate > 0:
		a.shed(now, shedLimited)
	case seen && delay > a.target/2:
		a.strain(now)
	}
	if queueStanding && a.ridesOut(now, delay) {
		// The queue stood for the interval, no longer than setupPause, and began to while the
		// switch was quiet (as of the last interval: the one that ends may hold the calls a
		// pause held back): a pause of the process, which the rate rides out as the queue's
		// rule does. A cut refused 22 calls of such a pause in one disclaimer run of 18 at 500
		// calls a second (docs/benchmarks.md). A step of the load shows in the interval's
		// rate (quietStep) by the next one, and fills the setups' limit at once. While quiet
		// the scheduler's waits do not stand (schedStanding), and a switch not quiet now
		// was not quiet then: the standing of the queue alone decides here.
		standing = false
	}
	rate := float64(a.admitted) / elapsed.Seconds()
	copy(a.admits[1:], a.admits[:len(a.admits)-1])
	a.admits[0] = admitSpan{a.admitted, elapsed}
	a.lastRate = a.stepRate()
	switch {
	case draining:
		a.calm = 0
	case standing:
		a.calm = 0
		if now.Before(a.holdUntil) {
			break
		}
		// From what the switch admitted in the interval, or what it carried through its
		// setups in the last second if more: in a stall that refuses every call for the
		// age of the queue little is admitted, and a cut to that would leave the limit
		// growing back for seconds from next to nothing.
		base := max(rate, a.doneRate())
		if a.lim.rate > 0 {
			base = min(base, a.lim.rate)
		} else {
			a.step = max(admitMinRate, base*admitCut*admitStep)
		}
		a.lim.setRate(max(admitMinRate, base*admitCut), now)
		hold := max(admitInterval, 2*delay)
		if schedStanding {
			hold = max(hold, admitSchedIntervals*admitInterval) // the waits' mean follows a cut that late
		}
		a.holdUntil = now.Add(hold)
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
	w := min(1, elapsed.Seconds()/quietAfter.Seconds())
	a.doneLong += (float64(a.done[0])/elapsed.Seconds() - a.doneLong) * w
	copy(a.done[1:], a.done[:len(a.done)-1])
	a.done[0] = 0
	for key, at := range a.flight {
		if age := now.Sub(time.Unix(0, at)); age > setupExpire {
			delete(a.flight, key)
			a.adaptSetups(&a.setupBase, at, age, now)
		}
	}
	if a.answering > 0 {
		for key, at := range a.lines {
			if age := now.Sub(time.Unix(0, at)); at > 0 && age > setupExpire {
				a.lines[key] = -1
				a.answering--
				a.adaptSetups(&a.lineBase, at, age, now)
			}
		}
	}
	if a.ssthresh < setupMax && now.UnixNano()-a.cutAt > int64(setupCalm) {
		a.ssthresh = setupMax
	}
	if a.m != nil {
		a.m.delay.Set(a.lastDelay.Seconds())
		a.m.sched.Set(a.schedWait.Seconds())
		a.m.limit.Set(a.lim.rate)
		a.m.setupLimit.Set(a.conc)
		a.m.setups.Set(float64(a.inFlight()))
	}
}

// readSched reads the scheduler's waits of the interval that ends (schedProbe): their 90th
// percentile, and the mean of it over the last admitSchedIntervals intervals but the
// admitSchedTrim highest. Called under mu.
func (a *admission) readSched() {
	if a.sched == nil {
		return
	}
	w, cpu := a.sched()
	copy(a.schedLast[1:], a.schedLast[:len(a.schedLast)-1])
	a.schedLast[0] = w
	sorted := a.schedLast
	slices.Sort(sorted[:])
	var sum time.Duration
	for _, w := range sorted[:len(sorted)-admitSchedTrim] {
		sum += w
	}
	a.schedWait = sum / time.Duration(len(sorted)-admitSchedTrim)
	copy(a.cpuLast[1:], a.cpuLast[:len(a.cpuLast)-1])
	a.cpuLast[0] = cpu
	// The process's CPU over the last admitSchedIntervals intervals, against the wall time.
	a.schedBusy = a.cpuLast[len(a.cpuLast)-1] > 0 &&
		float64(cpu-a.cpuLast[len(a.cpuLast)-1]) >= admitSchedBusy*float64(admitSchedIntervals*admitInterval)
}

// inFlight is how many setups are in flight: admitted and not yet ringing, or answered by
// the business line and not yet taken up. Called under mu.
func (a *admission) inFlight() int { return len(a.flight) + a.answering }

// flightChanged updates the gauge of setups in flight. Called under mu.
func (a *admission) flightChanged() {
	if a.m != nil {
		a.m.setups.Set(float64(a.inFlight()))
	}
}

// setupDone takes the end of the setup of the INVITE with key at now (its handler rings the
// business line, or answered the INVITE without a call): it leaves the setups in flight, and
// the time it took adapts their limit. A key not in flight (over TCP, or done already) is
// ignored.
func (a *admission) setupDone(key uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.flight[key]
	if !ok {
		return
	}
	delete(a.flight, key)
	a.flightChanged()
	a.done[0]++
	a.adaptSetups(&a.setupBase, at, now.Sub(time.Unix(0, at)), now)
}

// ringing notes a business line rung over UDP, by the key of its INVITE's Call-ID
// (answerKey), before the INVITE goes out; lineDone must follow.
func (a *admission) ringing(key uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lines[key] = 0
}

// answered takes the arrival at the socket (rx) of a final answer to an INVITE whose Call-ID
// has key: if it is a line's that rings, its call is a setup in flight from then until
// lineDone. Other answers (a line already answered, a call not ours) are ignored.
func (a *admission) answered(key uint64, rx time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.lines[key]; ok && at == 0 {
		a.lineInFlight(key, rx)
	}
}

// bridging counts the call of the line with key as a setup in flight again from now, until
// lineDone: after its disclaimer, the switch bridges and answers the caller.
func (a *admission) bridging(key uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.lines[key]; !ok || at <= 0 {
		a.lineInFlight(key, now)
	}
}

// lineInFlight counts the call of the line with key as a setup in flight from t. Called
// under mu.
func (a *admission) lineInFlight(key uint64, t time.Time) {
	a.lines[key] = max(t.UnixNano(), 1)
	a.answering++
	a.flightChanged()
}

// lineDone ends what ringing began: the call's goroutine has the line's final answer, or
// gave up on it. An answer in flight adapts the limit on setups with the time it waited.
func (a *admission) lineDone(key uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.lines[key]
	if !ok {
		return
	}
	delete(a.lines, key)
	if at > 0 {
		a.answering--
		a.flightChanged()
		a.adaptSetups(&a.lineBase, at, now.Sub(time.Unix(0, at)), now)
	}
}

// doneRate is the setups done a second over the last second's complete intervals. Called
// under mu.
func (a *admission) doneRate() float64 {
	done := 0
	for _, n := range a.done[1:] {
		done += n
	}
	return float64(done) / (float64(len(a.done)-1) * admitInterval.Seconds())
}

// setupsNeeded is how many setups are in flight at once at the rate done in the last
// second when each takes allowed (Little's law). Called under mu.
func (a *admission) setupsNeeded(allowed time.Duration) float64 {
	return a.doneRate() * allowed.Seconds()
}

// adaptSetups adapts the limit on setups in flight to a setup admitted at (unix ns) that
// took took. Called under mu.
func (a *admission) adaptSetups(base *baseline, at int64, took time.Duration, now time.Time) {
	slack := admitStale * a.target
	if a.lim.rate > 0 {
		slack = setupSlackLimited * a.target
	}
	allowed := base.add(took, now) + slack
	quiet := a.quiet(now)
	if quiet {
		// A quiet switch rides out a pause (setupPause): a setup of that long is in time,
		// and does not cut the limit: cut by the setups that a collection's assists of 100
		// ms slowed to 88-99 ms, the limit then refused 6-121 calls of the pause
		// (docs/benchmarks.md).
		allowed = max(allowed, setupPause)
	}
	if took > allowed {
		if at < a.cutAt {
			return // admitted before the last cut, which counted it already
		}
		if quiet && at < base.inTime {
			// A setup that began after this one was done in time: the switch keeps up, and
			// what held this one (its goroutine, parked on the collector; a commit it
			// waited for) is past. With the disclaimer at 500 calls a second one setup
			// took 562 ms, 536 of them in the media anchor's allocations (parked on the
			// collector for its whole mark), while every other took under 210 ms; its cut
			// ended the quiet, and the rate then cut on the scheduler's waits and refused
			// 104 calls (docs/benchmarks.md). A switch falling behind is late in the setups
			// that follow too, and those cut.
			return
		}
		a.conc = max(setupMin, min(a.conc, a.setupsNeeded(allowed)), a.conc*max(0.5, float64(allowed)/float64(took)))
		a.ssthresh, a.cutAt = a.conc, now.UnixNano()
		a.shed(now, shedCut)
		return
	}
	base.inTime = max(base.inTime, at)
	// Little's law (above), while no rate limit is in force: a limit that grows only while
	// in use stays at setupInit at 1,000 recorded calls a second (12-20 in flight), where a
	// pause of 50 ms fills it. Past the knee (a rate limit in force) it adapts as before:
	// lifted there too, to ~180 at 4,000 direct calls offered, more calls waited in the
	// queue (docs/benchmarks.md).
	if a.lim.rate == 0 {
		a.conc = max(a.conc, min(setupMax, a.setupsNeeded(allowed)))
	}
	if float64(a.inFlight()+1) < a.conc/2 {
		return // the limit is not in use: nothing says the switch could take more
	}
	if a.conc < a.ssthresh {
		a.conc++
	} else {
		a.conc += 1 / a.conc
	}
	a.conc = min(a.conc, setupMax)
}

// allow decides on one new call at now: "" admits it, else the reason it is refused. wait
// is how long the queue the INVITE joins has stood (admitConn: the age of the oldest
// datagram in it, or the INVITE's own wait in the socket's queue if longer); 0 when
// unknown (TCP, TLS). The call is not counted among the setups in flight (allowSetup).
func (a *admission) allow(now time.Time, wait time.Duration) string {
	return a.allowSetup(now, wait, 0, false)
}

// allowSetup is allow for an INVITE with key (inviteKey; keyed), which, admitted, is a
// setup in flight until setupDone, and is refused while the setups in flight are at their
// limit.
func (a *admission) allowSetup(now time.Time, wait time.Duration, key uint64, keyed bool) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.roll(now)
	reason := ""
	switch {
	case a.cap.rate > 0 && !a.cap.take(now):
		reason = shedMaxCPS
	case wait > admitStale*a.target && !a.ridesOut(now, wait):
		reason = shedStale
		a.refused++
		a.shed(now, reason)
	case keyed && float64(a.inFlight()) >= a.conc:
		reason = shedSetups // not counted in refused: the rate limit follows the queue alone
		a.shed(now, reason)
	case a.lim.rate > 0 && !a.lim.take(now):
		reason = shedRate
		a.refused++
		a.shed(now, reason)
	default:
		a.admitted++
		if keyed {
			a.flight[key] = now.UnixNano()
			a.flightChanged()
			if float64(a.inFlight()) >= a.conc/2 {
				a.strain(now) // the limit is in use: a step of the load may be on
			}
		}
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
	sched   prometheus.Gauge
	// The limit on setups in flight, and the setups in flight.
	setupLimit, setups prometheus.Gauge
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
		sched: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_sip_sched_delay_seconds",
			Help: "How long the switch's goroutines waited for a core when they could run: the 90th percentile of each 100 ms interval, averaged over the last second. Admission control refuses new calls while it stands above a third of sip.overload_delay.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_sip_queue_dropped_total",
			Help: "SIP datagrams over UDP dropped because the switch's queue of received datagrams was full (new calls are refused with 503 well before).",
		}),
		setupLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_sip_setup_limit",
			Help: "How many new calls may be in setup at once (admitted, the business line not yet rung): the limit admission control adapts to the switch's own setup time.",
		}),
		setups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_sip_setups_in_flight",
			Help: "New calls admitted whose business line is not yet rung.",
		}),
	}
	m.setupLimit.Set(setupInit)
	for _, r := range []string{shedStale, shedRate, shedSetups, shedMaxCPS} {
		m.shed.WithLabelValues(r)
	}
	return m
}

func (m *admitMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.shed, m.delay, m.limit, m.dropped, m.sched, m.setupLimit, m.setups}
}

// setupAdmission makes the switch's admission control from its config and registers its
// metrics.
func (s *Switch) setupAdmission() error {
	m := newAdmitMetrics()
	s.adm = newAdmission(s.cfg.OverloadDelay, s.cfg.MaxCPS, m)
	s.adm.log = s.log
	if p := newSchedProbe(); p != nil {
		s.adm.sched = func() (time.Duration, time.Duration) {
			w, _ := p.read(0.9)
			return w, cputime.Process()
		}
	}
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

// setup is an admitted INVITE's setup in flight (admission.allowSetup), until setupDone;
// owned by the INVITE's handler.
type setup struct {
	key   uint64
	keyed bool // false: no key, nothing in flight
}

// shed refuses a new call with 503 and Retry-After when the admission control does not
// take it, and tells whether it did: for the INVITEs that admitConn did not decide on (over
// TCP and TLS, or unreadable to its scan). The 503 goes through the INVITE's server
// transaction, which answers the INVITE's retransmissions with it and absorbs the ACK. An
// INVITE taken is a setup in flight (su) until setupDone.
func (s *Switch) shed(req *sipmsg.Request, tx sipmsg.ServerTransaction) (su *setup, refused bool) {
	key, keyed := requestInviteKey(req)
	su = &setup{key: key, keyed: keyed}
	if keyed && req.Transport() == "UDP" {
		if at, ok := s.inv.admittedAt(key); ok {
			now := s.now()
			s.adm.observeHandler(now.Sub(at), now)
			return su, false // admitConn took it
		}
	}
	reason := s.adm.allowSetup(s.now(), 0, key, keyed)
	if reason == "" {
		return su, false
	}
	s.respond(req, tx, 503, "Service Unavailable", sipmsg.NewHeader("Retry-After", shedRetryAfter))
	return nil, true
}

// setupDone tells the admission control that the setup su is over: its handler is about to
// ring the business line, or answered the INVITE without a call. Safe to call more than
// once: the later calls do nothing.
func (s *Switch) setupDone(su *setup) {
	if su.keyed {
		su.keyed = false
		s.adm.setupDone(su.key, s.now())
	}
}

// requestInviteKey is the key of a parsed INVITE (inviteKey), as admitConn made it from the
// raw message; false without a branch or a Call-ID.
func requestInviteKey(req *sipmsg.Request) (uint64, bool) {
	via, id := req.Via(), req.CallID()
	if via == nil || id == nil {
		return 0, false
	}
	branch, ok := via.Params.Get("branch")
	if !ok {
		return 0, false
	}
	return inviteKey([]byte(branch), []byte(id.Value())), true
}
