package media

import (
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/trackline/trackline/media/uring"
)

// BenchmarkRelay sends packets through a bridged, recorded call and reads them on the other
// side, on each I/O of the loops, with no batch wait (so that ns/op is a packet's round
// through the relay): one op is one relayed packet. allocs/op counts the whole process, the
// test's own sockets included (they allocate nothing per packet either).
func BenchmarkRelay(b *testing.B) {
	for _, mode := range []string{IOEpoll, IOUring} {
		b.Run(mode, func(b *testing.B) {
			if mode == IOUring && uring.Available() != nil {
				b.Skipf("io_uring is not available here: %v", uring.Available())
			}
			benchmarkRelay(b, Config{IO: mode, BatchWait: -1})
		})
	}
}

func benchmarkRelay(b *testing.B, cfg Config) {
	t := &testing.T{}
	f := newFixture(t, cfg, recordingCustomer())
	defer f.e.Close()
	ea, eb := newEndpointB(b), newEndpointB(b)
	s, toA, _ := bridged(t, f, ea, eb, []string{"0"}, []string{"0"})
	defer s.Close(nil)
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7}, Payload: make([]byte, 160)}).Marshal()
	buf := make([]byte, 1500)
	eb.conn.SetReadDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pkt[3] = byte(i)
		pkt[2] = byte(i >> 8)
		if _, err := ea.conn.WriteToUDPAddrPort(pkt, toA); err != nil {
			b.Fatal(err)
		}
		if _, _, err := eb.conn.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func newEndpointB(b *testing.B) *endpoint {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &endpoint{conn: c, ssrc: 1}
}
