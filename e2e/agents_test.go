package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/trackline/trackline/g711"
)

// The browser agent tests: the real binary, sipp as the trunk, and headless Chromium with a
// fake microphone (it plays a beep) on the agent page. ICE runs on loopback.

// agentBrowser starts Chromium whose pages may use a fake microphone without asking.
func agentBrowser(t *testing.T) *browser {
	t.Helper()
	return newBrowser(t,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
}

// tab opens another tab of the same browser.
func (b *browser) tab(t *testing.T) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(cancel)
	return &browser{ctx: ctx}
}

// eval runs JavaScript on the page and returns its string result.
func (b *browser) eval(t *testing.T, js string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func (b *browser) agentState(t *testing.T) string {
	t.Helper()
	return b.eval(t, `JSON.stringify(window.agentState)`)
}

// must waits for a condition on the agent page and fails with the page's state.
func (b *browser) must(t *testing.T, cond string, within time.Duration) {
	t.Helper()
	if !b.waitFor(t, cond, within) {
		t.Fatalf("agent page: %s not within %v; state %s", cond, within, b.agentState(t))
	}
}

// agentToken makes an agent token through the admin API and returns its id and secret.
func (s *server) agentToken(t *testing.T, label string, groups ...string) (string, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"label": label, "groups": groups})
	resp, err := do(context.Background(), httpClient, http.MethodPost, "http://"+s.Admin+"/v1/customers/"+customerID+"/agent-tokens",
		"application/json", body, http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatalf("create agent token: %v %d %s", err, resp.Status, resp.Body)
	}
	var tok struct{ ID, Token string }
	if err := json.Unmarshal(resp.Body, &tok); err != nil || !strings.HasPrefix(tok.Token, "tla_") {
		t.Fatalf("agent token answer %s: %v", resp.Body, err)
	}
	return tok.ID, tok.Token
}

// loginAgent opens the agent page and logs in with the token.
func loginAgent(t *testing.T, b *browser, s *server, token string) {
	t.Helper()
	b.run(t, chromedp.Navigate("http://"+s.HTTP+"/agent"))
	b.run(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`document.getElementById('token').value = %q; document.getElementById('login').requestSubmit()`, token)))
	b.must(t, `window.agentState.status === 'idle'`, 10*time.Second)
}

// rms is the root mean square of x.
func rms(x []float64) float64 {
	var sum float64
	for _, v := range x {
		sum += v * v
	}
	if len(x) == 0 {
		return 0
	}
	return math.Sqrt(sum / float64(len(x)))
}

// An agent page accepts a call from sipp; audio flows both ways (the recording's left channel
// is the caller's audio, its right one the browser's beep); the agent hangs up in the page
// and the caller gets BYE.
func TestAgentPageAnswersACall(t *testing.T) {
	callerAudio := g711.Encode(nil, testSignal(6*8000, 7), g711.ULaw)
	s := startServer(t, testConfig{businessLines: []string{"webrtc:sales"}, flyerNumbers: []string{flyerNumber}, record: true, webrtc: true})
	tokID, tok := s.agentToken(t, "Anna", "sales")
	b := agentBrowser(t)
	loginAgent(t, b, s, tok)

	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media-wait-bye.xml", service: flyerNumber, remote: s.SIP,
		media: true, files: map[string][]byte{"caller.pcap": pcapOf(callerAudio, 0xCA11E4)}})
	b.must(t, `document.querySelectorAll('.ring').length === 1`, 10*time.Second)
	card := b.eval(t, `document.querySelector('.ring').textContent`)
	for _, want := range []string{"+31612345678", flyerNumber, "Flyer"} {
		if !strings.Contains(card, want) {
			t.Errorf("the ringing call shows %q, lacks %q", card, want)
		}
	}
	b.run(t, chromedp.Evaluate[chromedp.Void](`document.querySelector('.ring button.accept').click()`))
	b.must(t, `window.agentState.pcStates.indexOf('connected') >= 0 && window.agentState.status === 'incall'`, 10*time.Second)
	waitAnswered(t, trunk, 10*time.Second)
	time.Sleep(2500 * time.Millisecond) // talk
	b.run(t, chromedp.Evaluate[chromedp.Void](`document.getElementById('hangup').click()`))
	b.must(t, `window.agentState.call === null && window.agentState.status === 'idle'`, 5*time.Second)

	trunk.expectSuccess() // it got the switch's BYE
	call := finalCall(t, s, flyerNumber)
	if call.Disposition != "answered" || call.HangupBy != "business_line" || call.BusinessLine != "webrtc:sales" ||
		call.AgentID != tokID || call.RecordingID == "" || call.Media == nil {
		t.Fatalf("call record %+v", call)
	}
	if call.Media.FromCallee.Packets < 100 || call.Media.CalleeCodec != "PCMU" {
		t.Errorf("RTP from the agent: %+v", call.Media)
	}
	code, _, data := s.getRecording(t, call.RecordingID, nil)
	if code != 200 {
		t.Fatalf("GET recording: %d", code)
	}
	w := parseWAV(t, data)
	if d := float64(len(w.left)) / 8000; d < 2 || d > 4 {
		t.Fatalf("recording of %.2f s, want the 2.5 s talked", d)
	}
	ref := decodeULaw(callerAudio[:2*8000])
	if c, lag := bestCorrelation(w.left, ref); c < 0.9 {
		t.Errorf("left channel vs the caller's audio: correlation %.3f at %d", c, lag)
	}
	// The right channel is the browser's fake microphone: a beep, never the caller's audio.
	mid := w.right[len(w.right)/4 : 3*len(w.right)/4]
	lc, _ := bestCorrelation(w.left, ref)
	rc, _ := bestCorrelation(w.right, ref)
	t.Logf("recording %.2f s: left correlation %.3f, right RMS %.0f (left %.0f), right correlation %.3f", float64(len(w.left))/8000, lc, rms(mid), rms(w.left), rc)
	if r := rms(mid); r < 500 {
		t.Errorf("right channel (the agent) RMS %.1f: no signal", r)
	}
	if c, _ := bestCorrelation(w.right, ref); c > 0.5 {
		t.Errorf("right channel carries the caller's audio: correlation %.3f", c)
	}
	if got := s.metric(t, `trackline_webrtc_calls_total{outcome="answered"}`); got != 1 {
		t.Errorf("answered webrtc calls %v", got)
	}
}

// Two agent pages ring; the one that accepts gets the call and the other stops ringing. Bad
// signalling from a third client harms neither. The caller refreshes the session (re-INVITE)
// and sends an INFO, both answered by the switch, then hangs up: the switch closes the agent's
// peer connection.
func TestAgentPagesRingAllCallerHangsUp(t *testing.T) {
	callerAudio := g711.Encode(nil, testSignal(4*8000, 8), g711.ULaw)
	// Not recorded, no disclaimer: a webrtc line is anchored all the same.
	s := startServer(t, testConfig{businessLines: []string{"webrtc:sales"}, flyerNumbers: []string{flyerNumber}, webrtc: true})
	_, tokA := s.agentToken(t, "Anna", "sales")
	idB, tokB := s.agentToken(t, "Bert", "sales")
	_, tokC := s.agentToken(t, "Carl", "sales")
	anna := agentBrowser(t)
	bert := anna.tab(t)
	loginAgent(t, anna, s, tokA)
	loginAgent(t, bert, s, tokB)

	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media-reinvite.xml", service: flyerNumber, remote: s.SIP, pauseMS: 2000,
		media: true, files: map[string][]byte{"caller.pcap": pcapOf(callerAudio, 0xCA11E4)}})
	anna.must(t, `document.querySelectorAll('.ring').length === 1`, 10*time.Second)
	bert.must(t, `document.querySelectorAll('.ring').length === 1`, 10*time.Second)
	bert.run(t, chromedp.Evaluate[chromedp.Void](`document.querySelector('.ring button.accept').click()`))
	anna.must(t, `document.querySelectorAll('.ring').length === 0 && window.agentState.cancels.some(function (c) { return c.reason === 'answered_elsewhere'; }) && window.agentState.call === null`, 5*time.Second)
	bert.must(t, `window.agentState.pcStates.indexOf('connected') >= 0`, 10*time.Second)
	waitAnswered(t, trunk, 10*time.Second)

	// Bad signalling while the call runs.
	wsURL := "ws://" + s.HTTP + "/v1/agent/ws"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dial := func() *websocket.Conn {
		c, _, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", wsURL, err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	read := func(c *websocket.Conn) (string, error) {
		_, b, err := c.Read(ctx)
		return string(b), err
	}
	send := func(c *websocket.Conn, msg string) {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	wrong := dial()
	send(wrong, `{"type":"login","token":"tla_wrong"}`)
	if m, _ := read(wrong); !strings.Contains(m, `"error":"unauthorized"`) {
		t.Errorf("wrong token answered %s", m)
	}
	if _, err := read(wrong); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Errorf("wrong token: %v, want close 1008", err)
	}
	carl := dial()
	send(carl, `{"type":"login","token":"`+tokC+`"}`)
	if m, _ := read(carl); !strings.Contains(m, `"type":"ready"`) {
		t.Fatalf("login answered %s", m)
	}
	for msg, code := range map[string]string{`{"type":"accept",`: "malformed", `{"type":"hangup","call_id":"01NOSUCHCALL"}`: "unknown_call"} {
		send(carl, msg)
		if m, _ := read(carl); !strings.Contains(m, `"error":"`+code+`"`) {
			t.Errorf("%s answered %s, want error %s", msg, m, code)
		}
	}
	send(carl, `{"type":"ping","pad":"`+strings.Repeat("x", 20000)+`"}`)
	if _, err := read(carl); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("oversized message: %v, want close 1009", err)
	}
	if st := bert.eval(t, `window.agentState.status`); st != "incall" {
		t.Fatalf("the call did not survive the bad input: %s", bert.agentState(t))
	}

	trunk.expectSuccess() // re-INVITE and INFO answered 200, BYE answered 200
	bert.must(t, `window.agentState.ended.some(function (e) { return e.reason === 'caller'; }) && window.agentState.call === null`, 5*time.Second)
	bert.must(t, `window.agentState.remoteClosed === true`, 2*time.Second)
	call := finalCall(t, s, flyerNumber)
	if call.Disposition != "answered" || call.HangupBy != "caller" || call.AgentID != idB || call.Media == nil || call.Media.FromCallee.Packets < 50 {
		t.Fatalf("call record %+v", call)
	}
	anna.must(t, `window.agentState.status === 'idle'`, time.Second)
}

// A webrtc line without an agent online fails over to the next line at once; alone, it gives
// the caller 480.
func TestAgentLineFailover(t *testing.T) {
	line := startSipp(t, "line", sippSpec{scenario: "uas-answer.xml"})
	s := startServer(t, testConfig{businessLines: []string{"webrtc:sales", businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, webrtc: true})
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-answer.xml", service: flyerNumber, remote: s.SIP, pauseMS: 300})
	trunk.expectSuccess()
	line.expectSuccess()
	call := finalCall(t, s, flyerNumber)
	if call.Disposition != "answered" || call.BusinessLine != businessLine("+31852087972", line.port) || call.AgentID != "" {
		t.Fatalf("call record %+v", call)
	}
	if got := s.metric(t, `trackline_webrtc_calls_total{outcome="no_agent"}`); got != 1 {
		t.Errorf("no_agent webrtc calls %v", got)
	}

	t.Run("no other line", func(t *testing.T) {
		s := startServer(t, testConfig{businessLines: []string{"webrtc:sales"}, flyerNumbers: []string{flyerNumber}, webrtc: true})
		trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-reject-480.xml", service: flyerNumber, remote: s.SIP})
		trunk.expectSuccess()
		if call := finalCall(t, s, flyerNumber); call.FinalStatus != 480 || call.Disposition != "failed" {
			t.Fatalf("call record %+v", call)
		}
	})
}
