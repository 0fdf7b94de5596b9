package sip

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// benchConn is a PacketConn that returns the same datagram from src on every read.
type benchConn struct {
	net.PacketConn
	data []byte
	src  net.Addr
}

func (c *benchConn) ReadFrom(p []byte) (int, net.Addr, error)  { return copy(p, c.data), c.src, nil }
func (c *benchConn) WriteTo(p []byte, _ net.Addr) (int, error) { return len(p), nil }

// trunkInvite is an INVITE as a carrier sends it (about 900 bytes with its SDP).
var trunkInvite = req("INVITE sip:+31850100001@127.0.0.1:5060 SIP/2.0", []string{
	"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-524287-1---a7f1c2e9b0d34a57;rport",
	"Max-Forwards: 69",
	"From: <sip:+31612345678@127.0.0.1:40000>;tag=18493T0012345",
	"To: <sip:+31850100001@127.0.0.1:5060>",
	"Call-ID: 12345-18493@127.0.0.1",
	"CSeq: 1 INVITE",
	"Contact: <sip:+31612345678@127.0.0.1:40000;transport=UDP>",
	"User-Agent: carrier-sbc 4.2",
	"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE",
	"Supported: timer, replaces",
	"P-Asserted-Identity: <sip:+31612345678@carrier.example>",
	"Content-Type: application/sdp",
	"Content-Length: 212"},
	"v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n")

// BenchmarkEdgeDatagram is the edge's cost per datagram, as sipgo's reader sees it
// (edgePacketConn.ReadFrom around a socket read that costs nothing here).
func BenchmarkEdgeDatagram(b *testing.B) {
	trunks := []Trunk{{Name: "t", Sources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	response := []byte("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK.abc;rport=5060\r\nFrom: <sip:+31612345678@127.0.0.1>;tag=1\r\nTo: <sip:+31852087972@127.0.0.1>;tag=2\r\nCall-ID: b-leg-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
	for _, bc := range []struct {
		name string
		data []byte
		src  string
		ban  bool
	}{
		{"trunk INVITE", trunkInvite, "127.0.0.1:40000", false},
		{"response", response, "127.0.0.2:5090", false},
		{"flood INVITE, source over its limit", trunkInvite, "127.0.0.2:40000", false},
		{"flood INVITE, source banned", trunkInvite, "127.0.0.2:40000", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEdge(EdgeConfig{BanAfter: 1 << 30}, trunks, slog.New(slog.DiscardHandler), time.Now)
			src, _ := net.ResolveUDPAddr("udp", bc.src)
			if bc.ban {
				e.limiter.bans[addrIP(src)] = time.Now().Add(time.Hour)
			}
			c := newEdgePacketConn(&benchConn{data: bc.data, src: src}, e)
			buf := make([]byte, 32768)
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if bc.src[:9] == "127.0.0.2" && bc.data[0] == 'I' {
					// Dropped datagrams never return: measure one inspect of each.
					c.e.inspect(&c.sc, bc.data, addrIP(src), false)
					continue
				}
				if _, _, err := c.ReadFrom(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSipgoParse is, for scale, what sipgo's parser costs for the same INVITE: the
// work the edge's scan saves sipgo from for a dropped datagram, and adds to for a passed one.
func BenchmarkSipgoParse(b *testing.B) {
	b.SetBytes(int64(len(trunkInvite)))
	b.ReportAllocs()
	for range b.N {
		if _, err := sipmsg.ParseMessage(trunkInvite); err != nil {
			b.Fatal(err)
		}
	}
}
