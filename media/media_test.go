package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/media/uring"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
	"golang.org/x/sys/unix"
)

// endpoint is a test RTP peer on a real loopback UDP socket.
type endpoint struct {
	t    *testing.T
	conn *net.UDPConn
	ssrc uint32
	seq  uint16
	ts   uint32
}

func newEndpoint(t *testing.T, ip string) *endpoint {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &endpoint{t: t, conn: c, ssrc: 0x1234, seq: 100, ts: 1000}
}

func (ep *endpoint) addr() netip.AddrPort { return ep.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// sdp describes the endpoint offering the given payload types.
func (ep *endpoint) sdp(dir string, pts ...string) []byte {
	a := ep.addr()
	s := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP", a.Addr(), a.Addr(), a.Port())
	for _, pt := range pts {
		s += " " + pt
	}
	s += "\r\n"
	for _, pt := range pts {
		switch pt {
		case "0":
			s += "a=rtpmap:0 PCMU/8000\r\n"
		case "8":
			s += "a=rtpmap:8 PCMA/8000\r\n"
		case "101", "96":
			s += "a=rtpmap:" + pt + " telephone-event/8000\r\na=fmtp:" + pt + " 0-16\r\n"
		}
	}
	return []byte(s + "a=" + dir + "\r\n")
}

// send sends one 20 ms packet with payload to addr.
func (ep *endpoint) send(to netip.AddrPort, pt uint8, payload []byte) {
	ep.t.Helper()
	ep.seq++
	ep.ts += 160
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: ep.seq, Timestamp: ep.ts, SSRC: ep.ssrc}, Payload: payload}
	b, _ := p.Marshal()
	if _, err := ep.conn.WriteToUDPAddrPort(b, to); err != nil {
		ep.t.Fatal(err)
	}
}

// recv reads the next packet, failing after d.
func (ep *endpoint) recv(d time.Duration) (rtp.Packet, bool) {
	ep.t.Helper()
	buf := make([]byte, 1500)
	ep.conn.SetReadDeadline(time.Now().Add(d))
	n, err := ep.conn.Read(buf)
	if err != nil {
		return rtp.Packet{}, false
	}
	var p rtp.Packet
	if err := p.Unmarshal(buf[:n]); err != nil {
		ep.t.Fatalf("anchor sent invalid RTP: %v", err)
	}
	return p, true
}

// fixture is an engine with one customer whose settings the test chooses.
type fixture struct {
	e    *Engine
	reg  *prometheus.Registry
	rec  *recordings.Recorder
	cust store.Customer
}

// raiseProcs gives the process a P for each of cfg's loops, as cmd/trackline does, until
// the test ends.
func raiseProcs(t testing.TB, cfg *Config) {
	procs := runtime.GOMAXPROCS(0)
	if cfg.Loops <= 0 {
		cfg.Loops = DefaultLoops(procs)
	}
	runtime.GOMAXPROCS(procs + cfg.Loops)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
}

func newFixture(t *testing.T, cfg Config, cust store.Customer) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), cust: cust}
	var err error
	keys, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	f.rec, err = recordings.New(recordings.Options{Dir: t.TempDir(), Keys: keys}, recordings.WithRegisterer(f.reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.rec.Close() })
	if cfg.PortMin == 0 {
		cfg.PortMin, cfg.PortMax = 31000, 31999
	}
	if cfg.IO == ioKernel {
		cfg.IO, cfg.Kernel = IOUring, KernelOn
	}
	raiseProcs(t, &cfg)
	f.e, err = New(cfg, func(id string) (store.Customer, error) {
		if id != f.cust.ID {
			return store.Customer{}, errors.New("unknown")
		}
		return f.cust, nil
	}, f.rec, WithRegisterer(f.reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.e.Close)
	if cfg.IO == IOUring { // the loops set their rings up as they start: they must not fall back
		deadline := time.Now().Add(5 * time.Second)
		for testutil.ToFloat64(f.e.m.ringLoops) != float64(f.e.cfg.Loops) {
			if time.Now().After(deadline) {
				t.Fatalf("%v of %d loops run on io_uring", testutil.ToFloat64(f.e.m.ringLoops), f.e.cfg.Loops)
			}
			time.Sleep(time.Millisecond)
		}
		// Seen after the gauge, which each loop raises once its ring is set up.
		for i, l := range f.e.loops {
			if !l.ring.fixed {
				t.Fatalf("loop %d sends without registered files", i)
			}
		}
	}
	return f
}

// ioKernel is a test mode beside the I/Os: io_uring with the kernel path on.
const ioKernel = "kernel"

// eachIO runs test once for each I/O of the packet loops: epoll, and io_uring where the
// kernel allows it (a skip says why not), and io_uring with the kernel path (ioKernel; a
// skip says why it cannot load).
func eachIO(t *testing.T, test func(t *testing.T, mode string)) {
	for _, mode := range []string{IOEpoll, IOUring, ioKernel} {
		t.Run(mode, func(t *testing.T) {
			if mode != IOEpoll {
				if err := uring.Available(); err != nil {
					t.Skipf("io_uring is not available here: %v", err)
				}
			}
			if mode == ioKernel {
				if err := kernelAvailable(); err != nil {
					t.Skipf("the kernel path cannot load here: %v", err)
				}
			}
			test(t, mode)
		})
	}
}

func recordingCustomer() store.Customer {
	return store.Customer{ID: "c1", Recording: store.RecordingPolicy{Enabled: true}}
}

var callSeq int

func (f *fixture) anchor(t *testing.T, offer []byte) *Session {
	t.Helper()
	callSeq++
	info := &callseam.CallInfo{CallID: fmt.Sprintf("CALL%04d", callSeq), CustomerID: f.cust.ID, Dialled: "+31850000001", Start: time.Now().UnixNano()}
	ms, err := f.e.Anchor(context.Background(), info, offer)
	if err != nil {
		t.Fatalf("Anchor: %v", err)
	}
	if ms == nil {
		t.Fatal("Anchor did not anchor")
	}
	s := ms.(*Session)
	t.Cleanup(func() { s.Close(nil) })
	return s
}

// anchorAddr is where the anchor wants RTP, read from the SDP it sent.
func anchorAddr(t *testing.T, sdp []byte) netip.AddrPort {
	t.Helper()
	d, err := parseDesc(sdp)
	if err != nil {
		t.Fatalf("anchor SDP: %v\n%s", err, sdp)
	}
	return d.addr
}

func payload(b byte) []byte {
	p := make([]byte, 160)
	for i := range p {
		p[i] = b
	}
	return p
}

// bridged sets up an answered, bridged call between two endpoints.
func bridged(t *testing.T, f *fixture, a, b *endpoint, aPTs, bPTs []string) (*Session, netip.AddrPort, netip.AddrPort) {
	t.Helper()
	s := f.anchor(t, a.sdp("sendrecv", aPTs...))
	if err := s.Callee(b.sdp("sendrecv", bPTs...), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	s.Answered()
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	s.Bridge()
	return s, anchorAddr(t, s.CallerSDP()), anchorAddr(t, s.Offer())
}

// TestRelayBothWays relays with the default batch wait, with none (a read per arrival), and
// with a long one, on each I/O.
func TestRelayBothWays(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		for _, wait := range []time.Duration{0, -1, 10 * time.Millisecond} {
			t.Run(fmt.Sprintf("batch_wait=%v", wait), func(t *testing.T) { relayBothWays(t, Config{IO: mode, BatchWait: wait}) })
		}
	})
}

func relayBothWays(t *testing.T, cfg Config) {
	f := newFixture(t, cfg, recordingCustomer())
	a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
	s, toA, toB := bridged(t, f, a, b, []string{"0", "101"}, []string{"0", "101"})

	var firstSeq uint16
	for i := range 20 {
		a.send(toA, 0, payload(byte(i)))
		p, ok := b.recv(2 * time.Second)
		if !ok {
			t.Fatalf("packet %d from the caller not relayed", i)
		}
		if p.PayloadType != 0 || p.Payload[0] != byte(i) || len(p.Payload) != 160 {
			t.Fatalf("relayed packet %d: pt %d payload[0] %d len %d", i, p.PayloadType, p.Payload[0], len(p.Payload))
		}
		if p.SSRC == a.ssrc {
			t.Fatal("the caller's SSRC leaked to the business line")
		}
		if i == 0 {
			firstSeq = p.SequenceNumber
			if !p.Marker {
				t.Error("first relayed packet lacks the marker bit")
			}
		} else if p.SequenceNumber != firstSeq+uint16(i) {
			t.Fatalf("sequence %d, want %d", p.SequenceNumber, firstSeq+uint16(i))
		}
		b.send(toB, 0, payload(byte(100+i)))
		q, ok := a.recv(2 * time.Second)
		if !ok || q.Payload[0] != byte(100+i) {
			t.Fatalf("packet %d from the business line not relayed", i)
		}
	}
	// DTMF (RFC 4733) passes with its payload type.
	a.send(toA, 101, []byte{5, 0x0a, 0, 160})
	if p, ok := b.recv(2 * time.Second); !ok || p.PayloadType != 101 || p.Payload[0] != 5 {
		t.Fatalf("telephone-event not relayed: %v %+v", ok, p.Header)
	}

	var rec store.Call
	r := s.Close(&rec)
	if rec.Media == nil || rec.Media.FromCaller.Packets != 21 || rec.Media.FromCallee.Packets != 20 {
		t.Fatalf("media stats %+v", rec.Media)
	}
	if rec.Media.FromCaller.Lost != 0 || rec.Media.CallerCodec != "PCMU" {
		t.Errorf("stats %+v", rec.Media)
	}
	if r == nil || rec.RecordingID != r.ID {
		t.Fatalf("no recording linked: %+v %+v", r, rec)
	}
	if _, err := os.Stat(filepath.Join(f.rec.Dir(), r.Path)); err != nil {
		t.Fatal(err)
	}
}

func TestTranscodesBetweenLaws(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		_, toA, toB := bridged(t, f, a, b, []string{"8"}, []string{"0"})
		in := make([]byte, 160)
		for i := range in {
			in[i] = byte(i)
		}
		a.send(toA, 8, in)
		p, ok := b.recv(2 * time.Second)
		if !ok || p.PayloadType != 0 {
			t.Fatalf("not relayed as PCMU: %v %+v", ok, p.Header)
		}
		for i := range in {
			if p.Payload[i] != g711.ALawToULaw[in[i]] {
				t.Fatalf("sample %d: %#x, want %#x", i, p.Payload[i], g711.ALawToULaw[in[i]])
			}
		}
		b.send(toB, 0, in)
		if q, ok := a.recv(2 * time.Second); !ok || q.PayloadType != 8 || q.Payload[7] != g711.ULawToALaw[7] {
			t.Fatalf("not relayed as PCMA: %v %+v", ok, q.Header)
		}
	})
}

func TestStrictSource(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		a.send(toA, 0, payload(1))
		if _, ok := b.recv(2 * time.Second); !ok {
			t.Fatal("not relayed")
		}
		// Another host's packets into the caller's port: not forwarded, counted.
		evil := newEndpoint(t, "127.0.0.2")
		for range 10 {
			evil.send(toA, 0, payload(0xEE))
		}
		a.send(toA, 0, payload(2))
		p, ok := b.recv(2 * time.Second)
		if !ok || p.Payload[0] != 2 {
			t.Fatalf("after injection got %v %v", ok, p.Payload[:1])
		}
		if p, ok := b.recv(200 * time.Millisecond); ok {
			t.Fatalf("injected packet relayed: %v", p.Payload[:1])
		}
		var rec store.Call
		s.Close(&rec)
		if rec.Media.StrictSourceDrops != 10 {
			t.Errorf("strict source drops %d, want 10", rec.Media.StrictSourceDrops)
		}
	})
}

// A latched leg's socket is connected to its source, with a stray socket beside it for other
// sources: the port stays closed to any third socket, and a new SDP address re-latches.
func TestConnectedLegKeepsPortAndRelatches(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, toB := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		a.send(toA, 0, payload(1))
		if _, ok := b.recv(2 * time.Second); !ok {
			t.Fatal("not relayed")
		}
		if got := peerOf(t, s, caller); got != a.addr() {
			t.Fatalf("the caller's leg is connected to %v, want %v", got, a.addr())
		}
		for _, reuse := range []bool{false, true} {
			if err := bindPort(toA, reuse); err == nil {
				t.Fatalf("a third socket (SO_REUSEPORT %v) could bind the latched leg's port %v", reuse, toA)
			}
		}
		// The caller moves (a re-INVITE with a new address): a's packets are now strays, c's relayed.
		c := newEndpoint(t, "127.0.0.1")
		if _, err := s.Rewrite(true, c.sdp("sendrecv", "0")); err != nil {
			t.Fatal(err)
		}
		c.send(toA, 0, payload(3))
		p, ok := b.recv(2 * time.Second)
		if !ok || p.Payload[0] != 3 {
			t.Fatalf("after the move got %v %v, want the new address's packet", ok, p.Payload[:1])
		}
		if got := peerOf(t, s, caller); got != c.addr() {
			t.Fatalf("after the move the caller's leg is connected to %v, want %v", got, c.addr())
		}
		a.send(toA, 0, payload(2))
		if p, ok := b.recv(200 * time.Millisecond); ok {
			t.Fatalf("the old address's packet was relayed: %v", p.Payload[:1])
		}
		b.send(toB, 0, payload(4))
		if p, ok := c.recv(2 * time.Second); !ok || p.Payload[0] != 4 {
			t.Fatalf("the business line's audio did not reach the new address: %v", ok)
		}
		var rec store.Call
		s.Close(&rec)
		if rec.Media.StrictSourceDrops != 1 {
			t.Errorf("strict source drops %d, want 1 (the old address)", rec.Media.StrictSourceDrops)
		}
	})
}

// peerOf is the address a leg's socket is connected to.
func peerOf(t *testing.T, s *Session, side int) netip.AddrPort {
	t.Helper()
	s.mu.Lock()
	fd := s.legs[side].fd
	s.mu.Unlock()
	sa, err := unix.Getpeername(fd)
	if err != nil {
		t.Fatalf("getpeername: %v", err)
	}
	in := sa.(*unix.SockaddrInet4)
	return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
}

// bindPort tries to bind a UDP socket to ap, with or without SO_REUSEPORT.
func bindPort(ap netip.AddrPort, reuse bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return err
		}
	}
	return unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
}

func TestBadRTPIsDroppedAndCallGoesOn(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		a.send(toA, 0, payload(1)) // latch
		if _, ok := b.recv(2 * time.Second); !ok {
			t.Fatal("not relayed")
		}
		bad := [][]byte{
			{0x80},                            // runt
			[]byte("garbage garbage garbage"), // version 1
			{0x8f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa},                    // 15 CSRCs in 13 bytes
			append([]byte{0xa0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, 1, 2, 200), // padding 200 > payload
			{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 9},        // extension past the end
		}
		for _, p := range bad {
			if _, err := a.conn.WriteToUDPAddrPort(p, toA); err != nil {
				t.Fatal(err)
			}
		}
		a.send(toA, 0, payload(2))
		if p, ok := b.recv(2 * time.Second); !ok || p.Payload[0] != 2 {
			t.Fatal("the call did not carry on after bad RTP")
		}
		var rec store.Call
		s.Close(&rec)
		if rec.Media.BadRTP != uint64(len(bad)) {
			t.Errorf("bad RTP %d, want %d", rec.Media.BadRTP, len(bad))
		}
	})
}

// writeWAV writes an 8 kHz mono 16-bit prompt of n samples of a ramp.
func writeWAV(t *testing.T, n int) string {
	t.Helper()
	data := make([]byte, 44+2*n)
	copy(data, "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*n))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1)
	binary.LittleEndian.PutUint16(data[22:], 1)
	binary.LittleEndian.PutUint32(data[24:], 8000)
	binary.LittleEndian.PutUint32(data[28:], 16000)
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*n))
	for i := range n {
		binary.LittleEndian.PutUint16(data[44+2*i:], uint16(int16((i%100)*200-10000)))
	}
	path := filepath.Join(t.TempDir(), "prompt.wav")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The caller hears the whole disclaimer before any bridged audio, on one RTP stream whose
// sequence numbers run on without a gap into the business line's audio.
func TestDisclaimerBeforeBridgeWithContinuousSequence(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		cust := recordingCustomer()
		cust.Prompts.Disclaimer = writeWAV(t, 8000/2) // 0.5 s: 25 frames
		f := newFixture(t, Config{IO: mode}, cust)
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s := f.anchor(t, a.sdp("sendrecv", "0"))
		if !s.Early() {
			t.Fatal("a disclaimer should play as early media")
		}
		prompt := f.e.prompts[cust.Prompts.Disclaimer]
		// The business line answers at once: it must wait for the disclaimer.
		if err := s.Callee(b.sdp("sendrecv", "0"), netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		s.Answered()
		toB := anchorAddr(t, s.Offer())

		var seqs []uint16
		var ssrc uint32
		for i := range prompt.Frames() {
			p, ok := a.recv(2 * time.Second)
			if !ok {
				t.Fatalf("disclaimer frame %d missing", i)
			}
			if string(p.Payload) != string(prompt.frame(g711.ULaw, i)) {
				t.Fatalf("frame %d is not the disclaimer's", i)
			}
			if i == 0 {
				ssrc = p.SSRC
			} else if p.SSRC != ssrc {
				t.Fatal("SSRC changed within the disclaimer")
			}
			seqs = append(seqs, p.SequenceNumber)
		}
		// Business-line audio sent during the disclaimer does not reach the caller.
		b.send(toB, 0, payload(0x42))
		select {
		case <-s.Ready():
		case <-time.After(2 * time.Second):
			t.Fatal("not ready after the disclaimer")
		}
		s.Bridge()
		// Drain ringback frames sent between the disclaimer's end and the bridge.
		for {
			b.send(toB, 0, payload(0x42))
			p, ok := a.recv(time.Second)
			if !ok {
				t.Fatal("no bridged audio")
			}
			if p.SSRC != ssrc {
				t.Fatal("SSRC changed at the bridge")
			}
			seqs = append(seqs, p.SequenceNumber)
			if p.Payload[0] == 0x42 {
				break
			}
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Fatalf("sequence gap: %d after %d (packet %d)", seqs[i], seqs[i-1], i)
			}
		}
	})
}

func TestWhisperPlaysToBusinessLineBeforeBridge(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		cust := recordingCustomer()
		cust.Prompts.Whisper = writeWAV(t, 1600) // 0.2 s
		f := newFixture(t, Config{IO: mode}, cust)
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s := f.anchor(t, a.sdp("sendrecv", "0"))
		if err := s.Callee(b.sdp("sendrecv", "0"), netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.Ready():
			t.Fatal("ready before the whisper played")
		case <-time.After(100 * time.Millisecond):
		}
		s.Answered()
		for i := range 10 {
			if _, ok := b.recv(2 * time.Second); !ok {
				t.Fatalf("whisper frame %d missing", i)
			}
		}
		select {
		case <-s.Ready():
		case <-time.After(2 * time.Second):
			t.Fatal("not ready after the whisper")
		}
	})
}

func TestRTPTimeoutEndsCall(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode, RTPTimeout: 300 * time.Millisecond}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, _, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("no RTP timeout")
		}
		var rec store.Call
		s.Close(&rec)
		if rec.EndReason != "rtp_timeout" {
			t.Errorf("end reason %q", rec.EndReason)
		}
		if n := testutil.ToFloat64(f.e.m.timeouts); n != 1 {
			t.Errorf("timeouts metric %v", n)
		}
	})
}

func TestHoldSuspendsTimeout(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode, RTPTimeout: 300 * time.Millisecond}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, _, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		out, err := s.Rewrite(true, a.sdp("sendonly", "0"))
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := parseDesc(out); d.dir != dirSendOnly || d.addr != anchorAddr(t, s.Offer()) {
			t.Fatalf("re-offer to the business line: %s", out)
		}
		select {
		case <-s.Done():
			t.Fatal("timed out while on hold")
		case <-time.After(1500 * time.Millisecond):
		}
	})
}

func TestOfferWithoutG711IsNotAcceptable(t *testing.T) {
	f := newFixture(t, Config{}, recordingCustomer())
	a := newEndpoint(t, "127.0.0.1")
	_, err := f.e.Anchor(context.Background(), &callseam.CallInfo{CallID: "X1", CustomerID: "c1"}, a.sdp("sendrecv", "9", "18"))
	if !errors.Is(err, callseam.ErrNotAcceptable) {
		t.Fatalf("err %v, want ErrNotAcceptable", err)
	}
	_, err = f.e.Anchor(context.Background(), &callseam.CallInfo{CallID: "X2", CustomerID: "c1"}, []byte("v=0\r\nnonsense"))
	if !errors.Is(err, callseam.ErrBadSDP) {
		t.Fatalf("err %v, want ErrBadSDP", err)
	}
	if n := f.e.ports.available(); n != f.e.ports.pairs() {
		t.Errorf("ports leaked: %d of %d free", n, f.e.ports.pairs())
	}
}

func TestNoAnchorWithoutRecordingOrPrompts(t *testing.T) {
	f := newFixture(t, Config{}, store.Customer{ID: "c1"})
	a := newEndpoint(t, "127.0.0.1")
	ms, err := f.e.Anchor(context.Background(), &callseam.CallInfo{CallID: "X1", CustomerID: "c1"}, a.sdp("sendrecv", "0"))
	if err != nil || ms != nil {
		t.Fatalf("got %v %v, want direct media", ms, err)
	}
}

func TestProfessionalSecrecyNeedsConsent(t *testing.T) {
	cust := recordingCustomer()
	cust.Recording.ProfessionalSecrecy = true
	f := newFixture(t, Config{}, cust)
	a := newEndpoint(t, "127.0.0.1")
	info := &callseam.CallInfo{CallID: "X1", CustomerID: "c1"}
	ms, err := f.e.Anchor(context.Background(), info, a.sdp("sendrecv", "0"))
	if err != nil || ms != nil {
		t.Fatalf("got %v %v, want no anchor", ms, err)
	}
	if info.NotRecorded == "" || testutil.ToFloat64(f.e.m.refused.WithLabelValues("consent")) != 1 {
		t.Fatalf("refusal not recorded: %q", info.NotRecorded)
	}
	f.cust.Recording.ConsentConfirmed = true
	info = &callseam.CallInfo{CallID: "X2", CustomerID: "c1"}
	ms, err = f.e.Anchor(context.Background(), info, a.sdp("sendrecv", "0"))
	if err != nil || ms == nil {
		t.Fatalf("got %v %v, want anchored with consent", ms, err)
	}
	ms.Close(nil)
}

func TestRecordingRulesNarrow(t *testing.T) {
	cust := recordingCustomer()
	cust.Recording.Channels = []string{"Paid search"}
	f := newFixture(t, Config{}, cust)
	for _, c := range []struct {
		channel string
		want    bool
	}{{"Paid search", true}, {"paid SEARCH", true}, {"Direct", false}} {
		p, _ := f.e.planFor(&callseam.CallInfo{Channel: c.channel, Dialled: "+31850000001"}, f.cust)
		if p.record != c.want {
			t.Errorf("channel %q: record %v", c.channel, p.record)
		}
	}
}

// TestSDPAfterClose: an answer or re-INVITE that reaches a call whose media has closed is
// refused, and leaves the legs' sockets, which the loop is closing, alone (-race).
func TestSDPAfterClose(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, toB := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		a.send(toA, 0, payload(1)) // both legs latch and connect
		b.send(toB, 0, payload(2))
		if _, ok := b.recv(2 * time.Second); !ok {
			t.Fatal("caller's packet not relayed")
		}
		if _, ok := a.recv(2 * time.Second); !ok {
			t.Fatal("business line's packet not relayed")
		}
		s.Close(nil)
		moved := newEndpoint(t, "127.0.0.1") // an SDP with another address: would unlatch
		if err := s.Callee(moved.sdp("sendrecv", "0"), netip.Addr{}); !errors.Is(err, callseam.ErrNotAcceptable) {
			t.Errorf("Callee after Close: %v, want ErrNotAcceptable", err)
		}
		if _, err := s.Rewrite(true, moved.sdp("sendrecv", "0")); !errors.Is(err, callseam.ErrNotAcceptable) {
			t.Errorf("Rewrite after Close: %v, want ErrNotAcceptable", err)
		}
	})
}
