package media

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// Descriptors an anchored call can hold: the RTP and RTCP sockets of both legs, each leg's
// stray socket once it has latched, and the recording's file while the call is recorded (a
// finished recording's file is closed before it waits for its fsync: recordings/syncer.go).
const descriptorsPerCall = 7

// descriptorReserve is what the rest of the process is left: SIP and HTTP connections, the
// store, the recordings that have ended and wait to be sealed, logs.
const descriptorReserve = 4096

// DescriptorsFor is the descriptor limit (RLIMIT_NOFILE, systemd's LimitNOFILE) a switch
// whose media.rtp_ports is portMin-portMax needs to fill it with calls: 7 a call, 4 ports a
// call, and descriptorReserve for the rest.
func DescriptorsFor(portMin, portMax int) int {
	calls := newPorts(portMin, portMax).pairs() / 2
	return calls*descriptorsPerCall + descriptorReserve
}

// checkDescriptors warns when the process's descriptor limit is below what the RTP port
// range can fill: calls would then fail on a socket or lose their recording to "too many
// open files" before the ports run out, where a port range sized to the limit refuses the
// call cleanly (503) at its setup. The Go runtime raises the soft limit to the hard one at
// start (os, since Go 1.19), so the hard limit is what counts.
func checkDescriptors(log *slog.Logger, portMin, portMax int) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	need := DescriptorsFor(portMin, portMax)
	if rl.Cur >= uint64(need) {
		return
	}
	calls := max(0, (int(rl.Cur)-descriptorReserve)/descriptorsPerCall)
	log.Warn("the descriptor limit is below what media.rtp_ports can fill: calls past it fail or lose their recordings; raise LimitNOFILE (RLIMIT_NOFILE) or narrow media.rtp_ports",
		"rtp_ports_calls", newPorts(portMin, portMax).pairs()/2, "descriptors_needed", need,
		"rlimit_nofile", rl.Cur, "calls_within_limit", calls)
}
