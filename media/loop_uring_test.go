package media

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/media/uring"
	"github.com/trackline/trackline/store"
)

// openFDs is the number of the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestReleasedLegsFreeTheirPorts: when a call ends, its sockets (RTP, RTCP and the stray
// socket a latched leg opens) close and its ports can be bound again, on either I/O. On
// io_uring that waits for the cancelled receives, which hold the sockets open in the kernel.
func TestReleasedLegsFreeTheirPorts(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		before := openFDs(t)
		free := f.e.ports.available()
		for round := range 3 {
			a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
			s, toA, toB := bridged(t, f, a, b, []string{"0"}, []string{"0"})
			a.send(toA, 0, payload(1))
			b.send(toB, 0, payload(2))
			if _, ok := b.recv(2 * time.Second); !ok {
				t.Fatalf("round %d: not relayed to the business line", round)
			}
			if _, ok := a.recv(2 * time.Second); !ok {
				t.Fatalf("round %d: not relayed to the caller", round)
			}
			s.Close(nil)
			a.conn.Close()
			b.conn.Close()
			deadline := time.Now().Add(2 * time.Second)
			for f.e.ports.available() != free || openFDs(t) > before {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: %d free port pairs, want %d; %d descriptors open, want %d",
						round, f.e.ports.available(), free, openFDs(t), before)
				}
				time.Sleep(5 * time.Millisecond)
			}
			for _, ap := range []netip.AddrPort{toA, toB} {
				if err := bindPort(ap, false); err != nil {
					t.Fatalf("round %d: the released port %s cannot be bound: %v", round, ap, err)
				}
			}
		}
	})
}

// TestRingRunsOutOfBuffers: a burst larger than the loop's buffer ring ends the receives
// (ENOBUFS); they are armed again once the relayed packets' buffers come back, and every
// packet of the burst is relayed, in order.
func TestRingRunsOutOfBuffers(t *testing.T) {
	if err := uring.Available(); err != nil {
		t.Skipf("io_uring is not available here: %v", err)
	}
	saved := ringBufs
	ringBufs = 4
	t.Cleanup(func() { ringBufs = saved })
	f := newFixture(t, Config{IO: IOUring, BatchWait: 20 * time.Millisecond}, recordingCustomer())
	a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
	s, toA, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
	defer s.Close(nil)
	a.send(toA, 0, payload(0))
	first, ok := b.recv(2 * time.Second)
	if !ok {
		t.Fatal("not relayed")
	}
	// The loop now sleeps out its 20 ms batch wait: the burst waits in the socket.
	const burst = 200
	for i := 1; i <= burst; i++ {
		a.send(toA, 0, payload(byte(i)))
	}
	for i := 1; i <= burst; i++ {
		p, ok := b.recv(2 * time.Second)
		if !ok {
			t.Fatalf("packet %d of %d not relayed", i, burst)
		}
		if p.SequenceNumber != first.SequenceNumber+uint16(i) || p.Payload[0] != byte(i) {
			t.Fatalf("packet %d: sequence %d payload %d, want %d and %d", i, p.SequenceNumber, p.Payload[0],
				first.SequenceNumber+uint16(i), byte(i))
		}
	}
}

// TestEngineCloseWithCallsInProgress: closing the engine while calls are up closes every
// socket of theirs, on either I/O.
func TestEngineCloseWithCallsInProgress(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		before := openFDs(t)
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		for range 3 {
			a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
			_, toA, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
			a.send(toA, 0, payload(1))
			if _, ok := b.recv(2 * time.Second); !ok {
				t.Fatal("not relayed")
			}
			a.conn.Close()
			b.conn.Close()
		}
		f.e.Close()
		f.rec.Close()
		if got := openFDs(t); got > before {
			t.Errorf("%d descriptors open after Close, %d before New", got, before)
		}
	})
}

// TestLoopsRingGauge: trackline_media_loops_io_uring counts the loops on io_uring.
func TestLoopsRingGauge(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode, Loops: 2}, store.Customer{ID: "c1"})
		want := 0.0
		if mode != IOEpoll {
			want = 2
		}
		time.Sleep(50 * time.Millisecond) // the loops have started (newFixture waits for io_uring's)
		if got := testutil.ToFloat64(f.e.m.ringLoops); got != want {
			t.Errorf("trackline_media_loops_io_uring = %v, want %v", got, want)
		}
	})
}

// TestConfigIO: media.io takes auto, epoll or io_uring, and nothing else.
func TestConfigIO(t *testing.T) {
	for io, ok := range map[string]bool{"": true, IOAuto: true, IOEpoll: true, IOUring: true, "kqueue": false, "IO_URING": false} {
		c := Config{IO: io}
		if err := c.defaults(); (err == nil) != ok {
			t.Errorf("IO %q: %v, want ok=%v", io, err, ok)
		}
	}
}

// TestLegSurvivesPortUnreachable: when the business line's port closes (an app restarts),
// relaying to it draws an ICMP port unreachable, which the leg's connected socket reports
// once as ECONNREFUSED; on io_uring that ends the socket's receive. When the line comes back
// on the same port, its packets are relayed again, on either I/O.
func TestLegSurvivesPortUnreachable(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, toB := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		defer s.Close(nil)
		b.send(toB, 0, payload(1))
		if _, ok := a.recv(2 * time.Second); !ok {
			t.Fatal("not relayed to the caller")
		}
		a.send(toA, 0, payload(2))
		if _, ok := b.recv(2 * time.Second); !ok {
			t.Fatal("not relayed to the business line")
		}
		bAddr := b.addr()
		b.conn.Close()
		for i := range 5 { // relayed to a closed port: port unreachable
			a.send(toA, 0, payload(byte(10+i)))
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(bAddr))
		if err != nil {
			t.Fatalf("rebind the business line's %v: %v", bAddr, err)
		}
		b2 := &endpoint{t: t, conn: conn, ssrc: b.ssrc, seq: b.seq, ts: b.ts}
		t.Cleanup(func() { conn.Close() })
		// Within the second that an error other than ECONNREFUSED would cost.
		b2.send(toB, 0, payload(3))
		p, ok := a.recv(700 * time.Millisecond)
		if !ok || p.Payload[0] != 3 {
			t.Fatalf("after the port unreachable the business line's audio is not relayed: %v", ok)
		}
		a.send(toA, 0, payload(4))
		if p, ok := b2.recv(2 * time.Second); !ok || p.Payload[0] != 4 {
			t.Fatalf("after the port unreachable the caller's audio does not reach the business line: %v", ok)
		}
	})
}
