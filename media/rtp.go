package media

import "encoding/binary"

// rtpHeaderLen is the fixed part of an RTP header (RFC 3550 §5.1).
const rtpHeaderLen = 12

// parseRTP checks that b is an RTP packet fit to relay and returns where its payload starts
// and ends (padding excluded). It rejects, as bad RTP: packets shorter than a header, a
// version other than 2, CSRCs or a header extension that run past the packet, and padding
// longer than the payload. RTCP sent on the RTP port (payload types 72-76 with the marker
// bit, RFC 5761 §4) is rejected as well: the anchor does not relay it.
func parseRTP(b []byte) (start, end int, ok bool) {
	n := len(b)
	if n < rtpHeaderLen || b[0]>>6 != 2 {
		return 0, 0, false
	}
	if pt := b[1] & 0x7f; pt >= 72 && pt <= 76 {
		return 0, 0, false
	}
	start = rtpHeaderLen + int(b[0]&0x0f)*4
	if start > n {
		return 0, 0, false
	}
	if b[0]&0x10 != 0 { // extension: 4-byte header, then length 32-bit words
		if start+4 > n {
			return 0, 0, false
		}
		start += 4 + int(binary.BigEndian.Uint16(b[start+2:]))*4
		if start > n {
			return 0, 0, false
		}
	}
	end = n
	if b[0]&0x20 != 0 {
		pad := int(b[n-1])
		if pad == 0 || pad > n-start {
			return 0, 0, false
		}
		end -= pad
	}
	return start, end, true
}

// rxStats are the receive statistics of one leg (RFC 3550 appendix A.1, A.3 and A.8).
type rxStats struct {
	started  bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint64
	baseSeq  uint64
	received uint64 // of the current source
	// Counts of earlier sources (an SSRC change starts a new sequence space).
	prevExpected uint64
	prevReceived uint64

	packets uint64
	bytes   uint64

	transit int32
	jitter  uint32 // in timestamp units, scaled by 16 (RFC 3550 A.8)
}

// maxDropout is the largest forward jump of sequence numbers taken as loss rather than as
// a restarted source (RFC 3550 A.1).
const maxDropout = 3000

// update counts one packet with sequence number seq and timestamp ts, arrived at arrival (in
// timestamp units of the same clock for every packet).
func (s *rxStats) update(ssrc uint32, seq uint16, ts uint32, arrival uint32, size int) {
	s.packets++
	s.bytes += uint64(size)
	if !s.started || ssrc != s.ssrc {
		if s.started {
			s.prevExpected += s.expected()
			s.prevReceived += s.received
		}
		s.started, s.ssrc = true, ssrc
		s.maxSeq, s.cycles, s.baseSeq, s.received = seq, 0, uint64(seq), 1
		s.transit = int32(arrival - ts)
		return
	}
	delta := seq - s.maxSeq
	switch {
	case delta == 0: // duplicate
	case delta < maxDropout:
		if seq < s.maxSeq {
			s.cycles += 1 << 16
		}
		s.maxSeq = seq
	case delta <= 0xffff-100: // a big jump: the source restarted its sequence
		s.prevExpected += s.expected()
		s.prevReceived += s.received
		s.maxSeq, s.cycles, s.baseSeq, s.received = seq, 0, uint64(seq), 0
	default: // late or reordered
	}
	s.received++
	transit := int32(arrival - ts)
	d := transit - s.transit
	s.transit = transit
	if d < 0 {
		d = -d
	}
	s.jitter += uint32(d) - ((s.jitter + 8) >> 4)
}

func (s *rxStats) expected() uint64 {
	if !s.started {
		return 0
	}
	return s.cycles + uint64(s.maxSeq) - s.baseSeq + 1
}

// lost is the cumulative number of packets lost (negative with duplicates).
func (s *rxStats) lost() int64 {
	return int64(s.prevExpected+s.expected()) - int64(s.prevReceived+s.received)
}

// jitterSeconds is the interarrival jitter at 8 kHz.
func (s *rxStats) jitterSeconds() float64 { return float64(s.jitter) / 16 / 8000 }
