package sip

import (
	"errors"
	"hash/maphash"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/trackline/trackline/internal/rearm"
)

// admitMeter is the switch's UDP socket as admitConn's reader goroutine reads it: each
// datagram is read with the kernel's receive timestamp (SO_TIMESTAMPNS), so that the time
// it waits, in the socket's queue and then in admitConn's, can be told. It passes every
// datagram on unchanged. It is read by one goroutine only; its writes may come from any.
//
// While datagrams come (one within the last admitInterval), or while admission says the
// switch is strained (admission.strained), it does not wait for the next in Go's network
// poller but reads again when sipgo's reader has emptied admitConn's queue (wake: that
// goroutine hands over its P's next turn), or after pollSleep at the latest: a goroutine
// the poller wakes while every P is busy joins the back of the scheduler's global queue,
// behind every goroutine the load has made runnable (seconds, under a step to twice the
// load), while a goroutine a channel send or a timer wakes runs next on the P that woke
// it. A timer's wake-up can come late, though (a runtime trace: 1 ms at the median, 20 ms
// at p99 for a sleep of 0.5 ms), and every datagram waited for it: hence the wake from the
// reader, which is at work exactly when datagrams come. Idle, it waits in the poller.
//
// Polling costs a wake-up and an empty read per datagram at any load (direct calls at
// 1,000 a second: 0.67 ms of CPU a call against 0.55, setup p99 16-20 ms against 4 ms
// waiting in the poller). Polling only while strained took that back (8 ms, 0.60 ms) but
// let the first seconds of a step to twice the load queue in the socket again (861 and
// 9,566 drops in two recorded runs, none in three runs that polled), and again with the
// limit on setups in flight straining the switch from the first calls of a step (11,364
// drops in one of two runs): the goal of no collapse comes first (docs/benchmarks.md).

// Reads and writes are system calls of its own (recvmsg, sendto), raw: the P stays with
// the goroutine through them (they do not block: the socket is non-blocking), the read
// allocates nothing but the source's address when it changes, and a write does not take
// the descriptor's write lock (net's WriteTo does). Every goroutine that answers a SIP
// message writes on this one socket; with net's lock, the drain's 503s queued behind
// hundreds of sipgo's writers and waited for each (a runtime trace of a recorded overload:
// the drain spent 1.3 s of 3 s waiting for that lock, and 0.4 s running). A datagram
// socket needs no such lock: each sendto is one datagram. A write that finds the socket's
// send buffer full goes through net's WriteTo, which waits for room.
type admitMeter struct {
	*net.UDPConn
	rc     syscall.RawConn
	wake   chan struct{}        // sipgo's reader has emptied the queue: read the socket (nil: none)
	poll   func(time.Time) bool // whether to poll, besides while datagrams come (nil: only then)
	timer  rearm.Timer          // pollSleep, while datagrams come
	family int                  // the socket's address family: AF_INET, or AF_INET6 (maybe dual-stack)
	rx     time.Time            // when the kernel received the datagram read last; zero if not stamped
	last   time.Time            // when a datagram was read last
	oob    [64]byte
	// The read's arguments and results (ReadFrom, read), kept here so that nothing is
	// allocated per read.
	readFn  func(fd uintptr) bool
	own     rawSend // the drain's writes (writeOwn)
	ownSend func(fd uintptr)
	buf     []byte
	busy    bool
	n, oobn int
	rerr    syscall.Errno
	msg     unix.Msghdr
	iov     unix.Iovec
	from    unix.RawSockaddrAny
	// The addresses of recent sources, handed out again (source).
	srcs    [8]srcAddr
	nextSrc int
}

// pollSleep is the drain's sleep between reads of an empty socket while datagrams come.
const pollSleep = 500 * time.Microsecond

// meterUDP wraps c for admission control, or returns nil when it is not a UDP socket or
// the kernel does not stamp datagrams (the wait is then counted from the read).
func meterUDP(c net.PacketConn) *admitMeter {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	family := 0
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		if serr == nil {
			family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		}
	}); err != nil || serr != nil || (family != unix.AF_INET && family != unix.AF_INET6) {
		return nil
	}
	m := &admitMeter{UDPConn: uc, rc: rc, family: family}
	m.readFn, m.ownSend = m.read, m.own.send
	return m
}

// ReadFrom reads a datagram and its receive timestamp.
func (m *admitMeter) ReadFrom(p []byte) (int, net.Addr, error) {
	if len(p) == 0 {
		return 0, nil, errors.New("admit meter: read into an empty buffer")
	}
	m.buf = p
	defer func() { m.buf = nil }()
	for {
		m.busy = !m.last.IsZero() && time.Since(m.last) < admitInterval
		if !m.busy && m.poll != nil {
			m.busy = m.poll(time.Now())
		}
		if err := m.rc.Read(m.readFn); err != nil {
			return 0, nil, err // closed
		}
		switch m.rerr {
		case 0:
		case unix.EAGAIN:
			m.pause()
			continue
		case unix.EINTR:
			continue
		default:
			return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: m.LocalAddr(), Err: os.NewSyscallError("recvmsg", m.rerr)}
		}
		m.last = time.Now()
		m.rx, _ = rxTimestamp(m.oob[:m.oobn])
		return m.n, m.source(), nil
	}
}

// pause waits, while datagrams come, until sipgo's reader wants more or pollSleep has
// passed (or less: rearm.Timer).
func (m *admitMeter) pause() {
	select {
	case <-m.wake:
	case <-m.timer.After(pollSleep):
	}
}

// read is the function ReadFrom hands the socket (as readFn, made once: a closure made
// per read would allocate): it reads into m.buf, and asks to wait in the poller when the
// socket is empty and no datagram came lately.
func (m *admitMeter) read(fd uintptr) bool {
	m.n, m.oobn, m.rerr = m.recvmsg(fd, m.buf)
	return !(m.rerr == unix.EAGAIN && !m.busy)
}

// recvmsg reads one datagram into p without waiting (MSG_DONTWAIT), its source into
// m.from and its control messages into m.oob.
func (m *admitMeter) recvmsg(fd uintptr, p []byte) (n, oobn int, errno syscall.Errno) {
	m.iov.Base = &p[0]
	m.iov.SetLen(len(p))
	m.msg = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&m.from)), Namelen: unix.SizeofSockaddrAny, Iov: &m.iov, Iovlen: 1, Control: &m.oob[0]}
	m.msg.SetControllen(len(m.oob))
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&m.msg)), unix.MSG_DONTWAIT)
	if e != 0 {
		return 0, 0, e
	}
	return int(r), int(m.msg.Controllen), 0
}

// source is the source of the datagram read last, as net reports it. The addresses of the
// last few sources are kept and handed out again (a trunk and the business lines send
// from a few addresses), so that reading allocates nothing in the steady state: an
// allocation while the garbage collector marks makes the drain assist it, and an assist
// that finds the marking done runs its end (a runtime trace showed the drain held there
// for 0.8 s while the socket filled).
func (m *admitMeter) source() *net.UDPAddr {
	var ap netip.AddrPort
	zone := 0
	switch m.from.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&m.from))
		ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(netPort(&sa.Port)))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&m.from))
		ap, zone = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(netPort(&sa.Port))), int(sa.Scope_id)
	default:
		return &net.UDPAddr{}
	}
	if zone == 0 {
		for i := range m.srcs {
			if e := &m.srcs[i]; e.addr != nil && e.ap == ap {
				return e.addr
			}
		}
	}
	ip := ap.Addr().AsSlice() // 16 bytes for an IPv6 socket's sources, IPv4-mapped ones too, as net has them
	a := &net.UDPAddr{IP: ip, Port: int(ap.Port())}
	if zone != 0 {
		if ifc, err := net.InterfaceByIndex(zone); err == nil {
			a.Zone = ifc.Name
		}
		return a
	}
	m.srcs[m.nextSrc] = srcAddr{ap: ap, addr: a}
	m.nextSrc = (m.nextSrc + 1) % len(m.srcs)
	return a
}

// srcAddr is a source's address kept for reuse (admitMeter.source).
type srcAddr struct {
	ap   netip.AddrPort
	addr *net.UDPAddr
}

// WriteTo sends p to addr with a sendto of its own, without the descriptor's write lock
// (see admitMeter); when the socket's send buffer is full, or addr is one it does not
// write itself, through net's WriteTo. Safe for concurrent use.
func (m *admitMeter) WriteTo(p []byte, addr net.Addr) (int, error) {
	var w rawSend
	if !w.to(m.family, addr) || len(p) == 0 {
		return m.UDPConn.WriteTo(p, addr)
	}
	w.p = p
	return m.finishSend(&w, m.rc.Control(w.send), addr)
}

// writeOwn is WriteTo for the drain goroutine only: with the meter's own arguments, it
// allocates nothing.
func (m *admitMeter) writeOwn(p []byte, addr net.Addr) (int, error) {
	w := &m.own
	if !w.to(m.family, addr) || len(p) == 0 {
		return m.UDPConn.WriteTo(p, addr)
	}
	w.p = p
	n, err := m.finishSend(w, m.rc.Control(m.ownSend), addr)
	w.p = nil
	return n, err
}

func (m *admitMeter) finishSend(w *rawSend, cerr error, addr net.Addr) (int, error) {
	if cerr != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: m.LocalAddr(), Addr: addr, Err: cerr}
	}
	switch w.errno {
	case 0:
		return w.n, nil
	case unix.EAGAIN, unix.EINTR:
		return m.UDPConn.WriteTo(w.p, addr)
	}
	return 0, &net.OpError{Op: "write", Net: "udp", Source: m.LocalAddr(), Addr: addr, Err: os.NewSyscallError("sendto", w.errno)}
}

// rawSend is one sendto: its arguments and its outcome.
type rawSend struct {
	p     []byte
	sa4   unix.RawSockaddrInet4
	sa6   unix.RawSockaddrInet6
	sa    unsafe.Pointer
	salen uintptr
	n     int
	errno syscall.Errno
}

// to sets the destination for a socket of family: false when addr is not one to write
// with a sendto of our own (not UDP, or with a zone).
func (w *rawSend) to(family int, addr net.Addr) bool {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua.Zone != "" || ua.Port < 0 || ua.Port > 0xffff {
		return false
	}
	if ip4 := ua.IP.To4(); ip4 != nil && family == unix.AF_INET {
		w.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET}
		setNetPort(&w.sa4.Port, ua.Port)
		copy(w.sa4.Addr[:], ip4)
		w.sa, w.salen = unsafe.Pointer(&w.sa4), unix.SizeofSockaddrInet4
		return true
	}
	if ip16 := ua.IP.To16(); ip16 != nil && family == unix.AF_INET6 {
		w.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6}
		setNetPort(&w.sa6.Port, ua.Port)
		copy(w.sa6.Addr[:], ip16) // an IPv4 address as IPv4-mapped, for a dual-stack socket
		w.sa, w.salen = unsafe.Pointer(&w.sa6), unix.SizeofSockaddrInet6
		return true
	}
	return false
}

// send is the sendto, given the descriptor by RawConn.Control (a reference, no lock).
func (w *rawSend) send(fd uintptr) {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&w.p[0])), uintptr(len(w.p)), 0, uintptr(w.sa), w.salen)
	w.n, w.errno = int(n), e
}

// netPort reads a port kept in network byte order (a sockaddr's).
func netPort(p *uint16) int {
	b := (*[2]byte)(unsafe.Pointer(p))
	return int(b[0])<<8 | int(b[1])
}

// setNetPort writes port in network byte order.
func setNetPort(p *uint16, port int) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// rxTimestamp finds the SCM_TIMESTAMPNS control message (socket(7)) in oob without
// allocating: a cmsghdr (length, level, type) and a struct timespec.
func rxTimestamp(oob []byte) (time.Time, bool) {
	const hdr = int(unsafe.Sizeof(unix.Cmsghdr{}))
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return time.Time{}, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= hdr+int(unsafe.Sizeof(unix.Timespec{})) {
			var ts unix.Timespec
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts)), oob[hdr:l])
			return time.Unix(ts.Unix()), true
		}
		l = (l + unix.SizeofPtr - 1) &^ (unix.SizeofPtr - 1) // CMSG_ALIGN
		if l >= len(oob) {
			break
		}
		oob = oob[l:]
	}
	return time.Time{}, false
}

// admitConn is the switch's UDP socket as sipgo reads it. Its own reader goroutine (drain)
// reads the socket as fast as the datagrams come, through the edge (edgePacketConn), into a
// bounded queue in the process that sipgo's reader takes them from (ReadFrom). So the
// datagrams wait in a queue whose age the switch sees, not in the kernel's, and the drain
// decides on each new call over UDP as it arrives, before sipgo parses it: a refused INVITE
// gets its 503 at once, from the edge's scan (no parse, no transaction, no goroutine,
// nothing that lingers), however long the queue. It answers a refused INVITE's
// retransmissions with the same 503 and drops the ACK of that 503 (RFC 3261 §17.2.1: what
// the INVITE's server transaction would do), and queues everything else, the
// retransmissions of admitted INVITEs included. An INVITE without a branch goes on to
// sipgo, and the INVITE's handler decides (Switch.shed).
//
// The drain does little per datagram (a read, the edge's scan, a copy), allocates next to
// nothing and so is not made to assist the garbage collector: it keeps up while sipgo's
// reader, which parses and starts a goroutine per message, falls behind. When the queue is
// full a datagram is dropped, as the kernel would drop it; new calls are refused well
// before that (admission.allow: the queue's age).
type admitConn struct {
	*edgePacketConn // writes, LocalAddr, Close and SyscallConn go to the socket
	s               *Switch
	meter           *admitMeter // nil: no kernel timestamps
	q               dgramQueue
}

// udpReadBuffer is what a datagram is read into: sipgo's own read buffer
// (sip.TransportBufferReadSize), so that the edge's check for a cut datagram means the same.
const udpReadBuffer = 32768

// admitQueueLen is how many datagrams the queue holds: about half a second of the
// datagrams of 3,000 calls a second.
const admitQueueLen = 8192

func newAdmitConn(s *Switch, sock net.PacketConn) *admitConn {
	c := &admitConn{s: s}
	inner := sock
	if m := meterUDP(sock); m != nil {
		c.meter, inner = m, m
	}
	c.edgePacketConn = newEdgePacketConn(inner, s.edge)
	c.edgePacketConn.queued = true
	c.q.init(admitQueueLen)
	if c.meter != nil {
		c.meter.wake = c.q.drained
		c.meter.poll = s.adm.strained
	}
	return c
}

// drain reads the socket into the queue until the socket is closed (Switch.Close) or its
// read fails; then sipgo's reader gets the error once the queue is empty, and stops.
func (c *admitConn) drain() {
	buf := make([]byte, udpReadBuffer)
	for {
		n, addr, err := c.edgePacketConn.ReadFrom(buf)
		if err != nil {
			c.q.close(err)
			return
		}
		now := c.s.now()
		rx := now
		if c.meter != nil && !c.meter.rx.IsZero() {
			rx = c.meter.rx
		}
		if now.Sub(rx) > c.s.adm.target/4 {
			// The datagram waited in the socket: the drain woke late. It polls for a while.
			c.s.adm.strain(now)
		}
		b := buf[:n]
		ref := c.edgePacketConn.ref
		switch {
		case ref.method == methodInvite && ref.initial:
			if c.s.inv.admitted(ref.key) {
				break // a retransmission: sipgo's transaction answers it
			}
			if !c.s.inv.refused(ref.key) {
				wait := max(now.Sub(rx), c.q.age(now), c.s.adm.handlerWait(now))
				if c.q.full() {
					wait = maxWait
				}
				if reason := c.s.adm.allowSetup(now, wait, ref.key, true); reason == "" {
					c.s.inv.admit(ref.key, now)
					break
				}
				c.s.inv.refuse(ref.key)
			}
			if c.refuse(b, ref.key, addr) {
				continue
			}
		case ref.method == methodAck && c.s.inv.refused(ref.key):
			continue // the ACK of a 503 sent here: nothing more to do
		case ref.method == methodAnswer:
			c.s.adm.answered(ref.key, rx)
		}
		if !c.q.push(b, addr, rx) {
			c.s.adm.dropped()
		}
	}
}

// maxWait stands for the wait of an INVITE that finds the queue full.
const maxWait = time.Duration(1<<63 - 1)

// ReadFrom returns the next datagram of the queue to sipgo's reader, and tells the
// admission control how long it waited, from the kernel's receive timestamp.
func (c *admitConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, rx, err := c.q.pop(p)
	if err != nil {
		return 0, nil, err
	}
	now := c.s.now()
	c.s.adm.observe(now.Sub(rx), now)
	c.e.remember(p[:n], addr, c.edgePacketConn) // for sipgo's parse errors (edge.parseFailed)
	return n, addr, nil
}

// faultShed is the answer to a new call refused to shed load (RFC 3261 §21.5.4), with
// Retry-After (appendAnswer).
var faultShed = fault{503, "Service Unavailable"}

// refuse sends a refused INVITE, the datagram the edge passed last, its 503 with Retry-After
// as an edge answer, with a To tag made from its key so that a retransmission gets the very
// same answer. It reports whether it could.
func (c *admitConn) refuse(b []byte, key uint64, src net.Addr) bool {
	sc := &c.sc
	if c.normalized {
		sc.readMessage(b, false, &c.e.lim) // the scan was of the bytes before they were tightened
	}
	if !sc.request || !sc.answerable() {
		return false
	}
	sc.fault, sc.answerTag = faultShed, key|1
	c.out = c.e.appendAnswer(c.out[:0], sc, b) // the edge's buffer: the edge is done with it
	if err := c.sendOwn(c.out, replyAddr(sc, b, src)); err != nil {
		return false
	}
	c.e.sent(faultShed.code)
	return true
}

// dgramQueue is admitConn's queue of datagrams: a ring of slots whose buffers are reused,
// filled by the drain goroutine and emptied by sipgo's reader. Safe for that use.
type dgramQueue struct {
	mu    sync.Mutex
	slots []dgram
	head  int
	n     int
	err   error         // the read error that ended the drain
	ready chan struct{} // a token when the queue gets its first datagram, or is closed
	// drained: a token when the reader finds the queue empty and waits (the drain's wake).
	drained chan struct{}
}

type dgram struct {
	b    []byte
	addr net.Addr
	rx   time.Time // when the kernel received it (or the drain read it)
}

// dgramKeep is the largest buffer a slot keeps for reuse: a larger datagram's buffer goes
// once it is taken, so the slots hold at most admitQueueLen times this.
const dgramKeep = 4096

func (q *dgramQueue) init(n int) {
	q.slots = make([]dgram, n)
	q.ready = make(chan struct{}, 1)
	q.drained = make(chan struct{}, 1)
}

func (q *dgramQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push copies b into the queue; false when it is full.
func (q *dgramQueue) push(b []byte, addr net.Addr, rx time.Time) bool {
	q.mu.Lock()
	if q.n == len(q.slots) {
		q.mu.Unlock()
		return false
	}
	d := &q.slots[(q.head+q.n)%len(q.slots)]
	d.b = append(d.b[:0], b...)
	d.addr, d.rx = addr, rx
	q.n++
	first := q.n == 1
	q.mu.Unlock()
	if first {
		q.wake()
	}
	return true
}

// pop waits for the oldest datagram and copies it into p; once the queue is closed and
// empty it returns the error that closed it.
func (q *dgramQueue) pop(p []byte) (int, net.Addr, time.Time, error) {
	for {
		q.mu.Lock()
		if q.n > 0 {
			d := &q.slots[q.head]
			n := copy(p, d.b)
			addr, rx := d.addr, d.rx
			d.addr = nil
			if cap(d.b) > dgramKeep {
				d.b = nil
			}
			q.head = (q.head + 1) % len(q.slots)
			q.n--
			q.mu.Unlock()
			return n, addr, rx, nil
		}
		err := q.err
		q.mu.Unlock()
		if err != nil {
			return 0, nil, time.Time{}, err
		}
		select { // the drain may read the socket now rather than at its next timer
		case q.drained <- struct{}{}:
		default:
		}
		<-q.ready
	}
}

// close ends the queue with err once it is empty.
func (q *dgramQueue) close(err error) {
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
	q.wake()
}

// age is how long the oldest datagram in the queue has waited at now (0: empty).
func (q *dgramQueue) age(now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return 0
	}
	return now.Sub(q.slots[q.head].rx)
}

func (q *dgramQueue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n == len(q.slots)
}

// inviteKey is the key of an INVITE (and of the ACK of its non-2xx answer): a hash of its
// top Via's branch and its Call-ID.
func inviteKey(branch, callID []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(inviteSeed)
	h.Write(branch)
	h.WriteByte(0)
	h.Write(callID)
	return h.Sum64()
}

// answerKey is the key of a business line's INVITE by its Call-ID (admission.ringing).
func answerKey(callID []byte) uint64 {
	return maphash.Bytes(inviteSeed, callID)
}

// inviteSeed seeds the keys' hash; fixed for the process.
var inviteSeed = maphash.MakeSeed()

// inviteKeys remembers which INVITEs were admitted and which refused, by key, the last
// inviteKeysKept of each: long enough to cover an INVITE's retransmissions (RFC 3261
// Timer B, 32 s) at a few thousand calls a second. Safe for concurrent use.
type inviteKeys struct {
	mu  sync.Mutex
	adm keyRing
	ref keyRing
}

const inviteKeysKept = 1 << 16

func (k *inviteKeys) admitted(key uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.adm.has(key)
}

// admittedAt is when the INVITE with key was admitted, if it was.
func (k *inviteKeys) admittedAt(key uint64) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	at, ok := k.adm.set[key]
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, at), true
}

func (k *inviteKeys) refused(key uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ref.has(key)
}
func (k *inviteKeys) admit(key uint64, at time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.adm.add(key, at.UnixNano())
}
func (k *inviteKeys) refuse(key uint64) { k.mu.Lock(); defer k.mu.Unlock(); k.ref.add(key, 0) }

// keyRing is a set of the last inviteKeysKept keys added, each with a value.
type keyRing struct {
	set  map[uint64]int64
	ring []uint64
	next int
}

func (r *keyRing) has(key uint64) bool {
	_, ok := r.set[key]
	return ok
}

func (r *keyRing) add(key uint64, v int64) {
	if r.set == nil {
		r.set = make(map[uint64]int64, inviteKeysKept)
		r.ring = make([]uint64, 0, inviteKeysKept)
	}
	if _, ok := r.set[key]; ok {
		return
	}
	if len(r.ring) < inviteKeysKept {
		r.ring = append(r.ring, key)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = key
		r.next = (r.next + 1) % inviteKeysKept
	}
	r.set[key] = v
}
