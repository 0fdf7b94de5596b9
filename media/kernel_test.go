package media

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/store"
)

// kernelFixture is a fixture with the kernel path on, or a skip that says why it cannot load.
func kernelFixture(t *testing.T) *fixture {
	t.Helper()
	if err := kernelAvailable(); err != nil {
		t.Skipf("the kernel path cannot load here: %v", err)
	}
	return newFixture(t, Config{IO: ioKernel}, recordingCustomer())
}

// kernelForwarded is how many packets the kernel path forwarded and accounted so far.
func kernelForwarded(f *fixture) uint64 {
	f.e.drain()
	k := f.e.kernel
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cnt.relayed + uint64(testutil.ToFloat64(f.e.m.kernelPackets))
}

// TestKernelPathForwardsBridgedCalls: once both legs have latched, packets go through the
// kernel, rewritten as the relay rewrites them (payload types mapped, sequence numbers
// and timestamps continuous, the anchor's SSRC), a new SSRC is rebased in user space and
// forwarded in the kernel again, and the call's statistics and recording count them all.
func TestKernelPathForwardsBridgedCalls(t *testing.T) {
	f := kernelFixture(t)
	a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
	s, toA, toB := bridged(t, f, a, b, []string{"0", "101"}, []string{"0", "96"})

	var seqs []uint16
	var ts []uint32
	var ssrc uint32
	recvB := func(i int, pt uint8, first byte) {
		t.Helper()
		p, ok := b.recv(2 * time.Second)
		if !ok {
			t.Fatalf("packet %d from the caller not relayed", i)
		}
		if p.PayloadType != pt || p.Payload[0] != first {
			t.Fatalf("packet %d: pt %d payload[0] %d, want %d and %d", i, p.PayloadType, p.Payload[0], pt, first)
		}
		if p.SSRC == a.ssrc {
			t.Fatal("the caller's SSRC leaked to the business line")
		}
		if ssrc == 0 {
			ssrc = p.SSRC
		} else if p.SSRC != ssrc {
			t.Fatalf("packet %d: SSRC %x, want %x", i, p.SSRC, ssrc)
		}
		seqs, ts = append(seqs, p.SequenceNumber), append(ts, p.Timestamp)
	}
	for i := range 40 {
		a.send(toA, 0, payload(byte(i)))
		recvB(i, 0, byte(i))
		b.send(toB, 0, payload(byte(100+i)))
		if q, ok := a.recv(2 * time.Second); !ok || q.Payload[0] != byte(100+i) {
			t.Fatalf("packet %d from the business line not relayed", i)
		}
	}
	// telephone-event: 101 on the caller's leg is 96 on the business line's.
	a.send(toA, 101, []byte{5, 0x0a, 0, 160})
	recvB(40, 96, 5)
	// The caller's phone changes SSRC: user space rebases, then the kernel forwards again.
	a.ssrc ^= 0x5a5a5a5a
	a.seq += 1000
	for i := range 10 {
		a.send(toA, 0, payload(byte(50+i)))
		recvB(41+i, 0, byte(50+i))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequence %d after %d (packet %d)", seqs[i], seqs[i-1], i)
		}
		if d := ts[i] - ts[i-1]; d > 1000 {
			t.Fatalf("timestamp jumps by %d at packet %d", d, i)
		}
	}
	// User space relays the caller's first packet (it latches the caller; the business
	// line has not latched yet), the caller's second (the business line latched in
	// between, so the flow goes in), the business line's first, and the first packet of
	// the new SSRC. The kernel forwards the other 87.
	if n := kernelForwarded(f); n != 40+40+11-4 {
		t.Errorf("the kernel forwarded %d packets, want %d", n, 40+40+11-4)
	}
	var rec store.Call
	r := s.Close(&rec)
	if rec.Media == nil || rec.Media.FromCaller.Packets != 51 || rec.Media.FromCallee.Packets != 40 {
		t.Fatalf("media stats %+v", rec.Media)
	}
	if r == nil || r.Duration <= 0 {
		t.Fatalf("recording %+v", r)
	}
	// The flows left the kernel with the call: nothing reaches the old ports any more.
	a.send(toA, 0, payload(1))
	if p, ok := b.recv(200 * time.Millisecond); ok {
		t.Fatalf("relayed after close: %+v", p.Header)
	}
}

// TestKernelPathLeavesTranscodingToUserSpace: legs on different laws stay in the relay,
// which transcodes.
func TestKernelPathLeavesTranscodingToUserSpace(t *testing.T) {
	f := kernelFixture(t)
	a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
	_, toA, _ := bridged(t, f, a, b, []string{"8"}, []string{"0"})
	for i := range 5 {
		a.send(toA, 8, payload(0xd5))
		p, ok := b.recv(2 * time.Second)
		if !ok || p.PayloadType != 0 {
			t.Fatalf("packet %d not relayed as PCMU: %v %+v", i, ok, p.Header)
		}
	}
	if n := kernelForwarded(f); n != 0 {
		t.Errorf("the kernel forwarded %d packets of a transcoded call", n)
	}
}

// TestKernelPathNeedsOneAddress: flows are keyed and rewritten with the media address, so
// 0.0.0.0 has no kernel path (auto then relays in user space, on refuses to start).
func TestKernelPathNeedsOneAddress(t *testing.T) {
	if _, err := newKernelPath(netip.MustParseAddr("0.0.0.0"), 16); err == nil {
		t.Fatal("a kernel path on 0.0.0.0")
	}
	_, err := New(Config{IP: netip.MustParseAddr("0.0.0.0"), Announce: netip.MustParseAddr("127.0.0.1"), Kernel: KernelOn, PortMin: 31000, PortMax: 31999}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "kernel path") {
		t.Fatalf("media.kernel: on with 0.0.0.0: %v", err)
	}
}
