//go:build linux

package uring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newRing locks the test's goroutine to its thread (the ring's single issuer) and creates
// a ring that the test's cleanup closes; it skips the test where io_uring is unavailable.
func newRing(t testing.TB, entries uint32) *Ring {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	runtime.LockOSThread()
	r, err := New(entries, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		runtime.UnlockOSThread()
	})
	return r
}

var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// udpSocket is a non-blocking UDP socket bound to 127.0.0.1:port (0: any port), closed
// by the test's cleanup unless closed before.
func udpSocket(t testing.TB, port uint16) (int, netip.AddrPort) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback.As4(), Port: int(port)}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind 127.0.0.1:%d: %v", port, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, localAddr(t, fd)
}

func localAddr(t testing.TB, fd int) netip.AddrPort {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	a := sa.(*unix.SockaddrInet4)
	return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
}

func connectFD(t testing.TB, fd int, to netip.AddrPort) {
	t.Helper()
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())}); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// pump waits for completions and hands them to fn until done says so, for at most 5 s.
func pump(t testing.TB, r *Ring, fn func(CQE), done func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for completions")
		}
		if _, err := r.EnterTimeout(1, 100*time.Millisecond); err != nil {
			t.Fatalf("EnterTimeout: %v", err)
		}
		for c, ok := r.Next(); ok; c, ok = r.Next() {
			fn(c)
		}
	}
}

// packet is a datagram of the relay tests: the pair, the sequence number and a pattern.
func packet(pair, seq int) []byte {
	p := make([]byte, 172)
	p[0] = byte(pair)
	binary.BigEndian.PutUint32(p[1:], uint32(seq))
	for i := 5; i < len(p); i++ {
		p[i] = byte(seq + i)
	}
	return p
}

const sendTag = 1 << 62

func TestAvailable(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	t.Logf("io_uring available on %s", unix.ByteSliceToString(uts.Release[:]))
}

// TestRelay relays datagrams of two pairs: one sent on with SEND on a connected socket,
// one with SEND to an explicit address on an unconnected one.
func TestRelay(t *testing.T) {
	r := newRing(t, 16)
	br, err := r.RegisterBufRing(1, 8, 2048)
	if err != nil {
		t.Fatal(err)
	}
	type pair struct {
		in, out int
		client  *net.UDPConn
		far     *net.UDPConn
		farRaw  unix.RawSockaddrInet4
		outAddr netip.AddrPort
		next    int // next sequence number expected at the far end
	}
	var pairs [2]pair
	for i := range pairs {
		p := &pairs[i]
		var inAddr netip.AddrPort
		p.in, inAddr = udpSocket(t, 0)
		p.out, p.outAddr = udpSocket(t, 0)
		p.far, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.far.Close() })
		farAddr := p.far.LocalAddr().(*net.UDPAddr).AddrPort()
		p.farRaw = SockaddrInet4(netip.AddrPortFrom(loopback, farAddr.Port()))
		if i == 0 {
			connectFD(t, p.out, farAddr) // pair 0: SEND on a connected socket
		}
		p.client, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(inAddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.client.Close() })
		if err := r.RecvMsgMultishot(p.in, br.Group(), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}

	const rounds, burst = 40, 3 // 240 datagrams through 8 buffers
	received, sent := 0, 0
	handle := func(c CQE) {
		if c.UserData&sendTag != 0 {
			bid := uint16(c.UserData)
			if c.Res != 172 {
				t.Fatalf("send completed with %d: %v", c.Res, c.Err())
			}
			br.Recycle(bid)
			sent++
			return
		}
		p := &pairs[c.UserData]
		if !c.More() {
			t.Fatalf("pair %d: multishot receive ended: %d %v", c.UserData, c.Res, c.Err())
		}
		bid, ok := c.Buffer()
		if !ok || c.Res < 0 {
			t.Fatalf("pair %d: receive without a buffer: %d %v", c.UserData, c.Res, c.Err())
		}
		from, payload, ok := ParseRecvMsg(br.Buf(bid)[:c.Res])
		if !ok {
			t.Fatalf("pair %d: unparsable buffer % x", c.UserData, br.Buf(bid)[:c.Res])
		}
		if want := p.client.LocalAddr().(*net.UDPAddr).AddrPort(); from != want {
			t.Fatalf("pair %d: source %v, want %v", c.UserData, from, want)
		}
		received++
		if c.UserData == 0 {
			err = r.Send(p.out, payload, sendTag|uint64(bid))
		} else {
			err = r.SendTo(p.out, payload, &p.farRaw, sendTag|uint64(bid))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	for round := 0; round < rounds; round++ {
		for k := 0; k < burst; k++ {
			for i := range pairs {
				p := &pairs[i]
				if _, err := p.client.Write(packet(i, round*burst+k)); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := (round + 1) * burst * len(pairs)
		pump(t, r, handle, func() bool { return received == want && sent == want })
		for i := range pairs {
			p := &pairs[i]
			for k := 0; k < burst; k++ {
				p.far.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, from, err := p.far.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("pair %d: far end: %v", i, err)
				}
				if from != p.outAddr {
					t.Fatalf("pair %d: far end got a datagram from %v, want %v", i, from, p.outAddr)
				}
				if want := packet(i, p.next); !bytes.Equal(buf[:n], want) {
					t.Fatalf("pair %d: datagram %d arrived as % x", i, p.next, buf[:min(n, 8)])
				}
				p.next++
			}
		}
	}
	if r.Overflow() != 0 {
		t.Errorf("completion queue overflow %d", r.Overflow())
	}
}

// TestBufferExhaustion: with few buffers, a burst ends the multishot receive with
// -ENOBUFS; re-armed after recycling, it gets the rest of the burst.
func TestBufferExhaustion(t *testing.T) {
	r := newRing(t, 8)
	const nbuf, total = 4, 32
	br, err := r.RegisterBufRing(2, nbuf, 512)
	if err != nil {
		t.Fatal(err)
	}
	in, inAddr := udpSocket(t, 0)
	client, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(inAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for i := 0; i < total; i++ {
		if _, err := client.Write(packet(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RecvMsgMultishot(in, br.Group(), 7); err != nil {
		t.Fatal(err)
	}
	next, ended, armed := 0, 0, true
	var held []uint16
	handle := func(c CQE) {
		if bid, ok := c.Buffer(); ok {
			_, payload, ok := ParseRecvMsg(br.Buf(bid)[:c.Res])
			if !ok || !bytes.Equal(payload, packet(0, next)) {
				t.Fatalf("datagram %d: bad buffer (ok %v)", next, ok)
			}
			next++
			held = append(held, bid)
		}
		if !c.More() {
			if c.Res != -int32(unix.ENOBUFS) {
				t.Fatalf("multishot receive ended with %d %v, want ENOBUFS", c.Res, c.Err())
			}
			ended++
			armed = false
		}
	}
	for next < total {
		pump(t, r, handle, func() bool { return !armed || next == total })
		if len(held) > nbuf {
			t.Fatalf("%d buffers in hand, the ring has %d", len(held), nbuf)
		}
		for _, bid := range held {
			br.Recycle(bid)
		}
		held = held[:0]
		if !armed {
			if err := r.RecvMsgMultishot(in, br.Group(), 7); err != nil {
				t.Fatal(err)
			}
			armed = true
		}
	}
	if ended == 0 {
		t.Fatalf("the multishot receive never ran out of buffers")
	}
	t.Logf("%d datagrams through %d buffers; the receive ran out of buffers %d times", total, nbuf, ended)
}

// TestCancel: cancelling a socket's receive (by descriptor, then by user data) yields
// its last completion, after which the socket can be closed and its port bound again.
func TestCancel(t *testing.T) {
	r := newRing(t, 8)
	br, err := r.RegisterBufRing(3, 4, 512)
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// receiveOne sends a datagram to port and checks that the receive ud gets it.
	receiveOne := func(port uint16, ud uint64, seq int) {
		t.Helper()
		if _, err := client.WriteToUDPAddrPort(packet(1, seq), netip.AddrPortFrom(loopback, port)); err != nil {
			t.Fatal(err)
		}
		got := false
		pump(t, r, func(c CQE) {
			bid, ok := c.Buffer()
			if c.UserData != ud || !ok || !c.More() {
				t.Fatalf("unexpected completion %+v", c)
			}
			_, payload, ok := ParseRecvMsg(br.Buf(bid)[:c.Res])
			if !ok || !bytes.Equal(payload, packet(1, seq)) {
				t.Fatalf("datagram %d: bad buffer", seq)
			}
			br.Recycle(bid)
			got = true
		}, func() bool { return got })
	}
	// cancelled waits for the receive's last completion and the cancel's.
	cancelled := func(ud, cancelUD uint64, cancelRes int32) {
		t.Helper()
		last, done := false, false
		pump(t, r, func(c CQE) {
			switch c.UserData {
			case ud:
				if c.More() || c.Res != -int32(unix.ECANCELED) {
					t.Fatalf("receive %d: completion %+v, want its last with ECANCELED", ud, c)
				}
				last = true
			case cancelUD:
				if c.Res != cancelRes {
					t.Fatalf("cancel: res %d %v, want %d", c.Res, c.Err(), cancelRes)
				}
				done = true
			default:
				t.Fatalf("unexpected completion %+v", c)
			}
		}, func() bool { return last && done })
	}

	fd, addr := udpSocket(t, 0)
	if err := r.RecvMsgMultishot(fd, br.Group(), 10); err != nil {
		t.Fatal(err)
	}
	receiveOne(addr.Port(), 10, 0)
	if err := r.CancelFD(fd, 100); err != nil {
		t.Fatal(err)
	}
	cancelled(10, 100, 1) // CANCEL_ALL: the number cancelled
	if err := unix.Close(fd); err != nil {
		t.Fatal(err)
	}

	fd2, addr2 := udpSocket(t, addr.Port())
	if addr2 != addr {
		t.Fatalf("bound %v, want %v", addr2, addr)
	}
	if err := r.RecvMsgMultishot(fd2, br.Group(), 11); err != nil {
		t.Fatal(err)
	}
	receiveOne(addr.Port(), 11, 1)
	receiveOne(addr.Port(), 11, 2)
	if err := r.CancelUserData(11, 101); err != nil {
		t.Fatal(err)
	}
	cancelled(11, 101, 0)
	// Nothing is left to cancel.
	if err := r.CancelUserData(11, 102); err != nil {
		t.Fatal(err)
	}
	done := false
	pump(t, r, func(c CQE) {
		if c.UserData != 102 || c.Res != -int32(unix.ENOENT) {
			t.Fatalf("completion %+v, want the cancel's with ENOENT", c)
		}
		done = true
	}, func() bool { return done })
}

// TestSubmissionQueueFull: preparing more entries than the queue holds submits on the way.
func TestSubmissionQueueFull(t *testing.T) {
	r := newRing(t, 4)
	const n = 50
	for i := 0; i < n; i++ {
		if err := r.Nop(uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	pump(t, r, func(c CQE) {
		if c.UserData != uint64(got) || c.Res != 0 {
			t.Fatalf("completion %+v, want no-op %d", c, got)
		}
		got++
	}, func() bool { return got == n })
	if r.Overflow() != 0 {
		t.Errorf("overflow %d", r.Overflow())
	}
}

// TestPollMultishot: a multishot poll on an eventfd reports each wake-up.
func TestPollMultishot(t *testing.T) {
	r := newRing(t, 4)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := r.PollMultishot(efd, unix.POLLIN, 5); err != nil {
		t.Fatal(err)
	}
	var one = [8]byte{1}
	var b [8]byte
	for i := 0; i < 3; i++ {
		if _, err := unix.Write(efd, one[:]); err != nil {
			t.Fatal(err)
		}
		got := false
		pump(t, r, func(c CQE) {
			if c.UserData != 5 || c.Res&unix.POLLIN == 0 || !c.More() {
				t.Fatalf("completion %+v", c)
			}
			got = true
		}, func() bool { return got })
		if _, err := unix.Read(efd, b[:]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWaitYieldsToGC: a goroutine waiting in Enter with no timeout does not hold up a
// garbage collection's stop-the-world: the runtime's signal ends the wait.
func TestWaitYieldsToGC(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	fd, addr := udpSocket(t, 0)
	ready, woke := make(chan error, 1), make(chan error, 1)
	var waits atomic.Int32 // Enter's returns: the runtime's signals, then the datagram
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		r, err := New(4, 0)
		if err == nil {
			_, err = r.RegisterBufRing(1, 2, 256)
		}
		if err == nil {
			err = r.RecvMsgMultishot(fd, 1, 1)
		}
		if err == nil {
			_, err = r.Enter(0)
		}
		ready <- err
		if err != nil {
			return
		}
		defer r.Close()
		for {
			if _, err := r.Enter(1); err != nil {
				woke <- err
				return
			}
			waits.Add(1)
			if c, ok := r.Next(); ok {
				woke <- c.Err()
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let it sleep in io_uring_enter
	start := time.Now()
	runtime.GC()
	d := time.Since(start)
	if d > time.Second {
		t.Errorf("runtime.GC took %v while a goroutine waited in Enter", d)
	}
	t.Logf("runtime.GC took %v while a goroutine waited in Enter", d)
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("wake")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Enter returned %d times", waits.Load())
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting goroutine did not get the datagram")
	}
}

func TestClosed(t *testing.T) {
	r := newRing(t, 4)
	r.Nop(1)
	r.Nop(2)
	if _, err := r.Enter(2); err != nil {
		t.Fatal(err)
	}
	if c, ok := r.Next(); !ok || c.UserData != 1 {
		t.Fatalf("Next: %+v %v", c, ok)
	}
	r.Nop(3) // left unsubmitted, with a completion left unread
	r.Close()
	if r.Pending() != 0 || r.Ready() != 0 || r.Overflow() != 0 {
		t.Errorf("after Close: pending %d, ready %d, overflow %d", r.Pending(), r.Ready(), r.Overflow())
	}
	if err := r.Nop(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Nop after Close: %v", err)
	}
	if _, err := r.Enter(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Enter after Close: %v", err)
	}
	if _, ok := r.Next(); ok {
		t.Errorf("Next after Close returned a completion")
	}
}

// relayRound is one datagram in through a multishot receive and out through SEND, with
// raw system calls on both ends: the zero-allocation check and the benchmark.
type relayRound struct {
	r           *Ring
	br          *BufRing
	client, in  int
	out, far    int
	pkt, farBuf []byte
	sentRes     int32
}

func newRelayRound(t testing.TB) *relayRound {
	r := newRing(t, 16)
	br, err := r.RegisterBufRing(1, 16, 2048)
	if err != nil {
		t.Fatal(err)
	}
	x := &relayRound{r: r, br: br, pkt: packet(0, 1), farBuf: make([]byte, 2048)}
	var inAddr, farAddr netip.AddrPort
	x.in, inAddr = udpSocket(t, 0)
	x.client, _ = udpSocket(t, 0)
	connectFD(t, x.client, inAddr)
	x.far, farAddr = udpSocket(t, 0)
	if err := unix.SetNonblock(x.far, false); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(x.far, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	x.out, _ = udpSocket(t, 0)
	connectFD(t, x.out, farAddr)
	if err := r.RecvMsgMultishot(x.in, br.Group(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	return x
}

// round relays one datagram; it returns an error message or "".
func (x *relayRound) round() string {
	if _, err := unix.Write(x.client, x.pkt); err != nil {
		return "client write: " + err.Error()
	}
	got, sent := false, false
	for !got || !sent {
		if _, err := x.r.EnterTimeout(1, time.Second); err != nil {
			return err.Error()
		}
		for c, ok := x.r.Next(); ok; c, ok = x.r.Next() {
			if c.UserData&sendTag != 0 {
				x.sentRes = c.Res
				x.br.Recycle(uint16(c.UserData))
				sent = true
				continue
			}
			bid, ok := c.Buffer()
			if !ok || !c.More() {
				return "receive ended or without a buffer"
			}
			_, payload, ok := ParseRecvMsg(x.br.Buf(bid)[:c.Res])
			if !ok {
				return "unparsable buffer"
			}
			if err := x.r.Send(x.out, payload, sendTag|uint64(bid)); err != nil {
				return err.Error()
			}
			got = true
		}
	}
	n, err := unix.Read(x.far, x.farBuf)
	if err != nil {
		return "far read: " + err.Error()
	}
	if n != len(x.pkt) || int(x.sentRes) != n {
		return "short datagram"
	}
	return ""
}

func TestZeroAllocs(t *testing.T) {
	x := newRelayRound(t)
	if msg := x.round(); msg != "" { // warm up
		t.Fatal(msg)
	}
	var msg string
	allocs := testing.AllocsPerRun(500, func() {
		if m := x.round(); m != "" {
			msg = m
		}
	})
	if msg != "" {
		t.Fatal(msg)
	}
	if !bytes.Equal(x.farBuf[:len(x.pkt)], x.pkt) {
		t.Fatal("relayed datagram differs")
	}
	if allocs != 0 {
		t.Errorf("%v allocations per relayed datagram, want 0", allocs)
	}
}

// BenchmarkRelayRound: one datagram in and out through the ring over loopback, with the
// client's write and the far end's read (plain system calls) in the figure.
func BenchmarkRelayRound(b *testing.B) {
	x := newRelayRound(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if msg := x.round(); msg != "" {
			b.Fatal(msg)
		}
	}
}

// TestSendToAddresses: sends to different addresses in one submission each get their own
// destination (SendTo copies the address into the entry's slot of the ring's memory).
func TestSendToAddresses(t *testing.T) {
	r := newRing(t, 8)
	out, outAddr := udpSocket(t, 0)
	var fars [3]*net.UDPConn
	for i := range fars {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fars[i] = c
	}
	const n = 20 // more than the queue holds: slots are reused on the way
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = packet(i%len(fars), i)
		to := SockaddrInet4(fars[i%len(fars)].LocalAddr().(*net.UDPAddr).AddrPort())
		if err := r.SendTo(out, payloads[i], &to, uint64(i)); err != nil {
			t.Fatal(err)
		}
		to = unix.RawSockaddrInet4{} // the ring has its own copy
	}
	done := 0
	pump(t, r, func(c CQE) {
		if c.Res != int32(len(payloads[c.UserData])) {
			t.Fatalf("send %d: %d %v", c.UserData, c.Res, c.Err())
		}
		done++
	}, func() bool { return done == n })
	buf := make([]byte, 512)
	for i := 0; i < n; i++ {
		far := fars[i%len(fars)]
		far.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, from, err := far.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if from != outAddr || !bytes.Equal(buf[:m], payloads[i]) {
			t.Fatalf("far %d: datagram from %v % x, want datagram %d from %v", i%len(fars), from, buf[:min(m, 8)], i, outAddr)
		}
	}
}

// TestRegisteredFiles sends through file slots: a slot holds its own reference to the
// socket (a closed descriptor still sends, and its port stays bound) until it is emptied.
func TestRegisteredFiles(t *testing.T) {
	r := newRing(t, 8)
	if err := r.SetFile(0, 0); err == nil {
		t.Fatal("SetFile before RegisterFiles succeeded")
	}
	if err := r.RegisterFiles(4); err != nil {
		t.Fatalf("RegisterFiles: %v", err)
	}
	if r.files != 4 {
		t.Fatalf("%d file slots, want 4", r.files)
	}
	far, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	// A socket of its own, not udpSocket's: it is closed here, and a second close in the
	// cleanup could hit a descriptor number in use again.
	out, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(out, &unix.SockaddrInet4{Addr: loopback.As4()}); err != nil {
		unix.Close(out)
		t.Fatal(err)
	}
	outAddr := localAddr(t, out)
	connectFD(t, out, far.LocalAddr().(*net.UDPAddr).AddrPort())
	for _, slot := range []int{-1, 4} {
		if err := r.SetFile(slot, out); err == nil {
			t.Fatalf("SetFile(%d) outside the table succeeded", slot)
		}
	}
	if err := r.SetFile(2, out); err != nil {
		t.Fatalf("SetFile: %v", err)
	}
	unix.Close(out) // the slot keeps the socket

	send := func(slot int, p []byte) CQE {
		t.Helper()
		if err := r.SendFixed(slot, p, uint64(slot)); err != nil {
			t.Fatal(err)
		}
		var got CQE
		pump(t, r, func(c CQE) { got = c }, func() bool { return got.UserData == uint64(slot) && got != (CQE{}) })
		return got
	}
	p := packet(2, 1)
	if c := send(2, p); c.Res != int32(len(p)) {
		t.Fatalf("send on slot 2: %d %v", c.Res, c.Err())
	}
	buf := make([]byte, 512)
	far.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := far.ReadFromUDPAddrPort(buf)
	if err != nil || from != outAddr || !bytes.Equal(buf[:n], p) {
		t.Fatalf("far got % x from %v (%v), want the packet from %v", buf[:min(n, 8)], from, err, outAddr)
	}
	if c := send(1, p); c.Err() != unix.EBADF {
		t.Fatalf("send on the empty slot 1: %d %v, want EBADF", c.Res, c.Err())
	}
	if _, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(outAddr)); err == nil {
		t.Fatal("the port of a socket in a slot could be bound again")
	}
	if err := r.SetFile(2, -1); err != nil {
		t.Fatalf("SetFile(2, -1): %v", err)
	}
	// The kernel drops the slot's reference once no request holds it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(outAddr))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %v still bound after its slot was emptied: %v", outAddr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := send(2, p); c.Err() != unix.EBADF {
		t.Fatalf("send on the emptied slot 2: %d %v, want EBADF", c.Res, c.Err())
	}
}

// SendToFixed sends from the unconnected socket in a file slot to whichever address each
// send names: two far sockets each get their packet, from the slot's socket.
func TestSendToFixed(t *testing.T) {
	r := newRing(t, 8)
	if err := r.RegisterFiles(2); err != nil {
		t.Fatalf("RegisterFiles: %v", err)
	}
	out, outAddr := udpSocket(t, 0)
	if err := r.SetFile(1, out); err != nil {
		t.Fatalf("SetFile: %v", err)
	}
	for i := range 2 {
		far, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer far.Close()
		to := SockaddrInet4(far.LocalAddr().(*net.UDPAddr).AddrPort())
		p := packet(1, i)
		if err := r.SendToFixed(1, p, &to, uint64(10+i)); err != nil {
			t.Fatal(err)
		}
		var got CQE
		pump(t, r, func(c CQE) { got = c }, func() bool { return got.UserData == uint64(10+i) })
		if got.Res != int32(len(p)) {
			t.Fatalf("send %d: %d %v", i, got.Res, got.Err())
		}
		buf := make([]byte, 512)
		far.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := far.ReadFromUDPAddrPort(buf)
		if err != nil || from != outAddr || !bytes.Equal(buf[:n], p) {
			t.Fatalf("far %d got % x from %v (%v), want the packet from %v", i, buf[:min(n, 8)], from, err, outAddr)
		}
	}
	if err := r.SetFile(1, -1); err != nil {
		t.Fatal(err)
	}
}
