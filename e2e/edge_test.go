package e2e

import (
	"os"
	"strings"
	"testing"
)

// TestSIPUnknownSourcesAnswered: with sip.unknown_sources: answer, a source that is no
// trunk gets its answers again (OPTIONS 200), and only the trunk's own requests count in
// trackline_sip_trunk_requests_total (the series TracklineTrunkSilent reads). The default,
// drop, is tested in TestSIPHostileInput.
func TestSIPUnknownSourcesAnswered(t *testing.T) {
	path := writeConfig(t, testConfig{trunkSources: []string{"127.0.0.1/32"}})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(data), "\nsip:\n", "\nsip:\n  unknown_sources: answer\n", 1)
	if yaml == string(data) {
		t.Fatal("no sip section in the test config")
	}
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerOn(t, path, t.TempDir())

	outside := newUDPPeer(t, "127.0.0.3", s.SIP)
	for range 3 {
		if a := outside.options(t, "sip:"+s.SIP); !strings.HasPrefix(a, "SIP/2.0 200") {
			t.Fatalf("OPTIONS from a source that is no trunk, unknown_sources answer: %q", a)
		}
	}
	inside := newUDPPeer(t, "127.0.0.1", s.SIP)
	if a := inside.options(t, "sip:"+s.SIP); !strings.HasPrefix(a, "SIP/2.0 200") {
		t.Fatalf("OPTIONS from the trunk: %q", a)
	}
	if got := s.metric(t, `trackline_sip_trunk_requests_total{trunk="e2e"}`); got != 1 {
		t.Errorf("trunk requests = %v, want 1: the outside's OPTIONS must not count", got)
	}
	if got := s.metric(t, `trackline_sip_edge_dropped_total{reason="unknown_source"}`); got != 0 {
		t.Errorf("dropped unknown_source = %v, want 0 when such sources are answered", got)
	}
}
