package media

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/callseam"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/store"
)

// srtpPeer is a caller endpoint that speaks SRTP with pion/srtp: it encrypts with its own
// key and decrypts with the key the anchor answered.
type srtpPeer struct {
	*endpoint
	key     [30]byte
	out, in *srtp.Context
}

func newSRTPPeer(t *testing.T) *srtpPeer {
	p := &srtpPeer{endpoint: newEndpoint(t, "127.0.0.1")}
	rand.Read(p.key[:])
	var err error
	if p.out, err = srtp.CreateContext(p.key[:16], p.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80); err != nil {
		t.Fatal(err)
	}
	return p
}

// offer is an RTP/SAVP offer of PCMU with the peer's key, after the given extra crypto lines.
func (p *srtpPeer) offer(extra ...string) []byte {
	a := p.addr()
	s := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n", a.Addr(), a.Addr(), a.Port())
	for _, e := range extra {
		s += "a=crypto:" + e + "\r\n"
	}
	s += "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(p.key[:]) + "|2^31\r\n"
	return []byte(s + "a=sendrecv\r\n")
}

// answered reads the anchor's key from its answer, which must be RTP/SAVP, keyed, and
// answer the peer's line by its tag.
func (p *srtpPeer) answered(t *testing.T, answer []byte) {
	t.Helper()
	d, err := parseDesc(answer)
	if err != nil || !d.savp || len(d.crypto) != 1 {
		t.Fatalf("answer is not RTP/SAVP with one key (%v):\n%s", err, answer)
	}
	c := d.crypto[0]
	if c.tag != 7 || c.key == p.key {
		t.Fatalf("answer's crypto: tag %d, same key as the offer: %v", c.tag, c.key == p.key)
	}
	if p.in, err = srtp.CreateContext(c.key[:16], c.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80); err != nil {
		t.Fatal(err)
	}
}

// sendSRTP encrypts one 20 ms packet with ctx and sends it; it returns the datagram.
func (p *srtpPeer) sendSRTP(ctx *srtp.Context, to netip.AddrPort, payload []byte) []byte {
	p.t.Helper()
	p.seq++
	p.ts += 160
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.ssrc}, Payload: payload}
	b, _ := pkt.Marshal()
	enc, err := ctx.EncryptRTP(nil, b, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(enc, to); err != nil {
		p.t.Fatal(err)
	}
	return enc
}

// recvSRTP reads and decrypts the next packet; false when none came within d.
func (p *srtpPeer) recvSRTP(d time.Duration) (rtp.Packet, bool) {
	p.t.Helper()
	buf := make([]byte, 1500)
	p.conn.SetReadDeadline(time.Now().Add(d))
	n, err := p.conn.Read(buf)
	if err != nil {
		return rtp.Packet{}, false
	}
	plain, err := p.in.DecryptRTP(nil, buf[:n], nil)
	if err != nil {
		p.t.Fatalf("the anchor sent the caller a packet that does not decrypt with its answered key: %v", err)
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(plain); err != nil {
		p.t.Fatal(err)
	}
	return pkt, true
}

// TestSRTPCallerLeg: a caller offering SDES-SRTP gets an SRTP answer with the anchor's own
// key; its audio reaches the business line and the recording decrypted, the line's audio
// reaches it encrypted (the disclaimer too); packets under a wrong key, and replayed ones,
// are dropped and counted; the kernel path leaves the call alone.
func TestSRTPCallerLeg(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		cust := recordingCustomer()
		cust.Prompts.Disclaimer = writeWAV(t, 8000/10) // 0.1 s: 5 frames
		f := newFixture(t, Config{IO: mode, BatchWait: -1}, cust)
		a, b := newSRTPPeer(t), newEndpoint(t, "127.0.0.1")
		s := f.anchor(t, a.offer())
		a.answered(t, s.CallerSDP())
		if d, err := parseDesc(s.Offer()); err != nil || d.savp || strings.Contains(string(s.Offer()), "crypto") {
			t.Fatalf("the business line's offer is not plain RTP/AVP:\n%s", s.Offer())
		}
		// The disclaimer reaches the caller encrypted with the anchor's key.
		prompt := f.e.prompts[cust.Prompts.Disclaimer]
		for i := range prompt.Frames() {
			p, ok := a.recvSRTP(2 * time.Second)
			if !ok || string(p.Payload) != string(prompt.frame(g711.ULaw, i)) {
				t.Fatalf("disclaimer frame %d missing or wrong (%v)", i, ok)
			}
		}
		if err := s.Callee(b.sdp("sendrecv", "0"), netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		s.Answered()
		<-s.Ready()
		s.Bridge()
		toA, toB := anchorAddr(t, s.CallerSDP()), anchorAddr(t, s.Offer())

		var sent [][]byte
		for range 25 {
			sent = append(sent, a.sendSRTP(a.out, toA, payload(0x11)))
			p, ok := b.recv(2 * time.Second)
			if !ok || p.Payload[0] != 0x11 || len(p.Payload) != 160 {
				t.Fatalf("the business line did not get the caller's audio decrypted (%v, %d bytes)", ok, len(p.Payload))
			}
			b.send(toB, 0, payload(0x22))
			q, ok := a.recvSRTP(2 * time.Second)
			for ok && q.Payload[0] == silence[g711.ULaw][0] { // frames generated before the bridge
				q, ok = a.recvSRTP(2 * time.Second)
			}
			if !ok || q.Payload[0] != 0x22 {
				t.Fatalf("the caller did not get the line's audio (%v, %#x)", ok, q.Payload)
			}
		}

		// A wrong key: nothing goes through, every packet is counted.
		var wrong [30]byte
		rand.Read(wrong[:])
		bad, _ := srtp.CreateContext(wrong[:16], wrong[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
		for range 5 {
			a.sendSRTP(bad, toA, payload(0x33))
		}
		// A replay of packets already relayed.
		for _, d := range sent[20:] {
			a.conn.WriteToUDPAddrPort(d, toA)
		}
		quiet(t, b, 300*time.Millisecond, "the business line")
		waitMetric(t, func() bool {
			return testutil.ToFloat64(f.e.m.srtpAuth) == 5 && testutil.ToFloat64(f.e.m.srtpReplay) == 5
		}, "srtp_auth 5 and srtp_replay 5")
		if mode == ioKernel {
			if n := testutil.ToFloat64(f.e.m.kernelPackets); n != 0 {
				t.Fatalf("the kernel path forwarded %v packets of an SRTP call", n)
			}
		}
		// The call goes on after the bad packets.
		a.sendSRTP(a.out, toA, payload(0x44))
		expect(t, b, 0x44, 0x33, "the business line")

		r := s.Close(nil)
		left, right := recordedSamples(t, f, r)
		if left[sample(0x11)] < 20*160 || right[sample(0x22)] < 20*160 {
			t.Fatalf("the recording lacks the decrypted audio: caller %d, line %d samples", left[sample(0x11)], right[sample(0x22)])
		}
		if left[sample(0x33)] != 0 {
			t.Fatal("the recording holds audio under a wrong key")
		}
	})
}

func waitMetric(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second) // the loops publish once a second
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("metrics: want %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSRTPIsAlwaysAnchored: a customer who neither records nor plays prompts gets direct
// media, except for an SRTP offer, which the business line could not take.
func TestSRTPIsAlwaysAnchored(t *testing.T) {
	f := newFixture(t, Config{}, store.Customer{ID: "c1"})
	a := newSRTPPeer(t)
	ms, err := f.e.Anchor(t.Context(), &callseam.CallInfo{CallID: "SRTP1", CustomerID: f.cust.ID}, a.offer())
	if err != nil || ms == nil {
		t.Fatalf("SRTP offer not anchored: %v", err)
	}
	ms.Close(nil)
	plain := newEndpoint(t, "127.0.0.1")
	if ms, err := f.e.Anchor(t.Context(), &callseam.CallInfo{CallID: "RTP1", CustomerID: f.cust.ID}, plain.sdp("sendrecv", "0")); err != nil || ms != nil {
		t.Fatalf("plain offer anchored: %v", err)
	}
}

func TestSRTPOffers(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 30))
	short := base64.StdEncoding.EncodeToString(make([]byte, 20))
	m := func(proto string, lines ...string) []byte {
		s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 " + proto + " 0\r\n"
		for _, l := range lines {
			s += "a=crypto:" + l + "\r\n"
		}
		return []byte(s)
	}
	tests := []struct {
		name  string
		sdp   []byte
		tag   int // the line taken; -1: not acceptable
		plain bool
	}{
		{"plain RTP/AVP", m("RTP/AVP"), 0, true},
		{"one line", m("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key), 1, false},
		{"with a lifetime", m("RTP/SAVP", "3 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^20"), 3, false},
		{"an unknown suite first", m("RTP/SAVP", "1 AES_256_CM_HMAC_SHA1_80 inline:"+key, "2 AES_CM_128_HMAC_SHA1_80 inline:"+key), 2, false},
		{"the 32-bit tag only", m("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_32 inline:"+key), -1, false},
		{"no crypto line", m("RTP/SAVP"), -1, false},
		{"an MKI", m("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^20|1:4"), -1, false},
		{"a short key", m("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+short), -1, false},
		{"not base64", m("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:%%%%"), -1, false},
		{"session parameters", m("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+" UNENCRYPTED_SRTP"), -1, false},
		{"two keys", m("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+";inline:"+key), -1, false},
		{"no tag", m("RTP/SAVP", "AES_CM_128_HMAC_SHA1_80 inline:"+key), -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseDesc(tt.sdp)
			switch {
			case tt.tag < 0:
				if !errors.Is(err, callseam.ErrNotAcceptable) {
					t.Fatalf("accepted (%v): %+v", err, d.crypto)
				}
			case err != nil:
				t.Fatal(err)
			case tt.plain:
				if d.savp {
					t.Fatal("plain offer read as SRTP")
				}
			case !d.savp || d.crypto[0].tag != tt.tag:
				t.Fatalf("took %+v", d.crypto)
			}
		})
	}
}

// TestSRTPRoundTrip: the anchor's answer line parses back to the same key.
func TestSRTPRoundTrip(t *testing.T) {
	c := newSDES(42)
	got, err := parseSDES(c.line())
	if err != nil || got != c {
		t.Fatalf("%s: %+v %v", c.line(), got, err)
	}
}

// BenchmarkRelaySRTP is BenchmarkRelay's round for an SRTP call, from the business line
// (plain) to the caller (encrypted by the anchor): one op is one relayed packet, with the
// anchor's encryption and no decryption by the test.
func BenchmarkRelaySRTP(b *testing.B) {
	t := &testing.T{}
	f := newFixture(t, Config{IO: IOEpoll, BatchWait: -1}, recordingCustomer())
	defer f.e.Close()
	a := &srtpPeer{endpoint: newEndpointB(b)}
	a.endpoint.t = t
	rand.Read(a.key[:])
	eb := newEndpointB(b)
	s := f.anchor(t, a.offer())
	if err := s.Callee(eb.sdp("sendrecv", "0"), netip.Addr{}); err != nil {
		b.Fatal(err)
	}
	s.Answered()
	<-s.Ready()
	s.Bridge()
	defer s.Close(nil)
	toB := anchorAddr(t, s.Offer())
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7}, Payload: make([]byte, 160)}).Marshal()
	buf := make([]byte, 1500)
	a.conn.SetReadDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pkt[3] = byte(i)
		pkt[2] = byte(i >> 8)
		if _, err := eb.conn.WriteToUDPAddrPort(pkt, toB); err != nil {
			b.Fatal(err)
		}
		if n, _, err := a.conn.ReadFromUDPAddrPort(buf); err != nil || n != len(pkt)+srtpTagLen {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
}

// TestSRTPReoffer: the caller re-offers with a new key (RFC 4568 §7.1.4); the business
// line gets plain SDP, the caller's answer keeps SRTP with the anchor's key, and the new
// key decrypts from then on while the old one no longer does.
func TestSRTPReoffer(t *testing.T) {
	f := newFixture(t, Config{IO: IOEpoll, BatchWait: -1}, recordingCustomer())
	a, b := newSRTPPeer(t), newEndpoint(t, "127.0.0.1")
	s := f.anchor(t, a.offer())
	a.answered(t, s.CallerSDP())
	if err := s.Callee(b.sdp("sendrecv", "0"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	s.Answered()
	<-s.Ready()
	s.Bridge()
	toA := anchorAddr(t, s.CallerSDP())
	a.sendSRTP(a.out, toA, payload(0x11))
	expect(t, b, 0x11, 0x33, "the business line")

	old := a.out
	rand.Read(a.key[:])
	a.out, _ = srtp.CreateContext(a.key[:16], a.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	toLine, err := s.Rewrite(true, a.offer())
	if err != nil || strings.Contains(string(toLine), "SAVP") || strings.Contains(string(toLine), "crypto") {
		t.Fatalf("re-offer to the business line (%v):\n%s", err, toLine)
	}
	toCaller, err := s.Rewrite(false, b.sdp("sendrecv", "0"))
	if err != nil {
		t.Fatal(err)
	}
	before := a.in
	a.answered(t, toCaller)
	a.in = before // the anchor's own key stays: the stream it sends goes on under it
	if d, _ := parseDesc(toCaller); d.crypto[0].line() != mustAnswerKey(t, s) {
		t.Fatalf("the anchor changed its key on a re-offer:\n%s", toCaller)
	}
	a.sendSRTP(old, toA, payload(0x33))
	a.sendSRTP(a.out, toA, payload(0x44))
	expect(t, b, 0x44, 0x33, "the business line")
}

// mustAnswerKey is the crypto line of the anchor's first answer to the caller.
func mustAnswerKey(t *testing.T, s *Session) string {
	t.Helper()
	d, err := parseDesc(s.CallerSDP())
	if err != nil {
		t.Fatal(err)
	}
	return d.crypto[0].line()
}

// BenchmarkSRTPTransform is what SRTP adds to a relayed packet of a call, CPU only: one op
// decrypts a 20 ms PCMU packet from the trunk and encrypts one for it, in place, as the
// relay does (pion/srtp, AES_CM_128_HMAC_SHA1_80).
func BenchmarkSRTPTransform(b *testing.B) {
	var key [30]byte
	rand.Read(key[:])
	trunkOut, _ := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	l, err := newSRTPLeg(sdes{tag: 1, key: key})
	if err != nil {
		b.Fatal(err)
	}
	const n = 4096 // packets encrypted ahead, with rising sequence numbers
	in := make([][]byte, n)
	for i := range in {
		pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 7},
			Payload: make([]byte, 160)}).Marshal()
		in[i], _ = trunkOut.EncryptRTP(nil, pkt, nil)
	}
	buf := make([]byte, 2048)
	out, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 9}, Payload: make([]byte, 160)}).Marshal()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%n == 0 { // a new stream, so that the replay window lets the packets in again
			b.StopTimer()
			l, _ = newSRTPLeg(sdes{tag: 1, key: key})
			b.StartTimer()
		}
		p := buf[:copy(buf, in[i%n])]
		if _, v := l.decrypt(p); v != srtpOK {
			b.Fatalf("decrypt %d: %v", i, v)
		}
		p = buf[:copy(buf, out)]
		p[2], p[3] = byte(i>>8), byte(i)
		if _, ok := l.encrypt(p); !ok {
			b.Fatal("encrypt")
		}
	}
}

// FuzzSDES: any a=crypto value is taken or refused, never a panic; what is taken formats
// back to a line that parses to the same key.
func FuzzSDES(f *testing.F) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 30))
	for _, s := range []string{"1 AES_CM_128_HMAC_SHA1_80 inline:" + key, "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20|1:4",
		"x y z", "", "99999999999 AES_CM_128_HMAC_SHA1_80 inline:", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + ";inline:" + key} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseSDES(v)
		if err != nil {
			return
		}
		back, err := parseSDES(c.line())
		if err != nil || back != c {
			t.Fatalf("%q took %+v, which formats to %q (%v)", v, c, c.line(), err)
		}
	})
}
