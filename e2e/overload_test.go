package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestOverloadSheds pushes the switch past its limit for a few seconds: sip.max_cps is 4 and
// the trunk offers 30 calls at 10 a second (sipp's default rate), so the limit holds on any
// machine. Every call the switch takes must complete, every other one must get 503 with
// Retry-After and nothing else, and the refusals are counted by reason. (The delay signal
// that sheds load without a configured cap is tested in package sip, admit_test.go.)
func TestOverloadSheds(t *testing.T) {
	const calls = 30
	line := startSipp(t, "line", sippSpec{scenario: "uas-answer.xml", calls: calls})
	c := testConfig{businessLines: []string{businessLine("+31852087972", line.port)}}
	path := writeConfig(t, c)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(data), "\nsip:\n", "\nsip:\n  max_cps: 4\n", 1)
	if yaml == string(data) {
		t.Fatal("no sip section in the test config")
	}
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerOn(t, path, t.TempDir())

	start := time.Now()
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-answer-or-503.xml", service: poolFirst, remote: s.SIP,
		pauseMS: 200, calls: calls})
	trunk.expectSuccess() // each call answered and hung up, or refused with 503 and Retry-After
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("%d calls took %v", calls, d)
	}

	// Distinct calls by their answer, from the trunk's trace (a retransmitted 503 is one).
	answered, refused := map[string]bool{}, map[string]bool{}
	for _, m := range trunk.messages() {
		if m.sent || !strings.Contains(m.hdr["cseq"], "INVITE") {
			continue
		}
		id := m.hdr["call-id"]
		switch {
		case strings.HasPrefix(m.start, "SIP/2.0 200"):
			answered[id] = true
		case strings.HasPrefix(m.start, "SIP/2.0 503"):
			refused[id] = true
			if m.hdr["retry-after"] == "" {
				t.Errorf("call %s: 503 without Retry-After", id)
			}
		case strings.HasPrefix(m.start, "SIP/2.0 1"):
		default:
			t.Errorf("call %s: unexpected answer %q", id, m.start)
		}
	}
	t.Logf("%d calls answered, %d refused with 503", len(answered), len(refused))
	if len(answered)+len(refused) != calls {
		t.Errorf("%d answered and %d refused of %d calls", len(answered), len(refused), calls)
	}
	// 4 a second over the 3 s the 30 calls are offered in, and the bucket's first token:
	// about 13 taken; well under the 30 offered, well over none.
	if len(answered) < 5 || len(answered) > 20 {
		t.Errorf("%d calls answered, want about 13 (max_cps 4 over 3 s)", len(answered))
	}
	for id := range answered {
		if refused[id] {
			t.Errorf("call %s both answered and refused", id)
		}
	}

	// The switch counts what it refused and why, and completed a record of each call taken.
	deadline := time.Now().Add(5 * time.Second)
	for s.metric(t, `trackline_calls_total{disposition="answered"}`) < float64(len(answered)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := s.metric(t, `trackline_calls_total{disposition="answered"}`); int(got) != len(answered) {
		t.Errorf("calls_total{answered} = %v, want %d", got, len(answered))
	}
	if got := s.metric(t, `trackline_sip_shed_total{reason="max_cps"}`); int(got) != len(refused) {
		t.Errorf("sip_shed_total{max_cps} = %v, want %d", got, len(refused))
	}
	for _, reason := range []string{"overload_queue", "overload_rate", "overload_setups"} {
		if got := s.metric(t, `trackline_sip_shed_total{reason="`+reason+`"}`); got != 0 {
			t.Errorf("sip_shed_total{%s} = %v at 10 calls a second, want 0", reason, got)
		}
	}
	if got := s.metric(t, "trackline_calls_active"); got != 0 {
		t.Errorf("calls_active = %v after the last call, want 0", got)
	}
	// Every call taken ended its setup, before ringing and past it (admission's limit on
	// setups in flight counts them).
	if got := s.metric(t, "trackline_sip_setups_in_flight"); got != 0 {
		t.Errorf("sip_setups_in_flight = %v after the last call, want 0", got)
	}
	if got := s.metric(t, "trackline_sip_setup_limit"); got < 4 {
		t.Errorf("sip_setup_limit = %v, want at least 4", got)
	}
}
