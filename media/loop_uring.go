package media

import (
	"errors"
	"time"

	"github.com/trackline/trackline/media/uring"
	"golang.org/x/sys/unix"
)

// A loop on io_uring (Config.IO) keeps a multishot receive armed on each of its sockets: the
// kernel puts each datagram, with its source, into a buffer of the loop's provided-buffer
// ring, and the loop sends the relayed packet on from that same buffer. One io_uring_enter
// then submits a whole batch's sends and collects the next batch's datagrams, where epoll
// costs a wake-up plus a recvfrom and a send per datagram. The buffer goes back to the ring
// when its send completes.
//
// A socket's receive holds the socket open in the kernel, whatever close does to the
// descriptor: a released leg's receives are cancelled, and its sockets are closed and its
// ports returned only once their last completions arrived.

// Ring sizes. A batch of 1,000 calls' datagrams (2 ms at 500,000 packets/s) fits the
// completion queue many times over, and the kernel keeps completions that do not fit
// (IORING_FEAT_NODROP) until the loop has made room.
const (
	ringEntries   = 2048
	ringCQEntries = 16384
	ringBufSize   = 2048 // header and source address (32 bytes), then the datagram
	ringGroup     = 1
)

// ringBufs is the number of buffers in a loop's ring (a variable for tests that run short).
var ringBufs = 4096

// User data of the ring's operations: the kind in the top bits; a receive's socket (sock*)
// and port pair, or a send's buffer id, below.
const (
	udKind   = 0xf << 60
	udRecv   = 1 << 60 // | sock<<32 | pair
	udSend   = 2 << 60 // | buffer id
	udWake   = 3 << 60
	udCancel = 4 << 60
	udGen    = 5 << 60 // | generated frame buffer index
)

// Generated frames (prompts, tones, silence) go out through the ring too, from buffers of
// the loop's own: the frames of all the calls due in one tick are then one batch of sends
// that the loop's next io_uring_enter submits, where each would cost a system call of its
// own. sendmmsg cannot do this: it sends on one socket, and each leg sends from its own.
const (
	genBufs    = 4096 // per loop: a tick's frames at 500 calls a second with the 7 s prompt need ~900
	genBufSize = 512  // a frame's RTP header, payload (up to maxPtime) and SRTP tag, rounded up
)

// A leg's sockets in ringPair.fds.
const (
	sockRTP = iota
	sockRTCP
	sockStray
	nSocks
)

// ringIO is a loop's io_uring state, used by the loop's thread only.
type ringIO struct {
	l       *loop
	r       *uring.Ring
	br      *uring.BufRing
	pairs   []ringPair // by port pair; only the pairs of this loop's legs are in use
	rearm   []uint64   // receives that ended and are armed again after the batch
	retry   []uint64   // receives that ended with another error: armed again at retryAt
	retryAt int64      // when retry may next be armed (at most once a second)
	cancels []uint64   // receives of released pairs whose cancel could not be prepared
	waiting []int      // released pairs whose close waits for the submission queue to empty
	err     error      // the last error of io_uring_enter, logged once until it changes
	fixed   bool       // a registered file slot per pair, for the sends (see register)
	gen     []byte     // genBufs buffers of genBufSize for generated frames in flight
	genFree []uint16   // the indexes of gen's free buffers
	// genSent counts the generated frames sent through the ring (tests read it once the loop
	// has stopped).
	genSent uint64
}

// ringPair is the ring's view of one leg's sockets.
type ringPair struct {
	fds     [nSocks]int // -1: none
	armed   uint8       // bit k: a receive on fds[k] is in flight
	closing bool        // released: closed when no receive is left
	fixed   bool        // the RTP socket is in the ring's file slot of the pair's number
}

func recvData(pair, sock int) uint64 { return udRecv | uint64(sock)<<32 | uint64(uint32(pair)) }

// newRingIO sets up the ring on the calling (locked) thread, the only one that may use it.
func newRingIO(l *loop) (*ringIO, error) {
	r, err := uring.New(ringEntries, ringCQEntries)
	if err != nil {
		return nil, err
	}
	br, err := r.RegisterBufRing(ringGroup, ringBufs, ringBufSize)
	if err != nil {
		r.Close()
		return nil, err
	}
	if err := r.PollMultishot(l.wfd, unix.POLLIN, udWake); err != nil {
		r.Close()
		return nil, err
	}
	u := &ringIO{l: l, r: r, br: br, pairs: make([]ringPair, len(l.e.slots))}
	// A registered file per pair spares each send the lookup of its descriptor and a
	// reference on its file. Without the table (RLIMIT_NOFILE below the number of pairs)
	// the sends name descriptors, as they would on an older kernel.
	if err := r.RegisterFiles(len(u.pairs)); err != nil {
		l.log.Warn("io_uring sends look up each socket: no registered files", "err", err)
	} else {
		u.fixed = true
	}
	for i := range u.pairs {
		u.pairs[i].fds = [nSocks]int{-1, -1, -1}
	}
	u.gen = make([]byte, genBufs*genBufSize)
	u.genFree = make([]uint16, genBufs)
	for i := range u.genFree {
		u.genFree[i] = uint16(genBufs - 1 - i)
	}
	l.ring = u
	return u, nil
}

// maxTurn bounds the rounds of one turn of the ring loop: under a flood of datagrams the
// rounds would go on without end, and new calls' sockets, released ports, prompts' frames
// and timeouts wait for the turn's end.
const maxTurn = 2 * time.Millisecond

// runRing is the loop on its ring. Each turn submits the last batch's sends and waits for a
// completion or the next timer, then handles completions and lets the kernel run the
// receives that became ready, until a round brings no datagram (the kernel completes a
// bounded number of receives per io_uring_enter, and datagrams already there must not wait
// out a batch wait) or maxTurn has passed; then it sleeps out the rest of the batch wait.
func (l *loop) runRing(u *ringIO) {
	timeout := 1000
	batch := int64(l.e.cfg.BatchWait)
	for !l.stop.Load() {
		_, err := u.r.EnterTimeout(1, time.Duration(timeout)*time.Millisecond)
		u.check(err)
		start := monoNow() // the batch's time, and the batch wait's start
		n := 0
		for {
			got := u.completions(start)
			n += got
			if got == 0 || monoNow()-start >= int64(maxTurn) {
				break
			}
			_, err := u.r.Enter(0)
			u.check(err)
		}
		u.closeWaiting()
		if now := monoNow(); len(u.retry) > 0 && now >= u.retryAt {
			u.rearm = append(u.rearm, u.retry...)
			u.retry, u.retryAt = u.retry[:0], now+int64(time.Second)
		}
		u.armAgain()
		if l.pending.Load() {
			l.commands()
		}
		now := monoNow()
		timeout = l.tick(now)
		// Every batch that brought datagrams is followed by the rest of the batch wait, not
		// only a small one as on epoll: with the receives run until none are left, a batch
		// holds whatever arrived by then, and judged by its size the loop would wake at each
		// burst of arrivals (every 1 ms under the benchmark's generator) instead of every 2
		// ms. Under load a batch takes longer than the wait and the loop reads on at once.
		if n > 0 && batch > 0 {
			_, err := u.r.Submit() // this batch's sends go out before the loop sleeps
			u.check(err)
			l.batchWait(batch, start, now, timeout)
		}
	}
	for _, s := range l.sessions {
		l.release(s)
	}
	// Closing the ring ends every operation; then the sockets can close.
	u.r.Close()
	for pair := range u.pairs {
		if u.pairs[pair].fds[sockRTP] >= 0 {
			u.closePair(pair)
		}
	}
}

// check logs an error of io_uring_enter when it differs from the last one. EBUSY (the
// kernel holds completions the queue had no room for) needs nothing more: the loop consumes
// completions and enters again.
func (u *ringIO) check(err error) {
	if err == nil || errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN) {
		u.err = nil
		return
	}
	if u.err == nil || u.err.Error() != err.Error() {
		u.l.log.Error("io_uring_enter", "err", err)
	}
	u.err = err
	time.Sleep(10 * time.Millisecond)
}

// completions handles the completions in the queue and returns how many datagrams they
// brought.
func (u *ringIO) completions(now int64) int {
	n := 0
	for c, ok := u.r.Next(); ok; c, ok = u.r.Next() {
		switch c.UserData & udKind {
		case udRecv:
			if u.received(c, now) {
				n++
			}
		case udSend:
			u.br.Recycle(uint16(c.UserData))
			if c.Res < 0 {
				u.l.cnt.sendErr++
			} else {
				u.l.cnt.relayed++
			}
		case udGen:
			u.genFree = append(u.genFree, uint16(c.UserData))
			if c.Res < 0 {
				u.l.cnt.sendErr++
			}
		case udWake:
			u.l.drainWake()
			if !c.More() {
				u.rearm = append(u.rearm, udWake)
			}
		}
	}
	return n
}

// received handles a receive's completion: the datagram it carries, if any, then the end
// of the receive. In that order: a released pair's end closes it and returns its ports,
// which another call may take at once, and the datagram must not reach that call's leg. It
// says whether a datagram came.
func (u *ringIO) received(c uring.CQE, now int64) bool {
	pair, sock := int(uint32(c.UserData)), int(c.UserData>>32&0xff)
	if pair >= len(u.pairs) || sock >= nSocks {
		return false
	}
	got := u.datagram(c, pair, sock, now)
	if !c.More() {
		u.ended(pair, sock, c.Res)
	}
	return got
}

// datagram relays the datagram a receive's completion carries, if any, and says whether
// there was one.
func (u *ringIO) datagram(c uring.CQE, pair, sock int, now int64) bool {
	bid, ok := c.Buffer()
	if !ok || c.Res < 0 {
		return false
	}
	l := u.l
	b := u.br.Buf(bid)[:c.Res]
	from, p, ok := uring.ParseRecvMsg(b)
	lg := l.e.slots[pair].Load()
	if !ok || lg == nil {
		// Released, or a datagram larger than a buffer: neither is RTP to relay.
		if uring.Truncated(b) {
			l.cnt.oversized++
		}
		u.br.Recycle(bid)
		return true
	}
	if sock == sockRTCP {
		l.cnt.rtcp++
		u.br.Recycle(bid)
		return true
	}
	src := toRaw(from)
	out, ok := l.relay(lg, p, &src, now)
	if !ok {
		u.br.Recycle(bid)
		return true
	}
	var err error
	fixed := u.pairs[out.pair].fixed
	switch {
	case out.connected && fixed:
		err = u.r.SendFixed(out.pair, p[:out.n], udSend|uint64(bid))
	case out.connected:
		err = u.r.Send(out.fd, p[:out.n], udSend|uint64(bid))
	case fixed:
		err = u.r.SendToFixed(out.pair, p[:out.n], &out.dest, udSend|uint64(bid))
	default:
		err = u.r.SendTo(out.fd, p[:out.n], &out.dest, udSend|uint64(bid))
	}
	if err != nil {
		l.cnt.sendErr++
		u.br.Recycle(bid)
	}
	return true
}

// sendGenerated prepares the send of the generated frame p into lg from one of the loop's
// frame buffers; the loop's next io_uring_enter submits it with the rest of the tick's.
// False when it could not: then the caller sends p itself, after the prepared sends have
// been submitted, so that a leg's frames stay in order.
func (u *ringIO) sendGenerated(lg *leg, p []byte) bool {
	n := len(u.genFree)
	if n == 0 || len(p) > genBufSize {
		_, err := u.r.Submit()
		u.check(err)
		return false
	}
	i := u.genFree[n-1]
	b := u.gen[int(i)*genBufSize:][:len(p):genBufSize]
	copy(b, p)
	ud := udGen | uint64(i)
	var err error
	fixed := u.pairs[lg.pair].fixed
	switch {
	case lg.connected && fixed:
		err = u.r.SendFixed(lg.pair, b, ud)
	case lg.connected:
		err = u.r.Send(lg.fd, b, ud)
	case fixed: // a prompt plays before the leg has latched: most frames go this way
		err = u.r.SendToFixed(lg.pair, b, &lg.dest, ud)
	default:
		err = u.r.SendTo(lg.fd, b, &lg.dest, ud)
	}
	if err != nil {
		_, err := u.r.Submit()
		u.check(err)
		return false
	}
	u.genFree = u.genFree[:n-1]
	u.genSent++
	return true
}

// ended notes that a receive posted its last completion, with result res: a released leg's
// sockets close once none is left. Any other receive is armed again: after the batch when it
// ran out of buffers (they come back as the batch's sends complete) or met ECONNREFUSED (an
// ICMP port unreachable from the far end, reported once); after any other error at most
// once a second, so that an error that repeats cannot keep the loop from sleeping.
func (u *ringIO) ended(pair, sock int, res int32) {
	p := &u.pairs[pair]
	p.armed &^= 1 << sock
	if p.closing {
		if p.armed == 0 {
			u.closePair(pair)
		}
		return
	}
	switch e := unix.Errno(-res); {
	case res >= 0, e == unix.ENOBUFS, e == unix.ECONNREFUSED:
		u.rearm = append(u.rearm, recvData(pair, sock))
	default:
		if len(u.retry) == 0 {
			u.l.log.Warn("RTP receive failed: armed again, at most once a second", "port", u.port(pair, sock), "err", e)
		}
		u.retry = append(u.retry, recvData(pair, sock))
	}
}

// port is the UDP port of one of a pair's sockets.
func (u *ringIO) port(pair, sock int) int {
	port := u.l.e.ports.port(pair)
	if sock == sockRTCP {
		port++
	}
	return port
}

// armAgain arms the receives that ended in this batch, now that the sends' buffers have
// come back, and the wake-up poll if it ended.
func (u *ringIO) armAgain() {
	cancels := u.cancels
	u.cancels = nil // cancel appends what fails again
	for _, ud := range cancels {
		pair, sock := int(uint32(ud)), int(ud>>32&0xff)
		if p := &u.pairs[pair]; p.closing && p.armed&(1<<sock) != 0 {
			u.cancel(pair, sock)
		}
	}
	for _, ud := range u.rearm {
		if ud == udWake {
			if err := u.r.PollMultishot(u.l.wfd, unix.POLLIN, udWake); err != nil {
				u.l.log.Error("arm the packet loop's wake-up", "err", err)
				u.retry = append(u.retry, udWake)
			}
			continue
		}
		pair, sock := int(uint32(ud)), int(ud>>32&0xff)
		p := &u.pairs[pair]
		// A pair released, or released and taken again, in this batch is left alone.
		if !p.closing && p.fds[sock] >= 0 && p.armed&(1<<sock) == 0 {
			u.arm(pair, sock)
		}
	}
	u.rearm = u.rearm[:0]
}

// arm starts the multishot receive on one of a pair's sockets; false if it could not, and
// then it is tried again with the receives that failed (at most once a second).
func (u *ringIO) arm(pair, sock int) bool {
	p := &u.pairs[pair]
	if err := u.r.RecvMsgMultishot(p.fds[sock], u.br.Group(), recvData(pair, sock)); err != nil {
		u.l.log.Error("arm RTP receive", "port", u.port(pair, sock), "err", err)
		u.retry = append(u.retry, recvData(pair, sock))
		return false
	}
	p.armed |= 1 << sock
	return true
}

// register arms the receives on a new leg's RTP and RTCP sockets, and puts its RTP socket
// in the pair's file slot for the sends.
func (u *ringIO) register(lg *leg) bool {
	p := &u.pairs[lg.pair]
	*p = ringPair{fds: [nSocks]int{lg.fd, lg.rtcp, -1}}
	if u.fixed {
		if err := u.r.SetFile(lg.pair, lg.fd); err != nil {
			u.l.log.Error("register RTP socket with io_uring", "port", lg.port, "err", err)
		} else {
			p.fixed = true
		}
	}
	rtp := u.arm(lg.pair, sockRTP)
	return u.arm(lg.pair, sockRTCP) && rtp
}

// addStray arms the receive on a leg's new stray socket.
func (u *ringIO) addStray(pair, fd int) {
	u.pairs[pair].fds[sockStray] = fd
	u.arm(pair, sockStray)
}

// release cancels a leg's receives; its sockets close and its ports return when the last
// of them has ended (ended), or at once if none is in flight.
func (u *ringIO) release(lg *leg) {
	p := &u.pairs[lg.pair]
	p.fds = [nSocks]int{lg.fd, lg.rtcp, max(lg.stray, -1)}
	if p.armed == 0 {
		u.closePair(lg.pair)
		return
	}
	p.closing = true
	for sock := range nSocks {
		if p.armed&(1<<sock) != 0 {
			u.cancel(lg.pair, sock)
		}
	}
}

// cancel cancels the receive on one of a released pair's sockets; when the cancel cannot be
// prepared, it is tried again after the batch (armAgain), or the pair would never close.
func (u *ringIO) cancel(pair, sock int) {
	if err := u.r.CancelUserData(recvData(pair, sock), udCancel); err != nil {
		u.l.log.Error("cancel RTP receive", "port", u.port(pair, sock), "err", err)
		u.cancels = append(u.cancels, recvData(pair, sock))
	}
}

// closePair closes a released pair's sockets and returns its ports. Sends prepared in this
// batch may still name the sockets: they are submitted first, so that the kernel has taken
// their files before a descriptor number can be reused; if the kernel did not take them all
// (it refuses new work while completions it could not post are waiting), the close waits
// for the queue to empty (closeWaiting). The file slot is emptied before the port returns:
// the ring's reference would keep the socket bound.
func (u *ringIO) closePair(pair int) {
	if u.r.Pending() > 0 {
		_, err := u.r.Submit()
		u.check(err)
		if u.r.Pending() > 0 {
			u.waiting = append(u.waiting, pair)
			return
		}
	}
	u.closeNow(pair)
}

// closeWaiting closes the released pairs that waited for the submission queue to empty, once
// it has.
func (u *ringIO) closeWaiting() {
	if len(u.waiting) == 0 {
		return
	}
	if _, err := u.r.Submit(); err != nil || u.r.Pending() > 0 {
		u.check(err)
		return
	}
	for _, pair := range u.waiting {
		u.closeNow(pair)
	}
	u.waiting = u.waiting[:0]
}

// closeNow closes a released pair's sockets and returns its ports; nothing in the
// submission queue may name them.
func (u *ringIO) closeNow(pair int) {
	p := &u.pairs[pair]
	if p.fixed {
		// After the ring's Close (the loop's end) the kernel drops the table by itself.
		if err := u.r.SetFile(pair, -1); err != nil && !errors.Is(err, uring.ErrClosed) {
			u.l.log.Error("unregister RTP socket from io_uring", "port", u.port(pair, sockRTP), "err", err)
		}
	}
	for _, fd := range p.fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	*p = ringPair{fds: [nSocks]int{-1, -1, -1}}
	u.l.e.ports.put(pair)
}
