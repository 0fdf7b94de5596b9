package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Operations from the outside: /readyz through a drain, the runtime log level, and a hot
// backup taken under a sipp load that restores into a working switch. The dashboard and
// alert-rule metric names are checked in ops_metrics_test.go.

// startSippLoad starts sipp for calls calls at rate calls per second (a UAS takes calls
// calls). It reuses sippProc for waiting, killing and diagnostics.
func startSippLoad(t *testing.T, name string, spec sippSpec, calls int, rate float64) *sippProc {
	t.Helper()
	bin := sippBinary(t)
	if spec.ip == "" {
		spec.ip = "127.0.0.1"
	}
	dir := t.TempDir()
	p := &sippProc{t: t, name: name, spec: spec, dir: dir, port: freeUDPPort(t, spec.ip), exited: make(chan struct{})}
	timeout := sippTimeout + time.Duration(float64(calls)/rate*float64(time.Second))
	args := []string{"-sf", scenarioPath(t, spec.scenario),
		"-i", spec.ip, "-p", strconv.Itoa(p.port),
		"-cp", strconv.Itoa(freeUDPPort(t, "127.0.0.1")),
		"-m", strconv.Itoa(calls),
		"-r", strconv.FormatFloat(rate, 'f', -1, 64),
		"-timeout", strconv.Itoa(int(timeout.Seconds())) + "s", "-timeout_error",
		"-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, name+".err"),
	}
	if spec.pauseMS > 0 {
		args = append(args, "-d", strconv.Itoa(spec.pauseMS))
	}
	if spec.service != "" {
		args = append(args, "-s", spec.service)
	}
	if spec.remote != "" {
		args = append(args, spec.remote)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sipp %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	select {
	case <-p.exited:
		t.Fatalf("sipp %s exited at once: %v\n%s", name, p.err, p.diagnostics())
	case <-time.After(300 * time.Millisecond):
	}
	return p
}

// allCalls lists every call record, following next_cursor.
func (s *server) allCalls(t *testing.T, q url.Values) []callRecord {
	t.Helper()
	var all []callRecord
	cursor := ""
	for range 1000 {
		qq := url.Values{"limit": {"1000"}}
		for k, v := range q {
			qq[k] = v
		}
		if cursor != "" {
			qq.Set("cursor", cursor)
		}
		var resp struct {
			Calls      []callRecord `json:"calls"`
			NextCursor string       `json:"next_cursor"`
		}
		s.adminGet(t, "/v1/calls?"+qq.Encode(), &resp)
		all = append(all, resp.Calls...)
		if resp.NextCursor == "" || len(resp.Calls) == 0 {
			return all
		}
		cursor = resp.NextCursor
	}
	t.Fatalf("calls: more than 1000 pages")
	return nil
}

// TestBackupDuringLoad takes a hot backup with `trackline backup` while sipp places calls
// through the switch, then starts a fresh binary on a data directory holding only the
// backup: every call that had ended before the backup began is there, complete.
func TestBackupDuringLoad(t *testing.T) {
	const (
		calls  = 60
		rate   = 6.0 // calls per second: the load lasts about 10 s
		talkMS = 1000
	)
	uas := startSippLoad(t, "line", sippSpec{scenario: "uas-answer.xml"}, calls, rate)
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087970", uas.port)}, flyerNumbers: []string{flyerNumber}})
	uac := startSippLoad(t, "trunk", sippSpec{scenario: "uac-answer.xml", service: flyerNumber, remote: s.SIP, pauseMS: talkMS}, calls, rate)

	// Wait until some calls have ended, then note every ended call before the backup begins.
	var before []callRecord
	deadline := time.Now().Add(30 * time.Second)
	for {
		before = before[:0]
		for _, c := range s.allCalls(t, nil) {
			if !c.End.IsZero() {
				before = append(before, c)
			}
		}
		if len(before) >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls ended within 30 s of load", len(before))
		}
		time.Sleep(200 * time.Millisecond)
	}
	active := len(s.allCalls(t, url.Values{"active": {"true"}}))

	backupFile := filepath.Join(t.TempDir(), "trackline-backup.db")
	cmd := exec.Command(tracklineBin, "backup", "--admin", "http://"+s.Admin, backupFile)
	cmd.Env = append(os.Environ(), "TRACKLINE_ADMIN_TOKEN="+adminToken)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("trackline backup: %v\n%s", err, out)
	}
	t.Logf("%s(%d calls ended and %d active when it began)", out, len(before), active)
	if active == 0 {
		t.Errorf("no call was active when the backup began: it was not taken under load")
	}

	// The offline mode refuses a store a switch holds, and says what to do instead.
	out, err = exec.Command(tracklineBin, "backup", "--data", s.dataDir, filepath.Join(t.TempDir(), "x.db")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Errorf("backup --data of a running switch's store: %v, %s; want a failure saying it is in use", err, out)
	}

	uac.expectSuccess()
	uas.expectSuccess()
	final := s.allCalls(t, nil)
	s.Stop()

	// The offline mode on the stopped switch's data directory.
	out, err = exec.Command(tracklineBin, "backup", "--data", s.dataDir, filepath.Join(t.TempDir(), "offline.db")).CombinedOutput()
	if err != nil {
		t.Errorf("backup --data of a stopped switch: %v\n%s", err, out)
	}

	// Restore: a data directory with only the backup as the store file.
	restoreDir := t.TempDir()
	data, err := os.ReadFile(backupFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restoreDir, "trackline.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := startServerOn(t, s.config, restoreDir)
	restored := map[string]callRecord{}
	for _, c := range r.allCalls(t, nil) {
		restored[c.ID] = c
	}
	for _, c := range before {
		got, ok := restored[c.ID]
		switch {
		case !ok:
			t.Errorf("call %s (ended %v) is not in the restored store", c.ID, c.End)
		case !got.End.Equal(c.End) || got.Disposition != c.Disposition || got.CallIDA != c.CallIDA:
			t.Errorf("call %s restored as end %v disposition %q call_id_a %q, want %v %q %q", c.ID, got.End, got.Disposition, got.CallIDA, c.End, c.Disposition, c.CallIDA)
		}
	}
	if len(restored) < len(before) || len(restored) > len(final) {
		t.Errorf("restored store holds %d calls, want between %d (ended before the backup) and %d (all)", len(restored), len(before), len(final))
	}
	t.Logf("%d calls in all, %d in the backup, %d ended before it began", len(final), len(restored), len(before))
	if status, body := readyz(t, r.Admin); status != http.StatusOK {
		t.Errorf("restored switch /readyz: %d %v", status, body)
	}
	r.Stop()
}

// readyz gets /readyz from addr and decodes it.
func readyz(t *testing.T, addr string) (int, map[string]any) {
	t.Helper()
	resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+addr+"/readyz", "", nil, nil)
	if err != nil {
		t.Fatalf("GET %s/readyz: %v", addr, err)
	}
	var body map[string]any
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Fatalf("GET %s/readyz: %v: %s", addr, err, resp.Body)
	}
	return resp.Status, body
}

// failedChecks are the names of the checks of a /readyz body that failed.
func failedChecks(body map[string]any) []string {
	var out []string
	checks, _ := body["checks"].([]any)
	for _, c := range checks {
		m, _ := c.(map[string]any)
		if ok, _ := m["ok"].(bool); !ok {
			name, _ := m["name"].(string)
			out = append(out, name)
		}
	}
	return out
}

// TestReadyzDuringDrain: /readyz is 200 on every listener while the switch serves, and 503
// (check "draining") from the moment SIGTERM starts the drain, while a call in progress
// finishes and the process still answers HTTP.
func TestReadyzDuringDrain(t *testing.T) {
	line := startSipp(t, "line", sippSpec{scenario: "uas-answer.xml"})
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087970", line.port)}, flyerNumbers: []string{flyerNumber}})
	for _, addr := range []string{s.Admin, s.HTTP, s.Metrics} {
		status, body := readyz(t, addr)
		if status != http.StatusOK || body["ready"] != true {
			t.Fatalf("%s/readyz: %d %v, want 200 ready", addr, status, body)
		}
	}
	for _, p := range []string{"/healthz"} {
		for _, addr := range []string{s.Admin, s.HTTP, s.Metrics} {
			if resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+addr+p, "", nil, nil); err != nil || resp.Status != 200 {
				t.Errorf("GET %s%s: %v %d", addr, p, err, resp.Status)
			}
		}
	}

	uac := startSipp(t, "trunk", sippSpec{scenario: "uac-answer.xml", service: flyerNumber, remote: s.SIP, pauseMS: 4000})
	// SIGTERM a second after the call's record appears: the caller talks for 4 s.
	deadline := time.Now().Add(10 * time.Second)
	for len(s.allCalls(t, url.Values{"active": {"true"}})) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the call did not start within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(2 * time.Second)
	for {
		status, body := readyz(t, s.Admin)
		if status == http.StatusServiceUnavailable {
			failed := failedChecks(body)
			if len(failed) == 0 || failed[0] != "draining" || body["ready"] != false {
				t.Errorf("/readyz while draining: %v, want the draining check failed", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %v 2 s after SIGTERM", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The public listener says the same, without the reasons.
	if status, body := readyz(t, s.HTTP); status != http.StatusServiceUnavailable || strings.Contains(toJSON(body), "error") {
		t.Errorf("public /readyz while draining: %d %v, want 503 without reasons", status, body)
	}
	uac.expectSuccess()
	line.expectSuccess()
	select {
	case <-s.exited:
		if s.err != nil {
			t.Errorf("trackline after SIGTERM: %v", s.err)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("trackline did not stop within %v of SIGTERM", stopTimeout)
	}
	c := finalCall(t, startServerOn(t, s.config, s.dataDir), flyerNumber)
	if c.Disposition != "answered" || c.HangupBy != "caller" {
		t.Errorf("the call in progress during the drain: disposition %q hangup_by %q, want answered by the caller's BYE", c.Disposition, c.HangupBy)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestLogLevelAtRuntime: SIGHUP toggles debug logging and back; the admin API sets a level.
func TestLogLevelAtRuntime(t *testing.T) {
	s := startServer(t, testConfig{})
	level := func() string {
		var b struct {
			Level string `json:"level"`
		}
		s.adminGet(t, "/v1/log-level", &b)
		return b.Level
	}
	waitLevel := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for level() != want {
			if time.Now().After(deadline) {
				t.Fatalf("log level %s, want %s", level(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := level(); got != "INFO" {
		t.Fatalf("log level %s at start, want INFO (--log-level default)", got)
	}
	for _, want := range []string{"DEBUG", "INFO"} {
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitLevel(want)
	}
	resp, err := do(context.Background(), httpClient, http.MethodPut, "http://"+s.Admin+"/v1/log-level", "application/json",
		[]byte(`{"level":"warn"}`), http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil || resp.Status != 200 {
		t.Fatalf("PUT /v1/log-level: %v %d %s", err, resp.Status, resp.Body)
	}
	waitLevel("WARN")
	s.Stop()
	var changes []string
	sc := bufio.NewScanner(strings.NewReader(s.Logs()))
	for sc.Scan() {
		var l struct{ Msg, From, To, By string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "log level changed" {
			changes = append(changes, l.From+">"+l.To+" by "+l.By)
		}
	}
	if want := "INFO>DEBUG by SIGHUP,DEBUG>INFO by SIGHUP,INFO>WARN by admin api"; strings.Join(changes, ",") != want {
		t.Errorf("log level changes logged: %q, want %q", strings.Join(changes, ","), want)
	}
}

// TestReadyzDiskThreshold: with a free-space threshold no disk meets, the process serves but
// is not ready, and says why.
func TestReadyzDiskThreshold(t *testing.T) {
	s := startServer(t, testConfig{}, "--min-free-disk-mb", "1000000000") // 1 EB
	status, body := readyz(t, s.Admin)
	if failed := failedChecks(body); status != http.StatusServiceUnavailable || !slices.Equal(failed, []string{"disk"}) {
		t.Fatalf("/readyz: %d %v, want 503 with only the disk check failed", status, body)
	}
	if !strings.Contains(toJSON(body), "MiB free") {
		t.Errorf("/readyz on the admin listener does not say how much is free: %v", body)
	}
	if resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+s.Admin+"/healthz", "", nil, nil); err != nil || resp.Status != 200 {
		t.Errorf("/healthz of a live but unready switch: %v %d, want 200", err, resp.Status)
	}
}

// TestVersionAndBuildInfo: `trackline version` and the trackline_build_info metric name the
// same build.
func TestVersionAndBuildInfo(t *testing.T) {
	out, err := exec.Command(tracklineBin, "version").Output()
	if err != nil {
		t.Fatalf("trackline version: %v", err)
	}
	version, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "trackline ")
	if !ok || version == "" {
		t.Fatalf("trackline version printed %q, want \"trackline VERSION\"", out)
	}
	s := startServer(t, testConfig{})
	resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+s.Metrics+"/metrics", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range strings.Split(string(resp.Body), "\n") {
		if strings.HasPrefix(l, "trackline_build_info{") {
			found = true
			if !strings.Contains(l, `version="`+version+`"`) || !strings.Contains(l, `goversion="go`) || !strings.HasSuffix(l, "} 1") {
				t.Errorf("%s, want version %q, a goversion and the value 1", l, version)
			}
		}
	}
	if !found {
		t.Errorf("no trackline_build_info on /metrics")
	}
}
