package configs

import (
	"strings"
	"testing"
	"time"
)

func TestOverloadSettings(t *testing.T) {
	c, err := Parse([]byte("sip: {max_cps: 250}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.MaxCPS != 250 || c.SIP.OverloadDelay != 20*time.Millisecond {
		t.Errorf("max_cps %v, overload_delay %v; want 250 and the default 20ms", c.SIP.MaxCPS, c.SIP.OverloadDelay)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"sip: {max_cps: -1}", "sip.max_cps: must be between 0 (no cap) and 100000"},
		{"sip: {max_cps: 1e9}", "sip.max_cps: must be between 0 (no cap) and 100000"},
		{"sip: {max_cps: .nan}", "sip.max_cps: must be between 0 (no cap) and 100000"},
		{"sip: {overload_delay: 10s}", "sip.overload_delay: must be between 1ms and 2s"},
		{"sip: {overload_delay: -5ms}", "sip.overload_delay: must be between 1ms and 2s"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
