package media

import (
	"errors"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/g711"
	"golang.org/x/sys/unix"
)

// A loop moves the packets of the sessions Engine.pick gave it, over non-blocking sockets on
// a locked OS thread: through its io_uring ring (runRing) or one level-triggered epoll set
// (runEpoll), with the generated audio and the per-second checks driven by the wait's
// timeout. See ../shared/notes/media-performance.md for why.
type loop struct {
	e    *Engine
	log  *slog.Logger // the engine's, with the loop's index
	epfd int
	wfd  int // eventfd that wakes the loop for commands

	mu      sync.Mutex
	adds    []*Session
	removes []*Session
	pending atomic.Bool

	sessions []*Session // owned by the loop goroutine
	// Generated audio. A session whose legs generate waits on the wheel (genWheel) in the
	// slot of its next due frame; started lists the sessions whose legs started to generate
	// since the loop's last look (leg.play, leg.playSilence) and those it has just taken
	// (commands), which the loop serves at once.
	gen        genWheel
	startMu    sync.Mutex
	started    []*Session
	startSpare []*Session
	starting   atomic.Bool
	// gridOff shifts this loop's grid: loop i of n wakes at i/n of genGrid past the others,
	// so that the loops' bursts of frames (each at real-time priority) take turns on the
	// cores instead of taking them all at once, when nothing else could run.
	gridOff  int64
	nextSec  int64
	nextHand int64 // when the recordings' finished chunks are next handed over
	// drains: this loop reads the kernel path's ring (the first loop, with the kernel path),
	// next at nextDrain.
	drains    bool
	nextDrain int64
	buf       [2048]byte
	gbuf      [rtpHeaderLen + maxFrameSamples + srtpTagLen]byte // room for SRTP's tag
	from      rawAddr
	cnt       counters
	stopped   chan struct{}
	stop      atomic.Bool
	tid       atomic.Int32 // the loop's thread, once it runs (the benchmarks read its CPU time)
	ring      *ringIO      // the loop's io_uring state; nil on epoll

	// The loop's load, for Engine.pick: the share of a core its thread used over the last
	// measured second (float64 bits), the sessions it had then, and those it has now.
	busy      atomic.Uint64
	nMeasured atomic.Int32
	n         atomic.Int32
	cpuAt     int64 // the thread's CPU time at the last measurement (ns)
	wallAt    int64 // and the monotonic time of it
	gBusy     prometheus.Gauge
	gSessions prometheus.Gauge
}

// counters are the loop's own tallies, added to the metrics once a second so the packet path
// touches no shared cache line.
type counters struct {
	rx      [2]uint64
	relayed uint64
	strict  uint64
	// probation: from an allowed IP, not yet latched onto (latch.go)
	probation uint64
	// oversized: larger than the receive buffer, so not RTP the relay carries
	oversized uint64
	// unbridged: valid RTP from the leg's source while the other leg hears the anchor
	unbridged uint64
	// payloadType: neither the leg's G.711, its telephone-event nor comfort noise
	payloadType uint64
	bad         uint64
	rtcp        uint64
	sendErr     uint64
	// kernelErr counts flows the kernel path's table refused (kernelPath.offload).
	kernelErr uint64
	// srtpAuth: SRTP that failed authentication (a wrong key, or not SRTP); srtpReplay:
	// SRTP seen before (RFC 3711 §3.3.2); both dropped.
	srtpAuth   uint64
	srtpReplay uint64
}

// Epoll data: the pair index, with rtcpBit set for a leg's RTCP socket and wakeData for the
// eventfd.
const (
	rtcpBit  = 1 << 30
	strayBit = 1 << 29
	wakeData = -1
)

func newLoop(e *Engine) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wfd), Pad: wakeData}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, err
	}
	id := strconv.Itoa(len(e.loops))
	return &loop{e: e, log: e.log.With("loop", id), epfd: epfd, wfd: wfd, stopped: make(chan struct{}),
		gridOff: int64(len(e.loops)) * genGrid / int64(max(1, e.cfg.Loops)),
		gBusy:   e.m.loopBusy.WithLabelValues(id), gSessions: e.m.loopSessions.WithLabelValues(id)}, nil
}

// wake makes the loop look at its commands and generated audio now.
func (l *loop) wake() {
	var one = [8]byte{1}
	unix.Write(l.wfd, one[:])
}

func (l *loop) add(s *Session) {
	l.n.Add(1)
	l.mu.Lock()
	l.adds = append(l.adds, s)
	l.mu.Unlock()
	l.pending.Store(true)
	l.wake()
}

func (l *loop) remove(s *Session) {
	l.n.Add(-1)
	l.mu.Lock()
	l.removes = append(l.removes, s)
	l.mu.Unlock()
	l.pending.Store(true)
	l.wake()
}

func (l *loop) close() {
	l.stop.Store(true)
	l.wake()
	<-l.stopped
	unix.Close(l.epfd)
	unix.Close(l.wfd)
}

func (l *loop) run() {
	// Locked for good: the thread ends with the loop, so its scheduling (loopScheduling)
	// never passes to another goroutine, and a ring (which only its creating thread may
	// use) stays with it.
	runtime.LockOSThread()
	l.tid.Store(int32(unix.Gettid()))
	if l.schedule() {
		defer l.e.m.realtime.Add(-1)
	}
	defer close(l.stopped)
	l.nextSec = monoNow() + int64(time.Second)
	if l.e.useRing {
		u, err := newRingIO(l)
		if err == nil {
			l.log.Info("packet loop moves packets through io_uring")
			l.e.m.ringLoops.Add(1)
			defer l.e.m.ringLoops.Add(-1)
			l.runRing(u)
			return
		}
		l.log.Warn("packet loop falls back to epoll", "err", err)
	}
	l.runEpoll()
}

// runEpoll is the loop on epoll: a wake-up per batch of ready sockets, then a recvfrom and
// a send per datagram.
func (l *loop) runEpoll() {
	events := make([]unix.EpollEvent, 256)
	timeout := 1000
	batch := int64(l.e.cfg.BatchWait)
	for !l.stop.Load() {
		n, err := epollWait(l.epfd, events, timeout)
		if err != 0 && err != unix.EINTR {
			l.log.Error("epoll_wait", "err", err)
			time.Sleep(10 * time.Millisecond)
		}
		if err != 0 {
			n = 0
		}
		start := monoNow() // the batch's time, and the batch wait's start
		for i := 0; i < n; i++ {
			ev := &events[i]
			switch {
			case ev.Pad == wakeData:
				l.drainWake()
			case ev.Pad&rtcpBit != 0:
				l.readRTCP(int(ev.Pad &^ rtcpBit))
			case ev.Pad&strayBit != 0:
				l.readRTP(int(ev.Pad&^strayBit), true, start)
			default:
				l.readRTP(int(ev.Pad), false, start)
			}
		}
		// Sockets are closed here, after the batch: no event of this batch can name a
		// descriptor that was closed and reused.
		if l.pending.Load() {
			l.commands()
		}
		now := monoNow()
		timeout = l.tick(now)
		if n > 0 && n < smallBatch {
			l.batchWait(batch, start, now, timeout)
		}
	}
	for _, s := range l.sessions {
		l.release(s)
	}
}

// drainWake reads the eventfd's count, so that it wakes the loop again at the next write.
func (l *loop) drainWake() {
	var b [8]byte
	unix.Read(l.wfd, b[:])
}

// batchWait follows a batch (on epoll a small one): it sleeps out the rest of the batch
// wait from start, so that the next read finds the packets of many calls ready (see
// Config.BatchWait). The next timer (timeout ms from now) still comes first. Under load a
// batch takes longer than the wait and the loop reads on at once.
func (l *loop) batchWait(batch, start, now int64, timeout int) {
	if batch <= 0 {
		return
	}
	if d := min(start+batch, now+int64(timeout)*int64(time.Millisecond)) - now; d >= minPause {
		sleep(d)
	}
}

// schedule sets the loop thread's scheduling (loopScheduling), says so in the log and
// publishes it; true with real-time priority.
func (l *loop) schedule() bool {
	prio := l.e.cfg.RealtimePriority
	how, err := loopScheduling(prio)
	switch {
	case how == schedRealtime:
		l.e.m.realtime.Add(1)
		if a, err := unix.SchedGetAttr(0, 0); err == nil {
			policy := "SCHED_FIFO"
			if a.Policy == unix.SCHED_RR {
				policy = "SCHED_RR"
			}
			l.log.Info("packet loop runs with real-time priority", "policy", policy, "priority", a.Priority)
		}
	case how == schedExternal:
		l.log.Info("packet loop keeps the scheduling policy it was started with")
	case prio > 0:
		l.log.Warn("packet loop runs without real-time priority: allow it with LimitRTPRIO (systemd) or CAP_SYS_NICE, or set media.realtime_priority: -1",
			"priority", prio, "scheduling", how, "err", err)
	case err != nil:
		l.log.Debug("packet loop scheduling", "err", err)
	}
	return how == schedRealtime
}

// smallBatch is the batch size below which a loop sleeps out its batch wait: one wake-up
// (some 20 µs of CPU on a virtual machine) then serves at least this many packets.
const smallBatch = 32

// minPause is the shortest batch-wait sleep worth a system call.
const minPause = int64(50 * time.Microsecond)

// handOverEvery is how often a loop hands its recordings' finished chunks to the writers.
const handOverEvery = int64(100 * time.Millisecond)

// commands registers new sessions' sockets and releases removed ones.
func (l *loop) commands() {
	l.mu.Lock()
	adds, removes := l.adds, l.removes
	l.adds, l.removes = nil, nil
	l.pending.Store(false)
	l.mu.Unlock()
	for _, s := range adds {
		ok := true
		for i := range s.legs {
			if !l.register(&s.legs[i]) {
				ok = false
			}
		}
		if !ok {
			l.log.Error("register RTP sockets", "call_id", s.info.CallID)
		}
		l.sessions = append(l.sessions, s)
		s.onLoop.Store(true)
	}
	if len(adds) > 0 {
		// A prompt that started before the loop took its session went unserved (start found
		// the session not on the loop): the next tick looks at each new session once.
		l.startMu.Lock()
		l.started = append(l.started, adds...)
		l.startMu.Unlock()
		l.starting.Store(true)
	}
	for _, s := range removes {
		for i, x := range l.sessions {
			if x == s {
				last := len(l.sessions) - 1
				l.sessions[i] = l.sessions[last]
				l.sessions[last] = nil
				l.sessions = l.sessions[:last]
				break
			}
		}
		l.release(s)
	}
}

// register adds a leg's RTP and RTCP sockets to the loop's ring or epoll set; false if one
// could not be added.
func (l *loop) register(lg *leg) bool {
	if l.ring != nil {
		return l.ring.register(lg)
	}
	ok := true
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lg.fd), Pad: int32(lg.pair)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, lg.fd, &ev); err != nil {
		ok = false
	}
	ev = unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lg.rtcp), Pad: int32(lg.pair) | rtcpBit}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, lg.rtcp, &ev); err != nil {
		ok = false
	}
	return ok
}

// release closes a session's sockets and returns its ports.
func (l *loop) release(s *Session) {
	for i := range s.legs {
		lg := &s.legs[i]
		if lg.fd < 0 {
			continue
		}
		l.e.slots[lg.pair].Store(nil)
		if l.ring != nil {
			l.ring.release(lg) // closes and returns them once its receives have ended
		} else {
			unix.Close(lg.fd)
			unix.Close(lg.rtcp)
			if lg.stray >= 0 {
				unix.Close(lg.stray)
			}
			l.e.ports.put(lg.pair)
		}
		lg.fd, lg.rtcp, lg.stray = -1, -1, -1
	}
}

// readRTCP drains one RTCP datagram: RTCP ends at the anchor, each leg's endpoint gets none.
func (l *loop) readRTCP(pair int) {
	lg := l.e.slots[pair].Load()
	if lg == nil {
		return
	}
	if _, e := recvfrom(lg.rtcp, l.buf[:], &l.from); e == 0 {
		l.cnt.rtcp++
	}
}

// readRTP reads one datagram from a leg's socket (its stray socket with stray) and relays it.
func (l *loop) readRTP(pair int, stray bool, now int64) {
	lg := l.e.slots[pair].Load()
	if lg == nil {
		return
	}
	fd := lg.fd
	if stray {
		fd = lg.stray
	}
	if fd < 0 {
		return
	}
	n, e := recvfrom(fd, l.buf[:], &l.from)
	if e != 0 || n <= 0 {
		return
	}
	if n > len(l.buf) { // MSG_TRUNC: n is the datagram's real length
		l.cnt.oversized++
		return
	}
	p := l.buf[:n]
	out, ok := l.relay(lg, p, &l.from, now)
	if !ok {
		return
	}
	if sendOn(out.fd, out.connected, p[:out.n], &out.dest) != 0 {
		l.cnt.sendErr++
		return
	}
	l.cnt.relayed++
}

// relayTo is where a relayed datagram goes: the other leg's socket, and its address when
// that socket is not connected; n is the datagram's length (SRTP changes it, within the
// buffer's capacity).
type relayTo struct {
	fd        int
	pair      int
	connected bool
	dest      rawAddr
	n         int
}

// relay is the packet path: the datagram p from src on leg lg, checked, counted, recorded
// and rewritten in place for the other leg. It returns where to send p, or false when p
// goes no further. It allocates nothing.
func (l *loop) relay(lg *leg, p []byte, src *rawAddr, now int64) (relayTo, bool) {
	s := lg.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return relayTo{}, false
	}
	if lg.srtp != nil {
		// Authenticated first: nothing unauthenticated latches the leg or reaches the
		// other side or the recording.
		var v srtpVerdict
		if p, v = lg.srtp.decrypt(p); v != srtpOK {
			if v == srtpReplayed {
				l.cnt.srtpReplay++
			} else {
				l.cnt.srtpAuth++
			}
			s.badRTP++
			s.mu.Unlock()
			return relayTo{}, false
		}
	}
	switch lg.admit(src, p) {
	case admitted:
	case moved:
		// A NAT rebinding: what the kernel path forwarded from the old source is accounted
		// first, and the flow goes; the relay offloads the new source's below.
		// The other direction's flow sends to the old source: it goes too.
		if k := l.e.kernel; k != nil && (lg.kernel || s.legs[1-lg.side].kernel) {
			if err := errors.Join(k.unload(lg), k.unload(&s.legs[1-lg.side])); err != nil {
				l.cnt.kernelErr++
			}
			s.mu.Unlock()
			l.e.drain()
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				return relayTo{}, false
			}
		}
	case dropProbation:
		s.strictDrops++
		l.cnt.probation++
		s.mu.Unlock()
		return relayTo{}, false
	case dropBad:
		s.badRTP++
		l.cnt.bad++
		s.mu.Unlock()
		return relayTo{}, false
	default:
		s.strictDrops++
		l.cnt.strict++
		s.mu.Unlock()
		return relayTo{}, false
	}
	if lg.kernel {
		// A packet the kernel path left to the relay (a new SSRC, say): the packets it
		// forwarded before this one are accounted first, so that the other leg's stream
		// goes on from the last of them.
		s.mu.Unlock()
		l.e.drain()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return relayTo{}, false
		}
	}
	if !lg.connected {
		l.connect(lg)
	}
	start, end, ok := parseRTP(p)
	if !ok {
		s.badRTP++
		l.cnt.bad++
		s.mu.Unlock()
		return relayTo{}, false
	}
	pt, seq, ts, ssrc := rtpFields(p)
	marker := p[1]&0x80 != 0
	lg.lastRx = now
	lg.rx.update(ssrc, seq, ts, uint32(now/125_000), len(p))
	l.cnt.rx[lg.side]++
	audio := pt == lg.law.PayloadType()
	if audio && s.rec != nil {
		s.rec.write(lg.side, ssrc, ts, p[start:end], lg.law, now)
	}
	peer := &s.legs[1-lg.side]
	if !s.flow || !peer.destOK || peer.gen != genNone {
		l.cnt.unbridged++ // heard (and recorded), but the other leg hears the anchor
		s.mu.Unlock()
		return relayTo{}, false
	}
	var outPT uint8
	switch {
	case audio:
		outPT = peer.law.PayloadType()
		if peer.law != lg.law {
			g711.Transcode(p[start:end], lg.law, peer.law)
		}
	case pt == lg.te && lg.te != 0 && peer.te != 0:
		outPT = peer.te
	case pt == 13: // comfort noise (RFC 3389) has the same meaning on both legs
		outPT = 13
	default:
		l.cnt.payloadType++
		s.mu.Unlock()
		return relayTo{}, false
	}
	oseq, ots, rebased := peer.out.relayed(ssrc, seq, ts, now)
	setRTP(p, outPT, marker || rebased, oseq, ots, peer.out.ssrc)
	if peer.srtp != nil {
		var ok bool
		if p, ok = peer.srtp.encrypt(p); !ok {
			l.cnt.oversized++ // no room for the tag in the buffer
			s.mu.Unlock()
			return relayTo{}, false
		}
	}
	out := relayTo{fd: peer.fd, pair: peer.pair, connected: peer.connected, dest: peer.dest, n: len(p)}
	// SRTP calls stay in user space: the kernel path cannot decrypt or encrypt.
	if k := l.e.kernel; k != nil && lg.srtp == nil && peer.srtp == nil && !lg.kernelRefused && (!lg.kernel || lg.kernelSSRC != ssrc) {
		if err := k.offload(lg, peer, ssrc); err != nil {
			l.cnt.kernelErr++
		}
	}
	s.mu.Unlock()
	return out, true
}

// connect connects a leg that has just latched to its source, opening its stray socket
// first (see openStray). A leg that cannot be connected works unconnected, as before.
func (l *loop) connect(lg *leg) {
	if lg.stray == -2 {
		return
	}
	if lg.stray < 0 {
		fd, err := l.openStray(lg)
		if err != nil {
			lg.stray = -2
			l.log.Warn("RTP leg stays unconnected", "call_id", lg.s.info.CallID, "err", err)
			return
		}
		lg.stray = fd
	}
	if connectTo(lg.fd, &lg.dest) == 0 {
		lg.connected = true
	}
}

// openStray opens lg's stray socket and adds it to the loop's epoll set or ring.
func (l *loop) openStray(lg *leg) (int, error) {
	fd, err := openStray(lg.fd, l.e.cfg.IP, lg.port)
	if err != nil {
		return -1, err
	}
	if l.ring != nil {
		l.ring.addStray(lg.pair, fd)
		return fd, nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd), Pad: int32(lg.pair) | strayBit}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// tick sends due generated frames and, once a second, checks timeouts, advances recordings
// and publishes counters. It returns the epoll_wait timeout in milliseconds.
func (l *loop) tick(now int64) int {
	due := l.generateDue(now)
	if now >= l.nextHand {
		l.nextHand = now + handOverEvery
		for _, s := range l.sessions {
			s.mu.Lock()
			if s.rec != nil && len(s.rec.done) > 0 {
				s.rec.handOver()
			}
			s.mu.Unlock()
		}
	}
	if l.drains && now >= l.nextDrain {
		l.nextDrain = now + int64(kernelDrainEvery)
		l.e.drain()
	}
	if now >= l.nextSec {
		l.nextSec = now + int64(time.Second)
		for _, s := range l.sessions {
			l.second(s, now)
		}
		l.measure(now)
		l.publish()
	}
	wait := min(l.nextSec, l.nextHand) - now
	if l.drains {
		wait = min(wait, l.nextDrain-now)
	}
	if due >= 0 && due-now < wait {
		wait = due - now
	}
	ms := int((wait + 999_999) / 1_000_000)
	if ms < 0 {
		ms = 0
	}
	return ms
}

// genGrid is the grid the loop wakes on for generated frames. A frame due at t goes out at
// the first tick at or after t, and without other traffic the loop wakes only at multiples
// of genGrid: the frames of all the calls that fall due within one step go out together,
// in one turn of the loop (on io_uring, one io_uring_enter), where a wake-up per
// millisecond would send a few each. A leg's frames keep their spacing (its ptime, a
// multiple of 10 ms, so of genGrid), so a stream only starts up to genGrid late; it gains
// no jitter.
const genGrid = int64(5 * time.Millisecond)

// onGrid is t rounded up to the loop's grid: the multiples of genGrid, plus gridOff.
func (l *loop) onGrid(t int64) int64 {
	return (t-l.gridOff+genGrid-1)/genGrid*genGrid + l.gridOff
}

// start has the loop serve s's generated audio at once: a leg of s has started to
// generate. The loop is woken unless starts wait for it already. Safe from any goroutine.
func (l *loop) start(s *Session) {
	l.startMu.Lock()
	l.started = append(l.started, s)
	l.startMu.Unlock()
	if !l.starting.Swap(true) {
		l.wake()
	}
}

// genWheel holds the sessions that generate audio by when their next frame is due: a slot
// for each step of the loop's grid (genGrid), wheelSlots of them, so that a tick looks only
// at the sessions due in it. Looking at every session at every tick, as the loop did, took
// up to 7 % of the switch's CPU at 500 calls a second with the 7 s disclaimer (a CPU
// profile: ~4,000 sessions looked at every 5 ms, a cache miss each, where a 20 ms frame is
// due at one tick in four and each new call asked for a look at all of them). Owned by the
// loop goroutine.
//
// A slot left empty gives its array back (free), and a slot filed into takes one from there:
// only the slots in use hold arrays, a few at a time. Each slot keeping the array it last
// had held the most a slot ever held in every one of them: ~600 entries each at 500 calls a
// second with the disclaimer, 9 MB of the heap for the collector to scan.
type genWheel struct {
	slots [wheelSlots][]filed
	free  [][]filed // empty arrays, cleared
	n     int       // entries on the wheel, those left behind by a session filed again included
	pos   int64     // the grid time of the next slot to visit, while n > 0 or visiting
	// visiting: the loop is in the slot at pos; pos moves on from it, whatever n is.
	visiting bool
}

// filed is a session on the wheel for the grid time at; an entry whose at is not its
// session's wheelAt was left behind when the session was filed again.
type filed struct {
	s  *Session
	at int64
}

// wheelSlots spans 2.56 s of genGrid, more than the longest spacing of generated frames
// (keepAliveEvery); a session due later waits a turn of the wheel.
const wheelSlots = 512

// file puts s on the wheel for its frame due at t (at the first grid time at or after it,
// and not before the next slot the loop visits).
func (l *loop) file(s *Session, t int64) {
	w := &l.gen
	at := l.onGrid(t)
	if w.n == 0 && !w.visiting { // an empty wheel starts where it is filed
		w.pos = at
	}
	at = max(at, w.pos)
	s.wheelAt = at
	i := l.slot(at)
	w.slots[i] = append(w.array(i), filed{s, at})
	w.n++
}

// array is the wheel's slot i, with a free array if it had none.
func (w *genWheel) array(i int64) []filed {
	if w.slots[i] == nil && len(w.free) > 0 {
		w.slots[i], w.free = w.free[len(w.free)-1], w.free[:len(w.free)-1]
	}
	return w.slots[i]
}

// slot is the wheel's slot of the grid time t.
func (l *loop) slot(t int64) int64 { return (t - l.gridOff) / genGrid % wheelSlots }

// generateDue sends the generated frames due by now: those of the sessions that started to
// generate, then those of the wheel's slots up to now. It returns the grid time the loop is
// next due to look again, -1 when nothing generates.
func (l *loop) generateDue(now int64) int64 {
	w := &l.gen
	if l.starting.Load() {
		l.startMu.Lock()
		started := l.started
		l.started, l.startSpare = l.startSpare[:0], nil
		l.starting.Store(false)
		l.startMu.Unlock()
		for _, s := range started {
			if !s.onLoop.Load() { // served once the loop takes it (commands)
				continue
			}
			if d := l.generate(s, now); d > 0 {
				l.file(s, d)
			}
		}
		clear(started)
		l.startSpare = started[:0]
	}
	w.visiting = true
	for w.n > 0 && w.pos <= now {
		i := l.slot(w.pos)
		due := w.slots[i]
		w.slots[i] = nil
		w.n -= len(due)
		for _, e := range due {
			switch {
			case e.s.wheelAt != e.at: // filed again since
			case e.at > w.pos: // a turn of the wheel ahead
				w.slots[i] = append(w.array(i), e)
				w.n++
			default:
				e.s.wheelAt = 0
				if d := l.generate(e.s, now); d > 0 {
					l.file(e.s, d)
				}
			}
		}
		if due != nil {
			clear(due)
			w.free = append(w.free, due[:0])
		}
		w.pos += genGrid
	}
	w.visiting = false
	if w.n == 0 {
		return -1
	}
	for k := range int64(wheelSlots) { // the next slot with anything in it
		t := w.pos + k*genGrid
		if len(w.slots[l.slot(t)]) > 0 {
			return t
		}
	}
	return w.pos
}

// generate sends the frames due in s's generating legs and returns the next due time.
func (l *loop) generate(s *Session, now int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	next := int64(0)
	for i := range s.legs {
		lg := &s.legs[i]
		if lg.gen == genNone {
			continue
		}
		if now-lg.next > 5*frameNanos { // the loop was held up: do not burst, resume from now
			lg.next = now
		}
		for lg.gen != genNone && lg.next <= now {
			l.sendFrame(lg, lg.next)
			lg.next += lg.every()
		}
		if lg.gen != genNone && (next == 0 || lg.next < next) {
			next = lg.next
		}
	}
	return next
}

// sendFrame sends the leg's next generated frame, due at the time at: its timestamp steps
// from the last frame's by the time between their due times, not their sends, which the
// loop's grid (genGrid) and its wake-ups shift by a few milliseconds.
func (l *loop) sendFrame(lg *leg, at int64) {
	law := lg.law
	if law == g711.None {
		law = g711.ULaw
	}
	n := lg.frame()
	var payload []byte
	switch lg.gen {
	case genPrompt:
		payload = lg.prompt.frameOf(law, lg.pos, n)
		lg.pos++
		if lg.pos >= lg.prompt.framesOf(n) {
			end := lg.onEnd
			lg.stopGen()
			if end != nil {
				end() // may start the next generator on this leg
			}
		}
	default:
		payload = silence[law][:n]
	}
	if !lg.destOK {
		return
	}
	seq, ts, marker := lg.out.generated(at, n)
	p := l.gbuf[:rtpHeaderLen+len(payload)]
	p[0] = 0x80
	setRTP(p, law.PayloadType(), marker, seq, ts, lg.out.ssrc)
	copy(p[rtpHeaderLen:], payload)
	if lg.srtp != nil {
		var ok bool
		if p, ok = lg.srtp.encrypt(p); !ok {
			l.cnt.sendErr++
			return
		}
	}
	if l.ring != nil && l.ring.sendGenerated(lg, p) {
		return
	}
	if lg.send(p) != 0 {
		l.cnt.sendErr++
	}
}

// second runs s's once-a-second duties: the RTP timeout and the recording's clock.
func (l *loop) second(s *Session, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.rec != nil {
		s.rec.flush(now)
	}
	if !s.bridged || s.onHold() || s.e.cfg.RTPTimeout <= 0 {
		return
	}
	for i := range s.legs {
		if now-s.legs[i].lastRx > int64(s.e.cfg.RTPTimeout) {
			if !s.doneClosed {
				s.e.m.timeouts.Inc()
			}
			s.end("rtp_timeout")
			return
		}
	}
}

// publish adds the loop's tallies to the metrics.
// sessionLoad is what Engine.pick counts for a session added to a loop since its last
// measurement: a share of a core above what a call costs on the slowest machines measured
// (docs/benchmarks.md), so that a burst of new calls spills over early rather than late.
const sessionLoad = 0.001

// spillLoad is the load under which a loop takes new calls before the loops after it: light
// traffic stays on the first loop and wakes one thread, and a loop past it passes new calls
// on while it still has room for the bursts a packet loop must absorb.
const spillLoad = 0.3

// measure, once a second on the loop's thread, sets the loop's busy share from its thread's
// CPU time, which counts the kernel's work for its system calls and io_uring too.
func (l *loop) measure(now int64) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return
	}
	cpu := ts.Nano()
	if l.wallAt != 0 && now > l.wallAt {
		b := float64(cpu-l.cpuAt) / float64(now-l.wallAt)
		l.busy.Store(math.Float64bits(b))
		l.nMeasured.Store(l.n.Load())
		l.gBusy.Set(b)
	}
	l.gSessions.Set(float64(l.n.Load()))
	l.cpuAt, l.wallAt = cpu, now
}

// load is the loop's estimated share of a core: its last measured second, and sessionLoad
// for each session it gained since (less for each it lost).
func (l *loop) load() float64 {
	b := math.Float64frombits(l.busy.Load())
	return max(0, b+float64(l.n.Load()-l.nMeasured.Load())*sessionLoad)
}

func (l *loop) publish() {
	m := &l.e.m
	c := &l.cnt
	m.rxCaller.Add(float64(c.rx[caller]))
	m.rxCallee.Add(float64(c.rx[callee]))
	m.relayed.Add(float64(c.relayed))
	m.strict.Add(float64(c.strict))
	m.probation.Add(float64(c.probation))
	m.oversized.Add(float64(c.oversized))
	m.unbridged.Add(float64(c.unbridged))
	m.payloadType.Add(float64(c.payloadType))
	m.bad.Add(float64(c.bad))
	m.rtcp.Add(float64(c.rtcp))
	m.sendErr.Add(float64(c.sendErr))
	m.kernelErr.Add(float64(c.kernelErr))
	m.srtpAuth.Add(float64(c.srtpAuth))
	m.srtpReplay.Add(float64(c.srtpReplay))
	if l.drains {
		l.e.kernel.publish(m)
	}
	*c = counters{}
}
