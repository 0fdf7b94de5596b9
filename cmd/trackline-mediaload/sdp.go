package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// sdpBody is the offer or answer of one side (RFC 4566, RFC 3264): PCMU and
// telephone-event on one audio stream at ip:port.
func sdpBody(user string, id uint64, ip netip.Addr, port int) []byte {
	return fmt.Appendf(nil, "v=0\r\n"+
		"o=%s %d 1 IN IP4 %s\r\n"+
		"s=-\r\n"+
		"c=IN IP4 %s\r\n"+
		"t=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\n"+
		"a=rtpmap:0 PCMU/8000\r\n"+
		"a=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\n"+
		"a=ptime:20\r\n"+
		"a=sendrecv\r\n", user, id, ip, ip, port)
}

var errNoAudio = errors.New("sdp: no usable audio stream")

// sdpAudioAddr is where the first audio stream of an SDP body wants its RTP: the port of its
// m= line (RFC 4566 §5.14) at the address of its c= line, or of the session's c= line when
// the media has none (§5.7). IPv4 only; port 0 (a rejected stream) is an error.
func sdpAudioAddr(body []byte) (netip.AddrPort, error) {
	var session, media string
	port, inMedia, inAudio, seenAudio := 0, false, false, false
	for line := range strings.Lines(string(body)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "m="):
			inMedia, inAudio = true, false
			f := strings.Fields(line[2:])
			if seenAudio || len(f) < 3 || f[0] != "audio" {
				continue
			}
			p, err := strconv.Atoi(strings.Split(f[1], "/")[0])
			if err != nil || p < 0 || p > 65535 {
				return netip.AddrPort{}, fmt.Errorf("sdp: bad m= port %q", f[1])
			}
			port, inAudio, seenAudio = p, true, true
		case strings.HasPrefix(line, "c=") && (!inMedia || inAudio):
			f := strings.Fields(line[2:])
			if len(f) != 3 || f[0] != "IN" || f[1] != "IP4" {
				return netip.AddrPort{}, fmt.Errorf("sdp: unsupported connection %q", line)
			}
			addr := strings.Split(f[2], "/")[0] // a TTL suffix (§5.7)
			if inAudio {
				media = addr
			} else {
				session = addr
			}
		}
	}
	if !seenAudio || port == 0 {
		return netip.AddrPort{}, errNoAudio
	}
	host := media
	if host == "" {
		host = session
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return netip.AddrPort{}, fmt.Errorf("sdp: bad connection address %q", host)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}
