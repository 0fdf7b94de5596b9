package media

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/trackline/trackline/callseam"

	"github.com/pion/sdp/v3"
	"github.com/trackline/trackline/g711"
)

// maxSDP bounds the SDP bodies the anchor parses.
const maxSDP = 16 << 10

// Directions of a media stream (RFC 3264 §6.1).
const (
	dirSendRecv = "sendrecv"
	dirSendOnly = "sendonly"
	dirRecvOnly = "recvonly"
	dirInactive = "inactive"
)

// desc is what the anchor takes from one side's SDP: its first audio stream.
type desc struct {
	addr    netip.AddrPort // where the side wants RTP; invalid when held with 0.0.0.0 or port 0
	laws    []g711.Law     // the G.711 laws offered, in the side's order of preference
	te      uint8          // the telephone-event payload type, 0 when none
	ptime   int            // the frame the side asks for, in samples (ptimeOf); 0: not said
	dir     string
	index   int      // position of the audio stream among the m= lines
	streams []string // every m= line's "media proto fmt", to reject the others in an answer
	// savp: the stream is RTP/SAVP (RFC 3711), keyed by crypto, its usable a=crypto lines
	// in the side's order of preference (RFC 4568); never empty when savp.
	savp   bool
	crypto []sdes
}

// held reports whether the description puts the stream on hold (RFC 3264 §8.4: sendonly,
// inactive, or recvonly in the answer to a hold; the older c=0.0.0.0 of RFC 2543).
func (d *desc) held() bool { return d.dir != dirSendRecv || !d.addr.IsValid() }

// parseDesc reads the first RTP/AVP or RTP/SAVP audio stream of an SDP body.
func parseDesc(b []byte) (desc, error) {
	var d desc
	if len(b) == 0 || len(b) > maxSDP {
		return d, callseam.ErrBadSDP
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(b)); err != nil {
		return d, fmt.Errorf("%w: %v", callseam.ErrBadSDP, err)
	}
	d.index = -1
	var md *sdp.MediaDescription
	for i, m := range sd.MediaDescriptions {
		d.streams = append(d.streams, m.MediaName.Media+" "+strings.Join(m.MediaName.Protos, "/")+" "+firstOr(m.MediaName.Formats, "0"))
		proto := strings.Join(m.MediaName.Protos, "/")
		if md == nil && m.MediaName.Media == "audio" && (proto == "RTP/AVP" || proto == "RTP/SAVP") {
			md, d.index, d.savp = m, i, proto == "RTP/SAVP"
		}
	}
	if md == nil {
		return d, fmt.Errorf("%w: no RTP/AVP or RTP/SAVP audio stream", callseam.ErrNotAcceptable)
	}
	if d.savp {
		for _, a := range md.Attributes {
			if a.Key != "crypto" {
				continue
			}
			if c, err := parseSDES(a.Value); err == nil {
				d.crypto = append(d.crypto, c)
			}
		}
		if len(d.crypto) == 0 {
			return d, fmt.Errorf("%w: RTP/SAVP without an a=crypto line of %s (SDES, RFC 4568)", callseam.ErrNotAcceptable, sdesSuite)
		}
	}
	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return d, fmt.Errorf("%w: no connection address", callseam.ErrBadSDP)
	}
	if ci.NetworkType != "IN" || ci.AddressType != "IP4" {
		return d, fmt.Errorf("%w: connection address %s %s (IPv4 only)", callseam.ErrNotAcceptable, ci.NetworkType, ci.AddressType)
	}
	ip, err := netip.ParseAddr(ci.Address.Address)
	if err != nil || !ip.Is4() {
		return d, fmt.Errorf("%w: connection address %q", callseam.ErrBadSDP, ci.Address.Address)
	}
	port := md.MediaName.Port.Value
	if port < 0 || port > 65535 {
		return d, fmt.Errorf("%w: port %d", callseam.ErrBadSDP, port)
	}
	if port != 0 && !ip.IsUnspecified() {
		d.addr = netip.AddrPortFrom(ip, uint16(port))
	}

	names := map[string]string{} // payload type -> encoding name/rate
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(a.Value, " ")
		if ok {
			names[pt] = strings.ToLower(enc)
		}
	}
	for _, f := range md.MediaName.Formats {
		enc := names[f]
		switch {
		case f == "0" && (enc == "" || strings.HasPrefix(enc, "pcmu/8000")):
			d.laws = appendLaw(d.laws, g711.ULaw)
		case f == "8" && (enc == "" || strings.HasPrefix(enc, "pcma/8000")):
			d.laws = appendLaw(d.laws, g711.ALaw)
		case strings.HasPrefix(enc, "telephone-event/8000") && d.te == 0:
			if pt, err := strconv.Atoi(f); err == nil && pt >= 96 && pt <= 127 {
				d.te = uint8(pt)
			}
		}
	}
	d.dir = dirSendRecv
	ptime, maxptime := "", ""
	for _, attrs := range [][]sdp.Attribute{sd.Attributes, md.Attributes} {
		for _, a := range attrs {
			switch a.Key {
			case dirSendRecv, dirSendOnly, dirRecvOnly, dirInactive:
				d.dir = a.Key
			case "ptime":
				ptime = a.Value
			case "maxptime":
				maxptime = a.Value
			}
		}
	}
	d.ptime = ptimeOf(ptime, maxptime)
	if len(d.laws) == 0 {
		return d, fmt.Errorf("%w: neither PCMU nor PCMA offered", callseam.ErrNotAcceptable)
	}
	return d, nil
}

// ptimeOf is the frame, in samples at 8 kHz, that a side's a=ptime and a=maxptime ask the
// anchor's own frames to have (RFC 4566 §6: ptime is the packetization the side would like
// to receive, maxptime the most it takes in a packet): ptime, at most maxptime, in whole 10 ms
// (the loop's grid, genGrid, divides them) from minPtime to maxPtime, rounded down; 0 when
// neither says anything usable (the default, frameSamples). A maxptime alone lowers the
// default only.
func ptimeOf(ptime, maxptime string) int {
	ms := func(v string) int {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(f > 0) || f > 1e6 {
			return 0
		}
		return int(f)
	}
	p, m := ms(ptime), ms(maxptime)
	if p == 0 && (m == 0 || m >= frameSamples/8) {
		return 0
	}
	if p == 0 {
		p = frameSamples / 8
	}
	if m > 0 {
		p = min(p, m)
	}
	p = min(max(p/10*10, minPtime), maxPtime)
	return p * 8
}

func appendLaw(laws []g711.Law, l g711.Law) []g711.Law {
	for _, x := range laws {
		if x == l {
			return laws
		}
	}
	return append(laws, l)
}

func firstOr(v []string, def string) string {
	if len(v) > 0 {
		return v[0]
	}
	return def
}

// has reports whether d offers law l.
func (d *desc) has(l g711.Law) bool {
	for _, x := range d.laws {
		if x == l {
			return true
		}
	}
	return false
}

// origin is the o= line state of the SDP the anchor sends on one leg (RFC 3264 §8: the
// version grows with every description sent in the session).
type origin struct {
	id      uint64
	version uint64
}

// sdpOut is one SDP the anchor sends.
type sdpOut struct {
	ip      netip.Addr
	port    int
	laws    []g711.Law
	te      uint8
	ptime   int // a=ptime, in samples; 0: frameSamples
	dir     string
	index   int      // where the audio stream goes; others are rejected with port 0
	streams []string // the peer's m= lines when answering, nil when offering
	crypto  *sdes    // the anchor's SDES key: the stream is RTP/SAVP with it (nil: RTP/AVP)
}

// build renders an SDP with the origin's next version.
func (o *origin) build(s sdpOut) []byte {
	o.version++
	ip := s.ip.String()
	var b strings.Builder
	b.Grow(320)
	fmt.Fprintf(&b, "v=0\r\no=trackline %d %d IN IP4 %s\r\ns=trackline\r\nc=IN IP4 %s\r\nt=0 0\r\n", o.id, o.version, ip, ip)
	streams := s.streams
	if len(streams) == 0 {
		streams = []string{"audio RTP/AVP 0"}
		s.index = 0
	}
	for i, st := range streams {
		if i != s.index {
			fmt.Fprintf(&b, "m=%s\r\n", rejected(st))
			continue
		}
		b.WriteString("m=audio ")
		b.WriteString(strconv.Itoa(s.port))
		if s.crypto != nil {
			b.WriteString(" RTP/SAVP")
		} else {
			b.WriteString(" RTP/AVP")
		}
		for _, l := range s.laws {
			b.WriteString(" ")
			b.WriteString(strconv.Itoa(int(l.PayloadType())))
		}
		if s.te != 0 {
			fmt.Fprintf(&b, " %d", s.te)
		}
		b.WriteString("\r\n")
		for _, l := range s.laws {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/8000\r\n", l.PayloadType(), l)
		}
		if s.te != 0 {
			fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", s.te, s.te)
		}
		if s.crypto != nil {
			b.WriteString("a=crypto:" + s.crypto.line() + "\r\n")
		}
		fmt.Fprintf(&b, "a=ptime:%d\r\na=rtcp:%d\r\na=%s\r\n", frameOr(s.ptime)/8, s.port+1, s.dir)
	}
	return []byte(b.String())
}

// rejected turns "media proto fmt" into a rejected m= line (port 0, RFC 3264 §6).
func rejected(stream string) string {
	media, rest, _ := strings.Cut(stream, " ")
	return media + " 0 " + rest
}

// answerDir is the direction that answers an offered one (RFC 3264 §6.1).
func answerDir(offered string) string {
	switch offered {
	case dirSendOnly:
		return dirRecvOnly
	case dirRecvOnly:
		return dirSendOnly
	case dirInactive:
		return dirInactive
	}
	return dirSendRecv
}
