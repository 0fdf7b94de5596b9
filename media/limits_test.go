package media

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDescriptorsFor(t *testing.T) {
	for _, tc := range []struct {
		lo, hi, want int
	}{
		{10000, 31999, 5500*7 + descriptorReserve}, // the default: 11,000 pairs, 5,500 calls
		{20000, 29999, 2500*7 + descriptorReserve},
		{20001, 20004, 0*7 + descriptorReserve}, // one pair (20002-20003): not a call
	} {
		if got := DescriptorsFor(tc.lo, tc.hi); got != tc.want {
			t.Errorf("DescriptorsFor(%d, %d) = %d, want %d", tc.lo, tc.hi, got, tc.want)
		}
	}
	// The shipped unit's LimitNOFILE=65536 covers the default range.
	if n := DescriptorsFor(10000, 31999); n > 65536 {
		t.Errorf("the default rtp_ports needs %d descriptors, more than the unit's 65536", n)
	}
}

// The warning comes when, and only when, the range needs more than this process may open.
func TestCheckDescriptorsWarns(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Skip(err)
	}
	// A range needing more than the limit: pairs for limit/4 calls (each 7 descriptors).
	calls := int(rl.Cur) / 4
	hi := min(65535, 1024+calls*4)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	checkDescriptors(log, 1024, hi)
	if DescriptorsFor(1024, hi) > int(rl.Cur) != strings.Contains(buf.String(), "descriptor limit is below") {
		t.Errorf("limit %d, range 1024-%d needs %d: log %q", rl.Cur, hi, DescriptorsFor(1024, hi), buf.String())
	}
	buf.Reset()
	checkDescriptors(log, 20000, 20003) // one call: always within
	if buf.Len() != 0 {
		t.Errorf("one call's range warned: %q", buf.String())
	}
}
