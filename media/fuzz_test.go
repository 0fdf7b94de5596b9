package media

import (
	"testing"

	"github.com/pion/rtp"
)

func FuzzParseRTP(f *testing.F) {
	good, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 1, SSRC: 2}, Payload: make([]byte, 160)}).Marshal()
	f.Add(good)
	f.Add([]byte{0x80})
	f.Add([]byte{0xaf, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa})
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		start, end, ok := parseRTP(b)
		if !ok {
			return
		}
		if start < 12 || start > end || end > len(b) {
			t.Fatalf("bounds %d..%d of %d", start, end, len(b))
		}
		if b[0]&0x10 != 0 {
			return // pion/rtp also parses the extension's elements, which the relay passes as they are
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatalf("accepted what pion/rtp rejects: %v", err)
		}
		if len(p.Payload) != end-start {
			t.Fatalf("payload %d bytes, pion/rtp says %d", end-start, len(p.Payload))
		}
	})
}

func FuzzParseDesc(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 4002 RTP/AVP 96\r\nm=audio 4000 RTP/AVP 8\r\nc=IN IP4 0.0.0.0\r\na=inactive\r\n"))
	f.Add([]byte("v=0\r\nm=audio 1 RTP/AVP 0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDesc(b)
		if err != nil {
			return
		}
		if len(d.laws) == 0 || d.index < 0 || d.index >= len(d.streams) {
			t.Fatalf("accepted without a law or stream: %+v", d)
		}
		// What the anchor builds from it parses again.
		var o origin
		out := o.build(sdpOut{ip: d.addr.Addr(), port: 20000, laws: d.laws, te: d.te, dir: answerDir(d.dir), index: d.index, streams: d.streams})
		if d.addr.IsValid() && d.addr.Addr().Is4() {
			if _, err := parseDesc(out); err != nil {
				t.Fatalf("built SDP does not parse: %v\n%s", err, out)
			}
		}
	})
}
