package e2e

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The cluster's HTTP front (docs/cluster.md): HAProxy running configs/haproxy/haproxy.cfg
// with the test's addresses in front of three nodes on 127.0.0.2, .3 and .4. Requests are
// spread over the nodes; a node drained through the admin API fails its /readyz probe and
// gets no more requests, on the public API and the web app alike; lifted, it is back.

// haproxyCheck is the probe interval the test sets (TL_CHECK_INTER); the config takes a node
// out after two failed probes and back after two passed ones.
const haproxyCheck = 200 * time.Millisecond

func haproxyBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf(`haproxy not found: run "make deps" (scripts/deps.sh installs Debian's haproxy)`)
	return ""
}

// haproxyProc is one HAProxy under test: its public and app addresses and its stats socket.
type haproxyProc struct {
	public, app, sock string
}

func startHAProxy(t *testing.T, nodes []*server) *haproxyProc {
	t.Helper()
	bin := haproxyBinary(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(root, "configs", "haproxy", "haproxy.cfg")
	dir := t.TempDir()
	h := &haproxyProc{
		public: fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)),
		app:    fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)),
		sock:   filepath.Join(dir, "haproxy.sock"),
	}
	env := append(os.Environ(), "TL_STATS_SOCKET="+h.sock, "TL_CHECK_INTER="+haproxyCheck.String(),
		"TL_PUBLIC_BIND="+h.public, "TL_APP_BIND="+h.app)
	for i, n := range nodes {
		host, port, err := net.SplitHostPort(n.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, fmt.Sprintf("TL_NODE%d_HTTP=%s", i+1, n.HTTP), fmt.Sprintf("TL_NODE%d_APP=%s", i+1, n.App),
			fmt.Sprintf("TL_NODE%d_CHECK_ADDR=%s", i+1, host), fmt.Sprintf("TL_NODE%d_CHECK_PORT=%s", i+1, port))
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Env = env
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy output:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", h.sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy's stats socket did not open in 10 s: %s", logs.String())
		}
	}
	return h
}

// stats reads HAProxy's "show stat": per backend and server, its status and the count of
// requests it was sent (stot).
func (h *haproxyProc) stats(t *testing.T) map[string]struct {
	status string
	total  int
} {
	t.Helper()
	c, err := net.DialTimeout("unix", h.sock, 2*time.Second)
	if err != nil {
		t.Fatalf("haproxy stats socket: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(strings.TrimSpace(string(raw)), "# "))).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("haproxy show stat: %v\n%s", err, raw)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	out := map[string]struct {
		status string
		total  int
	}{}
	for _, r := range rows[1:] {
		if len(r) < len(rows[0])-1 {
			continue
		}
		n, _ := strconv.Atoi(r[col["stot"]])
		out[r[col["pxname"]]+"/"+r[col["svname"]]] = struct {
			status string
			total  int
		}{r[col["status"]], n}
	}
	return out
}

// waitStatus waits until every server named is in state (UP or DOWN) in both backends.
func (h *haproxyProc) waitStatus(t *testing.T, state string, within time.Duration, servers ...string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		st := h.stats(t)
		all := true
		for _, s := range servers {
			for _, be := range []string{"trackline_public", "trackline_app"} {
				if !strings.HasPrefix(st[be+"/"+s].status, state) {
					all = false
				}
			}
		}
		if all {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("servers %v not %s within %v: %v", servers, state, within, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// spread sends n requests to each frontend and returns how many each server got.
func (h *haproxyProc) spread(t *testing.T, n int) map[string]int {
	t.Helper()
	before := h.stats(t)
	for _, target := range []struct{ addr, path, want string }{{h.public, "/healthz", ""}, {h.app, "/healthz", "ok"}} {
		for i := 0; i < n; i++ {
			resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+target.addr+target.path, "", nil, nil)
			if err != nil || resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), target.want) {
				t.Fatalf("GET %s through haproxy: %v %d %s", target.path, err, resp.Status, resp.Body)
			}
		}
	}
	after := h.stats(t)
	got := map[string]int{}
	for k, v := range after {
		if d := v.total - before[k].total; d > 0 && !strings.HasSuffix(k, "/BACKEND") && !strings.HasSuffix(k, "/FRONTEND") {
			got[k] = d
		}
	}
	return got
}

func TestClusterHAProxy(t *testing.T) {
	haproxyBinary(t)
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	nodes := make([]*server, len(ips))
	for i, ip := range ips {
		nodes[i] = startServer(t, testConfig{trustedProxies: []string{"127.0.0.1/32"}},
			"--http", ip+":0", "--app", ip+":0", "--sip", ip+":0")
	}
	h := startHAProxy(t, nodes)
	names := []string{"node1", "node2", "node3"}
	h.waitStatus(t, "UP", 10*time.Second, names...)

	const n = 30
	got := h.spread(t, n)
	for _, be := range []string{"trackline_public", "trackline_app"} {
		for _, s := range names {
			if c := got[be+"/"+s]; c < n/len(names)-1 {
				t.Errorf("%s/%s got %d of %d requests, want about a third: %v", be, s, c, n, got)
			}
		}
	}

	// Drain node2 through its admin API: its /readyz turns 503 and HAProxy takes it out.
	drained := nodes[1]
	setDrain := func(on bool) {
		t.Helper()
		resp, err := do(context.Background(), httpClient, http.MethodPut, "http://"+drained.Admin+"/v1/drain", "application/json",
			[]byte(fmt.Sprintf(`{"draining":%t}`, on)), http.Header{"Authorization": {"Bearer " + adminToken}})
		if err != nil || resp.Status != http.StatusOK {
			t.Fatalf("PUT /v1/drain %v: %v %d %s", on, err, resp.Status, resp.Body)
		}
	}
	setDrain(true)
	// Two failed probes, an interval apart, plus the probe in flight.
	bound := 4*haproxyCheck + time.Second
	d := h.waitStatus(t, "DOWN", bound, "node2")
	t.Logf("drained node out of the HTTP balancer in %v (bound %v)", d.Round(time.Millisecond), bound)
	got = h.spread(t, n)
	for _, be := range []string{"trackline_public", "trackline_app"} {
		if c := got[be+"/node2"]; c != 0 {
			t.Errorf("%s: the drained node got %d requests: %v", be, c, got)
		}
		if got[be+"/node1"]+got[be+"/node3"] != n {
			t.Errorf("%s: %d of %d requests on the other nodes: %v", be, got[be+"/node1"]+got[be+"/node3"], n, got)
		}
	}

	setDrain(false)
	d = h.waitStatus(t, "UP", bound, "node2")
	t.Logf("node back in the HTTP balancer %v after the drain was lifted", d.Round(time.Millisecond))
	got = h.spread(t, n)
	for _, be := range []string{"trackline_public", "trackline_app"} {
		if got[be+"/node2"] == 0 {
			t.Errorf("%s: no request for the node after its drain was lifted: %v", be, got)
		}
	}
}
