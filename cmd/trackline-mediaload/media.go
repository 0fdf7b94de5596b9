package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// monoClock reads CLOCK_MONOTONIC in ns through Go's vDSO clock (time.Since), which is
// CLOCK_MONOTONIC on Linux, offset once by a real clock_gettime so that the values are
// CLOCK_MONOTONIC's own and can be handed to clock_nanosleep.
type monoClock struct {
	base   time.Time
	baseNs int64
}

func newMonoClock() (monoClock, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return monoClock{}, fmt.Errorf("clock_gettime: %w", err)
	}
	return monoClock{base: time.Now(), baseNs: ts.Nano()}, nil
}

func (c *monoClock) now() int64 { return c.baseNs + int64(time.Since(c.base)) }

// window is the steady measuring window: the slots [s0, s1). seen holds one bit per stream
// and slot; the bits of stream i are written only by the loop that owns stream i.
type window struct {
	s0, s1 uint32
	words  int // uint64 words per stream
	seen   []uint64
}

func newWindow(s0, s1 uint32, streams int) *window {
	words := int(s1-s0+63) / 64
	return &window{s0: s0, s1: s1, words: words, seen: make([]uint64, streams*words)}
}

// received is the number of distinct window packets stream i received.
func (w *window) received(i int) int {
	n := 0
	for _, x := range w.seen[i*w.words : (i+1)*w.words] {
		n += bits.OnesCount64(x)
	}
	return n
}

// stream is one direction of one call: the socket it is sent from and where to.
type stream struct {
	used   atomic.Bool // activated once, never again
	active atomic.Bool
	fd     int                   // written before active is set, read after
	to     unix.RawSockaddrInet4 // likewise

	// Owned by the loop that sends the stream.
	started bool
	seq     uint16
	ts      uint32
	ssrc    uint32
	winSent uint32 // packets sent in the window
}

// loopStats are one media loop's counters; read after the loop has returned.
type loopStats struct {
	latency   latencyHist // kernel receive time minus send time, window packets
	readDelay latencyHist // our read time minus kernel receive time, window packets

	sent      [2]uint64 // window packets, per direction
	sentAll   uint64    // every packet sent
	sendErrs  uint64    // failed sendto
	lateSteps uint64    // pacing steps in the window begun more than one tick late
	lateMax   int64     // the latest a step in the window began, ns

	got       [2]uint64 // distinct window packets received, per direction
	dup       [2]uint64 // window packets received again
	own       uint64    // packets of ours, any time
	early     uint64    // of ours, sent before the window
	late      uint64    // of ours, from a slot at or after the window's end
	foreign   uint64    // RTP without our stamp: the switch's prompts, ringback
	misrouted uint64    // ours, but of another call or direction than the socket's
	malformed uint64    // not RTP
	noStamp   uint64    // no kernel receive timestamp: the read time stood in
	waitErrs  uint64
	rtErr     error // why the loop's thread did not get real-time priority (engine.rtPrio)
}

func (s *loopStats) merge(o *loopStats) {
	s.latency.merge(&o.latency)
	s.readDelay.merge(&o.readDelay)
	for d := range 2 {
		s.sent[d] += o.sent[d]
		s.got[d] += o.got[d]
		s.dup[d] += o.dup[d]
	}
	s.sentAll += o.sentAll
	s.sendErrs += o.sendErrs
	s.lateSteps += o.lateSteps
	s.lateMax = max(s.lateMax, o.lateMax)
	s.own += o.own
	s.early += o.early
	s.late += o.late
	s.foreign += o.foreign
	s.misrouted += o.misrouted
	s.malformed += o.malformed
	s.noStamp += o.noStamp
	s.waitErrs += o.waitErrs
	if s.rtErr == nil {
		s.rtErr = o.rtErr
	}
}

// engine owns a run's RTP sockets, streams and media loops. Stream i is direction i/calls
// of call i%calls. Loop k of n sends the streams i with i%n == k and receives them: the
// socket that receives stream i is in loop i%n's epoll set with i as its id.
type engine struct {
	calls    int
	clk      monoClock
	tick     time.Duration
	grace    time.Duration
	epfds    []int
	streams  []stream
	win      atomic.Pointer[window]
	stopping atomic.Bool // the loops return
	epoch    int64       // CLOCK_MONOTONIC ns of slot 0; set by start
	// sending counts the loops that have not yet sent the window's last slot: a loop that
	// fell behind (a busy machine) sends it after its time.
	sending atomic.Int32
	// rtPrio > 0: the loops' threads ask for SCHED_FIFO at this priority (set before start).
	rtPrio int

	stats []*loopStats
	done  []chan struct{}

	mu     sync.Mutex // guards fds and closed
	fds    []int
	closed bool
}

var errClosed = errors.New("media engine closed")

func newEngine(calls, loops int, tick, grace time.Duration) (*engine, error) {
	clk, err := newMonoClock()
	if err != nil {
		return nil, err
	}
	e := &engine{calls: calls, clk: clk, tick: tick, grace: grace, streams: make([]stream, 2*calls)}
	for range loops {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			e.close()
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		e.epfds = append(e.epfds, fd)
	}
	return e, nil
}

func (e *engine) streamIndex(call int, d direction) int { return int(d)*e.calls + call }

// openSocket opens the RTP socket of one side of a call on an even port of ip (RFC 3550
// §11), with kernel receive timestamps, and registers it for the stream it receives.
func (e *engine) openSocket(ip netip.Addr, call int, rx direction) (int, int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, 0, errClosed
	}
	id := e.streamIndex(call, rx)
	for range 32 {
		fd, port, err := bindUDP(ip)
		if err != nil {
			return 0, 0, err
		}
		if port%2 != 0 {
			unix.Close(fd)
			continue
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd), Pad: int32(id)}
		if err := unix.EpollCtl(e.epfds[id%len(e.epfds)], unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(fd)
			return 0, 0, fmt.Errorf("epoll_ctl: %w", err)
		}
		e.fds = append(e.fds, fd)
		return fd, port, nil
	}
	return 0, 0, errors.New("no even UDP port after 32 tries")
}

func bindUDP(ip netip.Addr) (int, int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, int, error) {
		unix.Close(fd)
		return 0, 0, fmt.Errorf("%s: %w", what, err)
	}
	// The time the datagram reached the socket (socket(7) SO_TIMESTAMPNS, CLOCK_REALTIME):
	// the latency then leaves out how long the packet waited for us to read it.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: ip.As4()}); err != nil {
		return fail("bind "+ip.String(), err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	sa4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fail("getsockname", errors.New("not IPv4"))
	}
	return fd, sa4.Port, nil
}

// activate starts stream (call, d): from fd to to, from the next slot on. A stream starts
// at most once; false if it had.
func (e *engine) activate(call int, d direction, fd int, to netip.AddrPort) bool {
	s := &e.streams[e.streamIndex(call, d)]
	if !s.used.CompareAndSwap(false, true) {
		return false
	}
	s.fd = fd
	s.to = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s.to.Port))[:], to.Port())
	s.active.Store(true)
	return true
}

// deactivate stops stream (call, d).
func (e *engine) deactivate(call int, d direction) {
	e.streams[e.streamIndex(call, d)].active.Store(false)
}

// slotTime is when slot begins, CLOCK_MONOTONIC ns.
func (e *engine) slotTime(slot uint32) int64 { return e.epoch + int64(slot)*int64(slotDur) }

// slotNow is the slot under way.
func (e *engine) slotNow() uint32 { return uint32((e.clk.now() - e.epoch) / int64(slotDur)) }

// start sets the media epoch and starts the loops.
func (e *engine) start() {
	e.epoch = e.clk.now() + int64(10*time.Millisecond)
	e.sending.Store(int32(len(e.epfds)))
	for k := range e.epfds {
		st, done := new(loopStats), make(chan struct{})
		e.stats, e.done = append(e.stats, st), append(e.done, done)
		go e.loop(k, st, done)
	}
}

// wait waits until the loops have returned: at the window's end plus the grace time, or
// after stop.
func (e *engine) wait() {
	for _, d := range e.done {
		<-d
	}
}

// waitSent waits until every loop has sent the window's last slot, or the loops stop.
func (e *engine) waitSent(ctx context.Context) error {
	for e.sending.Load() > 0 && !e.stopping.Load() {
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// stop makes the loops return and waits for them; their stats are then safe to read.
func (e *engine) stop() {
	e.stopping.Store(true)
	e.wait()
}

// total merges the loops' stats; call it after stop.
func (e *engine) total() *loopStats {
	t := new(loopStats)
	for _, s := range e.stats {
		t.merge(s)
	}
	return t
}

// close closes every socket and epoll instance; call it after stop.
func (e *engine) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	for _, fd := range e.fds {
		unix.Close(fd)
	}
	for _, fd := range e.epfds {
		unix.Close(fd)
	}
}

// loop is media loop k of n, on a locked OS thread. It walks the 20 ms slots in steps of
// one tick; in each step it sends the packet of each of its active streams whose index
// falls in that step (so the packets of all streams are spread evenly over the slot), then
// reads what its sockets have received. It stops sending at the window's end and returns
// the grace time later (over), or when the engine stops.
func (e *engine) loop(k int, st *loopStats, done chan<- struct{}) {
	defer close(done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if e.rtPrio > 0 {
		st.rtErr = realtime(e.rtPrio)
	}
	var stoppedAt int64 // when the loop sent the window's last slot
	defer func() {
		if stoppedAt == 0 {
			e.sending.Add(-1)
		}
	}()
	var pkt [packetLen]byte
	fillTone(pkt[rtpHeaderLen:])
	r := newReader()
	events := make([]unix.EpollEvent, 256)
	n, m := len(e.epfds), len(e.streams)
	steps := max(int(slotDur/e.tick), 1)
	tick := int64(slotDur) / int64(steps)
	graceSlots := uint32((e.grace + slotDur - 1) / slotDur)
	for slot := uint32(0); !e.stopping.Load(); slot++ {
		w := e.win.Load()
		if w != nil && slot >= w.s1 && stoppedAt == 0 {
			stoppedAt = e.clk.now()
			e.sending.Add(-1)
		}
		if w != nil && over(slot, w.s1+graceSlots, time.Duration(e.clk.now()-stoppedAt), e.grace) {
			return
		}
		sending := w == nil || slot < w.s1
		inWin := w != nil && slot >= w.s0
		base := e.slotTime(slot)
		for step := range steps {
			if late := e.sleepUntil(base + int64(step)*tick); late > tick && inWin && sending {
				st.lateSteps++
				st.lateMax = max(st.lateMax, late)
			}
			if sending {
				lo, hi := step*m/steps, (step+1)*m/steps
				for i := lo + ((k-lo%n)+n)%n; i < hi; i += n {
					if s := &e.streams[i]; s.active.Load() {
						e.sendOne(s, i, slot, inWin, pkt[:], st)
					}
				}
			}
			e.drain(e.epfds[k], w, r, events, st)
		}
	}
}

// over says whether a loop is done with the window at slot: past the grace slots, and the
// grace time past the moment it sent the window's last slot (since). A loop that fell
// behind runs through the grace slots at once; the packets it sent last still get the
// grace time to come back, and do not count as lost.
func over(slot, graceEnd uint32, since, grace time.Duration) bool {
	return slot >= graceEnd && since >= grace
}

// realtime asks for SCHED_FIFO at prio for the calling thread (not passed on to threads it
// creates): a thread of the generator that the switch's real-time packet loops keep off the
// cores falls behind, and then sends in bursts no phone would.
func realtime(prio int) error {
	return unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(prio), Flags: unix.SCHED_FLAG_RESET_ON_FORK}, 0)
}

func (e *engine) sendOne(s *stream, i int, slot uint32, inWin bool, pkt []byte, st *loopStats) {
	if !s.started {
		s.started = true
		s.seq, s.ts, s.ssrc = uint16(rand.Uint32()), rand.Uint32(), rand.Uint32()
	}
	d := direction(i / e.calls)
	putHeader(pkt, s.seq, s.ts, s.ssrc)
	putStamp(pkt[rtpHeaderLen:], stamp{call: uint32(i % e.calls), dir: d, slot: slot, sent: e.clk.now()})
	s.seq++
	s.ts += samplesPerSlot
	// sendto(2) on a non-blocking socket: a raw system call, without the scheduler's
	// bookkeeping around a call that may block, and with the address prebuilt.
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)),
		0, uintptr(unsafe.Pointer(&s.to)), unix.SizeofSockaddrInet4)
	if errno != 0 {
		st.sendErrs++
		return
	}
	st.sentAll++
	if inWin {
		st.sent[d]++
		s.winSent++
	}
}

// sleepUntil waits until CLOCK_MONOTONIC reaches at; it returns how late it already was.
func (e *engine) sleepUntil(at int64) int64 {
	if now := e.clk.now(); now >= at {
		return now - at
	}
	ts := unix.NsecToTimespec(at)
	for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
	}
	return 0
}

// drain reads, without waiting, one datagram from each ready socket of an epoll set
// (level-triggered: a socket holding more is reported again next time), in at most 8
// rounds of len(events).
func (e *engine) drain(epfd int, w *window, r *reader, events []unix.EpollEvent, st *loopStats) {
	// Kernel timestamps are CLOCK_REALTIME: convert them to CLOCK_MONOTONIC with an offset
	// taken now, so that a step of the wall clock lasts one drain at most.
	off := time.Now().UnixNano() - e.clk.now()
	for range 8 {
		// epoll_pwait(2) with a zero timeout never blocks: a raw system call, like the reads.
		r0, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
			uintptr(len(events)), 0, 0, 0)
		if errno != 0 {
			if errno != unix.EINTR {
				st.waitErrs++
			}
			return
		}
		n := int(r0)
		for j := range n {
			ev := &events[j]
			size, kts, ok := r.read(int(ev.Fd))
			if !ok {
				continue
			}
			now := e.clk.now()
			at := kts - off
			if kts == 0 {
				st.noStamp++
				at = now
			}
			e.account(st, w, int(ev.Pad), r.buf[:size], at, now)
		}
		if n < len(events) {
			return
		}
	}
}

// account counts one datagram that reached the socket of stream id at CLOCK_MONOTONIC at
// and was read at now.
func (e *engine) account(st *loopStats, w *window, id int, b []byte, at, now int64) {
	p, ok := rtpPayload(b)
	if !ok {
		st.malformed++
		return
	}
	s, ok := readStamp(p)
	if !ok {
		st.foreign++
		return
	}
	st.own++
	if s.dir != direction(id/e.calls) || s.call != uint32(id%e.calls) {
		st.misrouted++
		return
	}
	switch {
	case w == nil || s.slot < w.s0:
		st.early++
		return
	case s.slot >= w.s1:
		st.late++
		return
	}
	bit := int(s.slot - w.s0)
	word, mask := id*w.words+bit>>6, uint64(1)<<(bit&63)
	if w.seen[word]&mask != 0 {
		st.dup[s.dir]++
		return
	}
	w.seen[word] |= mask
	st.got[s.dir]++
	st.latency.add(at - s.sent)
	st.readDelay.add(now - at)
}

// reader reads datagrams with their kernel receive time through recvmsg(2), reusing its
// buffers: x/sys's Recvmsg would allocate the source address each time. The call is raw
// (no scheduler bookkeeping): with MSG_DONTWAIT it never blocks.
type reader struct {
	buf [2048]byte
	oob [8]uint64 // control messages; uint64 for the alignment of Cmsghdr
	iov unix.Iovec
	msg unix.Msghdr
}

func newReader() *reader {
	r := new(reader)
	r.iov.Base = &r.buf[0]
	r.iov.SetLen(len(r.buf))
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	r.msg.Control = (*byte)(unsafe.Pointer(&r.oob[0]))
	return r
}

// read reads one datagram from fd into r.buf: its size and kernel receive time
// (CLOCK_REALTIME ns, 0 if the kernel gave none); false if there was none to read.
func (r *reader) read(fd int) (int, int64, bool) {
	r.msg.SetControllen(int(unsafe.Sizeof(r.oob)))
	r.msg.Flags = 0
	n, _, errno := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.msg)), unix.MSG_DONTWAIT)
	if errno != 0 {
		return 0, 0, false
	}
	var ts int64
	if int(r.msg.Controllen) >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&r.oob[0]))
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS {
			ts = (*unix.Timespec)(unsafe.Add(unsafe.Pointer(&r.oob[0]), unix.CmsgLen(0))).Nano()
		}
	}
	return int(n), ts, true
}
