package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"

	"github.com/trackline/trackline/internal/cputime"
)

const (
	metricMallocs = "go_memstats_mallocs_total"
	metricRelayed = "trackline_rtp_relayed_packets_total"
	// metricKernelCPU is the time the switch's kernel path ran (media.kernel), on whichever
	// core received the packets: CPU the switch causes that its process is not charged for.
	metricKernelCPU = "trackline_media_kernel_cpu_seconds_total"
	// lineWait bounds the wait for the line's side of the answered calls, and for its
	// handlers to end after the hang-up.
	lineWait = 5 * time.Second
	// abortWait bounds the wait for the calls' goroutines once the run is aborted.
	abortWait = 3 * time.Second
)

// gen is one run: the media engine, the two SIP peers and the calls.
type gen struct {
	cfg          config
	log          *slog.Logger
	ctx          context.Context // the run's; ends at the deadline or on a signal
	eng          *engine
	trunk, line  *peer
	trunkDialogs *sipgo.DialogClientCache
	lineDialogs  *sipgo.DialogServerCache
	calls        []callState

	rampWG  sync.WaitGroup // one per call placed, done when it is up or has failed
	callsWG sync.WaitGroup // one per call placed, done when its goroutine returns
	placed  int
	ramped  bool // every placed call is up or has failed
	ended   bool // every call goroutine has returned: their fields are safe to read

	lineUp, lineFailed, lineRejected, lineLive atomic.Int64
}

func newGen(ctx context.Context, cfg config, log *slog.Logger) (*gen, error) {
	g := &gen{cfg: cfg, log: log, ctx: ctx, calls: make([]callState, cfg.calls)}
	for i := range g.calls {
		g.calls[i].hangup = make(chan struct{})
	}
	var err error
	if g.eng, err = newEngine(cfg.calls, cfg.loops, cfg.tick, cfg.grace); err != nil {
		return nil, err
	}
	g.eng.rtPrio = cfg.rtPrio
	if cfg.relay.IsValid() {
		return g, nil
	}
	if g.trunk, err = newPeer(netip.AddrPortFrom(cfg.bind, 0), log); err != nil {
		g.close()
		return nil, fmt.Errorf("trunk: %w", err)
	}
	if g.line, err = newPeer(cfg.listen, log); err != nil {
		g.close()
		return nil, fmt.Errorf("line: %w", err)
	}
	g.trunkDialogs = sipgo.NewDialogClientCache(g.trunk.cli, g.trunk.contact)
	g.lineDialogs = sipgo.NewDialogServerCache(g.line.cli, g.line.contact)
	g.handlers()
	g.trunk.serve()
	g.line.serve()
	return g, nil
}

// close releases everything; the engine must have stopped.
func (g *gen) close() {
	if g.trunk != nil {
		g.trunk.close()
	}
	if g.line != nil {
		g.line.close()
	}
	if g.eng != nil {
		g.eng.close()
	}
}

// run is the whole run: ramp, settle, window, stragglers, hang-up; it fills rep.
func (g *gen) run(ctx context.Context, rep *report) error {
	g.eng.start()
	ramp, hangup := g.ramp, g.hangup
	if g.cfg.relay.IsValid() {
		ramp, hangup = g.rampDirect, g.hangupDirect
	}
	err := ramp(ctx)
	var a, b sample
	if err == nil {
		a, b, err = g.measure(ctx)
	}
	g.eng.stop()
	hangup(ctx)
	g.fill(rep, a, b)
	return err
}

// ramp places the calls at the setup rate and waits until each is up or has failed.
func (g *gen) ramp(ctx context.Context) error {
	start := time.Now()
	for i := range g.cfg.calls {
		at := start.Add(time.Duration(float64(i) / g.cfg.setupRate * float64(time.Second)))
		if sleepCtx(ctx, time.Until(at)) != nil {
			break
		}
		g.rampWG.Add(1)
		g.callsWG.Add(1)
		g.placed++
		go g.placeCall(ctx, i, g.cfg.numbers[i%len(g.cfg.numbers)])
	}
	if err := waitCtx(ctx, g.rampWG.Wait); err != nil {
		return fmt.Errorf("ramp (%d of %d calls placed): %w", g.placed, g.cfg.calls, err)
	}
	g.ramped = true
	up := g.upCount()
	// The line is up before the switch answers the trunk; allow for stragglers.
	for t := time.Now(); g.lineUp.Load() < int64(up) && time.Since(t) < lineWait; {
		if sleepCtx(ctx, 10*time.Millisecond) != nil {
			return fmt.Errorf("ramp: %w", ctx.Err())
		}
	}
	g.log.Info("calls up", "trunk", up, "line", g.lineUp.Load(), "calls", g.cfg.calls, "ramp", time.Since(start).Round(time.Millisecond))
	if up == 0 {
		return errors.New("no call was answered")
	}
	return nil
}

// rampDirect is ramp without SIP, for the bare relay: each call's two sockets send to their
// ports of the relay (-relay) at once.
func (g *gen) rampDirect(ctx context.Context) error {
	first := g.cfg.relay
	for i := range g.cfg.calls {
		if ctx.Err() != nil {
			return fmt.Errorf("ramp (%d of %d calls placed): %w", g.placed, g.cfg.calls, ctx.Err())
		}
		c := &g.calls[i]
		g.placed++
		trunk, _, err := g.eng.openSocket(g.cfg.bind, i, lineToTrunk)
		if err != nil {
			c.fail = "socket"
			continue
		}
		line, _, err := g.eng.openSocket(g.cfg.bind, i, trunkToLine)
		if err != nil {
			c.fail = "socket"
			continue
		}
		port := first.Port() + uint16(4*i)
		g.eng.activate(i, trunkToLine, trunk, netip.AddrPortFrom(first.Addr(), port))
		g.eng.activate(i, lineToTrunk, line, netip.AddrPortFrom(first.Addr(), port+2))
		c.answered = time.Now()
		c.up.Store(true)
		g.lineUp.Add(1)
	}
	g.ramped = true
	if g.upCount() == 0 {
		return errors.New("no call could open its sockets")
	}
	return nil
}

// hangupDirect ends rampDirect's calls.
func (g *gen) hangupDirect(context.Context) {
	now := time.Now()
	for i := range g.placed {
		if g.calls[i].up.Load() {
			g.eng.deactivate(i, trunkToLine)
			g.eng.deactivate(i, lineToTrunk)
			g.calls[i].ended = now
		}
	}
	g.ended = true
}

func (g *gen) upCount() int {
	n := 0
	for i := range g.placed {
		if g.calls[i].up.Load() {
			n++
		}
	}
	return n
}

// sample is the state of the generator and the switch at one end of the window.
type sample struct {
	at      time.Time
	self    time.Duration
	procs   map[int]procTime // every process
	stolen  int64            // stolenTicks
	sw      time.Duration
	swErr   error
	metrics map[string]float64
	mErr    error
	// scrapeMallocs is what one /metrics scrape allocates in the switch, measured with a
	// second scrape right after the first (start of the window only): the window's mallocs
	// contain about one scrape, the generator's own, which the report takes off.
	scrapeMallocs float64
}

func (g *gen) sample(ctx context.Context) sample {
	s := sample{at: time.Now(), self: cputime.Process()}
	s.procs = allProcs()
	s.stolen = stolenTicks()
	if g.cfg.switchPID > 0 {
		s.sw, s.swErr = procCPU(g.cfg.switchPID)
	}
	if g.cfg.metricsURL != "" {
		s.metrics, s.mErr = scrapeMetrics(ctx, g.cfg.metricsURL, metricMallocs, metricRelayed, metricKernelCPU)
	}
	return s
}

// startSample is sample at the window's start, plus what one scrape of the switch's
// /metrics allocates there: the second of two scrapes back to back becomes the reading.
func (g *gen) startSample(ctx context.Context) sample {
	s := g.sample(ctx)
	if g.cfg.metricsURL == "" || s.mErr != nil {
		return s
	}
	m, err := scrapeMetrics(ctx, g.cfg.metricsURL, metricMallocs, metricRelayed, metricKernelCPU)
	if err != nil {
		s.mErr = err
		return s
	}
	if m0, ok := s.metrics[metricMallocs]; ok {
		if m1, ok := m[metricMallocs]; ok && m1 >= m0 {
			s.scrapeMallocs = m1 - m0
		}
	}
	s.metrics = m
	return s
}

// measure publishes the window, samples at both its ends and waits for stragglers.
func (g *gen) measure(ctx context.Context) (sample, sample, error) {
	s0 := g.eng.slotNow() + 1 + uint32(g.cfg.settle/slotDur)
	s1 := s0 + uint32(g.cfg.duration/slotDur)
	g.eng.win.Store(newWindow(s0, s1, len(g.eng.streams)))
	g.log.Info("settling", "for", g.cfg.settle)
	if err := g.sleepUntilSlot(ctx, s0); err != nil {
		return sample{}, sample{}, err
	}
	a := g.startSample(ctx)
	g.log.Info("window open", "for", g.cfg.duration)
	if err := g.sleepUntilSlot(ctx, s1); err != nil {
		return a, sample{}, err
	}
	// The end sample follows the window's last packet: a sender behind its time would
	// leave packets out of the switch's counts that are in the generator's.
	if err := g.eng.waitSent(ctx); err != nil {
		return a, sample{}, fmt.Errorf("window: %w", err)
	}
	b := g.sample(ctx)
	g.log.Info("window closed", "grace", g.cfg.grace)
	if err := waitCtx(ctx, g.eng.wait); err != nil {
		return a, b, fmt.Errorf("stragglers: %w", err)
	}
	return a, b, nil
}

func (g *gen) sleepUntilSlot(ctx context.Context, slot uint32) error {
	if err := sleepCtx(ctx, time.Duration(g.eng.slotTime(slot)-g.eng.clk.now())); err != nil {
		return fmt.Errorf("window: %w", err)
	}
	return nil
}

// hangup makes the trunk hang up every call that is up, at the setup rate, and waits for
// the calls to end on both sides.
func (g *gen) hangup(ctx context.Context) {
	if g.ramped && ctx.Err() == nil {
		g.log.Info("hanging up")
		start, n := time.Now(), 0
		for i := range g.placed {
			if !g.calls[i].up.Load() {
				continue
			}
			at := start.Add(time.Duration(float64(n) / g.cfg.setupRate * float64(time.Second)))
			if sleepCtx(ctx, time.Until(at)) != nil {
				break
			}
			close(g.calls[i].hangup)
			n++
		}
	}
	if waitCtx(ctx, g.callsWG.Wait) == nil {
		g.ended = true
	} else if waitTimeout(g.callsWG.Wait, abortWait) {
		g.ended = true
	}
	for t := time.Now(); g.lineLive.Load() > 0 && time.Since(t) < lineWait; {
		time.Sleep(10 * time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitCtx waits for wait to return or ctx to end. The goroutine it starts returns when wait
// does, which the callers guarantee: every goroutine they wait for is bounded by ctx or
// by the engine's stop.
func waitCtx(ctx context.Context, wait func()) error {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitTimeout waits for wait to return, at most d; whether it did.
func waitTimeout(wait func(), d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return waitCtx(ctx, wait) == nil
}

// fill writes the run's figures into rep; the engine must have stopped.
func (g *gen) fill(rep *report, a, b sample) {
	rep.Calls = g.cfg.calls
	rep.SetupRate = g.cfg.setupRate
	rep.CallsPlaced = g.placed
	rep.LineUp = int(g.lineUp.Load())
	rep.LineRejected = int(g.lineRejected.Load())
	rep.LineFailed = int(g.lineFailed.Load())
	rep.Failures = map[string]int{}
	if g.ended {
		var setups []time.Duration
		for i := range g.placed {
			c := &g.calls[i]
			if !c.up.Load() {
				rep.CallsFailed++
				rep.Failures[c.fail]++
				continue
			}
			rep.CallsUp++
			setups = append(setups, c.setup)
			if c.dropped {
				rep.CallsDropped++
			}
			if c.byeFail {
				rep.ByeFailed++
			}
			if !c.ended.IsZero() {
				rep.CallSeconds += c.ended.Sub(c.answered).Seconds()
			}
		}
		rep.SetupMs = setupQuantiles(setups)
	} else {
		rep.CallsUp = g.upCount()
		rep.Failures["unfinished"] = g.placed - rep.CallsUp
	}
	if n := g.cfg.calls - g.placed; n > 0 {
		rep.CallsFailed += n
		rep.Failures["not_placed"] = n
	}

	rx := g.eng.total()
	sent := rx.sent
	rep.SendErrors = rx.sendErrs
	rep.SenderLateSteps = rx.lateSteps
	rep.SenderLateMaxUs = float64(rx.lateMax) / 1000
	if g.cfg.rtPrio > 0 {
		ok := rx.rtErr == nil
		rep.GeneratorRealtime = &ok
		if !ok {
			rep.GeneratorRealtimeErr = rx.rtErr.Error()
		}
	}
	rep.Directions = map[string]dirReport{}
	for d := range 2 {
		rep.Directions[direction(d).String()] = dirReport{
			Sent: sent[d], Received: rx.got[d], Duplicates: rx.dup[d], LossPct: lossPct(sent[d], rx.got[d]),
		}
		rep.PacketsSent += sent[d]
		rep.PacketsReceived += rx.got[d]
		rep.PacketsDuplicate += rx.dup[d]
	}
	rep.LossPct = lossReport{
		TrunkToLine: lossPct(sent[trunkToLine], rx.got[trunkToLine]),
		LineToTrunk: lossPct(sent[lineToTrunk], rx.got[lineToTrunk]),
		Total:       lossPct(rep.PacketsSent, rep.PacketsReceived),
	}
	if w := g.eng.win.Load(); w != nil {
		rep.DurationS = (time.Duration(w.s1-w.s0) * slotDur).Seconds()
		for i := range g.eng.streams {
			s := &g.eng.streams[i]
			if s.winSent == 0 {
				continue
			}
			if got := w.received(i); got < int(s.winSent) {
				rep.StreamsWithLoss++
				rep.WorstStreamLossPct = max(rep.WorstStreamLossPct, lossPct(uint64(s.winSent), uint64(got)))
			}
		}
	}
	rep.LatencyUs = newLatencyReport(&rx.latency)
	rep.ReadDelayUs = newLatencyReport(&rx.readDelay)
	rep.NoKernelTimestamp = rx.noStamp
	rep.ForeignPackets = rx.foreign
	rep.MisroutedPackets = rx.misrouted
	rep.EarlyPackets = rx.early
	rep.LatePackets = rx.late
	rep.MalformedPackets = rx.malformed

	if b.at.IsZero() {
		return
	}
	win := b.at.Sub(a.at).Seconds()
	rep.WindowStartUnixMs = a.at.UnixMilli()
	rep.WindowEndUnixMs = b.at.UnixMilli()
	rep.GeneratorWindowCPUS = (b.self - a.self).Seconds()
	rep.GeneratorCPUPctPerCall = pctPerCall(rep.GeneratorWindowCPUS, win, rep.CallsUp)
	rep.OtherWindowCPUS = otherCPU(a.procs, b.procs, os.Getpid(), g.cfg.switchPID).Seconds()
	rep.StolenWindowCPUS = float64(b.stolen-a.stolen) / userHZ
	if g.cfg.switchPID == 0 && g.cfg.metricsURL == "" {
		return
	}
	sw := &switchReport{PID: g.cfg.switchPID}
	rep.Switch = sw
	if g.cfg.switchPID > 0 {
		if err := errors.Join(a.swErr, b.swErr); err != nil {
			sw.Errors = append(sw.Errors, err.Error())
		} else {
			cpu := (b.sw - a.sw).Seconds()
			sw.ProcessCPUS = &cpu
		}
	}
	defer func() { // the switch's CPU: its process's and its kernel path's
		if sw.ProcessCPUS == nil {
			return
		}
		cpu := *sw.ProcessCPUS
		if sw.KernelCPUS != nil {
			cpu += *sw.KernelCPUS
		}
		pct := pctPerCall(cpu, win, rep.CallsUp)
		sw.CPUS, sw.CPUPctPerCall = &cpu, &pct
	}()
	if g.cfg.metricsURL != "" {
		if err := errors.Join(a.mErr, b.mErr); err != nil {
			sw.Errors = append(sw.Errors, err.Error())
			return
		}
		if k0, ok := a.metrics[metricKernelCPU]; ok {
			if k1, ok := b.metrics[metricKernelCPU]; ok {
				d := k1 - k0
				sw.KernelCPUS = &d
			}
		}
		if m0, ok := a.metrics[metricMallocs]; ok {
			if m1, ok := b.metrics[metricMallocs]; ok {
				d := m1 - m0
				sw.Mallocs = &d
				scrape := a.scrapeMallocs
				sw.ScrapeMallocs = &scrape
			}
		}
		if r0, ok := a.metrics[metricRelayed]; ok {
			if r1, ok := b.metrics[metricRelayed]; ok {
				d := r1 - r0
				sw.RelayedPackets = &d
				if sw.Mallocs != nil && d > 0 {
					per := max(*sw.Mallocs-*sw.ScrapeMallocs, 0) / d
					sw.AllocsPerPacket = &per
				}
			}
		}
	}
}

func lossPct(sent, got uint64) float64 {
	if sent == 0 || got >= sent {
		return 0
	}
	return 100 * float64(sent-got) / float64(sent)
}

func pctPerCall(cpuS, windowS float64, calls int) float64 {
	if windowS <= 0 || calls == 0 {
		return 0
	}
	return 100 * cpuS / windowS / float64(calls)
}

func setupQuantiles(d []time.Duration) quantiles {
	if len(d) == 0 {
		return quantiles{}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := min(int(q*float64(len(d))+0.999999)-1, len(d)-1)
		return float64(d[max(i, 0)].Microseconds()) / 1000
	}
	return quantiles{P50: at(0.5), P99: at(0.99), Max: float64(d[len(d)-1].Microseconds()) / 1000}
}
