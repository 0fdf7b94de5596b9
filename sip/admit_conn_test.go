package sip

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The key admission control reads from the edge's scan of a passed request.
func TestInviteRef(t *testing.T) {
	const base = "INVITE sip:+31850000001@sw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;rport\r\nFrom: <sip:a@b>;tag=f\r\nCall-ID: abc@x\r\n%s\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	key := inviteKey([]byte("z9hG4bK-1"), []byte("abc@x"))
	tests := []struct {
		name    string
		msg     string
		method  int
		initial bool
	}{
		{"initial", fmt.Sprintf(base, "To: <sip:+31850000001@sw>"), methodInvite, true},
		{"tag in the URI is no To tag", fmt.Sprintf(base, "To: <sip:+31850000001@sw;tag=uri>"), methodInvite, true},
		{"re-INVITE", fmt.Sprintf(base, "To: <sip:+31850000001@sw>;tag=abc"), methodInvite, false},
		{"compact forms", "INVITE sip:x@sw SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK-1\r\nf: <sip:a@b>;tag=f\r\ni: abc@x\r\nt: sip:x@sw\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n", methodInvite, true},
		{"white space around the branch", strings.Replace(fmt.Sprintf(base, "To: <sip:x@sw>"), ";branch=z9hG4bK-1", " ; branch = z9hG4bK-1", 1), methodInvite, true},
		{"two via-parms in the line", strings.Replace(fmt.Sprintf(base, "To: <sip:x@sw>"), ";rport", ";rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-2", 1), methodInvite, true},
		{"folded To with its tag", fmt.Sprintf(base, "To: <sip:x@sw>\r\n ;tag=folded"), methodInvite, false},
		{"ACK", strings.ReplaceAll(fmt.Sprintf(base, "To: <sip:x@sw>;tag=1"), "INVITE", "ACK"), methodAck, false},
		{"no branch (RFC 2543)", strings.Replace(fmt.Sprintf(base, "To: <sip:x@sw>"), ";branch=z9hG4bK-1", "", 1), methodOther, false},
		{"OPTIONS", strings.ReplaceAll(fmt.Sprintf(base, "To: <sip:x@sw>"), "INVITE", "OPTIONS"), methodOther, false},
	}
	lim := edgeLimits{maxHeader: 8192, maxBody: 16384}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sc scan
			sc.readMessage([]byte(tt.msg), false, &lim)
			if sc.fault.code != 0 {
				t.Fatalf("the edge faults it: %+v", sc.fault)
			}
			r := sc.inviteRef([]byte(tt.msg))
			if r.method != tt.method || r.initial != tt.initial || r.method != methodOther && r.key != key {
				t.Errorf("inviteRef = %+v; want method %d, key %x, initial %v", r, tt.method, key, tt.initial)
			}
		})
	}
}

// A business line's final answer to an INVITE, keyed by its Call-ID, from the edge's scan
// of a response: not a provisional answer, a challenge, an answer to another method or a
// status line the scan cannot read.
func TestInviteRefAnswer(t *testing.T) {
	const base = "SIP/2.0 %s\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:x@sw>;tag=t\r\ni: line-1\r\nCSeq: 7 %s\r\nContent-Length: 0\r\n\r\n"
	tests := []struct {
		status, method string
		want           int
	}{
		{"200 OK", "INVITE", methodAnswer},
		{"486 Busy Here", "INVITE", methodAnswer},
		{"603 Decline", "INVITE", methodAnswer},
		{"180 Ringing", "INVITE", methodOther},
		{"183 Session Progress", "INVITE", methodOther},
		{"401 Unauthorized", "INVITE", methodOther},
		{"407 Proxy Authentication Required", "INVITE", methodOther},
		{"200 OK", "BYE", methodOther},
		{"200 OK", "CANCEL", methodOther},
		{"2000 OK", "INVITE", methodOther},
		{"20 OK", "INVITE", methodOther},
		{"OK", "INVITE", methodOther},
	}
	lim := edgeLimits{maxHeader: 8192, maxBody: 16384}
	for _, tt := range tests {
		t.Run(tt.status+" "+tt.method, func(t *testing.T) {
			msg := []byte(fmt.Sprintf(base, tt.status, tt.method))
			var sc scan
			sc.readMessage(msg, false, &lim)
			r := sc.inviteRef(msg)
			if r.method != tt.want || r.method == methodAnswer && r.key != answerKey([]byte("line-1")) {
				t.Errorf("inviteRef = %+v, want method %d keyed by the Call-ID", r, tt.want)
			}
		})
	}
}

// testAdmitConn serves admitConn over a real UDP socket for a trunk at 127.0.0.1, with
// admission control a; the datagrams it passes to sipgo come out of the channel.
// With read false nothing takes the datagrams from the queue.
func testAdmitConn(t *testing.T, a *admission, read bool) (c *admitConn, passed <-chan string) {
	t.Helper()
	return testAdmitConnClock(t, a, read, time.Now)
}

// testAdmitConnClock is testAdmitConn with the switch's clock now.
func testAdmitConnClock(t *testing.T, a *admission, read bool, now func() time.Time) (c *admitConn, passed <-chan string) {
	t.Helper()
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trunks := []Trunk{{Name: "t", Sources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	s := &Switch{now: now, adm: a, edge: newEdge(EdgeConfig{}, trunks, slog.New(slog.DiscardHandler), now)}
	c = newAdmitConn(s, srv)
	if c.meter == nil {
		t.Error("no kernel receive timestamps on a UDP socket")
	}
	out := make(chan string, 100)
	done := make(chan struct{})
	go func() { defer close(done); c.drain() }()
	if !read {
		close(out)
	}
	go func() {
		if !read {
			return
		}
		buf := make([]byte, udpReadBuffer)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				close(out)
				return
			}
			out <- strings.SplitN(string(buf[:n]), "\r\n", 2)[0] + " " + header(string(buf[:n]), "Via")
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		for range out {
		}
	})
	return c, out
}

// Over real UDP sockets: with a cap of one call, the first INVITE is passed on (and its
// retransmission too), the second is answered 503 with Retry-After and the same To tag each
// time it is retransmitted, and its ACK is absorbed; other requests pass.
func TestAdmitConnRefusesStatelessly(t *testing.T) {
	m := newAdmitMetrics()
	c, passed := testAdmitConn(t, newAdmission(0, 1, m), true)
	cli, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	port := cli.LocalAddr().(*net.UDPAddr).Port
	invite := func(branch, method string) string {
		return fmt.Sprintf("%s sip:+31850000001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"+
			"From: <sip:+31612345678@127.0.0.1>;tag=f\r\nTo: <sip:+31850000001@127.0.0.1>\r\nCall-ID: call-%s\r\n"+
			"CSeq: 1 %s\r\nContact: <sip:+31612345678@127.0.0.1:%d>\r\nContent-Length: 0\r\n\r\n", method, port, branch, branch, method, port)
	}
	send := func(msg string) {
		if _, err := cli.WriteTo([]byte(msg), c.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() string {
		cli.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		n, _, err := cli.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return string(buf[:n])
	}
	wantPassed := func(prefix string) {
		t.Helper()
		select {
		case got := <-passed:
			if !strings.HasPrefix(got, prefix) {
				t.Errorf("passed %q, want %q", got, prefix)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("nothing passed, want %q", prefix)
		}
	}

	send(invite("z9hG4bK-a", "INVITE"))
	wantPassed("INVITE sip:+31850000001@127.0.0.1 SIP/2.0 SIP/2.0/UDP 127.0.0.1")
	send(invite("z9hG4bK-b", "INVITE"))
	first := recv()
	send(invite("z9hG4bK-b", "INVITE")) // retransmitted
	again := recv()
	for _, res := range []string{first, again} {
		if !strings.HasPrefix(res, "SIP/2.0 503 ") || header(res, "Retry-After") != shedRetryAfter ||
			!strings.Contains(header(res, "Via"), "branch=z9hG4bK-b") || header(res, "Call-ID") != "call-z9hG4bK-b" ||
			header(res, "CSeq") != "1 INVITE" {
			t.Errorf("answer to the refused INVITE:\n%s", res)
		}
		if _, err := sipmsg.ParseMessage([]byte(res)); err != nil {
			t.Errorf("the 503 does not parse: %v\n%s", err, res)
		}
	}
	if header(first, "To") != header(again, "To") || !strings.Contains(header(first, "To"), ";tag=") {
		t.Errorf("To of the 503 and of its retransmission: %q, %q; want one tagged To", header(first, "To"), header(again, "To"))
	}
	send(strings.Replace(invite("z9hG4bK-b", "ACK"), "To: <sip:+31850000001@127.0.0.1>", "To: "+header(first, "To"), 1)) // the 503's ACK: absorbed
	send(invite("z9hG4bK-a", "INVITE"))                                                                                  // the admitted INVITE retransmitted: passed on
	wantPassed("INVITE sip:+31850000001@127.0.0.1 SIP/2.0 SIP/2.0/UDP 127.0.0.1")
	send(strings.Replace(invite("z9hG4bK-c", "OPTIONS"), "To: <sip:+31850000001@127.0.0.1>", "To: <sip:x@127.0.0.1>", 1))
	wantPassed("OPTIONS ")
	if got := testutil.ToFloat64(m.shed.WithLabelValues(shedMaxCPS)); got != 1 {
		t.Errorf("shed_total{max_cps} = %v, want 1 (a retransmission is not counted again)", got)
	}
}

// An INVITE that finds the queue standing longer than admitStale times the target is
// refused at once by the drain, with no limit in force yet, while sipgo's reader takes
// nothing: its 503 does not wait for the queue.
func TestAdmitConnRefusesWhileTheQueueStands(t *testing.T) {
	m := newAdmitMetrics()
	a := newAdmission(5*time.Millisecond, 0, m)
	c, _ := testAdmitConn(t, a, false)
	inviteWants503(t, c, "q", func(from net.Addr) {
		// A datagram from the same client has waited in the queue for a second: an OPTIONS
		// nobody takes.
		c.q.push([]byte("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\r\n"), from, time.Now().Add(-time.Second))
	})
	if got := testutil.ToFloat64(m.shed.WithLabelValues(shedStale)); got != 1 {
		t.Errorf("shed_total{overload_queue} = %v, want 1", got)
	}
}

// An INVITE is refused at once while the handlers of the INVITEs admitted before it
// started late (the backlog behind the queue), though the queue itself is empty.
func TestAdmitConnRefusesWhileHandlersLag(t *testing.T) {
	m := newAdmitMetrics()
	a := newAdmission(5*time.Millisecond, 0, m)
	c, _ := testAdmitConn(t, a, true)
	a.observeHandler(time.Second, time.Now())
	inviteWants503(t, c, "h", nil)
}

// inviteWants503 sends c an INVITE of Call-ID callID from a socket of its own (after before,
// if set, with that socket's address) and wants a 503 as the first answer.
func inviteWants503(t *testing.T, c net.PacketConn, callID string, before func(from net.Addr)) {
	t.Helper()
	cli, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	port := cli.LocalAddr().(*net.UDPAddr).Port
	if before != nil {
		before(cli.LocalAddr())
	}
	if _, err := cli.WriteTo([]byte(testInvite(port, callID)), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	cli.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := cli.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if res := string(buf[:n]); !strings.HasPrefix(res, "SIP/2.0 503 ") {
		t.Errorf("answer %q, want 503", res)
	}
}

// testInvite is a new call's INVITE from a client on port, of Call-ID callID and branch
// z9hG4bK-callID.
func testInvite(port int, callID string) string {
	return fmt.Sprintf("INVITE sip:+31850000001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s\r\n"+
		"From: <sip:+31612345678@127.0.0.1>;tag=f\r\nTo: <sip:+31850000001@127.0.0.1>\r\nCall-ID: %s\r\n"+
		"CSeq: 1 INVITE\r\nContact: <sip:+31612345678@127.0.0.1:%d>\r\nContent-Length: 0\r\n\r\n", port, callID, callID, port)
}

// Through the drain: while the setups in flight are at their limit a new INVITE gets 503 at
// once, with no queue and no limit on the rate; once a setup is done the next is admitted.
func TestAdmitConnRefusesWhileSetupsStand(t *testing.T) {
	m := newAdmitMetrics()
	a := newAdmission(0, 0, m)
	a.conc = 1
	c, passed := testAdmitConn(t, a, true)
	cli, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	port := cli.LocalAddr().(*net.UDPAddr).Port
	admitted := func(callID string) {
		t.Helper()
		if _, err := cli.WriteTo([]byte(testInvite(port, callID)), c.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-passed:
			if !strings.Contains(got, "branch=z9hG4bK-"+callID) {
				t.Errorf("passed %q, want the INVITE of %s", got, callID)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("the INVITE of %s was not passed on", callID)
		}
	}
	admitted("s1")
	inviteWants503(t, c, "s2", nil)
	a.setupDone(inviteKey([]byte("z9hG4bK-s1"), []byte("s1")), time.Now())
	admitted("s3")
	if got := testutil.ToFloat64(m.shed.WithLabelValues(shedSetups)); got != 1 {
		t.Errorf("shed_total{overload_setups} = %v, want 1", got)
	}
}

// A datagram that waited in the socket over a quarter of the target before the drain read it
// (the drain woke late) marks the switch strained, so that the drain polls for a while; one
// read at once does not. The switch's clock runs 150 ms ahead of the kernel's stamps in the
// second case: more than a quarter of the 400 ms target, less than the half that the
// interval's delay would need to strain the switch by itself.
func TestAdmitConnStrainedByAWaitInTheSocket(t *testing.T) {
	for _, tc := range []struct {
		skew     time.Duration
		strained bool
	}{{0, false}, {150 * time.Millisecond, true}} {
		a := newAdmission(400*time.Millisecond, 0, nil)
		now := func() time.Time { return time.Now().Add(tc.skew) }
		c, passed := testAdmitConnClock(t, a, true, now)
		cli, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.WriteTo([]byte("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-o\r\n"+
			"From: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), c.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-passed:
			if !strings.HasPrefix(got, "OPTIONS ") {
				t.Errorf("passed %q, want the OPTIONS", got)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the OPTIONS was not passed on")
		}
		if got := a.strained(now()); got != tc.strained {
			t.Errorf("clock %v ahead of the kernel's stamps: strained %v, want %v", tc.skew, got, tc.strained)
		}
		cli.Close()
	}
}

// The queue gives back what was pushed, in order, bounded, and the error that closed it once
// it is empty.
func TestDgramQueue(t *testing.T) {
	var q dgramQueue
	q.init(2)
	t0 := time.Unix(100, 0)
	big := make([]byte, dgramKeep+1)
	if !q.push([]byte("one"), nil, t0) || !q.push(big, nil, t0.Add(time.Second)) {
		t.Fatal("push into a queue with room failed")
	}
	if q.push([]byte("three"), nil, t0) || !q.full() {
		t.Error("a full queue took a third datagram")
	}
	if got := q.age(t0.Add(3 * time.Second)); got != 3*time.Second {
		t.Errorf("age = %v, want 3s", got)
	}
	p := make([]byte, udpReadBuffer)
	if n, _, rx, err := q.pop(p); err != nil || string(p[:n]) != "one" || !rx.Equal(t0) {
		t.Errorf("pop = %q, %v, %v", p[:n], rx, err)
	}
	q.close(net.ErrClosed)
	if n, _, _, err := q.pop(p); err != nil || n != len(big) {
		t.Errorf("pop after close = %d bytes, %v; want the queued datagram first", n, err)
	}
	if q.slots[1].b != nil {
		t.Error("a slot kept a buffer larger than dgramKeep")
	}
	if _, _, _, err := q.pop(p); err != net.ErrClosed {
		t.Errorf("pop of a closed, empty queue: %v, want net.ErrClosed", err)
	}
}

// header is the value of the first header named name in a message.
func header(msg, name string) string {
	for _, l := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// BenchmarkAdmitRefuse is the drain's cost of an INVITE it refuses: the edge's scan (as
// BenchmarkEdgeDatagram), its key, and the 503 built from the scan. For scale, the same 503
// built by parsing the INVITE with sipgo, as the refusal was made before.
func BenchmarkAdmitRefuse(b *testing.B) {
	trunks := []Trunk{{Name: "t", Sources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	e := newEdge(EdgeConfig{}, trunks, slog.New(slog.DiscardHandler), time.Now)
	src, _ := net.ResolveUDPAddr("udp", "127.0.0.1:40000")
	b.Run("edge scan, key, 503 from the scan", func(b *testing.B) {
		c := newEdgePacketConn(&benchConn{data: trunkInvite, src: src}, e)
		buf := make([]byte, udpReadBuffer)
		var out []byte
		b.ReportAllocs()
		for b.Loop() {
			n, addr, _ := c.ReadFrom(buf)
			if c.ref.method != methodInvite || !c.ref.initial {
				b.Fatal("not an initial INVITE")
			}
			c.sc.fault, c.sc.answerTag = faultShed, c.ref.key|1
			out = e.appendAnswer(out[:0], &c.sc, buf[:n])
			_ = replyAddr(&c.sc, buf[:n], addr)
		}
	})
	b.Run("sipgo parse, 503 from the message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			msg, err := sipmsg.ParseMessage(trunkInvite)
			if err != nil {
				b.Fatal(err)
			}
			res := sipmsg.NewResponseFromRequest(msg.(*sipmsg.Request), 503, "Service Unavailable", nil)
			res.To().Params.Add("tag", "x")
			res.AppendHeader(sipmsg.NewHeader("Retry-After", shedRetryAfter))
			_ = res.String()
		}
	})
}

// lineAnswer200 is a business line's 200 to the switch's INVITE, as the drain reads it.
var lineAnswer200 = []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\nFrom: <sip:a@b>;tag=f\r\n" +
	"To: <sip:x@sw>;tag=t\r\nCall-ID: line-1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n")

// seqConn hands out its datagrams in turn, from src, then io.EOF; last is the one handed
// out last.
type seqConn struct {
	net.PacketConn
	data [][]byte
	src  net.Addr
	last []byte
}

func (c *seqConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if len(c.data) == 0 {
		return 0, nil, io.EOF
	}
	n := copy(p, c.data[0])
	c.last, c.data = c.data[0], c.data[1:]
	return n, c.src, nil
}
func (c *seqConn) WriteTo(p []byte, _ net.Addr) (int, error) { return len(p), nil }

// A keep-alive after a message: what the edge tells of it (inviteRef, a normalized copy) is
// its own, not the last message's scan read over its bytes. A CRLF after a business line's
// final answer crashed the drain with an index out of range (e2e TestSIPHostileInput).
func TestEdgeKeepAliveAfterAMessage(t *testing.T) {
	trunks := []Trunk{{Name: "t", Sources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	e := newEdge(EdgeConfig{}, trunks, slog.New(slog.DiscardHandler), time.Now)
	folded := bytes.Replace(trunkInvite, []byte("Max-Forwards: 69\r\n"), []byte("Max-Forwards:\r\n 69\r\n"), 1) // lax: normalized
	src, _ := net.ResolveUDPAddr("udp", "127.0.0.1:40000")
	c := newEdgePacketConn(&seqConn{src: src, data: [][]byte{
		lineAnswer200, []byte("\r\n"), trunkInvite, []byte("\r\n\r\n"), folded, []byte("\n"), lineAnswer200, []byte("\r\n"),
	}}, e)
	c.queued = true // as under admitConn: nothing to remember for sipgo's parse errors
	want := []struct {
		method int
		keep   bool // a keep-alive, passed as it came
	}{{methodAnswer, false}, {methodOther, true}, {methodInvite, false}, {methodOther, true},
		{methodInvite, false}, {methodOther, true}, {methodAnswer, false}, {methodOther, true}}
	buf := make([]byte, udpReadBuffer)
	for i, w := range want {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if c.ref.method != w.method {
			t.Errorf("datagram %d: inviteRef method %d, want %d", i, c.ref.method, w.method)
		}
		if w.keep && (c.normalized || len(bytes.Trim(buf[:n], "\r\n")) != 0) {
			t.Errorf("datagram %d: the keep-alive came out as %q (normalized %v)", i, buf[:n], c.normalized)
		}
	}
}
