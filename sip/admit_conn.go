package sip

import (
	"hash/maphash"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// admitMeter is the switch's UDP socket as admitConn's reader goroutine reads it: each
// datagram is read with the kernel's receive timestamp (SO_TIMESTAMPNS), so that the time
// it waits, in the socket's queue and then in admitConn's, can be told. It passes every
// datagram on unchanged; writes and everything else go straight to the socket. It is read
// by one goroutine only.
//
// While datagrams come (one within the last admitInterval) it does not wait for the next
// in Go's network poller but sleeps pollSleep and reads again: a goroutine the poller wakes
// while every P is busy joins the back of the scheduler's global queue, behind every
// goroutine the load has made runnable (seconds, under a step to twice the load), while a
// goroutine a timer wakes runs next on the P that ran the timer. Idle, it waits in the
// poller.
type admitMeter struct {
	*net.UDPConn
	rc   syscall.RawConn
	rx   time.Time // when the kernel received the datagram read last; zero if not stamped
	last time.Time // when a datagram was read last
	oob  [64]byte
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
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return nil
	}
	return &admitMeter{UDPConn: uc, rc: rc}
}

// ReadFrom reads a datagram and its receive timestamp.
func (m *admitMeter) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		var (
			n, oobn int
			from    unix.Sockaddr
			rerr    error
		)
		busy := !m.last.IsZero() && time.Since(m.last) < admitInterval
		err := m.rc.Read(func(fd uintptr) bool {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), p, m.oob[:], unix.MSG_DONTWAIT)
			return !(rerr == unix.EAGAIN && !busy) // idle: wait in the poller
		})
		if err != nil {
			return 0, nil, err // closed
		}
		switch rerr {
		case nil:
		case unix.EAGAIN:
			time.Sleep(pollSleep)
			continue
		case unix.EINTR:
			continue
		default:
			return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: m.LocalAddr(), Err: rerr}
		}
		m.last = time.Now()
		m.rx, _ = rxTimestamp(m.oob[:oobn])
		return n, sockaddrUDP(from), nil
	}
}

// sockaddrUDP is a received datagram's source as net reports it.
func sockaddrUDP(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.UDPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port} // sa is the read's own
	case *unix.SockaddrInet6:
		a := &net.UDPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifc, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifc.Name
			}
		}
		return a
	}
	return &net.UDPAddr{}
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
				if reason := c.s.adm.allow(now, wait); reason == "" {
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
	if err := c.sendAnswer(c.out, replyAddr(sc, b, src)); err != nil {
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
