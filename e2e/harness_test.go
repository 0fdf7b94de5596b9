package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The customer every test config holds.
const (
	customerID    = "e2e"
	siteKey       = "e2e-site-key-0001"
	adminToken    = "e2e-admin-token-0123456789abcdef"
	displayNumber = "+31852087972"
	// poolFirst is the first pool number; the pool is poolFirst, poolFirst+1, ...
	poolFirst = "+31850000001"
	// apiOrigin is the allowed origin of the tests that use a plain HTTP client.
	apiOrigin = "https://shop.example"
)

const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// tracklineBin is the binary under test, set by TestMain.
var tracklineBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if err := checkTools(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	if bin := os.Getenv("TRACKLINE_E2E_BIN"); bin != "" {
		tracklineBin = bin
		return m.Run()
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "trackline-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	tracklineBin = filepath.Join(dir, "trackline")
	args := []string{"build", "-o", tracklineBin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/trackline")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	return m.Run()
}

// checkTools reports, in one line, the external programs the tests need that are missing,
// so that go test on a machine without them says what to do once instead of failing test
// after test. It looks for them as the tests run them: sipp from PATH (sippBinary), Chromium
// at chromiumPath (newBrowser). make deps (scripts/deps.sh) installs both, from Debian's
// sip-tester and chromium.
func checkTools() error {
	var missing []string
	for _, tool := range []string{"sipp", chromiumPath} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf(`%s not found: run "make deps" (or make test), which installs it`, missing[0])
	default:
		return fmt.Errorf(`%s not found: run "make deps" (or make test), which installs them`, strings.Join(missing, " and "))
	}
}

// moduleRoot finds the directory of go.mod above the working directory (the
// e2e package directory under go test).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// testConfig is what a test changes in the config it writes.
type testConfig struct {
	// origins are the customer's allowed_origins; default apiOrigin.
	origins []string
	// poolSize is the size of the customer's pool_range; default 20.
	poolSize int
	// clientShare is pool.client_share; default 1000, out of the way: every test drives
	// the public API from one address.
	clientShare string
	// trustedProxies is pool.trusted_proxies; default none.
	trustedProxies []string
	// archiveHandover is lifecycle.archive_handover (YAML duration); default unset.
	archiveHandover string

	// SIP, for the call tests (sip_test.go).

	// status is the customer's status; default active.
	status string
	// businessLines are the customer's business_lines; default one on
	// 127.0.0.1:5090, where no test listens.
	businessLines []string
	// ringTimeout is the customer's ring_timeout (YAML duration); default unset.
	ringTimeout string
	// trunkSources are the sources of the one trunk; default 127.0.0.0/8.
	trunkSources []string
	// flyerNumbers are static numbers of the channel "Flyer"; default none.
	flyerNumbers []string

	// Media, for the recording tests (media_test.go).

	// record enables recording for the customer.
	record bool
	// disclaimer is the customer's disclaimer prompt ("default" or a WAV path); default none.
	disclaimer string

	// Browser agents, for the agent tests (agents_test.go).

	// webrtc gives the switch a webrtc section for agents on this host: loopback
	// candidates on ports 18000-18999.
	webrtc bool

	// webUsers gives the web app an admin of the customer (webAdmin, webPassword).
	webUsers bool
}

// yamlList renders strings as a YAML flow sequence of quoted strings.
func yamlList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// writeConfig writes the YAML config of docs/api.md for one customer and
// returns its path.
func writeConfig(t *testing.T, c testConfig) string {
	t.Helper()
	if len(c.origins) == 0 {
		c.origins = []string{apiOrigin}
	}
	if c.poolSize == 0 {
		c.poolSize = 20
	}
	if c.clientShare == "" {
		c.clientShare = "1000"
	}
	poolExtra := "\n  client_share: " + c.clientShare
	if len(c.trustedProxies) > 0 {
		poolExtra += "\n  trusted_proxies: " + yamlList(c.trustedProxies)
	}
	lifecycle := ""
	if c.archiveHandover != "" {
		lifecycle = "lifecycle:\n  archive_handover: " + c.archiveHandover + "\n"
	}
	if c.status == "" {
		c.status = "active"
	}
	if c.businessLines == nil {
		c.businessLines = []string{"sip:+31852087972@127.0.0.1:5090"}
	}
	if len(c.trunkSources) == 0 {
		c.trunkSources = []string{"127.0.0.0/8"}
	}
	extra := "" // optional customer keys
	if c.ringTimeout != "" {
		extra += "\n    ring_timeout: " + c.ringTimeout
	}
	if c.record {
		extra += "\n    recording: {enabled: true}"
	}
	if c.disclaimer != "" {
		extra += fmt.Sprintf("\n    prompts: {disclaimer: %q}", c.disclaimer)
	}
	webrtc := ""
	if c.webrtc {
		webrtc = "webrtc:\n  ips: [\"127.0.0.1\"]\n  loopback: true\n  udp_ports: 18000-18999\n  connect_timeout: 8s\n"
	}
	users := ""
	if c.webUsers {
		users = fmt.Sprintf("users:\n  - {email: %q, password: %q, customer: %s, role: admin}\n", "admin@e2e.example", "e2e-web-password", customerID)
	}
	flyer := ""
	if len(c.flyerNumbers) > 0 {
		flyer = "\n      - name: Flyer\n        numbers: " + yamlList(c.flyerNumbers)
	}
	yaml := fmt.Sprintf(`country_code: "31"
admin_token: %q
pool:
  lease: 30m
  grace: 30m
  rate_limit: 500%s
media:
  rtp_ports: 16000-17999
%s%ssip:
  trunks:
    - name: e2e
      sources: %s
customers:
  - id: %s
    name: E2E BV
    status: %s
    site_key: %s
    allowed_origins: %s
    business_lines: %s%s
    display_numbers: [%q]
    display_format: national
    pool_range: {first: %q, count: %d}
    channels:
      - name: Newsletter
        rules: [{param: utm_source, pattern: "newsletter*"}]%s
%s`, adminToken, poolExtra, lifecycle, webrtc, yamlList(c.trunkSources), customerID, c.status, siteKey, yamlList(c.origins),
		yamlList(c.businessLines), extra, displayNumber, poolFirst, c.poolSize, flyer, users)
	path := filepath.Join(t.TempDir(), "trackline.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	return path
}

// server is one trackline binary under test. It keeps its data directory and
// config across restarts.
type server struct {
	t       *testing.T
	config  string
	dataDir string
	extra   []string

	// HTTP, Admin, Metrics and SIP are the addresses of the running process,
	// from its ready log line.
	HTTP, Admin, Metrics, SIP, App string

	logs syncBuffer

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's answer, set before exited closes
}

// startServer starts the binary with a fresh data directory and waits for it
// to be ready. The process is killed, by PID, when the test ends.
func startServer(t *testing.T, c testConfig, extraFlags ...string) *server {
	t.Helper()
	return startServerOn(t, writeConfig(t, c), t.TempDir(), extraFlags...)
}

// startServerOn starts the binary on a config file and a data directory (kept as
// they are: a test may restart on another's) and waits for it to be ready. The
// process is killed, by PID, when the test ends; a data race it reports fails the test.
func startServerOn(t *testing.T, config, dataDir string, extraFlags ...string) *server {
	t.Helper()
	s := &server{t: t, config: config, dataDir: dataDir, extra: extraFlags}
	t.Cleanup(func() {
		s.kill()
		if strings.Contains(s.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("trackline reported a data race")
		}
		if t.Failed() {
			t.Logf("trackline output:\n%s", s.logs.String())
		}
	})
	s.start()
	return s
}

func (s *server) start() {
	s.t.Helper()
	args := []string{"serve",
		"--config", s.config,
		"--data", s.dataDir,
		"--http", "127.0.0.1:0",
		"--admin", "127.0.0.1:0",
		"--metrics", "127.0.0.1:0",
		"--sip", "127.0.0.1:0",
		"--app", "127.0.0.1:0",
		"--log-format", "json",
	}
	args = append(args, s.extra...)
	cmd := exec.Command(tracklineBin, args...)
	cmd.Stdout = &s.logs
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatalf("stderr pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", tracklineBin, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	ready := make(chan readyLine, 1)
	go func() {
		s.readLogs(stderr, ready)
		s.err = cmd.Wait()
		close(s.exited)
	}()
	select {
	case r := <-ready:
		s.HTTP, s.Admin, s.Metrics, s.SIP, s.App = r.HTTP, r.Admin, r.Metrics, r.SIP, r.App
	case <-s.exited:
		s.t.Fatalf("trackline exited before ready: %v\n%s", s.err, s.logs.String())
	case <-time.After(readyTimeout):
		s.t.Fatalf("trackline not ready after %v\n%s", readyTimeout, s.logs.String())
	}
	if s.HTTP == "" || s.Admin == "" || s.Metrics == "" || s.SIP == "" {
		s.t.Fatalf("ready line lacks an address: http=%q admin=%q metrics=%q sip=%q", s.HTTP, s.Admin, s.Metrics, s.SIP)
	}
}

type readyLine struct {
	Msg     string `json:"msg"`
	HTTP    string `json:"http"`
	Admin   string `json:"admin"`
	Metrics string `json:"metrics"`
	SIP     string `json:"sip"`
	App     string `json:"app"`
}

// readLogs copies stderr into the log buffer and reports the first ready line.
// It returns at EOF, when the process has closed stderr.
func (s *server) readLogs(r io.Reader, ready chan<- readyLine) {
	br := bufio.NewReader(r)
	sent := false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			_, _ = s.logs.Write([]byte(line))
			if !sent {
				var l readyLine
				if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "ready" {
					ready <- l
					sent = true
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits; the binary must exit with status 0.
func (s *server) Stop() {
	s.t.Helper()
	if !s.running() {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
		if s.err != nil {
			s.t.Errorf("trackline after SIGTERM: %v (want exit status 0)", s.err)
		}
	case <-time.After(stopTimeout):
		s.kill()
		s.t.Errorf("trackline did not stop within %v of SIGTERM", stopTimeout)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *server) Kill() {
	s.t.Helper()
	s.kill()
}

func (s *server) kill() {
	if !s.running() {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Restart starts the binary again on the same config and data directory. The
// listener addresses change.
func (s *server) Restart() {
	s.t.Helper()
	if s.running() {
		s.t.Fatalf("restart of a running trackline")
	}
	s.start()
}

// Logs returns everything the binary wrote so far, across restarts.
func (s *server) Logs() string { return s.logs.String() }

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// --- HTTP clients ---------------------------------------------------------

var httpClient = &http.Client{Timeout: 15 * time.Second}

// sessionAnswer is the answer of POST /v1/sessions and of touch.
type sessionAnswer struct {
	SessionID       string    `json:"session_id"`
	Number          string    `json:"number"`
	FormattedNumber string    `json:"formatted_number"`
	ExpiresAt       time.Time `json:"expires_at"`
	Channel         string    `json:"channel"`
	Campaign        string    `json:"campaign"`
	Replace         []string  `json:"replace"`
	TouchInterval   int       `json:"touch_interval"`
}

// problem is an RFC 9457 problem+json body.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends one request and reads the whole answer.
func do(ctx context.Context, c *http.Client, method, u, contentType string, body []byte, header http.Header) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read %s %s: %w", method, u, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// postSession posts body (marshalled to JSON) to /v1/sessions with an allowed
// Origin.
func (s *server) postSession(t *testing.T, origin string, body any) response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	resp, err := do(context.Background(), httpClient, http.MethodPost, "http://"+s.HTTP+"/v1/sessions",
		"text/plain", b, http.Header{"Origin": {origin}})
	if err != nil {
		t.Fatalf("POST /v1/sessions: %v", err)
	}
	return resp
}

// newSession creates a session and fails the test unless it is answered 201.
func (s *server) newSession(t *testing.T, origin string, body any) sessionAnswer {
	t.Helper()
	resp := s.postSession(t, origin, body)
	if resp.Status != http.StatusCreated {
		t.Fatalf("POST /v1/sessions: status %d, want 201: %s", resp.Status, resp.Body)
	}
	return decodeSession(t, resp)
}

func decodeSession(t *testing.T, resp response) sessionAnswer {
	t.Helper()
	var a sessionAnswer
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		t.Fatalf("session answer %q: %v", resp.Body, err)
	}
	if a.SessionID == "" || !strings.HasPrefix(a.Number, "+") {
		t.Fatalf("session answer lacks session_id or an E.164 number: %s", resp.Body)
	}
	return a
}

// touch posts a touch for the session.
func (s *server) touch(ctx context.Context, c *http.Client, sessionID string) (response, error) {
	b, _ := json.Marshal(map[string]string{"site_key": siteKey})
	return do(ctx, c, http.MethodPost, "http://"+s.HTTP+"/v1/sessions/"+url.PathEscape(sessionID)+"/touch",
		"text/plain", b, http.Header{"Origin": {apiOrigin}})
}

// adminGet gets an admin API path with the admin token and decodes the JSON
// answer into v; it fails the test on any status but 200.
func (s *server) adminGet(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+s.Admin+path, "", nil,
		http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200: %s", path, resp.Status, resp.Body)
	}
	if err := json.Unmarshal(resp.Body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, resp.Body)
	}
}

// sessionsTotal reads sessions_total from the customer's pool statistics.
func (s *server) sessionsTotal(t *testing.T) int {
	t.Helper()
	var pool map[string]any
	s.adminGet(t, "/v1/customers/"+customerID+"/pool", &pool)
	n, ok := pool["sessions_total"].(float64)
	if !ok {
		t.Fatalf("GET /v1/customers/%s/pool has no numeric sessions_total: %v", customerID, pool)
	}
	return int(n)
}

// sessions lists all of the customer's sessions from the admin API, following
// next_cursor.
func (s *server) sessions(t *testing.T) []map[string]any {
	t.Helper()
	var all []map[string]any
	cursor := ""
	for page := 0; page < 1000; page++ {
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var resp struct {
			Sessions   []map[string]any `json:"sessions"`
			NextCursor string           `json:"next_cursor"`
		}
		s.adminGet(t, "/v1/customers/"+customerID+"/sessions?"+q.Encode(), &resp)
		all = append(all, resp.Sessions...)
		if resp.NextCursor == "" || len(resp.Sessions) == 0 {
			return all
		}
		cursor = resp.NextCursor
	}
	t.Fatalf("sessions: more than 1000 pages")
	return nil
}

// sessionByID finds the admin view of one session.
func (s *server) sessionByID(t *testing.T, id string) map[string]any {
	t.Helper()
	for _, m := range s.sessions(t) {
		if sessionIDOf(m) == id {
			return m
		}
	}
	t.Fatalf("session %s not in GET /v1/customers/%s/sessions", id, customerID)
	return nil
}

// sessionIDOf reads a session id from an admin API object: "session_id" or
// "id", at the top or under "session".
func sessionIDOf(m map[string]any) string {
	for _, k := range []string{"session_id", "id"} {
		if v, ok := m[k].(string); ok && v != "" {
			return v
		}
	}
	if inner, ok := m["session"].(map[string]any); ok {
		return sessionIDOf(inner)
	}
	return ""
}

// checkProblem checks that resp is a problem+json answer with the status.
func checkProblem(t *testing.T, resp response, status int) problem {
	t.Helper()
	if resp.Status != status {
		t.Errorf("status %d, want %d (Content-Type %q): %s", resp.Status, status, resp.Header.Get("Content-Type"), resp.Body)
		return problem{}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(resp.Body, &p); err != nil {
		t.Errorf("problem body %q: %v", resp.Body, err)
		return p
	}
	if p.Status != status {
		t.Errorf("problem status %d, want %d: %s", p.Status, status, resp.Body)
	}
	if p.Title == "" {
		t.Errorf("problem without title: %s", resp.Body)
	}
	return p
}

// --- Call records (admin API) -----------------------------------------------

// callRecord is a call record of GET /v1/calls (store.Call in docs/api.md).
type callRecord struct {
	ID           string    `json:"id"`
	CustomerID   string    `json:"customer_id"`
	Dialled      string    `json:"dialled"`
	Caller       string    `json:"caller"`
	BusinessLine string    `json:"business_line"`
	AgentID      string    `json:"agent_id"`
	SessionID    string    `json:"session_id"`
	Channel      string    `json:"channel"`
	Keyword      string    `json:"keyword"`
	LandingPage  string    `json:"landing_page"`
	ReferrerHost string    `json:"referrer_host"`
	Gclid        string    `json:"gclid"`
	Candidates   int       `json:"candidates"`
	Start        time.Time `json:"start"`
	Ringing      time.Time `json:"ringing"`
	Answer       time.Time `json:"answer"`
	End          time.Time `json:"end"`
	Disposition  string    `json:"disposition"`
	HangupBy     string    `json:"hangup_by"`
	EndReason    string    `json:"end_reason"`
	TalkSeconds  float64   `json:"talk_seconds"`
	FinalStatus  int       `json:"final_status"`
	CallIDA      string    `json:"call_id_a"`
	CallIDB      string    `json:"call_id_b"`
	RecordingID  string    `json:"recording_id"`
	LeadStatus   string    `json:"lead_status"`
	Tags         []string  `json:"tags"`
	Value        float64   `json:"value"`
	Note         string    `json:"note"`
	Media        *struct {
		CallerCodec       string      `json:"caller_codec"`
		CalleeCodec       string      `json:"business_line_codec"`
		FromCaller        streamStats `json:"from_caller"`
		FromCallee        streamStats `json:"from_business_line"`
		StrictSourceDrops uint64      `json:"strict_source_drops"`
		BadRTP            uint64      `json:"bad_rtp"`
	} `json:"media"`
}

// streamStats are one direction's RTP statistics in a call record.
type streamStats struct {
	Packets  uint64  `json:"packets"`
	Bytes    uint64  `json:"bytes"`
	Lost     int64   `json:"lost"`
	JitterMs float64 `json:"jitter_ms"`
}

// calls lists call records from GET /v1/calls with the query (one page).
func (s *server) calls(t *testing.T, q url.Values) []callRecord {
	t.Helper()
	var resp struct {
		Calls      []callRecord `json:"calls"`
		NextCursor string       `json:"next_cursor"`
	}
	s.adminGet(t, "/v1/calls?"+q.Encode(), &resp)
	return resp.Calls
}

// callByID reads one call record from GET /v1/calls/{id}.
func (s *server) callByID(t *testing.T, id string) callRecord {
	t.Helper()
	var c callRecord
	s.adminGet(t, "/v1/calls/"+url.PathEscape(id), &c)
	return c
}
