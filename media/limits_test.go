package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/trackline/trackline/callseam"
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

// Out of descriptors, a call is refused at once as not acceptable (the SIP side's 488), its
// ports returned, rather than trying 1,024 pairs that would all fail the same way.
func TestAnchorOutOfDescriptors(t *testing.T) {
	f := newFixture(t, Config{IO: IOEpoll, Loops: 1, PortMin: 44200, PortMax: 44299}, recordingCustomer())
	ep := newEndpoint(t, "127.0.0.1")
	sdp := ep.sdp("sendrecv", "0")
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Skip(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	low := rl
	low.Cur = uint64(len(ents)) + 16
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	// Fill the descriptor table up to the limit right before the call, so that a descriptor
	// the process closes meanwhile (an earlier test's sockets) leaves at most one free: the
	// anchor needs several.
	var fill []int
	for len(fill) < 64 {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	free := f.e.ports.available()
	info := callseam.CallInfo{CallID: "emfile-1", CustomerID: "c1", Dialled: "+31850000001"}
	_, aerr := f.e.Anchor(context.Background(), &info, sdp)
	for _, fd := range fill {
		unix.Close(fd)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(aerr, callseam.ErrNotAcceptable) || !strings.Contains(fmt.Sprint(aerr), "LimitNOFILE") {
		t.Fatalf("Anchor out of descriptors: %v, want ErrNotAcceptable saying to raise LimitNOFILE", aerr)
	}
	if got := f.e.ports.available(); got != free {
		t.Errorf("%d port pairs free after the refusal, want %d", got, free)
	}
}
