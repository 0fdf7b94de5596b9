// Package media anchors the RTP of calls that need it: calls that are recorded, or that
// play a disclaimer or whisper prompt. It rewrites both legs' SDP onto its own ports,
// relays packets between the legs with strict-source latching, transcodes between the
// G.711 laws, keeps RFC 3550 statistics, plays prompts and hands audio to the recorder.
//
// The packet path runs in a few loops on locked OS threads (Config.Loops, one per core by
// default, the later ones taking calls only when the first are busy), over raw non-blocking
// sockets, and allocates nothing per packet. Each loop waits in a raw system call and keeps
// its P, so the process needs GOMAXPROCS raised by Config.Loops for the rest of it to keep
// the Ps it had: a process setting, which the binary makes (cmd/trackline), not this
// package. A latched leg's socket is connected to its source; recordings get their audio in
// one hand-over per loop every 100 ms.
//
// Where the process may load eBPF (Config.Kernel, kernel.go), bridged calls whose legs have
// latched are forwarded in the kernel instead, and the loops account for each packet from
// a copy the program hands them; everything else stays on the path above.
package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/internal/fsutil"
	"github.com/trackline/trackline/media/uring"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// DefaultBatchWait is Config.BatchWait's default: see docs/benchmarks.md for what it saves.
const DefaultBatchWait = 2 * time.Millisecond

// maxAutoLoops bounds the loops Config.Loops 0 starts: one per core up to this many. A loop
// that new calls do not spill over to sleeps (Engine.pick).
const maxAutoLoops = 4

// DefaultLoops is what Config.Loops 0 means in a process with cores Ps: one loop per core,
// at most maxAutoLoops.
func DefaultLoops(cores int) int { return min(cores, maxAutoLoops) }

// DefaultRealtimePriority is Config.RealtimePriority's default: low among real-time
// priorities, below the kernel's own threads that use them (e.g. 50 for threaded IRQs).
const DefaultRealtimePriority = 10

// Config configures the anchor.
type Config struct {
	IP       netip.Addr // the IPv4 address the RTP sockets bind to
	Announce netip.Addr // the address written in SDP (default: IP)
	// PortMin and PortMax bound the RTP ports; each leg takes an even port for RTP and the
	// odd one above it for RTCP.
	PortMin, PortMax int
	// RTPTimeout ends a bridged call when a leg sends no RTP for this long (not on hold);
	// 0 means 60 s, negative disables it.
	RTPTimeout time.Duration
	// Probation is how many consecutive packets (one SSRC, consecutive sequence numbers) a
	// source other than the SDP address must send before a leg latches onto it, or moves its
	// latch to it (latch.go); 0 means DefaultProbation.
	Probation int
	// Loops is the packet loops, each on its own thread; a new call goes to the first loop
	// under spillLoad (Engine.pick). 0 means DefaultLoops(GOMAXPROCS). Each loop keeps a P
	// while it waits: raise GOMAXPROCS by Loops before New.
	Loops int
	// BatchWait is the least time between two reads of a loop's ready sockets while packets
	// trickle in: after a small batch on epoll, and after every batch on io_uring, the loop
	// sleeps out the rest of it, so that one wake-up serves the packets of many calls. It
	// adds at most that much to a packet's time in the relay, and nothing under load, when a
	// batch takes that long. 0 means DefaultBatchWait; negative turns it off (a wake-up per
	// arrival).
	BatchWait time.Duration
	// RealtimePriority is the SCHED_FIFO priority (1-99) of the loops' threads, so that a
	// loop runs the moment packets arrive however busy the cores are. When the process may
	// not use it (RLIMIT_RTPRIO, CAP_SYS_NICE) the loops run without, and say so in the log.
	// 0 means DefaultRealtimePriority; negative turns it off.
	RealtimePriority int
	// IO is how the loops move packets: IOAuto (io_uring where the kernel allows it, else
	// epoll), IOEpoll or IOUring (an error where io_uring is not available).
	IO string
	// Kernel is whether bridged calls' packets are forwarded in the kernel (eBPF at the
	// interface's ingress, see kernel.go): KernelAuto (the default), KernelOn or KernelOff.
	Kernel string
	// DefaultDisclaimer is the WAV played for the prompt name "default".
	DefaultDisclaimer []byte
}

func (c *Config) defaults() error {
	if !c.IP.IsValid() {
		c.IP = netip.MustParseAddr("127.0.0.1")
	}
	if !c.IP.Is4() {
		return fmt.Errorf("media: %s: the RTP address must be IPv4", c.IP)
	}
	if !c.Announce.IsValid() {
		c.Announce = c.IP
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 10000, 31999
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMax-c.PortMin < 3 {
		return fmt.Errorf("media: RTP port range %d-%d: want at least 4 ports within 1024-65535", c.PortMin, c.PortMax)
	}
	if c.RTPTimeout == 0 {
		c.RTPTimeout = 60 * time.Second
	}
	if c.Probation <= 0 {
		c.Probation = DefaultProbation
	}
	if c.Loops <= 0 {
		c.Loops = DefaultLoops(runtime.GOMAXPROCS(0))
	}
	if c.IO == "" {
		c.IO = IOAuto
	}
	if c.BatchWait == 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.RealtimePriority == 0 {
		c.RealtimePriority = DefaultRealtimePriority
	}
	if c.Kernel == "" {
		c.Kernel = KernelAuto
	}
	switch c.Kernel {
	case KernelAuto, KernelOn, KernelOff:
	default:
		return fmt.Errorf("media: kernel path %q: want %q, %q or %q", c.Kernel, KernelAuto, KernelOn, KernelOff)
	}
	switch c.IO {
	case IOAuto, IOEpoll, IOUring:
	default:
		return fmt.Errorf("media: I/O %q: want %q, %q or %q", c.IO, IOAuto, IOEpoll, IOUring)
	}
	if c.RealtimePriority > 99 {
		return fmt.Errorf("media: real-time priority %d: want 1-99, or negative for none", c.RealtimePriority)
	}
	return nil
}

// The loops' I/O (Config.IO).
const (
	IOAuto  = "auto"
	IOEpoll = "epoll"
	IOUring = "io_uring"
)

// Customers looks a customer up (pool.Pool.Customer).
type Customers func(id string) (store.Customer, error)

// Engine is the media anchor: it implements callseam.Media.
type Engine struct {
	cfg       Config
	announce  netip.Addr
	customers Customers
	rec       *recordings.Recorder
	log       *slog.Logger
	reg       prometheus.Registerer // nil: the metrics are kept but not registered
	m         metrics

	ports *ports
	slots []atomic.Pointer[leg] // by port pair
	loops []*loop
	// useRing: the loops run on io_uring (Config.IO).
	useRing bool
	// kernel forwards bridged calls' packets in the kernel; nil without (Config.Kernel).
	kernel *kernelPath

	promptMu sync.Mutex
	prompts  map[string]*Prompt
}

var _ callseam.Media = (*Engine)(nil)

// Option configures New.
type Option func(*Engine)

// WithRegisterer registers the engine's metrics on r; without it (or with nil) they are
// kept but not registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(e *Engine) { e.reg = r } }

// WithLogger sets the logger (default, and with nil: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// New starts the anchor's loops. rec may be nil when nothing is recorded.
func New(cfg Config, customers Customers, rec *recordings.Recorder, opts ...Option) (*Engine, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg: cfg, announce: cfg.Announce, customers: customers, rec: rec,
		ports: newPorts(cfg.PortMin, cfg.PortMax), prompts: map[string]*Prompt{},
	}
	for _, o := range opts {
		o(e)
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	log, reg := e.log, e.reg
	checkDescriptors(log, cfg.PortMin, cfg.PortMax)
	e.slots = make([]atomic.Pointer[leg], e.ports.pairs())
	e.m = newMetrics(reg, e.ports)
	if cfg.IO != IOEpoll {
		switch err := uring.Available(); {
		case err == nil:
			e.useRing = true
		case cfg.IO == IOUring:
			return nil, fmt.Errorf("media: io_uring: %w", err)
		default:
			log.Info("packet loops use epoll: io_uring is not available", "err", err)
		}
	}
	if cfg.Kernel != KernelOff {
		k, err := newKernelPath(cfg.IP, 2*e.ports.pairs())
		switch {
		case err == nil:
			e.kernel = k
			k.onRecord = e.kernelRecord
			e.m.kernel.Set(1)
			log.Info("bridged calls are forwarded in the kernel", "interfaces", len(k.links))
		case cfg.Kernel == KernelOn:
			return nil, fmt.Errorf("media: kernel path: %w", err)
		default:
			log.Info("bridged calls are relayed in user space: the kernel path is not available", "err", err)
		}
	}
	if reg != nil {
		k := e.kernel // the series exists without a kernel path too: 0
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "trackline_media_kernel_cpu_seconds_total",
			Help: "CPU time the kernel path's program has run, on whichever core received the packets (0 without the kernel path or without CAP_SYS_ADMIN for the kernel's statistics).",
		}, func() float64 { return k.cpuSeconds() }))
	}
	for range cfg.Loops {
		l, err := newLoop(e)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("media: %w", err)
		}
		l.drains = e.kernel != nil && len(e.loops) == 0
		e.loops = append(e.loops, l)
		go l.run()
	}
	return e, nil
}

// pick chooses the loop for a new session (spill).
func (e *Engine) pick() *loop {
	return e.loops[spill(len(e.loops), func(i int) float64 { return e.loops[i].load() })]
}

// spill is pick's rule over n loops' loads: the first loop under spillLoad, else the least
// loaded one.
func spill(n int, load func(i int) float64) int {
	best, least := 0, math.Inf(1)
	for i := range n {
		ld := load(i)
		if ld < spillLoad {
			return i
		}
		if ld < least {
			best, least = i, ld
		}
	}
	return best
}

// Close stops the loops; sessions still open lose their sockets.
func (e *Engine) Close() {
	for _, l := range e.loops {
		l.close()
	}
	e.loops = nil
	if e.kernel != nil {
		e.kernel.close() // e.kernel stays: sessions still open read it as they close
	}
}

// plan is what the anchor does for one call.
type plan struct {
	record     bool
	disclaimer *Prompt
	whisper    *Prompt
}

// planFor applies the customer's recording rules and prompts to a call.
func (e *Engine) planFor(info *callseam.CallInfo, c store.Customer) (plan, error) {
	var p plan
	pr := c.Prompts
	if np, ok := c.NumberPrompts[info.Dialled]; ok {
		if np.Disclaimer != "" {
			pr.Disclaimer = np.Disclaimer
		}
		if np.Whisper != "" {
			pr.Whisper = np.Whisper
		}
	}
	var err error
	if p.disclaimer, err = e.prompt(pr.Disclaimer); err != nil {
		return p, err
	}
	if p.whisper, err = e.prompt(pr.Whisper); err != nil {
		return p, err
	}
	rp := c.Recording
	if rp.Enabled && (len(rp.Numbers) == 0 && len(rp.Channels) == 0 || contains(rp.Numbers, info.Dialled) || containsFold(rp.Channels, info.Channel)) {
		p.record = true
		if rp.ProfessionalSecrecy && !rp.ConsentConfirmed {
			p.record = false
			info.NotRecorded = "recording consent not confirmed"
			e.m.refused.WithLabelValues("consent").Inc()
			e.log.Warn("call not recorded: the customer is bound by professional secrecy and has not confirmed recording consent",
				"call_id", info.CallID, "customer", info.CustomerID)
		} else if e.rec == nil {
			p.record = false
			info.NotRecorded = "no recordings directory"
			e.m.refused.WithLabelValues("no_recorder").Inc()
		}
	}
	return p, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// prompt loads (once) the prompt named by a customer: "" none, "default", or a WAV path.
func (e *Engine) prompt(name string) (*Prompt, error) {
	if name == "" {
		return nil, nil
	}
	e.promptMu.Lock()
	defer e.promptMu.Unlock()
	if p, ok := e.prompts[name]; ok {
		return p, nil
	}
	var pcm []int16
	var err error
	if name == "default" {
		if len(e.cfg.DefaultDisclaimer) == 0 {
			return nil, errors.New("media: no default disclaimer configured")
		}
		pcm, err = recordings.ParsePrompt(e.cfg.DefaultDisclaimer)
	} else {
		pcm, err = recordings.LoadPrompt(name)
	}
	if err != nil {
		return nil, err
	}
	p := NewPrompt(name, pcm)
	e.prompts[name] = p
	return p, nil
}

// Anchor implements callseam.Media. It returns a nil session when the call needs no anchor.
func (e *Engine) Anchor(ctx context.Context, info *callseam.CallInfo, offer []byte) (callseam.MediaSession, error) {
	cust, err := e.customers(info.CustomerID)
	if err != nil {
		return nil, nil
	}
	p, err := e.planFor(info, cust)
	if err != nil {
		// A broken prompt must not cost the call: it goes on without prompts.
		e.log.Error("prompt", "call_id", info.CallID, "err", err)
		p.disclaimer, p.whisper = nil, nil
	}
	// An SRTP offer is always anchored: the business line and the recording get plain RTP.
	if !p.record && p.disclaimer == nil && p.whisper == nil && !info.Anchor && !offersSRTP(offer) {
		return nil, nil
	}
	if len(offer) == 0 {
		// A late offer (INVITE without SDP) leaves no way to play early media: the call
		// goes on with direct media, unrecorded.
		if p.record {
			info.NotRecorded = "INVITE without SDP (late offer)"
		}
		e.log.Info("late offer: media not anchored", "call_id", info.CallID)
		return nil, nil
	}
	d, err := parseDesc(offer)
	if err != nil {
		return nil, err
	}
	var sa *srtpLeg
	if d.savp { // the first line of the suite the anchor knows (RFC 4568 §7.1.2)
		if sa, err = newSRTPLeg(d.crypto[0]); err != nil {
			return nil, err
		}
	}
	s := &Session{e: e, info: *info, plan: p, ready: make(chan struct{}), done: make(chan struct{})}
	if err := e.allocate(s); err != nil {
		return nil, err
	}
	now := monoNow()
	a, b := &s.legs[caller], &s.legs[callee]
	a.law, a.te, a.held, a.ptime = d.laws[0], d.te, d.held(), d.ptime
	a.srtp = sa
	a.setRemote(d.addr, info.CallerSignal, info.CallerNAT)
	b.law, b.ptime = a.law, a.ptime // until the business line answers
	laws := []g711.Law{a.law, g711.ALaw}
	if a.law == g711.ALaw {
		laws[1] = g711.ULaw
	}
	// Both SDPs ask for the caller's ptime: the relay passes packets as they come, so the
	// line sends what the caller asked for.
	s.callerSDP = a.orig.build(sdpOut{ip: e.announce, port: a.port, laws: []g711.Law{a.law}, te: d.te, ptime: d.ptime, dir: answerDir(d.dir), index: d.index, streams: d.streams,
		crypto: a.localKey()})
	s.offer = b.orig.build(sdpOut{ip: e.announce, port: b.port, laws: laws, te: d.te, ptime: d.ptime, dir: d.dir})

	s.lp = e.pick()
	s.mu.Lock()
	s.whispering = p.whisper != nil
	if p.disclaimer != nil {
		s.disclaiming = true
		a.play(p.disclaimer, now, s.disclaimerEnded)
	}
	s.checkReady()
	s.mu.Unlock()

	for i := range s.legs {
		e.slots[s.legs[i].pair].Store(&s.legs[i])
	}
	s.lp.add(s)
	e.m.active.Inc()
	return s, nil
}

// disclaimerEnded runs under s.mu after the disclaimer's last frame: the caller hears the
// ringback tone until the bridge, the business line's wait on silence ends.
func (s *Session) disclaimerEnded() {
	s.disclaiming = false
	s.legs[caller].follow(ringback, s.ringbackEnded)
	if s.answered && !s.whispering {
		s.legs[callee].stopGen()
	}
	s.checkReady()
}

func (s *Session) ringbackEnded() {
	s.legs[caller].follow(ringback, s.ringbackEnded)
}

// allocate opens the two legs' socket pairs.
func (e *Engine) allocate(s *Session) error {
	for i := range s.legs {
		lg := &s.legs[i]
		*lg = leg{s: s, side: i, fd: -1, rtcp: -1, stray: -1, out: newOutStream(), orig: origin{id: rand.Uint64() >> 1}}
		if err := e.openPair(lg); err != nil {
			for j := range i {
				l := &s.legs[j]
				closeFD(l.fd, l.rtcp)
				e.ports.put(l.pair)
			}
			e.m.portsExhausted.Inc()
			return fmt.Errorf("%w: %v", callseam.ErrNotAcceptable, err)
		}
	}
	return nil
}

// openPair binds a free port pair, skipping pairs another process holds (they go to the
// back of the ring; up to 1,024 are tried). Out of descriptors it stops at once: no other
// pair would do better.
func (e *Engine) openPair(lg *leg) error {
	for range min(1024, e.ports.pairs()) {
		pair, ok := e.ports.take()
		if !ok {
			return errors.New("no free RTP ports")
		}
		port := e.ports.port(pair)
		fd, err := openUDP(e.cfg.IP, port)
		if err != nil {
			e.ports.put(pair)
			if fsutil.OutOfDescriptors(err) {
				return fmt.Errorf("RTP socket: %w (raise LimitNOFILE: docs/operations.md)", err)
			}
			continue
		}
		rtcp, err := openUDP(e.cfg.IP, port+1)
		if err != nil {
			closeFD(fd)
			e.ports.put(pair)
			if fsutil.OutOfDescriptors(err) {
				return fmt.Errorf("RTCP socket: %w (raise LimitNOFILE: docs/operations.md)", err)
			}
			continue
		}
		lg.pair, lg.port, lg.fd, lg.rtcp = pair, port, fd, rtcp
		return nil
	}
	return errors.New("no bindable RTP ports")
}

// finished publishes a closed session's statistics.
func (e *Engine) finished(s *Session, m *store.CallMedia) {
	e.m.active.Dec()
	e.m.lostCaller.Add(float64(max(m.FromCaller.Lost, 0)))
	e.m.lostCallee.Add(float64(max(m.FromCallee.Lost, 0)))
	if m.FromCaller.Packets > 0 {
		e.m.jitter.WithLabelValues("caller").Observe(m.FromCaller.JitterMs / 1000)
	}
	if m.FromCallee.Packets > 0 {
		e.m.jitter.WithLabelValues("callee").Observe(m.FromCallee.JitterMs / 1000)
	}
	if m.CalleeCodec != "" && m.CalleeCodec != m.CallerCodec {
		e.m.transcoded.Inc()
	}
}

// openRecording starts the recording of a session at its bridge.
func (e *Engine) openRecording(s *Session) (*tap, error) {
	start := time.Unix(0, s.info.Start)
	if s.info.Start == 0 {
		start = time.Now()
	}
	r, err := e.rec.Open(s.info.CustomerID, s.info.CallID, start)
	if err != nil {
		return nil, err
	}
	return newTap(r, monoNow()), nil
}
