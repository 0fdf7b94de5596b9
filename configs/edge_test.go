package configs

import (
	"strings"
	"testing"
	"time"
)

func TestEdgeSettings(t *testing.T) {
	c, err := Parse([]byte("sip:\n  unknown_sources: answer\n  edge: {max_header_bytes: 4096, source_rate: 5, ban_for: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.UnknownSources != "answer" || c.SIP.Edge.MaxHeaderBytes != 4096 || c.SIP.Edge.SourceRate != 5 || c.SIP.Edge.BanFor != time.Hour {
		t.Fatalf("%q %+v", c.SIP.UnknownSources, c.SIP.Edge)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"sip: {unknown_sources: reject}", "sip.unknown_sources: must be drop or answer"},
		{"sip: {edge: {max_header_bytes: 100}}", "sip.edge.max_header_bytes: must be between 1024 and 16384"},
		{"sip: {edge: {max_body_bytes: 100000}}", "sip.edge.max_body_bytes: must be between 1 and 16384"},
		{"sip: {edge: {max_header_bytes: 16384, max_body_bytes: 16384}}", "sip.edge: max_header_bytes + max_body_bytes must stay below 32768"},
		{"sip: {edge: {source_rate: -1}}", "sip.edge.source_rate:"},
		{"sip: {edge: {ban_after: -5}}", "sip.edge.ban_after:"},
		{"sip: {edge: {ban_for: 200h}}", "sip.edge.ban_for:"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
