package agents

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/store"
)

// env is a hub on a real store and a real HTTP server, and a UDP socket that plays the media
// anchor's business-line leg.
type env struct {
	t      testing.TB
	hub    *Hub
	srv    *httptest.Server
	db     *store.DB
	anchor *net.UDPConn
	tokens map[string]string // label -> secret
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, tokens: map[string]string{}}
	e.hub, err = New(Config{MediaIP: netip.MustParseAddr("127.0.0.1"), IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Loopback: true, ConnectTimeout: 5 * time.Second, LoginTimeout: time.Second, MaxMessage: 4096},
		db, WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agent/ws", e.hub.ServeSignalling)
	mux.HandleFunc("GET /agent", e.hub.ServePage)
	e.srv = httptest.NewServer(mux)
	e.anchor, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		e.hub.Close()
		e.srv.Close()
		e.anchor.Close()
		db.Close()
		checkNoLeaks(t)
	})
	for _, tk := range []struct{ customer, label string }{{"acme", "anna"}, {"acme", "bert"}, {"acme", "carl"}, {"bakery", "dirk"}} {
		secret := TokenPrefix + "secret-" + tk.label
		tok := store.Token{Kind: store.TokenAgent, ID: "tok-" + tk.label, CustomerID: tk.customer, Label: tk.label, Groups: []string{"sales"}}
		if tk.label == "carl" {
			tok.Groups = []string{"support"}
		}
		h := sha256.Sum256([]byte(secret))
		if err := db.Write(context.Background(), func(tx *store.Tx) error { return tx.PutToken(h, &tok) }); err != nil {
			t.Fatal(err)
		}
		e.tokens[tk.label] = secret
	}
	return e
}

// checkNoLeaks waits until no goroutine of this package is left.
func checkNoLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		var left []string
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "trackline/agents.(*") && !strings.Contains(g, "testing.tRunner") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of package agents left:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// offer is the anchor's SDP for the business line, on the env's anchor socket.
func (e *env) offer() []byte {
	port := e.anchor.LocalAddr().(*net.UDPAddr).Port
	return fmt.Appendf(nil, "v=0\r\no=anchor 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", port)
}

// page is an agent page: a WebSocket client, and a pion PeerConnection as the browser's.
type page struct {
	t    testing.TB
	conn *websocket.Conn
	msgs chan outMsg
	done chan struct{}

	mu       sync.Mutex
	closedBy websocket.StatusCode
	closeMsg string
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticRTP
	got      [][]byte // payloads received from the server
	pcState  []webrtc.PeerConnectionState
}

// dial opens the signalling WebSocket; login, if not empty, is sent as the first message.
func (e *env) dial(token string) *page {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/v1/agent/ws", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	p := &page{t: e.t, conn: conn, msgs: make(chan outMsg, 64), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				p.mu.Lock()
				p.closedBy, p.closeMsg = websocket.CloseStatus(err), err.Error()
				p.mu.Unlock()
				return
			}
			var m outMsg
			if err := json.Unmarshal(b, &m); err != nil {
				e.t.Errorf("server sent no JSON: %q", b)
				continue
			}
			p.msgs <- m
		}
	}()
	e.t.Cleanup(func() {
		conn.CloseNow()
		<-p.done
		p.mu.Lock()
		pc := p.pc
		p.mu.Unlock()
		if pc != nil {
			pc.Close()
		}
	})
	if token != "" {
		p.sendJSON(map[string]string{"type": "login", "token": token})
	}
	return p
}

// login dials and waits for ready.
func (e *env) login(label string) *page {
	e.t.Helper()
	p := e.dial(e.tokens[label])
	p.expect(msgReady, "")
	return p
}

func (p *page) sendRaw(b []byte) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.conn.Write(ctx, websocket.MessageText, b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *page) sendJSON(v any) {
	p.t.Helper()
	b, _ := json.Marshal(v)
	p.sendRaw(b)
}

// expect waits for the next message of type typ (for callID, when given), skipping pongs.
func (p *page) expect(typ, callID string) outMsg {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-p.msgs:
			if m.Type == msgPong && typ != msgPong {
				continue
			}
			if m.Type != typ || callID != "" && m.CallID != callID {
				p.t.Fatalf("got %+v, want a %q message", m, typ)
			}
			return m
		case <-p.done:
			p.t.Fatalf("connection closed (%s) while waiting for %q", p.closeMsg, typ)
		case <-timeout:
			p.t.Fatalf("no %q message within 10 s", typ)
		}
	}
}

// quiet checks that no message other than pong arrives for a while.
func (p *page) quiet(d time.Duration) {
	p.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m := <-p.msgs:
			if m.Type != msgPong {
				p.t.Fatalf("unexpected message %+v", m)
			}
		case <-timeout:
			return
		}
	}
}

// alive checks that the connection still answers.
func (p *page) alive() {
	p.t.Helper()
	p.sendJSON(map[string]string{"type": "ping"})
	p.expect(msgPong, "")
}

// closed waits for the server to close the connection and returns its close code.
func (p *page) closed() websocket.StatusCode {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.t.Fatal("the server did not close the connection")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closedBy
}

// answerOffer plays the browser: the offer's answer, with a PCMU track of its own; what the
// server sends is collected.
func (p *page) answerOffer(m outMsg) {
	p.t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		p.t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		p.t.Fatal(err)
	}
	track, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "mic", "page")
	p.mu.Lock()
	p.pc, p.track = pc, track
	p.mu.Unlock()
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.mu.Lock()
		p.pcState = append(p.pcState, s)
		p.mu.Unlock()
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.got = append(p.got, append([]byte(nil), pkt.Payload...))
			p.mu.Unlock()
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
		p.t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		p.t.Fatal(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		p.t.Fatal(err)
	}
	<-gathered
	p.sendJSON(map[string]string{"type": "answer", "call_id": m.CallID, "sdp": pc.LocalDescription().SDP})
}

// speak sends n 20 ms PCMU packets whose payload bytes are all b.
func (p *page) speak(n int, b byte) {
	for i := range n {
		payload := make([]byte, 160)
		for j := range payload {
			payload[j] = b
		}
		p.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 42}, Payload: payload})
		time.Sleep(5 * time.Millisecond)
	}
}

// heard counts the payloads received whose bytes are all b.
func (p *page) heard(b byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pl := range p.got {
		if len(pl) == 160 && pl[0] == b && pl[159] == b {
			n++
		}
	}
	return n
}

func (p *page) pcStates() []webrtc.PeerConnectionState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]webrtc.PeerConnectionState(nil), p.pcState...)
}

// ringResult is what Ring returned.
type ringResult struct {
	call callseam.AgentCall
	err  error
}

// ring starts Ring for a call of acme's group sales in the background.
func (e *env) ring(ctx context.Context, id string, timeout time.Duration) <-chan ringResult {
	out := make(chan ringResult, 1)
	go func() {
		c, err := e.hub.Ring(ctx, callseam.AgentRing{CallID: id, CustomerID: "acme", Group: "sales", Caller: "+31612345678",
			Dialled: "+31850000001", Channel: "Google Ads", Keyword: "loodgieter", LandingPage: "https://acme.example/",
			Offer: e.offer(), RingTimeout: timeout})
		out <- ringResult{c, err}
	}()
	return out
}

func waitRing(t testing.TB, ch <-chan ringResult) ringResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("Ring did not return")
	}
	return ringResult{}
}

// anchorRTP sends n PCMU packets of byte b from the anchor to the bridge at dest.
func (e *env) anchorRTP(dest netip.AddrPort, n int, b byte) {
	for i := range n {
		pkt := make([]byte, 12+160)
		pkt[0] = 0x80
		pkt[3] = byte(i)
		for j := 12; j < len(pkt); j++ {
			pkt[j] = b
		}
		e.anchor.WriteToUDPAddrPort(pkt, dest)
		time.Sleep(5 * time.Millisecond)
	}
}

// anchorHeard reads what reaches the anchor for a while and counts PCMU packets of byte b,
// checking that no header extension survived.
func (e *env) anchorHeard(b byte, within time.Duration) int {
	e.t.Helper()
	n := 0
	buf := make([]byte, 1500)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		e.anchor.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		k, err := e.anchor.Read(buf)
		if err != nil {
			continue
		}
		var p rtp.Packet
		if p.Unmarshal(buf[:k]) != nil {
			e.t.Errorf("the bridge sent no RTP: % x", buf[:k])
			continue
		}
		if p.Extension || p.PayloadType != 0 {
			e.t.Errorf("the bridge sent extension=%v pt=%d", p.Extension, p.PayloadType)
		}
		if len(p.Payload) == 160 && p.Payload[0] == b {
			n++
		}
	}
	return n
}

// bridgeAddr reads the bridge's address from the agent call's SDP.
func bridgeAddr(t testing.TB, c callseam.AgentCall) netip.AddrPort {
	t.Helper()
	var port int
	for _, l := range strings.Split(string(c.SDP()), "\r\n") {
		if strings.HasPrefix(l, "m=audio ") {
			fmt.Sscanf(l, "m=audio %d ", &port)
		}
	}
	if port == 0 || !strings.Contains(string(c.SDP()), "c=IN IP4 127.0.0.1") || !strings.Contains(string(c.SDP()), "a=rtpmap:0 PCMU/8000") {
		t.Fatalf("bridge SDP %q", c.SDP())
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

// connectCall rings acme's sales agents; the page accepts and answers; it returns the call.
func (e *env) connectCall(p *page, id string, others ...*page) callseam.AgentCall {
	e.t.Helper()
	res := e.ring(context.Background(), id, 5*time.Second)
	for _, o := range append([]*page{p}, others...) {
		r := o.expect(msgRing, id)
		if r.Caller != "+31612345678" || r.Channel != "Google Ads" || r.Keyword != "loodgieter" || r.LandingPage != "https://acme.example/" || r.RingSeconds != 5 {
			e.t.Fatalf("ring %+v", r)
		}
	}
	p.sendJSON(map[string]string{"type": "accept", "call_id": id})
	p.answerOffer(p.expect(msgOffer, id))
	r := waitRing(e.t, res)
	if r.err != nil {
		e.t.Fatalf("Ring: %v", r.err)
	}
	p.expect(msgConnected, id)
	return r.call
}

func TestAcceptedCallCarriesAudioBothWays(t *testing.T) {
	e := newEnv(t)
	anna := e.login("anna")
	c := e.connectCall(anna, "call-1")
	if c.AgentID() != "tok-anna" {
		t.Fatalf("agent id %q", c.AgentID())
	}
	if got := testutil.ToFloat64(e.hub.m.online); got != 1 {
		t.Fatalf("agents online %v", got)
	}
	dest := bridgeAddr(t, c)
	go e.anchorRTP(dest, 50, 0x55)
	go anna.speak(50, 0x2a)
	if n := e.anchorHeard(0x2a, 2*time.Second); n < 40 {
		t.Errorf("the anchor heard %d of the page's 50 packets", n)
	}
	if n := anna.heard(0x55); n < 40 {
		t.Errorf("the page heard %d of the anchor's 50 packets", n)
	}
	// RTP from anywhere but the anchor does not reach the page.
	stranger, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer stranger.Close()
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	for i := range pkt[12:] {
		pkt[12+i] = 0x11
	}
	for range 20 {
		stranger.WriteToUDPAddrPort(pkt, dest)
	}
	time.Sleep(200 * time.Millisecond)
	if n := anna.heard(0x11); n != 0 {
		t.Errorf("the page heard %d packets from a stranger", n)
	}

	// The switch ends the call (the caller hung up): the page is told and its
	// PeerConnection is closed by the server.
	c.Hangup("caller")
	if m := anna.expect(msgEnded, "call-1"); m.Reason != "caller" {
		t.Errorf("hangup reason %q", m.Reason)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Hangup")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slicesContains(anna.pcStates(), webrtc.PeerConnectionStateClosed) {
		if time.Now().After(deadline) {
			t.Fatalf("the page's PeerConnection did not close: %v", anna.pcStates())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(e.hub.m.calls.WithLabelValues(outAnswered)); got != 1 {
		t.Errorf("answered calls %v", got)
	}
	// The agent is free again: the next call rings it.
	res := e.ring(context.Background(), "call-2", time.Second)
	anna.expect(msgRing, "call-2")
	anna.sendJSON(map[string]string{"type": "hangup", "call_id": "call-2"}) // rejects while ringing
	anna.expect(msgCancel, "call-2")
	if r := waitRing(t, res); !errors.Is(r.err, callseam.ErrAgentRejected) {
		t.Fatalf("Ring after a reject: %v", r.err)
	}
}

func slicesContains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestAgentHangupEndsTheCall(t *testing.T) {
	e := newEnv(t)
	anna := e.login("anna")
	c := e.connectCall(anna, "call-1")
	anna.sendJSON(map[string]string{"type": "hangup", "call_id": "call-1"})
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the agent's hangup did not end the call")
	}
	c.Hangup("") // what the switch does next: a no-op
	anna.quiet(200 * time.Millisecond)
	// A page that goes away ends its call as well.
	c2 := e.connectCall(anna, "call-2")
	anna.conn.CloseNow()
	select {
	case <-c2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the page's disconnect did not end the call")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.hub.Online("acme") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent is still online")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOnlyOneAgentGetsTheCall(t *testing.T) {
	e := newEnv(t)
	anna, bert, carl, dirk := e.login("anna"), e.login("bert"), e.login("carl"), e.login("dirk")
	c := e.connectCall(bert, "call-1", anna)
	if m := anna.expect(msgCancel, "call-1"); m.Reason != "answered_elsewhere" {
		t.Fatalf("anna's cancel: %+v", m)
	}
	// Too late: anna's accept is refused, and the call stays bert's.
	anna.sendJSON(map[string]string{"type": "accept", "call_id": "call-1"})
	if m := anna.expect(msgError, "call-1"); m.Error != errUnknownCall {
		t.Fatalf("late accept: %+v", m)
	}
	// Another group and another customer never rang.
	carl.quiet(100 * time.Millisecond)
	dirk.quiet(100 * time.Millisecond)
	// bert is busy: the next call rings anna only.
	res := e.ring(context.Background(), "call-2", 300*time.Millisecond)
	anna.expect(msgRing, "call-2")
	bert.quiet(100 * time.Millisecond)
	if m := anna.expect(msgCancel, "call-2"); m.Reason != "timeout" {
		t.Fatalf("cancel %+v", m)
	}
	if r := waitRing(t, res); !errors.Is(r.err, callseam.ErrAgentNoAnswer) {
		t.Fatalf("unanswered ring: %v", r.err)
	}
	select {
	case <-c.Done():
		t.Fatal("bert's call ended")
	default:
	}
	c.Hangup("caller")
	bert.expect(msgEnded, "call-1")
}

func TestRingOutcomes(t *testing.T) {
	e := newEnv(t)
	if _, err := e.hub.Ring(context.Background(), callseam.AgentRing{CallID: "c0", CustomerID: "acme", Group: "sales",
		Offer: e.offer(), RingTimeout: time.Second}); !errors.Is(err, callseam.ErrNoAgent) {
		t.Fatalf("no agent online: %v", err)
	}
	anna := e.login("anna")
	if _, err := e.hub.Ring(context.Background(), callseam.AgentRing{CallID: "c1", CustomerID: "acme", Group: "support",
		Offer: e.offer(), RingTimeout: time.Second}); !errors.Is(err, callseam.ErrNoAgent) {
		t.Fatalf("no agent of the group: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := e.ring(ctx, "c2", 5*time.Second)
	anna.expect(msgRing, "c2")
	cancel() // the caller hangs up while it rings
	if m := anna.expect(msgCancel, "c2"); m.Reason != "caller_hung_up" {
		t.Fatalf("cancel %+v", m)
	}
	if r := waitRing(t, res); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled ring: %v", r.err)
	}
	res = e.ring(context.Background(), "c3", 5*time.Second)
	anna.expect(msgRing, "c3")
	anna.sendJSON(map[string]string{"type": "reject", "call_id": "c3"})
	anna.expect(msgCancel, "c3")
	if r := waitRing(t, res); !errors.Is(r.err, callseam.ErrAgentRejected) {
		t.Fatalf("rejected ring: %v", r.err)
	}
	// An accepting page that never answers the offer: the media fails, the agent is free.
	res = e.ring(context.Background(), "c4", 5*time.Second)
	anna.expect(msgRing, "c4")
	anna.sendJSON(map[string]string{"type": "accept", "call_id": "c4"})
	anna.expect(msgOffer, "c4")
	anna.sendJSON(map[string]string{"type": "answer", "call_id": "c4", "sdp": "v=0 this is no SDP"})
	if m := anna.expect(msgError, "c4"); m.Error != errBadField {
		t.Fatalf("bad answer: %+v", m)
	}
	if m := anna.expect(msgEnded, "c4"); m.Reason != "media_failed" {
		t.Fatalf("ended %+v", m)
	}
	if r := waitRing(t, res); !errors.Is(r.err, callseam.ErrAgentMedia) {
		t.Fatalf("failed media: %v", r.err)
	}
	for outcome, want := range map[string]float64{outNoAgent: 2, outCancelled: 1, outRejected: 1, outMediaFailed: 1} {
		if got := testutil.ToFloat64(e.hub.m.calls.WithLabelValues(outcome)); got != want {
			t.Errorf("outcome %s: %v, want %v", outcome, got, want)
		}
	}
}

// Bad signalling input is refused with a clear error; it harms neither the other agents nor
// a call in progress.
func TestBadSignallingIsRefused(t *testing.T) {
	e := newEnv(t)
	anna, bert := e.login("anna"), e.login("bert")
	c := e.connectCall(anna, "call-1", bert)
	bert.expect(msgCancel, "call-1")
	dest := bridgeAddr(t, c)

	refused := []struct {
		name, msg, code string
	}{
		{"malformed JSON", `{"type":"accept","call_id":`, errMalformed},
		{"not an object", `["accept"]`, errBadField},
		{"trailing data", `{"type":"ping"} {"type":"ping"}`, errMalformed},
		{"unknown type", `{"type":"transfer","call_id":"call-1"}`, errUnknownType},
		{"no type", `{"call_id":"call-1"}`, errBadField},
		{"unknown field", `{"type":"ping","extra":1}`, errBadField},
		{"missing call id", `{"type":"accept"}`, errBadField},
		{"wrong field type", `{"type":"accept","call_id":42}`, errBadField},
		{"unknown call id", `{"type":"accept","call_id":"no-such-call"}`, errUnknownCall},
		{"another agent's call", `{"type":"hangup","call_id":"call-1"}`, errUnknownCall},
		{"answer to another's call", `{"type":"answer","call_id":"call-1","sdp":"v=0"}`, errUnknownCall},
		{"second login", `{"type":"login","token":"tla_x"}`, errBadField},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			bert.sendRaw([]byte(tc.msg))
			m := bert.expect(msgError, "")
			if m.Error != tc.code || m.Detail == "" {
				t.Fatalf("error %+v, want code %s with a detail", m, tc.code)
			}
			bert.alive()
		})
	}
	t.Run("binary message", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		bert.conn.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
		if m := bert.expect(msgError, ""); m.Error != errMalformed {
			t.Fatalf("error %+v", m)
		}
		bert.alive()
	})
	t.Run("wrong token", func(t *testing.T) {
		p := e.dial(TokenPrefix + "not-a-token")
		if m := p.expect(msgError, ""); m.Error != errUnauthorized {
			t.Fatalf("error %+v", m)
		}
		if code := p.closed(); code != websocket.StatusPolicyViolation {
			t.Fatalf("close code %d, want 1008", code)
		}
	})
	t.Run("another customer's token for this call", func(t *testing.T) {
		dirk := e.login("dirk")
		dirk.sendJSON(map[string]string{"type": "accept", "call_id": "call-1"})
		if m := dirk.expect(msgError, "call-1"); m.Error != errUnknownCall {
			t.Fatalf("error %+v", m)
		}
	})
	t.Run("no login first", func(t *testing.T) {
		p := e.dial("")
		p.sendJSON(map[string]string{"type": "accept", "call_id": "call-1"})
		if m := p.expect(msgError, ""); m.Error != errLoginFirst {
			t.Fatalf("error %+v", m)
		}
		p.closed()
	})
	t.Run("no login in time", func(t *testing.T) {
		p := e.dial("")
		if m := p.expect(msgError, ""); m.Error != errLoginTimeout {
			t.Fatalf("error %+v", m)
		}
		p.closed()
	})
	t.Run("oversized message", func(t *testing.T) {
		carl := e.login("carl")
		carl.sendRaw([]byte(`{"type":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`))
		if code := carl.closed(); code != websocket.StatusMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
		// The library sends the close frame inside the read that fails, before the hub
		// counts the error: the page can see the close first.
		deadline := time.Now().Add(2 * time.Second)
		for testutil.ToFloat64(e.hub.m.errors.WithLabelValues(errTooBig)) != 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := testutil.ToFloat64(e.hub.m.errors.WithLabelValues(errTooBig)); got != 1 {
			t.Fatalf("too_big errors %v", got)
		}
	})
	t.Run("oversized login", func(t *testing.T) {
		p := e.dial("")
		p.sendRaw([]byte(`{"type":"login","token":"` + strings.Repeat("x", 5000) + `"}`))
		if code := p.closed(); code != websocket.StatusMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
	})

	// The call in progress survived all of it, both ways.
	select {
	case <-c.Done():
		t.Fatal("the call ended")
	default:
	}
	go e.anchorRTP(dest, 30, 0x66)
	go anna.speak(30, 0x3b)
	if n := e.anchorHeard(0x3b, 1500*time.Millisecond); n < 20 {
		t.Errorf("after the bad input the anchor heard %d of 30 packets", n)
	}
	if n := anna.heard(0x66); n < 20 {
		t.Errorf("after the bad input the page heard %d of 30 packets", n)
	}
	anna.alive()
	bert.alive()
	c.Hangup("caller")
	anna.expect(msgEnded, "call-1")
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code string
	}{
		{`{"type":"login","token":"tla_abc"}`, ""},
		{`{"type":"login"}`, errBadField},
		{`{"type":"login","token":"tla_abc","call_id":"x"}`, errBadField},
		{`{"type":"answer","call_id":"x"}`, errBadField},
		{`{"type":"answer","call_id":"x","sdp":"v=0"}`, ""},
		{`{"type":"accept","call_id":"` + strings.Repeat("x", 65) + `"}`, errBadField},
		{`{"type":"ping"}`, ""},
		{``, errMalformed},
		{`null`, errBadField},
		{`{"type":"PING"}`, errUnknownType},
	} {
		_, err := decode([]byte(tc.in))
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("decode(%s) = %v", tc.in, err)
		case tc.code != "" && (err == nil || err.code != tc.code):
			t.Errorf("decode(%s) = %v, want %s", tc.in, err, tc.code)
		}
	}
}

func TestPageIsServedWithItsPolicy(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.srv.URL + "/agent")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("GET /agent: %d %q", resp.StatusCode, csp)
	}
	// A page of another origin may not open the signalling.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/agent/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin upgrade: %d, want 403", resp.StatusCode)
	}
}
