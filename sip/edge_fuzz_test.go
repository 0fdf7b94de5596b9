package sip

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// The seeds of every fuzz test are the RFC 4475 corpus (testdata/rfc4475) and a few
// messages of the unit tests; `go test` runs the seeds only. Fuzz locally, bounded:
//   go test -run '^$' -fuzz '^FuzzEdgeScan$' -fuzztime 60s ./sip/
// (likewise FuzzEdgeDatagrams, FuzzEdgeStream, FuzzRequestChecks, FuzzSwitchUDP).

func addSeeds(f *testing.F) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "rfc4475", "*.sip"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no corpus: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(req("INVITE sip:+31859999999@example.com SIP/2.0", with("", "Content-Type: application/sdp", "Content-Length: 29"), "v=0\r\nm=audio 4000 RTP/AVP 0\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("OPTIONS sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"))
}

// FuzzEdgeDatagrams: datagrams read in turn through one edgePacketConn (the input split at
// each "\x00\x00") are each told by themselves: a passed datagram's inviteRef and its
// normalized copy are those of a fresh scan of it, whatever came before; nothing panics.
func FuzzEdgeDatagrams(f *testing.F) {
	addSeeds(f)
	sep := []byte("\x00\x00")
	f.Add(bytes.Join([][]byte{lineAnswer200, []byte("\r\n"), trunkInvite, []byte("\r\n\r\n"), lineAnswer200}, sep))
	trunks := []Trunk{{Name: "t", Sources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	e := newEdge(EdgeConfig{}, trunks, slog.New(slog.DiscardHandler), time.Now)
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	f.Fuzz(func(t *testing.T, in []byte) {
		sc := &seqConn{src: src, data: bytes.Split(in, sep)}
		c := newEdgePacketConn(sc, e)
		c.queued = true
		buf := make([]byte, udpReadBuffer)
		for {
			n, _, err := c.ReadFrom(buf)
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var fresh scan
			var want inviteRef
			if len(bytes.Trim(sc.last, "\r\n")) != 0 {
				fresh.readMessage(sc.last, false, &e.lim)
				want = fresh.inviteRef(sc.last)
			}
			if c.ref != want {
				t.Fatalf("inviteRef %+v, a fresh scan's %+v, of %q", c.ref, want, sc.last)
			}
			if c.normalized && !bytes.Equal(buf[:n], normalize(nil, sc.last, &fresh)) {
				t.Fatalf("normalized %q, a fresh scan's differs, of %q", buf[:n], sc.last)
			}
		}
	})
}

// FuzzEdgeScan: the scan never panics; every answer the edge would send is one message
// with the fault's status; a tightened copy (normalize) keeps the body and adds no fault.
func FuzzEdgeScan(f *testing.F) {
	addSeeds(f)
	e := newEdge(EdgeConfig{}, nil, slog.New(slog.DiscardHandler), time.Now)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, stream := range []bool{false, true} {
			var sc scan
			sc.readMessage(b, stream, &e.lim)
			if sc.fault.code == 0 && sc.request && sc.lax && sc.headEnd >= 0 {
				// The tightened copy keeps the body and adds no fault.
				out := normalize(nil, b, &sc)
				var again scan
				again.readMessage(out, stream, &e.lim)
				if again.fault.code != 0 || !bytes.HasSuffix(out, b[sc.headEnd:]) {
					t.Fatalf("tightened copy: fault %+v\n%q\n%q", again.fault, b, out)
				}
			}
			if sc.fault.code == 0 || !sc.request || !sc.answerable() {
				continue
			}
			out := e.appendAnswer(nil, &sc, b)
			if bytes.Count(out, []byte("\r\n\r\n")) != 1 || !bytes.HasSuffix(out, []byte("\r\n\r\n")) {
				t.Fatalf("answer is not one message:\n%q", out)
			}
			for _, line := range bytes.Split(out[:len(out)-4], []byte("\r\n")) {
				if bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, 0) >= 0 {
					t.Fatalf("answer line with CR, LF or NUL: %q", line)
				}
			}
			m, err := sipmsg.ParseMessage(out)
			if err != nil {
				// sipgo refuses some header values the request carried (and the edge
				// copies): the status line must still be ours.
				if !bytes.HasPrefix(out, []byte("SIP/2.0 "+strconv.Itoa(sc.fault.code)+" ")) {
					t.Fatalf("answer %q", out)
				}
				continue
			}
			res, ok := m.(*sipmsg.Response)
			if !ok || res.StatusCode != sc.fault.code {
				t.Fatalf("answer %q", out)
			}
		}
	})
}

// fakeConn is a TCP connection whose peer sends in and then closes.
type fakeConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *fakeConn) Read(p []byte) (int, error) {
	// Short reads: the framing must not rely on a message arriving in one read.
	if len(p) > 7 {
		p = p[:7]
	}
	return c.in.Read(p)
}
func (c *fakeConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *fakeConn) Close() error                { return nil }
func (c *fakeConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }
func (c *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzEdgeStream: the TCP framing never panics or loops, and each Read hands sipgo either
// a run of CRLF keep-alives or one whole message: its body exactly as long as its
// Content-Length says, and, for a request, one the edge finds no fault in.
func FuzzEdgeStream(f *testing.F) {
	addSeeds(f)
	trunks := []Trunk{{Name: "t", Sources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	e := newEdge(EdgeConfig{MaxHeaderBytes: 2048, MaxBodyBytes: 2048}, trunks, slog.New(slog.DiscardHandler), time.Now)
	f.Fuzz(func(t *testing.T, b []byte) {
		fc := &fakeConn{in: bytes.NewReader(b)}
		c := &edgeConn{Conn: fc, e: e, src: netip.MustParseAddr("127.0.0.1")}
		buf := make([]byte, 32768)
		for i := 0; ; i++ {
			if i > 10*len(b)+10 {
				t.Fatal("Read does not end")
			}
			n, err := c.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			m := buf[:n]
			if len(bytes.Trim(m, "\r\n")) == 0 {
				continue
			}
			var sc scan
			sc.readMessage(m, true, &e.lim)
			if sc.headEnd < 0 || sc.clen != n-sc.headEnd || (sc.request && sc.fault.code != 0) {
				t.Fatalf("passed %q: head end %d, Content-Length %d, fault %+v", m, sc.headEnd, sc.clen, sc.fault)
			}
		}
	})
}

// FuzzRequestChecks: the INVITE handler's checks and readings of what sipgo parsed never
// panic.
func FuzzRequestChecks(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := sipmsg.ParseMessage(b)
		if err != nil {
			return
		}
		r, ok := m.(*sipmsg.Request)
		if !ok {
			return
		}
		// In the handler's order: what checkInvite lets through is read on.
		if code, _ := checkInvite(r); code != 0 {
			return
		}
		callerNumber(r, "31")
		dialledNumber(r.Recipient.User, "31")
		dialledNumber(r.To().Address.User, "31")
	})
}

// FuzzSwitchUDP sends each input to a running switch from the trunk's address: through
// the edge, sipgo and the request handlers. The switch must still answer OPTIONS and put
// a call through at the end.
func FuzzSwitchUDP(f *testing.F) {
	addSeeds(f)
	line := newPeer(f, "127.0.0.1", answer(0))
	e := newEnv(f, envOpts{lines: []string{lineURI(line)}})
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	to, _ := net.ResolveUDPAddr("udp", e.sw.Addr().String())
	f.Cleanup(func() {
		defer conn.Close()
		if a := udpAsk(f, "127.0.0.1", to.String(), options("127.0.0.1", "fuzz-after"), 3*time.Second); !strings.HasPrefix(a, "SIP/2.0 200") {
			f.Errorf("OPTIONS after fuzzing: %q", a)
		}
		// A trunk retries a call refused with 503 after its Retry-After (1 s): on a busy
		// machine (the whole suite under -race) the overload control may shed the first
		// try, which is its job; the switch must take the call within a few tries.
		d, err := e.call("+31850000101")
		for try := 1; err != nil && statusOf(err) == 503 && try < 5; try++ {
			time.Sleep(time.Second)
			d, err = e.call("+31850000101")
		}
		if err != nil {
			f.Errorf("a call after fuzzing: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Bye(ctx)
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		conn.WriteTo(b, to)
	})
}
