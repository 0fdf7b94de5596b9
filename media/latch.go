package media

import (
	"encoding/binary"
	"net/netip"
)

// Latching: which source a leg accepts RTP from, and where it sends.
//
// A leg learns its far end from SDP and from where that far end's signalling came from, and
// from nothing else (the RTP Bleed lesson, CVE-2017-14099):
//
//   - It may latch only onto a source whose IP is allowed: the IP its SDP announced, or, where
//     the far end is behind NAT, the IP its signalling came from. NAT is assumed when the SDP
//     names an address that cannot be reached from here (private, shared, loopback, link-local
//     or unspecified) while the signalling came from another one, or when the operator marks
//     the trunk (trunks[].nat) or the business lines (sip.outbound_nat) as behind NAT.
//   - A source that is exactly the SDP address latches an unlatched leg at its first packet.
//     Any other port of an allowed IP latches only after a probation: Config.Probation
//     consecutive packets from that one source, with one SSRC and consecutive sequence
//     numbers (RFC 3550 §6.2.1's probation for a new source). The same holds for moving an
//     established latch (a NAT rebinding): it never moves to a source that has not passed.
//   - A new SDP address (re-INVITE, UPDATE, the answer) unlatches the leg and re-arms all of
//     the above.
//
// While a leg behind NAT has not latched it is sent nothing: its SDP address cannot be reached,
// and the source it will send from is not known until it does (symmetric RTP, RFC 4961).

// verdict is what admit decides about one datagram.
type verdict uint8

const (
	verdictUnknown verdict = iota
	admitted               // from the latched source, or it latched the leg now
	moved                  // passed probation: the latch moved to this source
	dropStrict             // from an IP the leg may not latch onto, or not its latched source
	dropProbation          // from an allowed IP, still on probation
	dropBad                // on probation, and not RTP whose SSRC and sequence number can be read
)

// DefaultProbation is Config.Probation's default.
const DefaultProbation = 3

// unroutable reports whether a peer's SDP address cannot be where its packets come from when
// its signalling came from elsewhere: the sign of a far end behind NAT.
func unroutable(a netip.Addr) bool {
	return !a.IsValid() || a.IsUnspecified() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() ||
		sharedSpace.Contains(a)
}

// sharedSpace is the carrier-grade NAT range (RFC 6598).
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// setRemote takes the address from the leg's latest SDP, with the IP its signalling came from
// (invalid when unknown) and whether it is marked as behind NAT. A new address unlatches the
// leg and re-arms the probation.
func (l *leg) setRemote(ap netip.AddrPort, signal netip.Addr, nat bool) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	signal = signal.Unmap()
	if ap == l.sdpAddr && signal == l.signal && nat == l.nat && (l.latched || l.destOK || l.nAllow > 0) {
		return
	}
	l.sdpAddr, l.signal, l.nat = ap, signal, nat
	if l.connected {
		disconnect(l.fd)
		l.connected = false
	}
	l.latched, l.cand = false, probation{}
	sdpIP := ap.Addr()
	behindNAT := signal.Is4() && signal != sdpIP && unroutable(sdpIP)
	l.nAllow = 0
	if sdpIP.Is4() && !sdpIP.IsUnspecified() {
		l.allow[l.nAllow] = sdpIP.As4()
		l.nAllow++
	}
	if (behindNAT || nat) && signal.Is4() && signal != sdpIP {
		l.allow[l.nAllow] = signal.As4()
		l.nAllow++
	}
	l.sdpOK = sdpIP.Is4() && !sdpIP.IsUnspecified() && ap.Port() != 0
	if l.sdpOK {
		l.sdpRaw = toRaw(ap)
	}
	// Send to the SDP address until the leg latches, unless it is behind NAT there.
	l.destOK = l.sdpOK && !behindNAT
	if l.destOK {
		l.dest = l.sdpRaw
	}
}

// allowed reports whether the leg may latch onto a source on IP a.
func (l *leg) allowed(a *[4]byte) bool {
	for i := range l.nAllow {
		if l.allow[i] == *a {
			return true
		}
	}
	return false
}

// probation follows one candidate source through its consecutive packets.
type probation struct {
	src  rawAddr
	ssrc uint32
	seq  uint16
	n    int
}

// admit applies the latching rules to the datagram p from src. It latches or moves the leg
// when p allows it; the caller undoes what a move leaves behind (the connected socket, the
// kernel path's flow).
func (l *leg) admit(src *rawAddr, p []byte) verdict {
	if l.latched && src.Addr == l.dest.Addr && src.Port == l.dest.Port {
		return admitted
	}
	if !l.allowed(&src.Addr) {
		return dropStrict
	}
	if !l.latched && l.sdpOK && src.Addr == l.sdpRaw.Addr && src.Port == l.sdpRaw.Port {
		l.latch(src)
		return admitted
	}
	// RFC 3550 §6.2.1: a new source is valid after MIN_SEQUENTIAL packets in sequence.
	if len(p) < rtpHeaderLen || p[0]>>6 != 2 {
		return dropBad
	}
	ssrc, seq := binary.BigEndian.Uint32(p[8:]), binary.BigEndian.Uint16(p[2:])
	c := &l.cand
	if c.n > 0 && c.src.Addr == src.Addr && c.src.Port == src.Port && c.ssrc == ssrc && seq == c.seq+1 {
		c.n++
		c.seq = seq
	} else {
		*c = probation{src: *src, ssrc: ssrc, seq: seq, n: 1}
	}
	if c.n < l.s.e.cfg.Probation {
		return dropProbation
	}
	was := l.latched
	l.latch(src)
	if was {
		return moved
	}
	return admitted
}

// latch makes src the leg's source and destination.
func (l *leg) latch(src *rawAddr) {
	if l.connected { // connected to the source it had: the loop connects it to this one
		disconnect(l.fd)
		l.connected = false
	}
	l.dest, l.destOK, l.latched = *src, true, true
	l.cand = probation{}
}
