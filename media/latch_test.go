package media

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// The payloads of the latching tests: each party's 20 ms frames hold one PCMU byte, so the
// recording's channels show whose audio they hold.
const (
	callerByte   = 0x9f
	calleeByte   = 0x1f
	strangerByte = 0x00 // the loudest negative sample
)

// bridgedNAT is bridged with the caller's SDP and signalling chosen by the test.
func bridgedNAT(t *testing.T, f *fixture, offer []byte, signal netip.Addr, b *endpoint) (*Session, netip.AddrPort, netip.AddrPort) {
	t.Helper()
	callSeq++
	info := &callseam.CallInfo{CallID: fmt.Sprintf("CALL%04d", callSeq), CustomerID: f.cust.ID, Dialled: "+31850000001",
		Start: time.Now().UnixNano(), CallerSignal: signal}
	ms, err := f.e.Anchor(context.Background(), info, offer)
	if err != nil || ms == nil {
		t.Fatalf("Anchor: %v %v", ms, err)
	}
	s := ms.(*Session)
	t.Cleanup(func() { s.Close(nil) })
	if err := s.Callee(b.sdp("sendrecv", "0"), b.addr().Addr()); err != nil {
		t.Fatal(err)
	}
	s.Answered()
	<-s.Ready()
	s.Bridge()
	return s, anchorAddr(t, s.CallerSDP()), anchorAddr(t, s.Offer())
}

// quiet fails when ep receives anything within d.
func quiet(t *testing.T, ep *endpoint, d time.Duration, who string) {
	t.Helper()
	if p, ok := ep.recv(d); ok {
		t.Fatalf("%s received a packet (payload %#x)", who, p.Payload[0])
	}
}

// expect reads packets at ep until one carries first, failing after 2 s or on a packet that
// carries bad.
func expect(t *testing.T, ep *endpoint, first, bad byte, who string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		p, ok := ep.recv(time.Until(deadline))
		if !ok {
			break
		}
		if p.Payload[0] == bad {
			t.Fatalf("%s received the stranger's audio", who)
		}
		if p.Payload[0] == first {
			return
		}
	}
	t.Fatalf("%s did not receive %#x", who, first)
}

// recordedSamples is the left (caller) and right (business line) samples of a call's recording.
func recordedSamples(t *testing.T, f *fixture, r *store.Recording) (left, right map[int16]int) {
	t.Helper()
	if r == nil {
		t.Fatal("no recording")
	}
	plain, err := recordings.Open(f.rec.Keys(), filepath.Join(f.rec.Dir(), r.Path))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(plain)
	plain.Close()
	if err != nil {
		t.Fatal(err)
	}
	left, right = map[int16]int{}, map[int16]int{}
	pcm := data[44:]
	for i := 0; i+4 <= len(pcm); i += 4 {
		left[int16(binary.LittleEndian.Uint16(pcm[i:]))]++
		right[int16(binary.LittleEndian.Uint16(pcm[i+2:]))]++
	}
	return left, right
}

// sample is what a PCMU byte decodes to.
func sample(b byte) int16 { return g711.Decode(nil, []byte{b}, g711.ULaw)[0] }

// TestStrangerCannotTakeOverTheLatch is the RTP Bleed race: right after the bridge, before
// the phones send, a stranger on another IP sends to the anchor's ports (one packet, then 200
// in sequence, then to both legs). None of its packets reaches a phone or the recording, it
// receives nothing, and the call's audio flows and is recorded.
func TestStrangerCannotTakeOverTheLatch(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		for _, c := range []struct {
			name    string
			packets int
			both    bool
		}{{"one packet", 1, false}, {"200 packets", 200, false}, {"both legs", 200, true}} {
			t.Run(c.name, func(t *testing.T) {
				f := newFixture(t, Config{IO: mode}, recordingCustomer())
				a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
				s, toA, toB := bridged(t, f, a, b, []string{"0"}, []string{"0"})
				evil := newEndpoint(t, "127.0.0.2")
				evil.ssrc = 0xbad
				for range c.packets {
					evil.send(toA, 0, payload(strangerByte))
					if c.both {
						evil.send(toB, 0, payload(strangerByte))
					}
				}
				time.Sleep(50 * time.Millisecond) // the loop has read them all
				// The phones start: the business line first, which the anchor sends to the
				// caller's SDP address, then the caller.
				for range 5 {
					b.send(toB, 0, payload(calleeByte))
					a.send(toA, 0, payload(callerByte))
					time.Sleep(20 * time.Millisecond)
				}
				expect(t, b, callerByte, strangerByte, "the business line")
				expect(t, a, calleeByte, strangerByte, "the caller")
				quiet(t, evil, 300*time.Millisecond, "the stranger")
				var rec store.Call
				r := s.Close(&rec)
				want := uint64(c.packets)
				if c.both {
					want *= 2
				}
				if rec.Media.StrictSourceDrops != want {
					t.Errorf("strict source drops %d, want %d", rec.Media.StrictSourceDrops, want)
				}
				if rec.Media.FromCaller.Packets != 5 || rec.Media.FromCallee.Packets != 5 {
					t.Errorf("packets from caller %d, callee %d: want 5 each", rec.Media.FromCaller.Packets, rec.Media.FromCallee.Packets)
				}
				left, right := recordedSamples(t, f, r)
				if left[sample(strangerByte)] > 0 || right[sample(strangerByte)] > 0 {
					t.Errorf("the recording holds the stranger's audio: left %d right %d samples", left[sample(strangerByte)], right[sample(strangerByte)])
				}
				if left[sample(callerByte)] < 5*160 || right[sample(calleeByte)] < 5*160 {
					t.Errorf("the recording lacks the call's audio: caller %d, business line %d samples", left[sample(callerByte)], right[sample(calleeByte)])
				}
			})
		}
	})
}

// TestSameIPOtherPortNeedsProbation: a source on the SDP's IP but another port is refused
// until it has sent Probation packets in sequence with one SSRC; out-of-sequence packets
// never pass; the SDP address itself latches at its first packet.
func TestSameIPOtherPortNeedsProbation(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		other := newEndpoint(t, "127.0.0.1")
		// Out of sequence: never passes.
		for i := range 10 {
			other.seq += uint16(2 + i)
			other.send(toA, 0, payload(strangerByte))
		}
		// In sequence, a new stream: the first Probation-1 are refused.
		other.ssrc++
		for range DefaultProbation - 1 {
			other.send(toA, 0, payload(strangerByte))
		}
		quiet(t, b, 200*time.Millisecond, "the business line (during probation)")
		// The SDP address latches at once.
		a.send(toA, 0, payload(callerByte))
		expect(t, b, callerByte, strangerByte, "the business line")
		s.mu.Lock()
		latched := s.legs[caller].latched && s.legs[caller].dest.Port == toRaw(a.addr()).Port
		s.mu.Unlock()
		if !latched {
			t.Fatal("the caller's leg did not latch onto its SDP address")
		}
		var rec store.Call
		s.Close(&rec)
		if got := rec.Media.StrictSourceDrops; got != 10+DefaultProbation-1 {
			t.Errorf("source drops %d, want %d", got, 10+DefaultProbation-1)
		}
	})
}

// TestNATRebinding: the caller's NAT gives it a new port mid-call; its stream goes on in
// sequence from there. After the probation the latch moves, both directions follow it, and
// the old port is a stranger.
func TestNATRebinding(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, toB := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		for range 5 {
			a.send(toA, 0, payload(callerByte))
			b.send(toB, 0, payload(calleeByte))
			time.Sleep(20 * time.Millisecond)
		}
		expect(t, b, callerByte, 0, "the business line")
		expect(t, a, calleeByte, 0, "the caller")
		// The rebinding: the same stream from a new port.
		moved := newEndpoint(t, "127.0.0.1")
		moved.ssrc, moved.seq, moved.ts = a.ssrc, a.seq, a.ts
		for i := range DefaultProbation {
			moved.send(toA, 0, payload(byte(0x40+i)))
		}
		expect(t, b, 0x40+DefaultProbation-1, 0x40, "the business line")
		if got := peerOf(t, s, caller); got != moved.addr() {
			t.Fatalf("after the rebinding the caller's leg is connected to %v, want %v", got, moved.addr())
		}
		for range 3 {
			b.send(toB, 0, payload(calleeByte+1))
		}
		expect(t, moved, calleeByte+1, 0, "the caller's new port")
		// The old port is now a stranger, and a single packet does not move the latch back.
		a.send(toA, 0, payload(strangerByte))
		quiet(t, b, 200*time.Millisecond, "the business line (old port)")
		moved.send(toA, 0, payload(callerByte))
		expect(t, b, callerByte, strangerByte, "the business line")
	})
}

// TestCallerBehindNAT: the caller's SDP names a private address it cannot be reached at,
// while its INVITE and RTP come from another address. The anchor sends it nothing until it
// latches onto the signalling's IP, and a stranger on another IP is refused throughout.
func TestCallerBehindNAT(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		offer := []byte("v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
		s, toA, toB := bridgedNAT(t, f, offer, netip.MustParseAddr("127.0.0.1"), b)
		s.mu.Lock()
		sends := s.legs[caller].destOK
		s.mu.Unlock()
		if sends {
			t.Fatal("the anchor would send to the caller's private SDP address before it latched")
		}
		evil := newEndpoint(t, "127.0.0.2")
		for range 20 {
			evil.send(toA, 0, payload(strangerByte))
		}
		for range 5 {
			a.send(toA, 0, payload(callerByte))
			time.Sleep(20 * time.Millisecond)
		}
		expect(t, b, callerByte, strangerByte, "the business line")
		b.send(toB, 0, payload(calleeByte))
		expect(t, a, calleeByte, strangerByte, "the caller")
		quiet(t, evil, 200*time.Millisecond, "the stranger")
		var rec store.Call
		r := s.Close(&rec)
		left, _ := recordedSamples(t, f, r)
		if left[sample(strangerByte)] > 0 || left[sample(callerByte)] < 160*(5-DefaultProbation+1) {
			t.Errorf("caller channel: %d stranger samples, %d caller samples", left[sample(strangerByte)], left[sample(callerByte)])
		}
	})
}

// TestOversizedDatagramIsCounted: a datagram larger than the receive buffer is dropped and
// counted as oversized, and the call goes on.
func TestOversizedDatagramIsCounted(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		_, toA, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		a.send(toA, 0, payload(callerByte))
		expect(t, b, callerByte, 0, "the business line")
		a.send(toA, 0, make([]byte, 3000))
		quiet(t, b, 200*time.Millisecond, "the business line (oversized)")
		a.send(toA, 0, payload(callerByte+1))
		expect(t, b, callerByte+1, 0, "the business line")
		deadline := time.Now().Add(3 * time.Second) // the loops publish once a second
		for testutil.ToFloat64(f.e.m.oversized) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("oversized drops %v, want 1", testutil.ToFloat64(f.e.m.oversized))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestPortsAreDrawnAtRandom: consecutive allocations are no more often adjacent than chance
// says, and a released pair is not handed out again at once.
func TestPortsAreDrawnAtRandom(t *testing.T) {
	p := newPorts(20000, 29999)
	held := make([]int, 0, 100)
	prev, adjacent := -10, 0
	for range 1000 {
		k, ok := p.take()
		if !ok {
			t.Fatal("ran out of ports")
		}
		if d := k - prev; d == 1 || d == -1 {
			adjacent++
		}
		prev = k
		held = append(held, k)
		if len(held) == cap(held) { // 100 calls at a time
			for _, h := range held {
				p.put(h)
			}
			held = held[:0]
		}
	}
	// By chance: 1,000 draws x 2 neighbours / 5,000 pairs = 0.4.
	if adjacent > 5 {
		t.Errorf("%d of 1,000 allocations were adjacent to the one before", adjacent)
	}
	if p.available() != p.pairs() {
		t.Errorf("available %d, want %d", p.available(), p.pairs())
	}
	// A pair put back rests: the next draw does not return it, nor any of the last quarter.
	q := newPorts(20000, 20039) // 20 pairs, 5 rest
	a, _ := q.take()
	q.put(a)
	for range 14 {
		if k, _ := q.take(); k == a {
			t.Fatal("a released pair was handed out while 14 others were free")
		}
	}
}

// TestAnchorPortsAreNotSequential: the ports that calls get in a row do not follow each
// other.
func TestAnchorPortsAreNotSequential(t *testing.T) {
	f := newFixture(t, Config{IO: IOEpoll}, recordingCustomer())
	a := newEndpoint(t, "127.0.0.1")
	prev, adjacent := 0, 0
	for range 50 {
		s := f.anchor(t, a.sdp("sendrecv", "0"))
		port := int(anchorAddr(t, s.CallerSDP()).Port())
		if d := port - prev; d >= -4 && d <= 4 {
			adjacent++
		}
		prev = int(anchorAddr(t, s.Offer()).Port())
		s.Close(nil)
	}
	if adjacent > 3 {
		t.Errorf("%d of 50 calls got ports next to the call before", adjacent)
	}
}
