package media

import (
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/trackline/trackline/media/uring"
	"golang.org/x/sys/unix"
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

// BenchmarkPromptPlayout plays a long disclaimer into many calls at once on one loop, on each
// I/O, and reports the loop thread's CPU time per frame sent (cpu-ns/frame): the cost of a
// call's prompt is about 355 of these (7.1 s at 50 a second). One op is one frame; the
// calls send 50 a second each, so ns/op is only the pace. Every call's caller is one bound
// socket that is never read: the kernel drops what overflows it, as cheaply as a loopback
// peer can be (a far peer would cost the loop no receive at all).
func BenchmarkPromptPlayout(b *testing.B) {
	for _, mode := range []string{IOEpoll, IOUring} {
		b.Run(mode, func(b *testing.B) {
			if mode == IOUring && uring.Available() != nil {
				b.Skipf("io_uring is not available here: %v", uring.Available())
			}
			benchmarkPromptPlayout(b, mode)
		})
	}
}

func benchmarkPromptPlayout(b *testing.B, mode string) {
	const calls = 400
	t := &testing.T{}
	cust := recordingCustomer()
	cust.Prompts.Disclaimer = writeWAV(t, 8000*120) // longer than any run
	f := newFixture(t, Config{IO: mode, Loops: 1, PortMin: 40000, PortMax: 43999}, cust)
	defer f.e.Close()
	sink := newEndpointB(b)
	for range calls {
		s := f.anchor(t, sink.sdp("sendrecv", "0"))
		defer s.Close(nil)
	}
	l := f.e.loops[0]
	for l.tid.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Second)              // every call's prompt has started
	clock := int32(^l.tid.Load())<<3 | 6 // the thread's CPU clock (CPUCLOCK_SCHED of a thread)
	cpu := func() int64 {
		var ts unix.Timespec
		if err := unix.ClockGettime(clock, &ts); err != nil {
			b.Fatal(err)
		}
		return ts.Nano()
	}
	c0, t0 := cpu(), time.Now()
	b.ResetTimer()
	time.Sleep(time.Duration(b.N) * time.Second / (calls * 50))
	b.StopTimer()
	c1, wall := cpu(), time.Since(t0)
	b.ReportMetric(float64(c1-c0)/(wall.Seconds()*calls*50), "cpu-ns/frame")
}
