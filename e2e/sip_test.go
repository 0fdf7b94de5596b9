package e2e

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The SIP tests drive the real binary with sipp (Debian's sip-tester) as the trunk and as
// the business lines, all on loopback. Scenarios are in testdata/sipp; every sipp runs its
// calls (-m 1 unless sippSpec.calls says) under a global -timeout, and its exit code says
// whether its scenario ran as written (0: every call successful).

const (
	// callerNumber is the From user of every scenario in testdata/sipp (uac-media.xml takes
	// another with sippSpec.caller).
	callerNumber = "+31612345678"
	// flyerNumber is a static number of the channel "Flyer" when a test asks for it.
	flyerNumber = "+31850000101"
	// sippTimeout bounds every sipp process (-timeout); a flow takes a few seconds.
	sippTimeout = 20 * time.Second
)

// sippSpec is one sipp process.
type sippSpec struct {
	scenario string // file name in testdata/sipp
	ip       string // -i, the local address; default 127.0.0.1
	service  string // -s, the dialled number (UAC)
	remote   string // host:port of the switch (UAC); empty for a UAS
	pauseMS  int    // -d, the <pause/> of the scenario
	tcp      bool   // -t t1: one TCP connection instead of UDP
	// media gives sipp a media port of its own (-mp, -mi = ip) for scenarios with audio.
	media bool
	// files are written into sipp's working directory before it starts (pcaps to play).
	files map[string][]byte
	// caller is the From user of scenarios that take it (-key caller); default callerNumber.
	caller string
	// calls is how many calls sipp makes or answers before it exits (-m); default 1.
	calls int
}

// sippProc is a running sipp. Its traces are in its own t.TempDir.
type sippProc struct {
	t      *testing.T
	name   string
	spec   sippSpec
	port   int
	dir    string
	cmd    *exec.Cmd
	stderr syncBuffer
	exited chan struct{}
	err    error
	// mediaPort is sipp's RTP port when spec.media is set.
	mediaPort int
}

// sippBinary is sipp from PATH; the tests fail without it (make deps installs it).
func sippBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatalf("sipp not found (scripts/deps.sh installs Debian's sip-tester): %v", err)
	}
	return p
}

// scenarioPath is the absolute path of a scenario in testdata/sipp.
func scenarioPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "sipp", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("scenario: %v", err)
	}
	return p
}

// freeUDPPort returns a UDP port on ip that was free a moment ago.
func freeUDPPort(t *testing.T, ip string) int {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("free udp port on %s: %v", ip, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startSipp starts sipp and returns once it has its sockets: a free port is picked and
// the start retried when another process took it first. The process is killed, by PID,
// when the test ends.
func startSipp(t *testing.T, name string, spec sippSpec) *sippProc {
	t.Helper()
	bin := sippBinary(t)
	if spec.ip == "" {
		spec.ip = "127.0.0.1"
	}
	scen := scenarioPath(t, spec.scenario)
	dir := t.TempDir()
	for name, data := range spec.files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for attempt := 1; ; attempt++ {
		p := &sippProc{t: t, name: name, spec: spec, dir: dir, port: freeUDPPort(t, spec.ip), exited: make(chan struct{})}
		args := []string{"-sf", scen,
			"-i", spec.ip, "-p", strconv.Itoa(p.port),
			"-cp", strconv.Itoa(freeUDPPort(t, "127.0.0.1")),
			"-m", strconv.Itoa(max(spec.calls, 1)),
			"-key", "caller", cmp.Or(spec.caller, callerNumber),
			"-timeout", strconv.Itoa(int(sippTimeout.Seconds())) + "s", "-timeout_error",
			"-nostdin",
			"-trace_msg", "-message_file", filepath.Join(dir, name+".msg"),
			"-trace_err", "-error_file", filepath.Join(dir, name+".err"),
		}
		if spec.pauseMS > 0 {
			args = append(args, "-d", strconv.Itoa(spec.pauseMS))
		}
		if spec.service != "" {
			args = append(args, "-s", spec.service)
		}
		if spec.tcp {
			args = append(args, "-t", "t1")
		}
		if spec.media {
			p.mediaPort = freeUDPPort(t, spec.ip) &^ 1
			args = append(args, "-mi", spec.ip, "-mp", strconv.Itoa(p.mediaPort))
		}
		if spec.remote != "" {
			args = append(args, spec.remote)
		}
		p.cmd = exec.Command(bin, args...)
		p.cmd.Dir = dir
		p.cmd.Stdout = nil // the screen: sipp's statistics, not needed
		p.cmd.Stderr = &p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start sipp %s: %v", name, err)
		}
		go func() {
			p.err = p.cmd.Wait()
			close(p.exited)
		}()
		t.Cleanup(p.kill)
		// sipp binds before it does anything else; a bind error ends it at once.
		select {
		case <-p.exited:
			if strings.Contains(p.stderr.String(), "Unable to bind") && attempt < 5 {
				continue
			}
		case <-time.After(300 * time.Millisecond):
		}
		return p
	}
}

func (p *sippProc) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// wait waits for sipp to exit (it has its own -timeout; this bound is a backstop) and
// returns its exit code.
func (p *sippProc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(sippTimeout + 15*time.Second):
		p.kill()
		p.t.Errorf("sipp %s did not exit within its timeout", p.name)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		return -1
	}
	return 0
}

// expectSuccess waits for sipp and fails the test, with its traces, unless every call of
// its scenario succeeded (exit code 0).
func (p *sippProc) expectSuccess() {
	p.t.Helper()
	if code := p.wait(); code != 0 {
		p.t.Errorf("sipp %s (%s) exited %d, want 0\n%s", p.name, p.spec.scenario, code, p.diagnostics())
	}
}

// diagnostics are sipp's stderr, unexpected-message log and message trace (the tail).
func (p *sippProc) diagnostics() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- sipp %s stderr:\n%s\n", p.name, p.stderr.String())
	for _, ext := range []string{".err", ".msg"} {
		data, err := os.ReadFile(filepath.Join(p.dir, p.name+ext))
		if err != nil {
			continue
		}
		if len(data) > 12000 {
			data = append([]byte("...\n"), data[len(data)-12000:]...)
		}
		fmt.Fprintf(&b, "--- sipp %s%s:\n%s\n", p.name, ext, data)
	}
	return b.String()
}

// sipMessage is one message of a sipp message trace.
type sipMessage struct {
	sent  bool
	start string // request or status line
	hdr   map[string]string
}

// messages parses sipp's -trace_msg file.
func (p *sippProc) messages() []sipMessage {
	p.t.Helper()
	data, err := os.ReadFile(filepath.Join(p.dir, p.name+".msg"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing sent or received
	}
	if err != nil {
		p.t.Fatalf("sipp %s message trace: %v", p.name, err)
	}
	var out []sipMessage
	for _, block := range strings.Split(string(data), "\n-----------------------------------------------") {
		lines := strings.Split(strings.ReplaceAll(block, "\r", ""), "\n")
		var m *sipMessage
		for _, l := range lines {
			switch {
			case m == nil && (strings.HasPrefix(l, "UDP message sent") || strings.HasPrefix(l, "TCP message sent")):
				m = &sipMessage{sent: true, hdr: map[string]string{}}
			case m == nil && (strings.HasPrefix(l, "UDP message received") || strings.HasPrefix(l, "TCP message received")):
				m = &sipMessage{hdr: map[string]string{}}
			case m != nil && m.start == "" && strings.TrimSpace(l) != "":
				m.start = strings.TrimSpace(l)
			case m != nil && m.start != "" && l == "":
				out = append(out, *m)
				m = nil
			case m != nil && m.start != "":
				if k, v, ok := strings.Cut(l, ":"); ok {
					k = strings.ToLower(strings.TrimSpace(k))
					if _, seen := m.hdr[k]; !seen {
						m.hdr[k] = strings.TrimSpace(v)
					}
				}
			}
		}
		if m != nil && m.start != "" {
			out = append(out, *m)
		}
	}
	return out
}

// firstMessage is the first message whose start line begins with prefix, sent or received.
func (p *sippProc) firstMessage(sent bool, prefix string) (sipMessage, bool) {
	for _, m := range p.messages() {
		if m.sent == sent && strings.HasPrefix(m.start, prefix) {
			return m, true
		}
	}
	return sipMessage{}, false
}

// businessLine is the URI of a business line served by a sipp UAS on port.
func businessLine(user string, port int) string {
	return fmt.Sprintf("sip:%s@127.0.0.1:%d", user, port)
}

// attributedSession creates the session a call is attributed to: a newsletter visit with
// a keyword, a referrer and a gclid.
func attributedSession(t *testing.T, s *server) sessionAnswer {
	t.Helper()
	return s.newSession(t, apiOrigin, map[string]string{
		"site_key":    siteKey,
		"landing_url": "https://shop.example/spring-sale?utm_source=newsletter-may&utm_medium=email&utm_campaign=spring&utm_term=loodgieter",
		"referrer":    "https://mail.example.net/inbox",
		"gclid":       "e2e-gclid-0001",
	})
}

// finalCall waits (at most 10 s) until the one call on number is complete and returns it.
func finalCall(t *testing.T, s *server, number string) callRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		calls := s.calls(t, url.Values{"number": {number}})
		if len(calls) > 1 {
			t.Fatalf("GET /v1/calls?number=%s: %d calls, want 1: %+v", number, len(calls), calls)
		}
		if len(calls) == 1 && !calls[0].End.IsZero() && calls[0].Disposition != "" {
			return calls[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/calls?number=%s: no completed call within 10 s: %+v", number, calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectNoCall checks that no call record names number.
func expectNoCall(t *testing.T, s *server, number string) {
	t.Helper()
	if calls := s.calls(t, url.Values{"number": {number}}); len(calls) != 0 {
		t.Errorf("GET /v1/calls?number=%s: %d call records, want none: %+v", number, len(calls), calls)
	}
}

// sipFlow is one call through the switch: the business lines' scenarios, the trunk's
// scenario, and what the call record must say.
type sipFlow struct {
	name string
	// lines are the UAS scenarios of the customer's business lines, in failover order. A
	// line whose scenario starts with "!" must not be called at all.
	lines       []string
	linePauseMS int
	ringTimeout string
	status      string
	// noLines: the customer has no business line at all.
	noLines bool
	// trunkSources, uacIP: the ACL and the trunk's address.
	trunkSources []string
	uacIP        string
	// uacTCP: the trunk sends over TCP (the business line stays on UDP).
	uacTCP bool

	uac        string
	uacPauseMS int
	// dial: "session" (the number of a fresh session), "flyer" (a static number), or a
	// number.
	dial string

	// noRecord: the call is refused before it belongs to a customer (ACL, unknown number):
	// no record may name the number.
	noRecord bool
	// recordOpen: docs/api.md does not say whether a refused call of a known customer gets
	// a record; if one exists it must say how the call ended.
	recordOpen bool
	want       wantCall
}

// wantCall is what a completed call record must hold.
type wantCall struct {
	disposition string
	// dispositions, when set, are the acceptable dispositions (the contract leaves a choice).
	dispositions []string
	hangupBy     string
	finalStatus  int
	// answered: answer time set and talk_seconds about talk.
	answered bool
	talk     time.Duration
	// line is the index of the business line the record must name; -1 none.
	line int
}

func TestSIPCalls(t *testing.T) {
	sippBinary(t)
	flows := []sipFlow{
		{
			name: "answered, caller hangs up", lines: []string{"uas-ring-answer.xml"},
			uac: "uac-answer.xml", uacPauseMS: 1500, dial: "session",
			want: wantCall{disposition: "answered", hangupBy: "caller", finalStatus: 200, answered: true, talk: 1500 * time.Millisecond},
		},
		{
			name: "trunk over TCP", lines: []string{"uas-ring-answer.xml"}, uacTCP: true,
			uac: "uac-answer.xml", uacPauseMS: 1000, dial: "session",
			want: wantCall{disposition: "answered", hangupBy: "caller", finalStatus: 200, answered: true, talk: time.Second},
		},
		{
			name: "answered, business line hangs up", lines: []string{"uas-answer-hangup.xml"}, linePauseMS: 1500,
			uac: "uac-wait-bye.xml", dial: "session",
			want: wantCall{disposition: "answered", hangupBy: "business_line", finalStatus: 200, answered: true, talk: 1500 * time.Millisecond},
		},
		{
			name: "caller cancels while ringing", lines: []string{"uas-no-answer.xml"},
			uac: "uac-cancel.xml", uacPauseMS: 700, dial: "session",
			want: wantCall{disposition: "cancelled", hangupBy: "caller", finalStatus: 487, line: -1},
		},
		{
			name: "business line busy", lines: []string{"uas-busy.xml"},
			uac: "uac-reject-486.xml", dial: "session",
			want: wantCall{disposition: "busy", hangupBy: "business_line", finalStatus: 486},
		},
		{
			name: "business line declines", lines: []string{"uas-decline.xml"},
			uac: "uac-reject-603.xml", dial: "session",
			want: wantCall{dispositions: []string{"rejected", "busy"}, hangupBy: "business_line", finalStatus: 603},
		},
		{
			name: "no answer within the ring timeout", lines: []string{"uas-no-answer.xml"}, ringTimeout: "2s",
			uac: "uac-reject-480.xml", dial: "session",
			want: wantCall{disposition: "no-answer", hangupBy: "switch", finalStatus: 480, line: -1},
		},
		{
			name: "no answer, failover to the second line", lines: []string{"uas-no-answer.xml", "uas-ring-answer.xml"}, ringTimeout: "2s",
			uac: "uac-answer.xml", uacPauseMS: 1000, dial: "session",
			want: wantCall{disposition: "answered", hangupBy: "caller", finalStatus: 200, answered: true, talk: time.Second, line: 1},
		},
		{
			name: "busy line is not failed over", lines: []string{"uas-busy.xml", "!uas-answer.xml"},
			uac: "uac-reject-486.xml", dial: "flyer",
			want: wantCall{disposition: "busy", hangupBy: "business_line", finalStatus: 486},
		},
		{
			name: "static number without a session", lines: []string{"uas-ring-answer.xml"},
			uac: "uac-answer.xml", uacPauseMS: 500, dial: "flyer",
			want: wantCall{disposition: "answered", hangupBy: "caller", finalStatus: 200, answered: true, talk: 500 * time.Millisecond},
		},
		{
			name: "unknown number", uac: "uac-reject-404.xml", dial: "+31859999999", noRecord: true,
		},
		{
			name: "customer ended", status: "ended",
			uac: "uac-reject-480.xml", dial: "flyer", recordOpen: true,
		},
		{
			name: "customer without a business line", noLines: true,
			uac: "uac-reject-480.xml", dial: "flyer", recordOpen: true,
		},
	}
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			runFlow(t, f)
		})
	}
}

func runFlow(t *testing.T, f sipFlow) {
	// The business lines listen first: their ports go into the config.
	var uas, idle []*sippProc
	var lines []string
	for i, scen := range f.lines {
		name := fmt.Sprintf("line%d", i)
		if rest, ok := strings.CutPrefix(scen, "!"); ok {
			p := startSipp(t, name, sippSpec{scenario: rest})
			idle = append(idle, p)
			lines = append(lines, businessLine(fmt.Sprintf("+3185208797%d", i), p.port))
			continue
		}
		p := startSipp(t, name, sippSpec{scenario: scen, pauseMS: f.linePauseMS})
		uas = append(uas, p)
		lines = append(lines, businessLine(fmt.Sprintf("+3185208797%d", i), p.port))
	}
	if f.noLines {
		lines = []string{}
	}
	s := startServer(t, testConfig{
		status: f.status, businessLines: lines, ringTimeout: f.ringTimeout,
		trunkSources: f.trunkSources, flyerNumbers: []string{flyerNumber},
	})

	var sess sessionAnswer
	dial := f.dial
	switch f.dial {
	case "session":
		sess = attributedSession(t, s)
		dial = sess.Number
	case "flyer":
		dial = flyerNumber
	}

	began := time.Now()
	uac := startSipp(t, "trunk", sippSpec{scenario: f.uac, ip: f.uacIP, service: dial, remote: s.SIP, pauseMS: f.uacPauseMS, tcp: f.uacTCP})
	uac.expectSuccess()
	for _, p := range uas {
		p.expectSuccess()
	}
	for _, p := range idle {
		p.kill()
		if _, ok := p.firstMessage(false, "INVITE "); ok {
			t.Errorf("business line %s was called, want it left alone", p.name)
		}
	}
	if t.Failed() {
		return
	}
	if f.noRecord {
		expectNoCall(t, s, dial)
		return
	}
	if f.recordOpen {
		for _, c := range s.calls(t, url.Values{"number": {dial}}) {
			t.Logf("call record: %+v", c)
			if c.FinalStatus != 480 || c.Disposition == "" || c.Disposition == "answered" || c.End.IsZero() {
				t.Errorf("record of a call refused with 480: disposition %q final_status %d end %v", c.Disposition, c.FinalStatus, c.End)
			}
		}
		return
	}

	c := finalCall(t, s, dial)
	t.Logf("call record: %+v", c)
	w := f.want

	// What was dialled, by whom, and where it went.
	if c.CustomerID != customerID || c.Dialled != dial || c.Caller != callerNumber {
		t.Errorf("customer_id %q dialled %q caller %q, want %q %q %q", c.CustomerID, c.Dialled, c.Caller, customerID, dial, callerNumber)
	}
	if w.line >= 0 && w.line < len(lines) && c.BusinessLine != lines[w.line] {
		t.Errorf("business_line %q, want %q", c.BusinessLine, lines[w.line])
	}

	// The ending.
	if w.dispositions != nil {
		ok := false
		for _, d := range w.dispositions {
			ok = ok || c.Disposition == d
		}
		if !ok {
			t.Errorf("disposition %q, want one of %q", c.Disposition, w.dispositions)
		}
	} else if c.Disposition != w.disposition {
		t.Errorf("disposition %q, want %q", c.Disposition, w.disposition)
	}
	if c.HangupBy != w.hangupBy {
		t.Errorf("hangup_by %q, want %q", c.HangupBy, w.hangupBy)
	}
	if c.FinalStatus != w.finalStatus {
		t.Errorf("final_status %d, want %d", c.FinalStatus, w.finalStatus)
	}

	// The attribution snapshot.
	switch f.dial {
	case "session":
		adm := s.sessionByID(t, sess.SessionID)
		if c.SessionID != sess.SessionID || c.Channel != "Newsletter" || c.Candidates != 1 {
			t.Errorf("attribution session_id %q channel %q candidates %d, want %q %q 1", c.SessionID, c.Channel, c.Candidates, sess.SessionID, "Newsletter")
		}
		if c.Channel != sess.Channel {
			t.Errorf("channel %q, but the session was given %q", c.Channel, sess.Channel)
		}
		if c.Keyword != "loodgieter" || c.Gclid != "e2e-gclid-0001" || c.ReferrerHost != "mail.example.net" {
			t.Errorf("keyword %q gclid %q referrer_host %q, want loodgieter e2e-gclid-0001 mail.example.net", c.Keyword, c.Gclid, c.ReferrerHost)
		}
		if lp, _ := adm["landing_page"].(string); c.LandingPage != lp || !strings.Contains(c.LandingPage, "shop.example/spring-sale") || strings.Contains(c.LandingPage, "?") {
			t.Errorf("landing_page %q, want the session's %q (scheme, host and path)", c.LandingPage, lp)
		}
	case "flyer":
		if c.SessionID != "" || c.Channel != "Flyer" {
			t.Errorf("attribution session_id %q channel %q, want none and Flyer", c.SessionID, c.Channel)
		}
	}

	// Both legs' Call-IDs: the trunk's and the one the switch gave the business line.
	invA, ok := uac.firstMessage(true, "INVITE ")
	if !ok {
		t.Fatalf("the trunk's trace has no INVITE")
	}
	if c.CallIDA == "" || c.CallIDA != invA.hdr["call-id"] {
		t.Errorf("call_id_a %q, want the trunk's Call-ID %q", c.CallIDA, invA.hdr["call-id"])
	}
	if len(uas) > 0 {
		// The record names the B leg of the line that ended the call.
		p := uas[len(uas)-1]
		if w.line >= 0 && w.line < len(uas) {
			p = uas[w.line]
		}
		invB, ok := p.firstMessage(false, "INVITE ")
		if !ok {
			t.Fatalf("business line %s got no INVITE", p.name)
		}
		if c.CallIDB == "" || c.CallIDB != invB.hdr["call-id"] {
			t.Errorf("call_id_b %q, want the Call-ID the business line got %q", c.CallIDB, invB.hdr["call-id"])
		}
		if c.CallIDB == c.CallIDA {
			t.Errorf("call_id_b equals call_id_a %q: a B2BUA makes a new dialog", c.CallIDA)
		}
		// Every line got the caller's number in From, and its own URI.
		for i, p := range uas {
			inv, ok := p.firstMessage(false, "INVITE ")
			if !ok {
				t.Errorf("business line %d got no INVITE", i)
				continue
			}
			if !strings.Contains(inv.hdr["from"], "sip:"+callerNumber+"@") {
				t.Errorf("business line %d: From %q, want the caller %s passed through", i, inv.hdr["from"], callerNumber)
			}
			if want := "INVITE " + lines[i] + " SIP/2.0"; inv.start != want {
				t.Errorf("business line %d: request line %q, want %q", i, inv.start, want)
			}
			if inv.hdr["call-id"] == c.CallIDA {
				t.Errorf("business line %d got the trunk's Call-ID", i)
			}
		}
	}

	// Times.
	ended := time.Now()
	if c.Start.IsZero() || c.Start.Before(began.Add(-time.Second)) || c.End.Before(c.Start) || c.End.After(ended.Add(time.Second)) {
		t.Errorf("start %v end %v, want start <= end within the test's %v..%v", c.Start, c.End, began, ended)
	}
	if w.answered {
		if c.Answer.IsZero() || c.Answer.Before(c.Start) || c.End.Before(c.Answer) {
			t.Errorf("answer %v, want between start %v and end %v", c.Answer, c.Start, c.End)
		}
		if c.Ringing.IsZero() || c.Ringing.After(c.Answer) {
			t.Errorf("ringing %v, want set (the line sent 180) and before answer %v", c.Ringing, c.Answer)
		}
		want := w.talk.Seconds()
		if math.Abs(c.TalkSeconds-want) > 0.6 {
			t.Errorf("talk_seconds %.3f, want about %.1f (the sipp pause)", c.TalkSeconds, want)
		}
		if got := c.End.Sub(c.Answer).Seconds(); math.Abs(got-c.TalkSeconds) > 0.05 {
			t.Errorf("talk_seconds %.3f, but end - answer is %.3f", c.TalkSeconds, got)
		}
	} else {
		if !c.Answer.IsZero() || c.TalkSeconds != 0 {
			t.Errorf("answer %v talk_seconds %.3f on an unanswered call", c.Answer, c.TalkSeconds)
		}
	}

	// GET /v1/calls/{id} reads the same record.
	if one := s.callByID(t, c.ID); one.ID != c.ID || one.Disposition != c.Disposition || one.CallIDB != c.CallIDB || !one.End.Equal(c.End) {
		t.Errorf("GET /v1/calls/%s: %+v, want the listed record %+v", c.ID, one, c)
	}
}

// TestSIPScenarios runs the scenarios of testdata/sipp against each other, without the
// switch, so that a failing call test points at the switch and not at a scenario.
func TestSIPScenarios(t *testing.T) {
	sippBinary(t)
	pairs := []struct{ uas, uac string }{
		{"uas-answer.xml", "uac-answer.xml"},
		{"uas-ring-answer.xml", "uac-answer.xml"},
		{"uas-answer-hangup.xml", "uac-wait-bye.xml"},
		{"uas-no-answer.xml", "uac-cancel.xml"},
		{"uas-busy.xml", "uac-reject-486.xml"},
		{"uas-decline.xml", "uac-reject-603.xml"},
	}
	for _, pr := range pairs {
		t.Run(pr.uac+" to "+pr.uas, func(t *testing.T) {
			t.Parallel()
			line := startSipp(t, "line", sippSpec{scenario: pr.uas, pauseMS: 300})
			trunk := startSipp(t, "trunk", sippSpec{scenario: pr.uac, service: flyerNumber,
				remote: fmt.Sprintf("127.0.0.1:%d", line.port), pauseMS: 300})
			trunk.expectSuccess()
			line.expectSuccess()
		})
	}
	// A scenario that expects another answer must fail: the exit code is a real check.
	t.Run("wrong final status fails", func(t *testing.T) {
		t.Parallel()
		line := startSipp(t, "line", sippSpec{scenario: "uas-busy.xml"})
		trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-reject-603.xml", service: flyerNumber,
			remote: fmt.Sprintf("127.0.0.1:%d", line.port)})
		if code := trunk.wait(); code == 0 {
			t.Errorf("uac-reject-603 against a busy line exited 0, want a failure")
		}
		line.wait()
	})
}

// --- hostile input ----------------------------------------------------------

// sipRequest is a well-formed out-of-dialog request from local to the switch.
func sipRequest(method, ruri string, local *net.UDPAddr, callID string, extra string, body string) string {
	branch := "z9hG4bK-" + callID
	return fmt.Sprintf("%s %s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=%s;rport\r\n"+
		"From: <sip:%s@%s>;tag=%s\r\n"+
		"To: <%s>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 %s\r\n"+
		"Contact: <sip:%s@%s>\r\n"+
		"Max-Forwards: 70\r\n"+
		"%s"+
		"Content-Length: %d\r\n\r\n%s",
		method, ruri, local, branch, callerNumber, local, callID[:min(len(callID), 16)], ruri, callID, method,
		callerNumber, local, extra, len(body), body)
}

// dropHeader removes the header line whose name is name.
func dropHeader(msg, name string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(msg, "\r\n") {
		if k, _, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

// sdpOffer is a minimal audio offer.
const sdpOffer = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"

// udpPeer is a tiny SIP-over-UDP client that counts the status codes it gets back.
type udpPeer struct {
	conn   *net.UDPConn
	remote *net.UDPAddr
	mu     sync.Mutex
	codes  map[int]int
	last   map[string]string // Call-ID -> start line of the last answer
	done   chan struct{}
}

func newUDPPeer(t *testing.T, localIP, remote string) *udpPeer {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", remote)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(localIP)})
	if err != nil {
		t.Fatalf("udp peer on %s: %v", localIP, err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	p := &udpPeer{conn: conn, remote: raddr, codes: map[int]int{}, last: map[string]string{}, done: make(chan struct{})}
	go p.read()
	t.Cleanup(func() {
		conn.Close()
		<-p.done
	})
	return p
}

func (p *udpPeer) local() *net.UDPAddr { return p.conn.LocalAddr().(*net.UDPAddr) }

// read records every answer until the socket is closed.
func (p *udpPeer) read() {
	defer close(p.done)
	buf := make([]byte, 65536)
	for {
		n, err := p.conn.Read(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		first, _, _ := strings.Cut(msg, "\r\n")
		if !strings.HasPrefix(first, "SIP/2.0 ") || len(first) < 11 {
			continue
		}
		code, _ := strconv.Atoi(first[8:11])
		callID := ""
		sc := bufio.NewScanner(strings.NewReader(msg))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && (strings.EqualFold(k, "Call-ID") || k == "i") {
				callID = strings.TrimSpace(v)
				break
			}
		}
		p.mu.Lock()
		p.codes[code]++
		p.last[callID] = first
		p.mu.Unlock()
	}
}

func (p *udpPeer) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := p.conn.WriteToUDP(b, p.remote); err != nil {
		t.Errorf("send %d bytes: %v", len(b), err)
	}
}

func (p *udpPeer) answer(callID string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[callID]
}

func (p *udpPeer) counts() map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[int]int, len(p.codes))
	for k, v := range p.codes {
		m[k] = v
	}
	return m
}

// options sends OPTIONS (retransmitted on the RFC 3261 timer E schedule, at most 2 s) and
// returns the final answer's status line, or "" when none came.
func (p *udpPeer) options(t *testing.T, ruri string) string {
	t.Helper()
	id := fmt.Sprintf("options-%d", time.Now().UnixNano())
	msg := []byte(sipRequest("OPTIONS", ruri, p.local(), id, "Accept: application/sdp\r\n", ""))
	wait := 500 * time.Millisecond
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		p.send(t, msg)
		until := time.Now().Add(wait)
		for time.Now().Before(until) {
			if a := p.answer(id); a != "" && !strings.HasPrefix(a, "SIP/2.0 1") {
				return a
			}
			time.Sleep(10 * time.Millisecond)
		}
		wait = min(2*wait, time.Second)
	}
	return ""
}

// TestSIPHostileInput sends garbage, malformed requests, an oversized header, wrong
// Content-Lengths and a flood of INVITEs from outside the trunk ACL while a call is in
// progress: the call must complete as if nothing happened, nothing from the flood may
// become a call record or get an answer, and the switch must still answer the trunk's
// OPTIONS.
func TestSIPHostileInput(t *testing.T) {
	t.Parallel()
	sippBinary(t)
	line := startSipp(t, "line", sippSpec{scenario: "uas-answer.xml"})
	s := startServer(t, testConfig{
		businessLines: []string{businessLine("+31852087972", line.port)},
		trunkSources:  []string{"127.0.0.1/32"},
		flyerNumbers:  []string{flyerNumber},
		poolSize:      5,
	})
	// The malformed requests come from the trunk's address and dial an untracked number: a
	// request that is valid after all (a missing Max-Forwards, a Content-Length shorter than
	// the body, RFC 3261 §18.3) gets 404 instead of ringing the line of the call in progress.
	unknownNumber := "+31859999999"
	ruri := "sip:" + unknownNumber + "@" + s.SIP
	floodNumber := "+31850000002" // a pool number: tracked, but the flood is not from the trunk

	// The call in progress: 4 s of talk while the garbage flies.
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-answer.xml", service: flyerNumber, remote: s.SIP, pauseMS: 4000})
	deadline := time.Now().Add(5 * time.Second)
	for {
		calls := s.calls(t, url.Values{"number": {flyerNumber}})
		if len(calls) == 1 && !calls[0].Answer.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the call was not answered within 5 s: %+v\n%s", calls, trunk.diagnostics())
		}
		time.Sleep(50 * time.Millisecond)
	}

	inside := newUDPPeer(t, "127.0.0.1", s.SIP)  // trusted source: gets past the ACL
	outside := newUDPPeer(t, "127.0.0.3", s.SIP) // untrusted
	loc := inside.local()
	garbage := make([]byte, 1400)

	// 1. Garbage: random bytes, empty datagrams, a bare start line, NULs, CRLF keep-alives.
	for i := range 200 {
		_, _ = rand.Read(garbage)
		inside.send(t, garbage[:1+i*7%len(garbage)])
	}
	for _, g := range []string{"", "\r\n\r\n", "INVITE\r\n\r\n", "SIP/2.0 200 OK\r\n\r\n", "INVITE sip: SIP/2.0\r\n\r\n",
		"INVITE sip:+31850000101@127.0.0.1 SIP/3.0\r\n\r\n", strings.Repeat("\x00", 512), "\xff\xfe\xfd SIP/2.0\r\n\r\n"} {
		inside.send(t, []byte(g))
	}

	// 2. Requests missing Call-ID, CSeq, Via, From, To; a CSeq of another method; and
	//    responses nobody asked for.
	for i, h := range []string{"Call-ID", "CSeq", "Via", "From", "To", "Contact", "Max-Forwards"} {
		inside.send(t, []byte(dropHeader(sipRequest("INVITE", ruri, loc, fmt.Sprintf("missing-%d-%s", i, h), "Content-Type: application/sdp\r\n", sdpOffer), h)))
		inside.send(t, []byte(dropHeader(sipRequest("OPTIONS", ruri, loc, fmt.Sprintf("missing-opt-%d-%s", i, h), "", ""), h)))
	}
	inside.send(t, []byte(strings.Replace(sipRequest("INVITE", ruri, loc, "cseq-mismatch", "", ""), "CSeq: 1 INVITE", "CSeq: 1 BYE", 1)))
	inside.send(t, []byte(strings.Replace(sipRequest("INVITE", ruri, loc, "cseq-garbage", "", ""), "CSeq: 1 INVITE", "CSeq: x INVITE", 1)))
	inside.send(t, []byte(strings.Replace(sipRequest("BYE", ruri, loc, "bye-nodialog", "", ""), "To: <"+ruri+">", "To: <"+ruri+">;tag=nope", 1)))
	inside.send(t, []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK-x\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	inside.send(t, []byte(sipRequest("INVITE", ruri, loc, "hdr-injection", "Subject: a\r\n\r\nINVITE sip:x@y SIP/2.0\r\n", "")))

	// 3. An oversized header: the largest UDP datagram, and 70 KB over TCP.
	big := sipRequest("INVITE", ruri, loc, "huge-udp", "X-Filler: "+strings.Repeat("a", 64000)+"\r\n", "")
	inside.send(t, []byte(big[:min(len(big), 65507)]))
	huge := sipRequest("INVITE", ruri, loc, "huge-tcp", "X-Filler: "+strings.Repeat("b", 70*1024)+"\r\n", "")
	if conn, err := net.DialTimeout("tcp", s.SIP, 2*time.Second); err != nil {
		t.Errorf("dial SIP over TCP: %v", err)
	} else {
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = conn.Write([]byte(huge))
		_, _ = conn.Read(make([]byte, 4096)) // an answer or a closed connection, either is fine
		conn.Close()
	}
	// A TCP stream that never ends its header, and one that claims a huge body.
	if conn, err := net.DialTimeout("tcp", s.SIP, 2*time.Second); err == nil {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = conn.Write([]byte(strings.Replace(sipRequest("INVITE", ruri, loc, "tcp-cl", "", ""), "Content-Length: 0", "Content-Length: 99999999", 1)))
		conn.Close()
	}

	// 4. Wrong Content-Length: longer and shorter than the body, negative, not a number.
	for i, cl := range []string{"500", "3", "-1", "abc", "99999999999999999999"} {
		msg := sipRequest("INVITE", ruri, loc, fmt.Sprintf("content-length-%d", i), "Content-Type: application/sdp\r\n", sdpOffer)
		msg = strings.Replace(msg, fmt.Sprintf("Content-Length: %d", len(sdpOffer)), "Content-Length: "+cl, 1)
		inside.send(t, []byte(msg))
	}

	// 5. An INVITE flood from outside the ACL, to a tracked number.
	floodURI := "sip:" + floodNumber + "@" + s.SIP
	const flood = 2000
	for i := range flood {
		outside.send(t, []byte(sipRequest("INVITE", floodURI, outside.local(), fmt.Sprintf("flood-%06d", i), "Content-Type: application/sdp\r\n", sdpOffer)))
		if i%200 == 199 {
			time.Sleep(5 * time.Millisecond) // ~2,000 in about 50 ms: a burst, not a kernel-buffer test
		}
	}

	// The call in progress completes normally.
	trunk.expectSuccess()
	line.expectSuccess()
	c := finalCall(t, s, flyerNumber)
	if c.Disposition != "answered" || c.HangupBy != "caller" || c.FinalStatus != 200 || math.Abs(c.TalkSeconds-4) > 0.8 {
		t.Errorf("the call during the attack: disposition %q hangup_by %q final_status %d talk_seconds %.2f, want answered caller 200 about 4",
			c.Disposition, c.HangupBy, c.FinalStatus, c.TalkSeconds)
	}

	// Still serving: OPTIONS from the trunk is answered 200.
	if a := inside.options(t, "sip:"+s.SIP); !strings.HasPrefix(a, "SIP/2.0 200") {
		t.Errorf("OPTIONS after the attack: %q, want SIP/2.0 200", a)
	}
	if !s.running() {
		t.Fatalf("trackline exited during the attack: %v", s.err)
	}
	for _, bad := range []string{"panic:", "fatal error:", "goroutine "} {
		if strings.Contains(s.Logs(), bad) {
			t.Errorf("trackline logged %q", bad)
		}
	}

	// Nothing from the flood or the malformed INVITEs became a call.
	expectNoCall(t, s, floodNumber)
	expectNoCall(t, s, unknownNumber)
	if calls := s.calls(t, url.Values{"number": {flyerNumber}}); len(calls) != 1 {
		t.Errorf("GET /v1/calls?number=%s: %d records, want only the sipp call: %+v", flyerNumber, len(calls), calls)
	}
	// A source that is no trunk gets no answer at all (sip.unknown_sources: drop, the
	// default): not to the flood, not to OPTIONS.
	if a := outside.options(t, "sip:"+s.SIP); a != "" {
		t.Errorf("OPTIONS from outside the trunk ACL: %q, want no answer", a)
	}
	outCodes := outside.counts()
	if len(outCodes) != 0 {
		t.Errorf("answers to the flood from outside the ACL: %v, want none", outCodes)
	}
	t.Logf("flood of %d INVITEs from 127.0.0.3: answers %v", flood, outCodes)
	t.Logf("answers to the malformed requests from the trunk: %v", inside.counts())
	inside.mu.Lock()
	ids := make([]string, 0, len(inside.last))
	for id := range inside.last {
		ids = append(ids, id)
	}
	inside.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		t.Logf("  %-28q -> %q", id, inside.answer(id))
	}
}
