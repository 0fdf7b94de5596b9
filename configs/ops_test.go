package configs_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/media"
)

// The operations files under configs/: the Prometheus scrape config and alert rules, the
// Grafana dashboard and the systemd unit. Which metrics they use is checked against the real
// binary in e2e/ops_metrics_test.go.

// TestMain checks for promtool once, before any test, and fails the package with one line
// that says how to install it when it is missing.
func TestMain(m *testing.M) {
	if _, err := exec.LookPath("promtool"); err != nil {
		fmt.Fprintln(os.Stderr, `configs: promtool not found: run "make deps" (or make test), which installs it`)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// promtool is Debian's (package prometheus); make test installs it. The test fails, not
// skips, without it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (scripts/deps.sh installs Debian's prometheus): %v", err)
	}
	return p
}

func TestPrometheusFiles(t *testing.T) {
	bin := promtool(t)
	tests := []struct {
		name string
		args []string
	}{
		// check config also loads and checks the rule files it names.
		{"check config", []string{"check", "config", "prometheus.yml"}},
		{"check rules", []string{"check", "rules", "trackline.rules.yml"}},
		// Each alert fires on its signal and not on a healthy series beside it.
		{"test rules", []string{"test", "rules", "trackline.rules.test.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = "prometheus"
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tt.args, " "), err, out)
			}
			if !strings.Contains(string(out), "SUCCESS") {
				t.Fatalf("promtool %s said no SUCCESS:\n%s", strings.Join(tt.args, " "), out)
			}
		})
	}
}

// TestPrometheusRulesTested checks that every alert of the rules file has a unit test.
func TestPrometheusRulesTested(t *testing.T) {
	rules := names(t, "prometheus/trackline.rules.yml", "- alert:")
	tested := names(t, "prometheus/trackline.rules.test.yml", "alertname:")
	if len(rules) == 0 {
		t.Fatal("no alert in trackline.rules.yml")
	}
	for _, r := range rules {
		if !slices.Contains(tested, r) {
			t.Errorf("alert %s has no test in trackline.rules.test.yml", r)
		}
	}
}

// names are the values after prefix on the lines of a YAML file.
func names(t *testing.T, path, prefix string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// TestGrafanaDashboard checks the dashboard's shape: it parses, its panels have unique ids,
// fit the 24-column grid and query Prometheus, and it covers what the issue asks for.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/trackline.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct{ X, Y, W, H int }
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a uid and a title")
	}
	ids := map[int]bool{}
	var titles []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid x %d w %d outside the 24 columns", p.Title, p.GridPos.X, p.GridPos.W)
		}
		if p.Type == "row" {
			continue
		}
		titles = append(titles, strings.ToLower(p.Title))
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
		}
	}
	// The panels of issues 6 and 21, by words of their title.
	for _, want := range []string{"calls per second by disposition", "active calls", "call setup latency",
		"answer ratio per customer", "pool utilisation per customer", "pool exhaustions per customer",
		"sessions per second", "rtp packets", "rtp loss", "rtp jitter", "strict-source", "recordings written",
		"recordings disk", "recording bytes", "http latency", "http error ratio", "store commit latency",
		"cpu", "memory", "goroutines", "file descriptors",
		// issue 21's: what was refused and why, and the signals that decide it
		"refused with 503, by reason", "scheduler waits", "setups in flight"} {
		found := false
		for _, title := range titles {
			found = found || strings.Contains(title, want)
		}
		if !found {
			t.Errorf("no panel titled with %q", want)
		}
	}
}

// unit is a systemd unit file: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a directive: %q", path, n, l)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is the value systemd uses for a single-valued directive.
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// TestSystemdUnitDirectives checks the hardening the unit promises, derived where it can be
// from the default config: the ports it binds, the drain it waits for.
func TestSystemdUnitDirectives(t *testing.T) {
	u := parseUnit(t, "systemd/trackline.service")
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	svc := "Service"
	want := map[string]string{
		"User": "trackline", "Group": "trackline", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
		"ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
	}
	for k, v := range want {
		if got, ok := u.last(svc, k); !ok || got != v {
			t.Errorf("%s=%q (set: %v), want %q", k, got, ok, v)
		}
	}

	// ExecStart serves with its data directory in ReadWritePaths, recordings included.
	execStart, _ := u.last(svc, "ExecStart")
	fields := strings.Fields(execStart)
	i := slices.Index(fields, "--data")
	if len(fields) < 2 || fields[1] != "serve" || i < 0 || i+1 >= len(fields) {
		t.Fatalf("ExecStart=%q: want `trackline serve ... --data DIR`", execStart)
	}
	dataDir := fields[i+1]
	var rw []string
	for _, v := range u[svc]["ReadWritePaths"] {
		for _, p := range strings.Fields(v) {
			rw = append(rw, strings.TrimPrefix(p, "-"))
		}
	}
	for _, p := range []string{dataDir, filepath.Join(dataDir, "recordings")} {
		if !slices.Contains(rw, p) {
			t.Errorf("ReadWritePaths %v lacks %s", rw, p)
		}
	}

	// Capabilities only to bind below 1024, which the default ports do not.
	low := false
	for _, addr := range []string{cfg.Listen.HTTP, cfg.Listen.Admin, cfg.Listen.Metrics, cfg.SIP.Listen} {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(port); n < 1024 {
			low = true
		}
	}
	if amb, _ := u.last(svc, "AmbientCapabilities"); (amb != "") != low {
		t.Errorf("AmbientCapabilities=%q, but a default port below 1024: %v", amb, low)
	}

	// Descriptors: 6 UDP sockets (RTP, RTCP and a stray socket per leg) and a recording file
	// per anchored call, for 4,000 calls.
	nofile, _ := u.last(svc, "LimitNOFILE")
	if n, err := strconv.Atoi(nofile); err != nil || n < 4000*7 {
		t.Errorf("LimitNOFILE=%q, want a number of at least %d", nofile, 4000*7)
	}

	// The packet loops' real-time priority (media.realtime_priority) is allowed, without a
	// capability: RLIMIT_RTPRIO covers the default, and no seccomp rule forbids it.
	prio := cfg.Media.RealtimePriority
	if prio == 0 {
		prio = media.DefaultRealtimePriority
	}
	if rtprio, _ := u.last(svc, "LimitRTPRIO"); prio > 0 {
		if n, err := strconv.Atoi(rtprio); err != nil || n < prio {
			t.Errorf("LimitRTPRIO=%q, want at least media.realtime_priority %d", rtprio, prio)
		}
	}
	if rr, _ := u.last(svc, "RestrictRealtime"); rr == "yes" || rr == "true" {
		t.Errorf("RestrictRealtime=%s forbids the packet loops' real-time priority", rr)
	}

	// The packet loops' io_uring (media.io auto or io_uring) is allowed: its system calls
	// are on an allow line, and no deny line (expanded where systemd-analyze is installed)
	// takes them away.
	if cfg.Media.IO != "epoll" {
		allowed, denied := map[string]bool{}, map[string]bool{}
		for _, v := range u[svc]["SystemCallFilter"] {
			set, v := allowed, v
			if strings.HasPrefix(v, "~") {
				set, v = denied, v[1:]
			}
			for _, name := range strings.Fields(v) {
				set[name] = true
				if strings.HasPrefix(name, "@") {
					for _, sc := range syscallGroup(t, name) {
						set[sc] = true
					}
				}
			}
		}
		for _, sc := range []string{"io_uring_setup", "io_uring_enter", "io_uring_register"} {
			if !allowed[sc] || denied[sc] {
				t.Errorf("SystemCallFilter: %s allowed %v, denied %v; media.io %q needs it", sc, allowed[sc], denied[sc], cfg.Media.IO)
			}
		}
	}

	// Stopping waits for the drain and the HTTP shutdown (10 s) before SIGKILL.
	stop, _ := u.last(svc, "TimeoutStopSec")
	d, err := time.ParseDuration(stop + "s")
	if err != nil {
		d, err = time.ParseDuration(stop)
	}
	if err != nil || d < cfg.SIP.DrainTimeout+10*time.Second {
		t.Errorf("TimeoutStopSec=%q, want at least drain_timeout %v + 10 s", stop, cfg.SIP.DrainTimeout)
	}
	if _, ok := u.last("Install", "WantedBy"); !ok {
		t.Errorf("no [Install] WantedBy: systemctl enable would do nothing")
	}
}

// syscallGroup lists the system calls of a systemd syscall group (such as @privileged), or
// none where systemd-analyze is not installed.
func syscallGroup(t *testing.T, group string) []string {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		return nil
	}
	out, err := exec.Command("systemd-analyze", "syscall-filter", group).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", group, err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "@") && !strings.Contains(l, " ") {
			names = append(names, l)
		}
	}
	return names
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify where systemd is installed. verify
// needs ExecStart's binary to exist, so it checks a copy of the unit whose ExecStart names
// this test binary. Warnings count as failures: verify exits 0 on an unknown value.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; TestSystemdUnitDirectives checks the unit")
	}
	b, err := os.ReadFile("systemd/trackline.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const bin = "/usr/local/bin/trackline"
	if !strings.Contains(string(b), "ExecStart="+bin+" ") {
		t.Fatalf("ExecStart does not start %s", bin)
	}
	path := filepath.Join(t.TempDir(), "trackline.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "ExecStart="+bin, "ExecStart="+self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
