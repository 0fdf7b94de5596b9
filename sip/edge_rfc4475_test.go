package sip

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// torture is one message of the RFC 4475 corpus and the answers it must get.
type torture struct {
	name, section string
	data          []byte
	udp, tcp      [][]int // the final answers in order; each a set of codes the RFC allows
	// A known deviation (sipgo's, docs/sip-edge.md), accepted and logged: the answers
	// instead, or none.
	udpDev, tcpDev [][]int
	udpHasDev      bool
	tcpHasDev      bool
}

func loadCorpus(t testing.TB) []torture {
	t.Helper()
	dir := filepath.Join("testdata", "rfc4475")
	f, err := os.ReadFile(filepath.Join(dir, "expect.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []torture
	for _, line := range strings.Split(string(f), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) < 4 {
			t.Fatalf("expect.txt: %q: want name, section, udp, tcp", line)
		}
		data, err := os.ReadFile(filepath.Join(dir, fs[0]+".sip"))
		if err != nil {
			t.Fatal(err)
		}
		m := torture{name: fs[0], section: fs[1], data: data}
		udp, udpDev, udpHas := strings.Cut(fs[2], "~")
		tcp, tcpDev, tcpHas := strings.Cut(fs[3], "~")
		m.udp, m.tcp = parseAnswers(t, udp), parseAnswers(t, tcp)
		m.udpDev, m.tcpDev, m.udpHasDev, m.tcpHasDev = parseAnswers(t, udpDev), parseAnswers(t, tcpDev), udpHas, tcpHas
		out = append(out, m)
	}
	if len(out) < 45 {
		t.Fatalf("corpus has %d messages", len(out))
	}
	return out
}

func parseAnswers(t testing.TB, s string) [][]int {
	if s == "-" || s == "" {
		return nil
	}
	var out [][]int
	for _, a := range strings.Split(s, ",") {
		var set []int
		for _, c := range strings.Split(a, "|") {
			n, err := strconv.Atoi(c)
			if err != nil {
				t.Fatalf("expect.txt: answer %q", s)
			}
			set = append(set, n)
		}
		out = append(out, set)
	}
	return out
}

// reply is a response the test received.
type reply struct {
	code int
	raw  string
}

func (a reply) header(name string) string {
	for _, l := range strings.Split(a.raw, "\r\n")[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func statusCode(raw string) int {
	fs := strings.Fields(raw)
	if len(fs) < 2 || !strings.HasPrefix(fs[0], "SIP/") {
		return 0
	}
	n, _ := strconv.Atoi(fs[1])
	return n
}

// finals collects the final (non-1xx) answers from next until want of them came, then
// waits grace for any more; with want 0 it waits quiet for any answer at all.
func finals(next func(time.Time) (string, bool), want int, grace, quiet time.Duration) (got []reply, provisional int) {
	deadline := time.Now().Add(5 * time.Second)
	if want == 0 {
		deadline = time.Now().Add(quiet)
	}
	for time.Now().Before(deadline) {
		raw, ok := next(deadline)
		if !ok {
			break
		}
		code := statusCode(raw)
		if code >= 100 && code < 200 {
			provisional++
			continue
		}
		got = append(got, reply{code, raw})
		if len(got) == want {
			deadline = time.Now().Add(grace)
		}
	}
	return got, provisional
}

// TestRFC4475Corpus sends every message of the corpus over UDP and over TCP from the
// trunk's address to a running switch, checks each final answer against expect.txt (and
// the headers an answer must carry), then places a normal call: the switch must be up
// and serving.
func TestRFC4475Corpus(t *testing.T) {
	corpus := loadCorpus(t)
	line := newPeer(t, "127.0.0.1", answer(0))
	// A switch for each transport: the same message sent twice to one switch within 32 s
	// would be a retransmission of one transaction (RFC 3261 §17.2.3).
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, trunkSource: "127.0.0.0/8"})
	target := e.sw.Addr().String()
	et := newEnv(t, envOpts{lines: []string{lineURI(line)}, trunkSource: "127.0.0.0/8"})

	t.Run("udp", func(t *testing.T) {
		for i, m := range corpus {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				// Answers over UDP go to the source address at the top Via's port (RFC
				// 3261 §18.2.2): each message is sent from an address of its own, from
				// that port.
				var sc scan
				sc.readMessage(m.data, false, &edgeLimits{maxHeader: 1 << 16, maxBody: 1 << 16})
				port := 5060
				if len(sc.vias) > 0 {
					port, _ = viaPort(valueSpan(m.data, sc.vias[0]).of(m.data))
				}
				conn, err := net.ListenPacket("udp", net.JoinHostPort("127.0.1."+strconv.Itoa(10+i), strconv.Itoa(port)))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				to, _ := net.ResolveUDPAddr("udp", target)
				if _, err := conn.WriteTo(m.data, to); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 65535)
				next := func(deadline time.Time) (string, bool) {
					conn.SetReadDeadline(deadline)
					n, _, err := conn.ReadFrom(buf)
					if err != nil {
						return "", false
					}
					return string(buf[:n]), true
				}
				want, dev := m.udp, m.udpDev
				if m.udpHasDev {
					want = dev
					t.Logf("%s over UDP: known deviation (docs/sip-edge.md): answers %v where RFC 4475 expects %v", m.name, dev, m.udp)
				}
				got, prov := finals(next, len(want), 150*time.Millisecond, 600*time.Millisecond)
				checkAnswers(t, m, want, got, prov)
			})
		}
	})
	t.Run("tcp", func(t *testing.T) {
		for _, m := range corpus {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				conn, err := net.DialTimeout("tcp", et.sw.Addr().String(), 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if _, err := conn.Write(m.data); err != nil {
					t.Fatal(err)
				}
				r := bufio.NewReader(conn)
				next := func(deadline time.Time) (string, bool) {
					conn.SetReadDeadline(deadline)
					return readStreamMessage(r)
				}
				want, dev := m.tcp, m.tcpDev
				if m.tcpHasDev {
					want = dev
					t.Logf("%s over TCP: known deviation (docs/sip-edge.md): answers %v where RFC 4475 expects %v", m.name, dev, m.tcp)
				}
				got, prov := finals(next, len(want), 150*time.Millisecond, 600*time.Millisecond)
				checkAnswers(t, m, want, got, prov)
			})
		}
	})

	// Both switches are still up: a call right after the corpus completes.
	for _, env := range []*env{e, et} {
		d, err := env.call("+31850000101")
		if err != nil {
			t.Fatalf("a call after the corpus: %v", err)
		}
		hangup(t, d)
		if rec := env.record(); rec.FinalStatus != 200 {
			t.Fatalf("the call after the corpus: %+v", rec)
		}
	}
}

// readStreamMessage reads one SIP message from a stream (by its Content-Length).
func readStreamMessage(r *bufio.Reader) (string, bool) {
	var head strings.Builder
	clen := 0
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", false
		}
		if l == "\r\n" && head.Len() == 0 {
			continue // a keep-alive
		}
		head.WriteString(l)
		if l == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			if k = strings.ToLower(strings.TrimSpace(k)); k == "content-length" || k == "l" {
				clen, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	body := make([]byte, clen)
	if _, err := r.Read(body); err != nil && clen > 0 {
		return "", false
	}
	return head.String(), true
}

func checkAnswers(t *testing.T, m torture, want [][]int, got []reply, provisional int) {
	t.Helper()
	codes := make([]int, len(got))
	for i, a := range got {
		codes[i] = a.code
	}
	if len(want) == 0 && provisional > 0 {
		t.Errorf("%s (RFC 4475 §%s): %d provisional answers, want none", m.name, m.section, provisional)
	}
	if len(got) != len(want) {
		t.Fatalf("%s (RFC 4475 §%s): answers %v, want %v", m.name, m.section, codes, want)
	}
	if len(got) > 1 {
		// Several requests in one stream are handled concurrently: their answers may come
		// in any order.
		slices.SortFunc(got, func(a, b reply) int { return a.code - b.code })
		want = slices.Clone(want)
		slices.SortFunc(want, func(a, b []int) int { return a[0] - b[0] })
		codes = slices.Sorted(slices.Values(codes))
	}
	for i, a := range got {
		if !slices.Contains(want[i], a.code) {
			t.Fatalf("%s (RFC 4475 §%s): answers %v, want %v\n%s", m.name, m.section, codes, want, a.raw)
		}
		reason := strings.SplitN(strings.SplitN(a.raw, "\r\n", 2)[0], " ", 3)
		if len(reason) < 3 || strings.TrimSpace(reason[2]) == "" {
			t.Errorf("%s: answer %d has no reason phrase", m.name, a.code)
		}
		switch a.code {
		case 420:
			if a.header("Unsupported") != "nothingSupportedHere" {
				t.Errorf("%s: 420 with Unsupported %q, want nothingSupportedHere", m.name, a.header("Unsupported"))
			}
		case 406, 415:
			if !strings.Contains(a.header("Accept"), "application/sdp") {
				t.Errorf("%s: %d with Accept %q, want application/sdp", m.name, a.code, a.header("Accept"))
			}
		}
		// The answer names the request's transaction: its top Via's branch and its CSeq.
		if i == 0 {
			if cseq := firstHeader(m.data, "CSeq"); cseq != "" && bytes.Count(bytes.ToLower(m.data), []byte("\ncseq:")) == 1 {
				n, err := strconv.ParseUint(strings.Fields(cseq)[0], 10, 64)
				got := strings.Fields(a.header("CSeq"))
				if len(got) == 0 {
					got = []string{""}
				}
				if g, gerr := strconv.ParseUint(got[0], 10, 64); err == nil && (gerr != nil || g != n) {
					t.Errorf("%s: the answer lacks the request's CSeq %q:\n%s", m.name, cseq, a.raw)
				}
			}
		}
	}
}

// firstHeader is the value of a message's first header line named name (long form only).
func firstHeader(msg []byte, name string) string {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, l := range strings.Split(string(head), "\r\n")[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
