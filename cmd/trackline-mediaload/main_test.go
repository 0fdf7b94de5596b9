package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStampRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   stamp
	}{
		{"zero", stamp{}},
		{"trunk to line", stamp{call: 7, dir: trunkToLine, slot: 1500, sent: 123456789}},
		{"line to trunk, large", stamp{call: math.MaxUint32, dir: lineToTrunk, slot: math.MaxUint32, sent: math.MaxInt64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, payloadLen)
			fillTone(p)
			putStamp(p, tt.in)
			got, ok := readStamp(p)
			if !ok || got != tt.in {
				t.Fatalf("readStamp = %+v, %v; want %+v, true", got, ok, tt.in)
			}
		})
	}
}

func TestReadStampForeign(t *testing.T) {
	ours := make([]byte, payloadLen)
	putStamp(ours, stamp{call: 1, slot: 2, sent: 3})
	silence := bytes.Repeat([]byte{0xff}, payloadLen)
	wrongVersion := bytes.Clone(ours)
	wrongVersion[9] = 9
	tests := []struct {
		name string
		p    []byte
	}{
		{"silence (a prompt or ringback)", silence},
		{"short", ours[:stampLen-1]},
		{"empty", nil},
		{"other version", wrongVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, ok := readStamp(tt.p); ok {
				t.Fatalf("readStamp = %+v, true; want false", s)
			}
		})
	}
}

func TestRTPPayload(t *testing.T) {
	pkt := make([]byte, packetLen)
	putHeader(pkt, 1, 2, 3)
	copy(pkt[rtpHeaderLen:], "payload")
	withCSRC := append([]byte{0x82}, pkt[1:rtpHeaderLen]...)
	withCSRC = append(withCSRC, make([]byte, 8)...)
	withCSRC = append(withCSRC, "payload"...)
	withExt := append([]byte{0x90}, pkt[1:rtpHeaderLen]...)
	withExt = append(withExt, 0xbe, 0xde, 0, 1, 1, 2, 3, 4) // RFC 8285 one-byte form, one word
	withExt = append(withExt, "payload"...)
	withPad := append([]byte{0xa0}, pkt[1:rtpHeaderLen]...)
	withPad = append(withPad, "payload"...)
	withPad = append(withPad, 0, 0, 3)
	badPad := bytes.Clone(withPad)
	badPad[len(badPad)-1] = 200
	tests := []struct {
		name string
		b    []byte
		want string
		ok   bool
	}{
		{"plain", pkt[:rtpHeaderLen+7], "payload", true},
		{"two CSRCs", withCSRC, "payload", true},
		{"header extension", withExt, "payload", true},
		{"padding", withPad, "payload", true},
		{"padding longer than the packet", badPad, "", false},
		{"short", pkt[:rtpHeaderLen-1], "", false},
		{"version 1", append([]byte{0x40}, pkt[1:]...), "", false},
		{"extension cut short", withExt[:rtpHeaderLen+2], "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := rtpPayload(tt.b)
			if ok != tt.ok || string(got) != tt.want {
				t.Fatalf("rtpPayload = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPutHeader(t *testing.T) {
	b := make([]byte, rtpHeaderLen)
	putHeader(b, 0xabcd, 0x01020304, 0xdeadbeef)
	want := []byte{0x80, 0x00, 0xab, 0xcd, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef}
	if !bytes.Equal(b, want) {
		t.Fatalf("header % x, want % x", b, want)
	}
}

func TestFillToneIsNotSilence(t *testing.T) {
	p := make([]byte, payloadLen)
	fillTone(p)
	distinct := map[byte]bool{}
	for _, b := range p {
		distinct[b] = true
	}
	if len(distinct) < 4 {
		t.Fatalf("tone has %d distinct µ-law values, want a waveform", len(distinct))
	}
}

func TestHistogramQuantiles(t *testing.T) {
	us := func(v float64) int64 { return int64(v * 1000) }
	tests := []struct {
		name                string
		samplesUs           []float64
		p50, p99, p999, max float64
	}{
		{"empty", nil, 0, 0, 0, 0},
		{"one", []float64{5.5}, 5.5, 5.5, 5.5, 5.5}, // capped at the max
		{"1..1000 µs", seq(1, 1000, 1), 501, 991, 1000, 1000},
		{"mid buckets", []float64{2000, 2005, 5000, 19999}, 2010, 19999, 19999, 19999},
		{"coarse and overflow", []float64{25_000, 999_999, 1_500_000}, 1_000_000, 1_500_000, 1_500_000, 1_500_000},
		{"negative counts as 0", []float64{-3, -3, 10}, 1, 10, 10, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h latencyHist
			for _, v := range tt.samplesUs {
				h.add(us(v))
			}
			got := [4]float64{h.quantile(0.5), h.quantile(0.99), h.quantile(0.999), h.maxUs()}
			want := [4]float64{tt.p50, tt.p99, tt.p999, tt.max}
			if got != want {
				t.Fatalf("p50, p99, p99.9, max = %v, want %v", got, want)
			}
		})
	}
}

func seq(from, to, step float64) []float64 {
	var out []float64
	for v := from; v <= to; v += step {
		out = append(out, v)
	}
	return out
}

func TestHistogramBuckets(t *testing.T) {
	prev := 0.0
	for i := range overflow {
		up := bucketUpper(i)
		if up <= prev {
			t.Fatalf("bucket %d: upper edge %v not above %v", i, up, prev)
		}
		if got := bucketOf(int64(up) - 1); got != i {
			t.Fatalf("bucketOf(%v - 1) = %d, want %d", up, got, i)
		}
		if got := bucketOf(int64(up)); got != i+1 {
			t.Fatalf("bucketOf(%v) = %d, want %d", up, got, i+1)
		}
		prev = up
	}
	if !math.IsInf(bucketUpper(overflow), 1) || bucketOf(math.MaxInt64/1000) != overflow {
		t.Fatal("overflow bucket")
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b latencyHist
	a.add(1000)
	b.add(3000)
	b.add(5000)
	a.merge(&b)
	if a.n != 3 || a.maxNs != 5000 || a.quantile(0.5) != 4 {
		t.Fatalf("merged n %d max %d p50 %v", a.n, a.maxNs, a.quantile(0.5))
	}
}

func TestSDPAudioAddr(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
		ok   bool
	}{
		{"own offer", string(sdpBody("trunk", 1, netip.MustParseAddr("127.0.0.1"), 40000)), "127.0.0.1:40000", true},
		{"media c= wins", "v=0\r\nc=IN IP4 127.0.0.2\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 127.0.0.3\r\n", "127.0.0.3:5000", true},
		{"session c=, LF only", "v=0\nc=IN IP4 127.0.0.2\nm=audio 5002 RTP/AVP 0\n", "127.0.0.2:5002", true},
		{"ttl suffix", "v=0\r\nc=IN IP4 127.0.0.2/127\r\nm=audio 5000 RTP/AVP 0\r\n", "127.0.0.2:5000", true},
		{"first audio of two", "v=0\r\nc=IN IP4 127.0.0.2\r\nm=audio 5000 RTP/AVP 0\r\nm=audio 6000 RTP/AVP 0\r\nc=IN IP4 127.0.0.9\r\n", "127.0.0.2:5000", true},
		{"video first", "v=0\r\nc=IN IP4 127.0.0.2\r\nm=video 7000 RTP/AVP 96\r\nc=IN IP4 127.0.0.8\r\nm=audio 5000 RTP/AVP 0\r\n", "127.0.0.2:5000", true},
		{"rejected stream", "v=0\r\nc=IN IP4 127.0.0.2\r\nm=audio 0 RTP/AVP 0\r\n", "", false},
		{"no audio", "v=0\r\nc=IN IP4 127.0.0.2\r\nm=video 7000 RTP/AVP 96\r\n", "", false},
		{"no address", "v=0\r\nm=audio 5000 RTP/AVP 0\r\n", "", false},
		{"ipv6", "v=0\r\nc=IN IP6 ::1\r\nm=audio 5000 RTP/AVP 0\r\n", "", false},
		{"bad port", "v=0\r\nc=IN IP4 127.0.0.2\r\nm=audio x RTP/AVP 0\r\n", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sdpAudioAddr([]byte(tt.body))
			if (err == nil) != tt.ok || (tt.ok && got.String() != tt.want) {
				t.Fatalf("sdpAudioAddr = %v, %v; want %s, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestCallIndex(t *testing.T) {
	tests := []struct {
		user  string
		calls int
		want  int
		ok    bool
	}{
		{callerNumber(0), 10, 0, true},
		{callerNumber(123), 1000, 123, true},
		{"0031600000123", 1000, 123, true},
		{"0600000123", 1000, 123, true},
		{callerNumber(1000), 1000, 0, false},
		{"anonymous", 10, 0, false},
		{"+3161", 10, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			got, ok := callIndex(tt.user, tt.calls)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("callIndex(%q, %d) = %d, %v; want %d, %v", tt.user, tt.calls, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestNumberRange(t *testing.T) {
	got, err := numberRange("+31850000009", 3)
	if err != nil || len(got) != 3 || got[0] != "+31850000009" || got[2] != "+31850000011" {
		t.Fatalf("numberRange = %v, %v", got, err)
	}
	if got, err := numberRange("0099", 2); err != nil || got[1] != "0100" {
		t.Fatalf("numberRange keeps the width: %v, %v", got, err)
	}
	for _, bad := range []string{"", "+", "+31x", "abc"} {
		if _, err := numberRange(bad, 1); err == nil {
			t.Errorf("numberRange(%q) accepted", bad)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"numbers", []string{"-numbers", "+31850000001, +31850000002"}, true},
		{"metrics on loopback", []string{"-switch-metrics", "http://127.0.0.1:9090/metrics"}, true},
		{"switch not on loopback", []string{"-switch", "192.0.2.1:5060"}, false},
		{"bind not on loopback", []string{"-bind", "0.0.0.0"}, false},
		{"metrics not on loopback", []string{"-switch-metrics", "http://192.0.2.1:9090/metrics"}, false},
		{"no calls", []string{"-calls", "0"}, false},
		{"short window", []string{"-duration", "500ms"}, false},
		{"header injection", []string{"-numbers", "+3185\r\nX: y"}, false},
		{"bare relay", []string{"-relay", "127.0.0.1:10000", "-calls", "1000"}, true},
		{"bare relay not on loopback", []string{"-relay", "192.0.2.1:10000"}, false},
		{"bare relay ports past 65535", []string{"-relay", "127.0.0.1:60000", "-calls", "2000"}, false},
		{"real-time priority", []string{"-rt-priority", "5"}, true},
		{"real-time priority out of range", []string{"-rt-priority", "100"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := parseFlags(tt.args, &out)
			if (err == nil) != tt.ok {
				t.Fatalf("parseFlags(%q) = %v; ok want %v", tt.args, err, tt.ok)
			}
			if err == nil && c.deadline < c.duration+120*time.Second {
				t.Fatalf("deadline %v below duration + 120 s", c.deadline)
			}
		})
	}
}

// TestEngineLoopback runs the media engine on two calls whose two sides send straight to
// each other: nothing is lost or misrouted, every window packet has a latency, and foreign
// datagrams are told apart.
func TestEngineLoopback(t *testing.T) {
	const calls = 2
	e, err := newEngine(calls, 1, time.Millisecond, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	e.rtPrio = 1
	lo := netip.MustParseAddr("127.0.0.1")
	var trunkFD, lineFD [calls]int
	var trunkPort, linePort [calls]int
	for i := range calls {
		if trunkFD[i], trunkPort[i], err = e.openSocket(lo, i, lineToTrunk); err != nil {
			t.Fatal(err)
		}
		if lineFD[i], linePort[i], err = e.openSocket(lo, i, trunkToLine); err != nil {
			t.Fatal(err)
		}
		if trunkPort[i]%2 != 0 || linePort[i]%2 != 0 {
			t.Fatalf("odd RTP port %d/%d", trunkPort[i], linePort[i])
		}
	}
	e.start()
	for i := range calls {
		e.activate(i, trunkToLine, trunkFD[i], netip.AddrPortFrom(lo, uint16(linePort[i])))
		e.activate(i, lineToTrunk, lineFD[i], netip.AddrPortFrom(lo, uint16(trunkPort[i])))
	}
	if e.activate(0, trunkToLine, trunkFD[0], netip.AddrPortFrom(lo, 9)) {
		t.Fatal("a stream started twice")
	}
	// On call 0's trunk socket: a foreign packet (a prompt), and a packet of call 1.
	prompt := make([]byte, packetLen)
	putHeader(prompt, 1, 1, 1)
	for i := rtpHeaderLen; i < len(prompt); i++ {
		prompt[i] = 0xff
	}
	stray := make([]byte, packetLen)
	putHeader(stray, 1, 1, 1)
	putStamp(stray[rtpHeaderLen:], stamp{call: 1, dir: lineToTrunk})
	to := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: trunkPort[0]}
	if err := unix.Sendto(lineFD[1], prompt, 0, to); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(lineFD[1], stray, 0, to); err != nil {
		t.Fatal(err)
	}
	s0 := e.slotNow() + 3
	e.win.Store(newWindow(s0, s0+10, 2*calls))
	done := make(chan struct{})
	go func() { e.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		e.stop()
		t.Fatal("loop did not end after the window")
	}
	st := e.total()
	if n := e.sending.Load(); n != 0 {
		t.Errorf("%d loops still count as sending after the window", n)
	}
	// Root may use real-time priority; others are refused unless RLIMIT_RTPRIO allows it.
	if st.rtErr != nil && (os.Geteuid() == 0 || !errors.Is(st.rtErr, unix.EPERM)) {
		t.Errorf("real-time priority: %v", st.rtErr)
	}
	want := uint64(calls * 10)
	for d := range 2 {
		if st.sent[d] != want || st.got[d] != want || st.dup[d] != 0 {
			t.Errorf("direction %v: sent %d, got %d, dup %d; want %d, %d, 0", direction(d), st.sent[d], st.got[d], st.dup[d], want, want)
		}
	}
	if st.foreign != 1 || st.misrouted != 1 || st.malformed != 0 || st.late != 0 {
		t.Errorf("foreign %d misrouted %d malformed %d late %d; want 1 1 0 0", st.foreign, st.misrouted, st.malformed, st.late)
	}
	if st.latency.n != 2*want || st.noStamp != 0 {
		t.Errorf("latency samples %d (no kernel stamp %d), want %d", st.latency.n, st.noStamp, 2*want)
	}
	w := e.win.Load()
	for i := range e.streams {
		if got := w.received(i); got != 10 || e.streams[i].winSent != 10 {
			t.Errorf("stream %d: received %d of %d sent, want 10 of 10", i, got, e.streams[i].winSent)
		}
	}
}

// TestOverWaitsTheGraceAfterTheLastSend: a loop that sent the window's last slot late
// still waits the grace time before it stops reading.
func TestOverWaitsTheGraceAfterTheLastSend(t *testing.T) {
	const grace = time.Second
	for _, c := range []struct {
		name  string
		slot  uint32
		since time.Duration
		want  bool
	}{
		{"on time, grace slots not over", 99, grace - 20*time.Millisecond, false},
		{"on time, both over", 100, grace, true},
		{"behind: past the grace slots at once", 100, 30 * time.Millisecond, false},
		{"behind, then the grace time over", 180, grace, true},
	} {
		if got := over(c.slot, 100, c.since, grace); got != c.want {
			t.Errorf("%s: over = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestWaitSentEndsWhenTheLoopsStop: the end-of-window sample does not wait for loops that
// stopped before the window.
func TestWaitSentEndsWhenTheLoopsStop(t *testing.T) {
	e, err := newEngine(1, 2, time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	e.start()
	if n := e.sending.Load(); n != 2 {
		t.Fatalf("sending %d at start, want 2", n)
	}
	e.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := e.waitSent(ctx); err != nil {
		t.Fatalf("waitSent after stop: %v", err)
	}
	if n := e.sending.Load(); n != 0 {
		t.Fatalf("sending %d after stop, want 0", n)
	}
}

// TestHotPathAllocs: sending a packet and reading one allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	e, err := newEngine(1, 1, time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	lo := netip.MustParseAddr("127.0.0.1")
	a, _, err := e.openSocket(lo, 0, lineToTrunk)
	if err != nil {
		t.Fatal(err)
	}
	_, pb, err := e.openSocket(lo, 0, trunkToLine)
	if err != nil {
		t.Fatal(err)
	}
	e.activate(0, trunkToLine, a, netip.AddrPortFrom(lo, uint16(pb)))
	w := newWindow(0, 1<<20, 2)
	st := new(loopStats)
	r := newReader()
	events := make([]unix.EpollEvent, 16)
	pkt := make([]byte, packetLen)
	fillTone(pkt[rtpHeaderLen:])
	s := &e.streams[e.streamIndex(0, trunkToLine)]
	slot := uint32(0)
	allocs := testing.AllocsPerRun(200, func() {
		e.sendOne(s, e.streamIndex(0, trunkToLine), slot, true, pkt, st)
		e.drain(e.epfds[0], w, r, events, st)
		slot++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
	if st.got[trunkToLine] == 0 || st.sendErrs != 0 {
		t.Fatalf("got %d, send errors %d", st.got[trunkToLine], st.sendErrs)
	}
	if binary.BigEndian.Uint32(pkt[rtpHeaderLen:]) != magic {
		t.Fatal("sent packet lacks the stamp")
	}
}

// TestRunDirect runs the generator without SIP against a relay of the bare relay's layout
// (scripts/bare-relay.c: pair i on ports FIRST+4i and FIRST+4i+2, each side connected to the
// first source it hears): every call is up, every window packet arrives at the other side
// of its own call, and the relay's CPU is sampled.
func TestRunDirect(t *testing.T) {
	const calls = 3
	lo := netip.MustParseAddr("127.0.0.1")
	var first uint16
	var socks [2 * calls]*net.UDPConn
	for try := 0; ; try++ {
		first = uint16(11000 + 64*try)
		ok := true
		for i := range socks {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, first+uint16(2*i))))
			if err != nil {
				ok = false
				break
			}
			socks[i] = c
		}
		if ok {
			break
		}
		for i := range socks {
			if socks[i] != nil {
				socks[i].Close()
				socks[i] = nil
			}
		}
		if try == 20 {
			t.Fatal("no free run of relay ports")
		}
	}
	var mu sync.Mutex
	peers := map[int]netip.AddrPort{}
	var wg sync.WaitGroup
	for i, c := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				mu.Lock()
				peers[i] = from
				to, ok := peers[i^1]
				mu.Unlock()
				if ok {
					socks[i^1].WriteToUDPAddrPort(buf[:n], to)
				}
			}
		}()
	}
	defer func() {
		for _, c := range socks {
			c.Close()
		}
		wg.Wait()
	}()

	// A /metrics whose every scrape allocates 1,600 times and, between scrapes, nothing; its
	// relayed counter moves by 1,000 per scrape.
	var scrapes atomic.Int64
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		fmt.Fprintf(w, "# TYPE go_memstats_mallocs_total counter\ngo_memstats_mallocs_total %d\n", 1600*n)
		fmt.Fprintf(w, "trackline_rtp_relayed_packets_total %d\n", 1000*n)
	}))
	defer metrics.Close()

	var out bytes.Buffer
	cfg, err := parseFlags([]string{"-relay", netip.AddrPortFrom(lo, first).String(), "-calls", fmt.Sprint(calls),
		"-duration", "1s", "-settle", "200ms", "-switch-pid", fmt.Sprint(os.Getpid()),
		"-switch-metrics", metrics.URL + "/metrics"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := run(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if rep.CallsUp != calls || rep.CallsFailed != 0 {
		t.Fatalf("calls up %d, failed %d; want %d, 0", rep.CallsUp, rep.CallsFailed, calls)
	}
	if want := uint64(2 * calls * 50); rep.PacketsSent < want {
		t.Fatalf("sent %d packets in the window; want at least %d", rep.PacketsSent, want)
	}
	if rep.LossPct.Total != 0 || rep.MisroutedPackets != 0 {
		t.Fatalf("loss %v %%, misrouted %d; want none", rep.LossPct.Total, rep.MisroutedPackets)
	}
	if rep.Switch == nil || rep.Switch.CPUPctPerCall == nil {
		t.Fatalf("no CPU figure for the relay: %+v", rep.Switch)
	}
	if rep.CallSeconds <= 0 {
		t.Fatalf("call seconds %v; want more than 0", rep.CallSeconds)
	}
	// Three scrapes: two back to back at the start, one at the end. The window's 1,600
	// mallocs are the one scrape, so nothing is left per packet.
	sw := rep.Switch
	if scrapes.Load() != 3 || sw.Mallocs == nil || *sw.Mallocs != 1600 || sw.ScrapeMallocs == nil || *sw.ScrapeMallocs != 1600 ||
		sw.RelayedPackets == nil || *sw.RelayedPackets != 1000 || sw.AllocsPerPacket == nil || *sw.AllocsPerPacket != 0 {
		t.Fatalf("%d scrapes, mallocs %s of which one scrape %s, relayed %s, allocs/packet %s; want 3, 1600, 1600, 1000, 0",
			scrapes.Load(), num(sw.Mallocs, 0), num(sw.ScrapeMallocs, 0), num(sw.RelayedPackets, 0), num(sw.AllocsPerPacket, 4))
	}
	if rep.StolenWindowCPUS < 0 {
		t.Fatalf("stolen CPU %v s", rep.StolenWindowCPUS)
	}
}

// TestParseSteal reads steal from /proc/stat's cpu line and gives 0 for anything else.
func TestParseSteal(t *testing.T) {
	for _, c := range []struct {
		stat string
		want int64
	}{
		{"cpu  808081 7123 746650 3787749 259146 0 181833 1057 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n", 1057},
		{"cpu  1 2 3 4 5 6 7 8\n", 8},
		{"cpu  1 2 3 4 5 6 7\n", 0},        // a kernel too old to account steal
		{"cpu0 1 2 3 4 5 6 7 8 9 10\n", 0}, // not the machine-wide line
		{"cpu  1 2 3 4 5 6 7 x\n", 0},
		{"cpu  1 2 3 4 5 6 7 -3\n", 0},
		{"", 0},
	} {
		if got := parseSteal(c.stat); got != c.want {
			t.Errorf("parseSteal(%q) = %d; want %d", c.stat, got, c.want)
		}
	}
	if v := stolenTicks(); v < 0 {
		t.Errorf("stolenTicks() = %d on this machine", v)
	}
}
