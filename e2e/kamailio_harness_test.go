package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers of the cluster test (cluster_kamailio_test.go): a Kamailio process running
// configs/kamailio/kamailio.cfg with the test's addresses, sipp processes with their own
// port, rate and time bound, and a reader of sipp's message trace by call.

// kamailioBinary is kamailio from PATH (or /usr/sbin, where Debian puts it); the cluster test
// fails without it (scripts/deps.sh installs Debian's kamailio package).
func kamailioBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"kamailio", "/usr/sbin/kamailio"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf(`kamailio not found: run "make deps" (scripts/deps.sh installs Debian's kamailio)`)
	return ""
}

// kamcmdBinary is kamcmd, from the same package.
func kamcmdBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"kamcmd", "/usr/sbin/kamcmd"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf(`kamcmd not found: run "make deps" (scripts/deps.sh installs Debian's kamailio)`)
	return ""
}

// kamailio is one Kamailio process under test.
type kamailio struct {
	t      *testing.T
	addr   string // host:port it listens on (UDP)
	ctl    string // its control socket, for kamcmd
	kamcmd string
	logs   syncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// kamailioOpts are the config's parameters the test sets (see the top of kamailio.cfg).
type kamailioOpts struct {
	nodes        []string // host:port of each trackline node, dispatcher set 1
	trunkNet     string   // TRUNK_NET
	pingInterval int      // PING_INTERVAL, seconds
	frTimer      int      // FR_TIMER, milliseconds
	algorithm    string   // DS_ALG; default the config's
}

// startKamailio runs configs/kamailio/kamailio.cfg on a free UDP port of 127.0.0.1, in a
// temporary directory, and returns once it answers kamcmd. It is stopped, by PID, when the
// test ends.
func startKamailio(t *testing.T, o kamailioOpts) *kamailio {
	t.Helper()
	bin := kamailioBinary(t)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(root, "configs", "kamailio", "kamailio.cfg")
	dir, err := os.MkdirTemp("", "kam-") // short: the control socket's path is bounded (108 bytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var list strings.Builder
	fmt.Fprintf(&list, "# written by the e2e cluster test\n")
	for i, n := range o.nodes {
		fmt.Fprintf(&list, "1 sip:%s 0 0 duid=node-%d\n", n, i)
	}
	dsList := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(dsList, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
attempts:
	for attempt := 1; ; attempt++ {
		k := &kamailio{t: t, kamcmd: kamcmdBinary(t), exited: make(chan struct{})}
		k.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freeUDPPort(t, "127.0.0.1")))
		k.ctl = "unix:" + filepath.Join(dir, "ctl")
		os.Remove(filepath.Join(dir, "ctl"))
		args := []string{"-f", cfg,
			"-DD", "-E", // foreground, log to stderr
			"-m", "64", "-M", "8", // shared and per-process memory, MB
			"-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"), "-w", dir,
			"-A", "LISTEN=udp:" + k.addr,
			"-A", "TRUNK_NET=" + o.trunkNet,
			"-A", fmt.Sprintf("DISPATCHER_LIST=%q", dsList),
			"-A", fmt.Sprintf("CTL_SOCKET=%q", k.ctl),
			"-A", "PING_INTERVAL=" + strconv.Itoa(o.pingInterval),
			"-A", "FR_TIMER=" + strconv.Itoa(o.frTimer),
		}
		if o.algorithm != "" {
			args = append(args, "-A", fmt.Sprintf("DS_ALG=%q", o.algorithm))
		}
		k.cmd = exec.Command(bin, args...)
		k.cmd.Dir = dir
		k.cmd.Stdout = &k.logs
		k.cmd.Stderr = &k.logs
		// Its own process group: Kamailio forks its workers, which the cleanup ends with it.
		k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := k.cmd.Start(); err != nil {
			t.Fatalf("start kamailio: %v", err)
		}
		go func() { k.err = k.cmd.Wait(); close(k.exited) }()
		t.Cleanup(k.stop)
		deadline := time.Now().Add(15 * time.Second)
		for {
			select {
			case <-k.exited:
				if strings.Contains(k.logs.String(), "Address already in use") && attempt < 5 {
					continue attempts
				}
				t.Fatalf("kamailio exited at start: %v\n%s", k.err, k.logs.String())
			default:
			}
			if _, err := k.rpc("core.version"); err == nil {
				return k
			}
			if time.Now().After(deadline) {
				t.Fatalf("kamailio does not answer kamcmd within 15 s\n%s", k.logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// stop ends Kamailio: SIGTERM to its main process (which ends its workers), then SIGKILL to
// its process group if it lingers.
func (k *kamailio) stop() {
	select {
	case <-k.exited:
		return
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-k.exited
	}
	if k.t.Failed() {
		k.t.Logf("kamailio output:\n%s", k.logs.String())
	}
}

// rpc runs one kamcmd command against the control socket.
func (k *kamailio) rpc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, k.kamcmd, append([]string{"-s", k.ctl}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kamcmd %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// nodeFlags is the dispatcher's state of each node (by host:port): its FLAGS, e.g. "AP"
// (active, probed) or "IP" (inactive, probed).
func (k *kamailio) nodeFlags() (map[string]string, error) {
	out, err := k.rpc("dispatcher.list")
	if err != nil {
		return nil, err
	}
	flags := map[string]string{}
	uri := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		switch key {
		case "URI":
			uri = strings.TrimPrefix(strings.TrimSpace(val), "sip:")
		case "FLAGS":
			if uri != "" {
				flags[uri] = strings.TrimSpace(val)
				uri = ""
			}
		}
	}
	return flags, sc.Err()
}

// waitNode waits (at most within) until the node's flags begin with state ('A' active, 'I'
// inactive) and returns how long that took.
func (k *kamailio) waitNode(node string, state byte, within time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		flags, err := k.nodeFlags()
		if err == nil && strings.HasPrefix(flags[node], string(state)) {
			return time.Since(start), nil
		}
		if time.Since(start) > within {
			return time.Since(start), fmt.Errorf("node %s: flags %q (err %v) after %v, want %c...", node, flags[node], err, within, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loggedCalls are the Call-IDs of the log lines that contain what: the config's log prefix
// is "{<message type> <CSeq> <Call-ID>} ".
func (k *kamailio) loggedCalls(what string) []string {
	var ids []string
	for _, l := range strings.Split(k.logs.String(), "\n") {
		if !strings.Contains(l, what) {
			continue
		}
		open, end := strings.IndexByte(l, '{'), strings.IndexByte(l, '}')
		if open < 0 || end < open {
			continue
		}
		if f := strings.Fields(l[open+1 : end]); len(f) > 0 {
			ids = append(ids, f[len(f)-1])
		}
	}
	return ids
}

// sippRun is one sipp process of the cluster test, with a port, a call rate and a time
// bound of its own (startSipp's are made for one call).
type sippRun struct {
	scenario string
	ip       string // -i; default 127.0.0.1
	port     int    // -p; 0 picks a free one
	remote   string // host:port to send to (UAC)
	service  string // -s
	calls    int    // -m
	rate     int    // -r, calls per second (UAC); default sipp's 10
	pauseMS  int    // -d
	timeout  time.Duration
}

// stableUDPPort returns a UDP port on ip that was free a moment ago, for a port that a test
// binds again and again (the business line's sipp, one per phase, at the address the nodes'
// config names): in 7100-7999, out of the kernel's ephemeral range (32768-60999 here), which
// any socket that sends without binding may be given between two binds, and out of the
// RTP ranges of the nodes (16000-17999 in the tests, 10000-31999 by default) and of sipp's
// media sockets (6000-). Cluster test runs lost their line both ways ("Unable to bind main
// socket, errno = 98"): a port of freeUDPPort's, then one among the nodes' RTP ports.
func stableUDPPort(t *testing.T, ip string) int {
	t.Helper()
	for range 200 {
		port := 7100 + rand.IntN(900)
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		c.Close()
		return port
	}
	t.Fatalf("no free udp port on %s in 7100-7999", ip)
	return 0
}

// runSipp starts sipp; the process is killed, by PID, when the test ends. Its message
// trace (sippProc.messages, callsOf) is in its own directory.
func runSipp(t *testing.T, name string, r sippRun) *sippProc {
	t.Helper()
	bin := sippBinary(t)
	if r.ip == "" {
		r.ip = "127.0.0.1"
	}
	if r.port == 0 {
		r.port = freeUDPPort(t, r.ip)
	}
	p := &sippProc{t: t, name: name, spec: sippSpec{scenario: r.scenario, ip: r.ip}, dir: t.TempDir(), port: r.port, exited: make(chan struct{})}
	args := []string{"-sf", scenarioPath(t, r.scenario),
		"-i", r.ip, "-p", strconv.Itoa(r.port),
		// sipp binds its control socket on every address: a port free on 127.0.0.1 alone
		// may be a node's on 127.0.0.3 (sipp then exits: "Unable to bind remote control socket").
		"-cp", strconv.Itoa(freeUDPPort(t, "0.0.0.0")),
		"-m", strconv.Itoa(r.calls),
		"-timeout", strconv.Itoa(int(r.timeout.Seconds())) + "s", "-timeout_error",
		"-nostdin",
		"-trace_msg", "-message_file", filepath.Join(p.dir, name+".msg"),
		"-trace_err", "-error_file", filepath.Join(p.dir, name+".err"),
	}
	if r.rate > 0 {
		args = append(args, "-r", strconv.Itoa(r.rate))
	}
	if r.pauseMS > 0 {
		args = append(args, "-d", strconv.Itoa(r.pauseMS))
	}
	if r.service != "" {
		args = append(args, "-s", r.service)
	}
	if r.remote != "" {
		args = append(args, r.remote)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = p.dir
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sipp %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	select {
	case <-p.exited:
		t.Fatalf("sipp %s exited at start: %v\n%s", name, p.err, p.diagnostics())
	case <-time.After(300 * time.Millisecond): // bound its sockets
	}
	return p
}

// waitFor waits for sipp to exit, at most within, and returns its exit code (-1: killed).
func (p *sippProc) waitFor(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		p.kill()
		p.t.Errorf("sipp %s did not exit within %v", p.name, within)
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

// tracedMsg is one message of sipp's -trace_msg, with every header (lower-case names, all
// values in order).
type tracedMsg struct {
	at    time.Time
	sent  bool
	start string
	hdr   map[string][]string
}

func (m tracedMsg) first(name string) string {
	if v := m.hdr[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// trace parses sipp's message trace: blocks that begin with a line of dashes and the time.
func (p *sippProc) trace() []tracedMsg {
	p.t.Helper()
	data, err := os.ReadFile(filepath.Join(p.dir, p.name+".msg"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		p.t.Fatalf("sipp %s message trace: %v", p.name, err)
	}
	const sep = "----------------------------------------------- "
	var out []tracedMsg
	for _, block := range strings.Split(strings.ReplaceAll(string(data), "\r", ""), sep)[1:] {
		lines := strings.Split(block, "\n")
		if len(lines) < 4 {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05.000000", strings.TrimSpace(lines[0]), time.Local)
		if err != nil {
			continue
		}
		m := tracedMsg{at: at, sent: strings.Contains(lines[1], "message sent"), hdr: map[string][]string{}}
		for _, l := range lines[2:] {
			switch {
			case m.start == "" && strings.TrimSpace(l) == "":
			case m.start == "":
				m.start = strings.TrimSpace(l)
			case strings.TrimSpace(l) == "":
				goto done
			default:
				if k, v, ok := strings.Cut(l, ":"); ok {
					k = strings.ToLower(strings.TrimSpace(k))
					m.hdr[k] = append(m.hdr[k], strings.TrimSpace(v))
				}
			}
		}
	done:
		if m.start != "" {
			out = append(out, m)
		}
	}
	return out
}

// tracedCall is one call of a trunk UAC, from its message trace.
type tracedCall struct {
	callID   string
	invited  time.Time // first INVITE sent
	answered time.Time // 200 to the INVITE received (zero: never)
	node     string    // host of that 200's Contact: the node that took the call
	ended    bool      // a BYE of the call got its 200 (sent or received)
	answer   tracedMsg // the 200 to the INVITE
	byes     []tracedMsg
}

// callsOf groups a UAC's trace by Call-ID.
func callsOf(msgs []tracedMsg) map[string]*tracedCall {
	calls := map[string]*tracedCall{}
	for _, m := range msgs {
		id := m.first("call-id")
		if id == "" {
			continue
		}
		c := calls[id]
		if c == nil {
			c = &tracedCall{callID: id}
			calls[id] = c
		}
		cseq := m.first("cseq")
		switch {
		case m.sent && strings.HasPrefix(m.start, "INVITE ") && c.invited.IsZero():
			c.invited = m.at
		case !m.sent && strings.HasPrefix(m.start, "SIP/2.0 200") && strings.HasSuffix(cseq, "INVITE") && c.answered.IsZero():
			c.answered, c.answer = m.at, m
			c.node = contactHost(m.first("contact"))
		case strings.HasPrefix(m.start, "BYE "):
			c.byes = append(c.byes, m)
		case strings.HasPrefix(m.start, "SIP/2.0 200") && strings.HasSuffix(cseq, "BYE"):
			c.ended = true
		}
	}
	return calls
}

// contactHost is the host of a Contact value such as <sip:+3185...@127.0.0.2:5060>.
func contactHost(v string) string {
	v = strings.Trim(strings.TrimSpace(v), "<>")
	if i := strings.IndexByte(v, '>'); i >= 0 {
		v = v[:i]
	}
	u, err := url.Parse(strings.Replace(v, "sip:", "sip://", 1))
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// sipOptions sends one OPTIONS from a fresh socket on localIP to addr (retransmitted on
// timer E's schedule, at most 2 s) and returns the whole final answer ("" when none came).
func sipOptions(t *testing.T, localIP, addr string) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", net.JoinHostPort(localIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().(*net.UDPAddr)
	id := fmt.Sprintf("cluster-options-%d", time.Now().UnixNano())
	msg := []byte(sipRequest("OPTIONS", "sip:"+addr, local, id, "Accept: application/sdp\r\n", ""))
	buf := make([]byte, 65536)
	wait := 500 * time.Millisecond
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); wait = min(2*wait, time.Second) {
		if _, err := conn.WriteTo(msg, raddr); err != nil {
			t.Fatalf("send OPTIONS: %v", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			res := string(buf[:n])
			if strings.HasPrefix(res, "SIP/2.0 1") || !strings.Contains(res, id) {
				continue
			}
			return res
		}
	}
	return ""
}

// sipHeader is the value of the first header name in a raw message ("" when absent).
func sipHeader(msg, name string) string {
	for _, l := range strings.Split(msg, "\r\n")[1:] {
		if l == "" {
			break
		}
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
