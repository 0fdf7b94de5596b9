package sip

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/store"
)

// req builds a request with the given start line and header lines (CRLF added), and body.
func req(start string, headers []string, body string) []byte {
	return []byte(start + "\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n" + body)
}

var baseHeaders = []string{
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-t1",
	"From: <sip:a@example.com>;tag=f1",
	"To: <sip:+31850000101@example.com>",
	"Call-ID: scan-test",
	"CSeq: 1 INVITE",
	"Max-Forwards: 70",
	"Contact: <sip:a@192.0.2.1>",
}

func with(drop string, add ...string) []string {
	var out []string
	for _, h := range baseHeaders {
		if drop != "" && strings.HasPrefix(h, drop+":") {
			continue
		}
		out = append(out, h)
	}
	return append(out, add...)
}

func TestScanFaults(t *testing.T) {
	lim := &edgeLimits{maxHeader: 1024, maxBody: 512}
	sdp := "v=0\r\nm=audio 4000 RTP/AVP 0\r\n"
	tests := []struct {
		name   string
		msg    []byte
		code   int
		reason string
	}{
		{"valid INVITE", req("INVITE sip:+31850000101@example.com SIP/2.0", with("", "Content-Type: application/sdp", "Content-Length: 29"), sdp), 0, ""},
		{"compact forms", []byte("INVITE sip:x@y SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\nt: <sip:x@y>\r\ni: c\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n"), 0, ""},
		{"version", req("INVITE sip:x@y SIP/3.0", with(""), ""), 505, "Version Not Supported"},
		{"scheme", req("INVITE tel:+31850000101 SIP/2.0", with(""), ""), 416, "Unsupported URI Scheme"},
		{"no Call-ID", req("INVITE sip:x@y SIP/2.0", with("Call-ID"), ""), 400, "Missing Call-ID Header"},
		{"no Via", req("INVITE sip:x@y SIP/2.0", with("Via"), ""), 400, "Missing Via Header"},
		{"two From", req("INVITE sip:x@y SIP/2.0", with("", "From: <sip:b@c>;tag=2"), ""), 400, "Multiple From Headers"},
		{"CSeq method", req("INVITE sip:x@y SIP/2.0", with("CSeq", "CSeq: 1 BYE"), ""), 400, "CSeq Method Mismatch"},
		{"CSeq number", req("INVITE sip:x@y SIP/2.0", with("CSeq", "CSeq: 4294967296 INVITE"), ""), 400, "Malformed CSeq"},
		{"Content-Length over the datagram", req("INVITE sip:x@y SIP/2.0", with("", "Content-Length: 300"), "v=0\r\n"), 400, "Content-Length Exceeds Datagram"},
		{"Content-Length not a number", req("INVITE sip:x@y SIP/2.0", with("", "Content-Length: -1"), ""), 400, "Malformed Content-Length"},
		{"body over the limit", req("INVITE sip:x@y SIP/2.0", with("", "Content-Length: 600"), strings.Repeat("a", 600)), 413, "Request Entity Too Large"},
		{"header over the limit", req("INVITE sip:x@y SIP/2.0", with("", "X-Filler: "+strings.Repeat("a", 1100)), ""), 513, "Message Too Large"},
		{"Require", req("INVITE sip:x@y SIP/2.0", with("", "Require: 100rel"), ""), 420, "Bad Extension"},
		{"Require in a dialog", req("BYE sip:x@y SIP/2.0", with("To", "To: <sip:x@y>;tag=9", "Require: timer"), ""), 400, "CSeq Method Mismatch"},
		{"Accept without SDP", req("INVITE sip:x@y SIP/2.0", with("", "Accept: text/plain"), ""), 406, "Not Acceptable"},
		{"body no SDP", req("INVITE sip:x@y SIP/2.0", with("", "Content-Type: text/plain", "Content-Length: 2"), "hi"), 415, "Unsupported Media Type"},
		{"bare LF", []byte("OPTIONS sip:x@y SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nCSeq: 1 OPTIONS\n\n"), 400, "Line Not Ended By CRLF"},
		{"header line without colon", req("INVITE sip:x@y SIP/2.0", with("", "Garbage"), ""), 400, "Malformed Header Line"},
		{"empty Via parameter", req("INVITE sip:x@y SIP/2.0", with("Via", "Via: SIP/2.0/UDP h;;branch=z9hG4bK1"), ""), 400, "Malformed Via Header"},
		{"open quote", req("INVITE sip:x@y SIP/2.0", with("From", `From: "Joe <sip:a@b>;tag=1`), ""), 400, "Malformed From Header"},
		{"Max-Forwards", req("INVITE sip:x@y SIP/2.0", with("Max-Forwards", "Max-Forwards: 256"), ""), 400, "Malformed Max-Forwards Header"},
		{"request line spaces", req("INVITE  sip:x@y SIP/2.0", with(""), ""), 400, "Malformed Request-Line"},
		{"URI headers", req("INVITE sip:x@y?Route=%3Csip:z%3E SIP/2.0", with(""), ""), 400, "Headers In Request-URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sc scan
			sc.readMessage(tt.msg, false, lim)
			if sc.fault.code != tt.code || sc.fault.reason != tt.reason {
				t.Fatalf("fault %d %q, want %d %q", sc.fault.code, sc.fault.reason, tt.code, tt.reason)
			}
		})
	}
}

func TestAppendAnswerParses(t *testing.T) {
	e := newEdge(EdgeConfig{}, nil, slog.New(slog.DiscardHandler), time.Now)
	msg := req("OPTIONS sip:x@y SIP/2.0", []string{
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-a", "Via: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK-b",
		"From: <sip:a@b>\r\n ;tag=1", "To: <sip:x@y>", "Call-ID: ans", "CSeq: 5 OPTIONS", "Require: foo, bar"}, "")
	var sc scan
	sc.readMessage(msg, false, &e.lim)
	if sc.fault.code != 420 {
		t.Fatalf("fault %+v", sc.fault)
	}
	out := e.appendAnswer(nil, &sc, msg)
	m, err := sipmsg.ParseMessage(out)
	if err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, out)
	}
	res := m.(*sipmsg.Response)
	if res.StatusCode != 420 || len(res.GetHeaders("Via")) != 2 || res.CallID().Value() != "ans" || res.CSeq().SeqNo != 5 {
		t.Fatalf("answer:\n%s", out)
	}
	if tag, ok := res.To().Params.Get("tag"); !ok || tag == "" {
		t.Fatalf("answer without a To tag:\n%s", out)
	}
	if h := res.GetHeader("Unsupported"); h == nil || h.Value() != "foo, bar" {
		t.Fatalf("Unsupported: %v", h)
	}
}

func TestViaPort(t *testing.T) {
	for _, tt := range []struct {
		via   string
		port  int
		rport bool
	}{
		{"SIP/2.0/UDP 192.0.2.1", 5060, false},
		{"SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1", 5070, false},
		{"SIP / 2.0 / UDP  host.example.com : 5080 ;rport;branch=z9hG4bK1", 5080, true},
		{"SIP/2.0/UDP [2001:db8::1]:5090;rport=1234", 5090, true},
		{"SIP/2.0/UDP [2001:db8::1];branch=x", 5060, false},
		{"garbage", 5060, false},
	} {
		port, rport := viaPort([]byte(tt.via))
		if port != tt.port || rport != tt.rport {
			t.Errorf("viaPort(%q) = %d %t, want %d %t", tt.via, port, rport, tt.port, tt.rport)
		}
	}
}

func TestSourceLimiterBans(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newSourceLimiter(EdgeConfig{SourceRate: 1, SourceBurst: 5, BanAfter: 3, BanFor: time.Minute, MaxSources: 4})
	bans := 0
	l.onBan = func() { bans++ }
	ip := netip.MustParseAddr("192.0.2.7")
	for i := range 5 {
		if !l.allow(ip, now) {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	for range 2 {
		if l.allow(ip, now) {
			t.Fatal("over the burst, allowed")
		}
	}
	if l.isBanned(ip, now) {
		t.Fatal("banned before BanAfter refusals")
	}
	l.allow(ip, now)
	if !l.isBanned(ip, now) || bans != 1 || l.bannedCount(now) != 1 {
		t.Fatalf("not banned after BanAfter refusals (bans %d)", bans)
	}
	if l.isBanned(ip, now.Add(61*time.Second)) {
		t.Fatal("the ban did not expire")
	}
	if !l.allow(ip, now.Add(61*time.Second)) {
		t.Fatal("after the ban, a new bucket should allow")
	}
	// Bounded: at most MaxSources sources tracked.
	for i := range 10 {
		l.allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), now.Add(61*time.Second))
	}
	if n := len(l.buckets) + len(l.bans); n > 4 {
		t.Fatalf("%d sources tracked, max 4", n)
	}
}

// udpAsk sends msg from a socket on ip and returns the first final answer within wait, or
// "" when none came.
func udpAsk(t testing.TB, ip, to string, msg []byte, wait time.Duration) string {
	t.Helper()
	c, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr, _ := net.ResolveUDPAddr("udp", to)
	c.WriteTo(msg, addr)
	buf := make([]byte, 4096)
	deadline := time.Now().Add(wait)
	for {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return ""
		}
		if a := string(buf[:n]); !strings.HasPrefix(a, "SIP/2.0 1") {
			return a
		}
	}
}

func options(ip, callID string) []byte {
	return req("OPTIONS sip:switch SIP/2.0", []string{
		"Via: SIP/2.0/UDP " + ip + ";rport;branch=z9hG4bK-" + callID, "From: <sip:probe@example.com>;tag=p", "To: <sip:switch>",
		"Call-ID: " + callID, "CSeq: 1 OPTIONS", "Max-Forwards: 70"}, "")
}

// TestEdgeUnknownSources: a source that is no trunk gets no answer (OPTIONS and INVITE
// alike), counted, unless the edge is told to answer; the trunk is answered either way.
func TestEdgeUnknownSources(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOpts{switchOpts: []Option{WithRegisterer(reg)}})
	to := e.sw.Addr().String()
	if a := udpAsk(t, "127.0.0.3", to, options("127.0.0.3", "unknown-1"), 700*time.Millisecond); a != "" {
		t.Fatalf("OPTIONS from a source that is no trunk answered: %q", a)
	}
	if a := udpAsk(t, "127.0.0.1", to, options("127.0.0.1", "trunk-1"), 2*time.Second); !strings.HasPrefix(a, "SIP/2.0 200") {
		t.Fatalf("OPTIONS from the trunk: %q", a)
	}
	if got := testutil.ToFloat64(e.sw.edge.m.dropped[dropUnknownSource]); got != 1 {
		t.Fatalf("dropped unknown_source = %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.sw.edge.trunkReqs[0]); got != 1 {
		t.Fatalf("trunk requests = %v, want 1 (the trunk's OPTIONS only)", got)
	}

	open := newEnv(t, envOpts{edge: EdgeConfig{AnswerUnknown: true}})
	if a := udpAsk(t, "127.0.0.3", open.sw.Addr().String(), options("127.0.0.3", "unknown-2"), 2*time.Second); !strings.HasPrefix(a, "SIP/2.0 200") {
		t.Fatalf("OPTIONS from a source that is no trunk, unknown_sources answer: %q", a)
	}
}

// TestEdgeBusinessLineOutsideTrunks: the business line is no trunk; its answers and its
// BYE (in the dialog of a call in progress) reach the switch.
func TestEdgeBusinessLineOutsideTrunks(t *testing.T) {
	line := newPeer(t, "127.0.0.2", answer(200*time.Millisecond))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}})
	if _, err := e.call("+31850000101"); err != nil {
		t.Fatal(err)
	}
	rec := e.record()
	if rec.Disposition != store.DispAnswered || rec.HangupBy != store.PartyBusinessLine {
		t.Fatalf("record: disposition %q hangup by %q", rec.Disposition, rec.HangupBy)
	}
}

// TestEdgeBansFlood: a flood from a source that is no trunk gets it banned; the trunk's
// OPTIONS is still answered.
func TestEdgeBansFlood(t *testing.T) {
	e := newEnv(t, envOpts{edge: EdgeConfig{SourceRate: 10, SourceBurst: 20, BanAfter: 50}})
	to, _ := net.ResolveUDPAddr("udp", e.sw.Addr().String())
	c, err := net.ListenPacket("udp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 500 {
		c.WriteTo(options("127.0.0.4", "flood-"+string(rune('a'+i%26))), to)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.sw.edge.limiter.bannedCount(time.Now()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the flooding source was not banned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if testutil.ToFloat64(e.sw.edge.m.dropped[dropBanned]) == 0 || testutil.ToFloat64(e.sw.edge.m.bans) != 1 {
		t.Fatalf("banned drops %v, bans %v", testutil.ToFloat64(e.sw.edge.m.dropped[dropBanned]), testutil.ToFloat64(e.sw.edge.m.bans))
	}
	if a := udpAsk(t, "127.0.0.1", e.sw.Addr().String(), options("127.0.0.1", "after-flood"), 2*time.Second); !strings.HasPrefix(a, "SIP/2.0 200") {
		t.Fatalf("trunk OPTIONS after the flood: %q", a)
	}
}

// TestEdgeTCPFraming: several messages in one segment, one message over several, a
// keep-alive ping, and a message without Content-Length (answered 400, then the stream
// is closed).
func TestEdgeTCPFraming(t *testing.T) {
	e := newEnv(t, envOpts{})
	conn, err := net.Dial("tcp", e.sw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tcpOptions := func(id string) []byte {
		return req("OPTIONS sip:switch SIP/2.0", []string{"Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK-" + id, "From: <sip:p@x>;tag=p",
			"To: <sip:switch>", "Call-ID: " + id, "CSeq: 1 OPTIONS", "Content-Length: 0"}, "")
	}
	two := append(tcpOptions("tcp-1"), tcpOptions("tcp-2")...)
	conn.Write(two)
	third := tcpOptions("tcp-3")
	conn.Write(third[:20])
	time.Sleep(50 * time.Millisecond)
	conn.Write(third[20:])
	r := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	seen := map[string]bool{}
	for range 3 {
		msg, ok := readStreamMessage(r)
		if !ok || !strings.HasPrefix(msg, "SIP/2.0 200") {
			t.Fatalf("answer %q", msg)
		}
		for _, id := range []string{"tcp-1", "tcp-2", "tcp-3"} {
			if strings.Contains(msg, "Call-ID: "+id) {
				seen[id] = true
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("answers for %v, want 3 Call-IDs", seen)
	}
	conn.Write([]byte("\r\n\r\n"))
	pong := make([]byte, 2)
	if _, err := io.ReadFull(r, pong); err != nil || string(pong) != "\r\n" {
		t.Fatalf("pong %q %v", pong, err)
	}
	conn.Write([]byte(strings.Replace(string(tcpOptions("tcp-4")), "Content-Length: 0\r\n", "", 1)))
	msg, ok := readStreamMessage(r)
	if !ok || !strings.HasPrefix(msg, "SIP/2.0 400 Missing Content-Length") {
		t.Fatalf("answer to a message without Content-Length: %q", msg)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("the stream stayed open after a message it cannot frame")
	}
}

// recordingHandler keeps the level of every record, and hands each to records if set.
type recordingHandler struct {
	mu      sync.Mutex
	levels  []slog.Level
	msgs    []string
	records chan slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.levels = append(h.levels, r.Level)
	h.msgs = append(h.msgs, r.Message)
	if h.records != nil {
		h.records <- r
	}
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// TestEdgeAnswersWhatSipgoCannotParse: a request the edge passes but sipgo's parser
// refuses (an empty Content-Type) is answered 400 from sipgo's log, and nothing of it is
// logged at ERROR.
func TestEdgeAnswersWhatSipgoCannotParse(t *testing.T) {
	h := &recordingHandler{}
	e := newEnv(t, envOpts{switchOpts: []Option{WithLogger(slog.New(h))}})
	msg := req("OPTIONS sip:switch SIP/2.0", []string{"Via: SIP/2.0/UDP 127.0.0.1;rport;branch=z9hG4bK-route",
		"From: <sip:p@x>;tag=p", "To: <sip:switch>", "Call-ID: route-1", "CSeq: 1 OPTIONS", "Content-Type:   "}, "")
	a := udpAsk(t, "127.0.0.1", e.sw.Addr().String(), msg, 2*time.Second)
	if !strings.HasPrefix(a, "SIP/2.0 400 Malformed Message") || !strings.Contains(a, "Call-ID: route-1") {
		t.Fatalf("answer %q", a)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, l := range h.levels {
		if l >= slog.LevelError {
			t.Errorf("logged at %v: %q", l, h.msgs[i])
		}
	}
}

// TestNormalizeTortuousInvite: the edge's tightened copy of RFC 4475's short tortuous
// INVITE reads in sipgo as the RFC means it.
func TestNormalizeTortuousInvite(t *testing.T) {
	b, err := os.ReadFile("testdata/rfc4475/wsinv.sip")
	if err != nil {
		t.Fatal(err)
	}
	var sc scan
	sc.readMessage(b, false, &edgeLimits{maxHeader: 8192, maxBody: 16384})
	if sc.fault.code != 0 || !sc.lax {
		t.Fatalf("fault %+v, lax %t", sc.fault, sc.lax)
	}
	out := normalize(nil, b, &sc)
	m, err := sipmsg.ParseMessage(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := m.(*sipmsg.Request)
	from, _ := r.From().Params.Get("tag")
	to, _ := r.To().Params.Get("tag")
	var branches []string
	for _, h := range r.GetHeaders("Via") {
		v := h.(*sipmsg.ViaHeader)
		br, _ := v.Params.Get("branch")
		branches = append(branches, v.Transport+" "+v.Host+" "+br)
	}
	want := []string{"UDP 192.0.2.2 390skdjuw", "TCP spindle.example.com z9hG4bKwsinv.9ikj8", "UDP 192.168.255.111 z9hG4bKwsinv.30239"}
	if from != "98asjd8" || to != "1918181833n" || strings.Join(branches, "|") != strings.Join(want, "|") {
		t.Fatalf("From tag %q, To tag %q, Vias %q\n%s", from, to, branches, out)
	}
	if q, _ := r.Contact().Params.Get("q"); q != "0.33" || !bytes.HasSuffix(out, b[sc.headEnd:]) {
		t.Fatalf("Contact q %q, or the body changed:\n%s", q, out)
	}
	// A message without such white space is not touched.
	sc.readMessage(trunkInvite, false, &edgeLimits{maxHeader: 8192, maxBody: 16384})
	if sc.lax {
		t.Fatal("a plain INVITE is lax")
	}
}

// TestEdgeTCPUnknownSource: over TCP too, a source that is no trunk gets no answer, and a
// banned source's connections are closed at once.
func TestEdgeTCPUnknownSource(t *testing.T) {
	e := newEnv(t, envOpts{edge: EdgeConfig{SourceBurst: 2, SourceRate: 0.001, BanAfter: 1, BanFor: time.Minute}})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}, Timeout: 2 * time.Second}
	conn, err := d.Dial("tcp", e.sw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := req("OPTIONS sip:switch SIP/2.0", []string{"Via: SIP/2.0/TCP 127.0.0.5;branch=z9hG4bK-tcp-x", "From: <sip:p@x>;tag=p",
		"To: <sip:switch>", "Call-ID: tcp-unknown", "CSeq: 1 OPTIONS", "Content-Length: 0"}, "")
	conn.Write(msg) // the connection took the first token, this request the second
	conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 512)); n > 0 || !isTimeout(err) {
		t.Fatalf("answer to a source that is no trunk over TCP: %d bytes, %v", n, err)
	}
	conn.Write(msg) // over the limit: banned
	deadline := time.Now().Add(3 * time.Second)
	for e.sw.edge.limiter.bannedCount(time.Now()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("not banned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c2, err := d.Dial("tcp", e.sw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c2.Read(make([]byte, 16)); err != io.EOF {
		t.Fatalf("a banned source's connection: %v, want it closed", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && errors.As(err, &ne) && ne.Timeout()
}
