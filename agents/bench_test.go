package agents

import (
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// BenchmarkBridgeRoundTrip moves one 20 ms PCMU packet each way through a connected agent
// call per iteration: anchor socket -> bridge -> SRTP -> the page's PeerConnection, and the
// page's packet back to the anchor. The page is pion as well, in this process, so the CPU
// reported (cpu-us/pair, from getrusage) covers both ends: an upper bound for the server's.
func BenchmarkBridgeRoundTrip(b *testing.B) {
	e := newEnv(b)
	anna := e.login("anna")
	c := e.connectCall(anna, "bench")
	dest := bridgeAddr(e.t, c)
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	buf := make([]byte, 1500)
	payload := make([]byte, 160)
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for i := range b.N {
		pkt[3] = byte(i)
		e.anchor.WriteToUDPAddrPort(pkt, dest)
		anna.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 7}, Payload: payload})
		e.anchor.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := e.anchor.Read(buf); err != nil {
			b.Fatalf("packet %d did not come back: %v", i, err)
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) + syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/pair")
	c.Hangup("bench")
}
