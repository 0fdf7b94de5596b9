package main

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/trackline/trackline/g711"
)

const (
	// magic opens every generated payload: "TLML".
	magic = 0x544c4d4c

	rtpHeaderLen = 12
	payloadLen   = 160 // 20 ms of PCMU at 8 kHz
	packetLen    = rtpHeaderLen + payloadLen
	stampLen     = 24 // magic, call, direction, version, reserved, slot, send time

	ptPCMU         = 0 // RFC 3551 §6
	slotDur        = 20 * time.Millisecond
	samplesPerSlot = 160
	stampVersion   = 1
)

// direction is which way a stream's packets go.
type direction uint8

const (
	trunkToLine direction = iota // the caller's audio
	lineToTrunk                  // the business line's audio
)

func (d direction) String() string {
	switch d {
	case trunkToLine:
		return "trunk_to_line"
	case lineToTrunk:
		return "line_to_trunk"
	}
	return "unknown"
}

// stamp is what the first stampLen bytes of a generated payload carry.
type stamp struct {
	call uint32
	dir  direction
	slot uint32 // the 20 ms slot since the media epoch: a 32-bit sequence number
	sent int64  // CLOCK_MONOTONIC, ns
}

// putStamp writes s at the start of p (at least stampLen bytes).
func putStamp(p []byte, s stamp) {
	_ = p[stampLen-1]
	binary.BigEndian.PutUint32(p[0:], magic)
	binary.BigEndian.PutUint32(p[4:], s.call)
	p[8] = byte(s.dir)
	p[9] = stampVersion
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint32(p[12:], s.slot)
	binary.BigEndian.PutUint64(p[16:], uint64(s.sent))
}

// readStamp reads the stamp at the start of a payload; false when the payload is not one of
// ours (too short, another magic or version).
func readStamp(p []byte) (stamp, bool) {
	if len(p) < stampLen || binary.BigEndian.Uint32(p) != magic || p[9] != stampVersion {
		return stamp{}, false
	}
	return stamp{
		call: binary.BigEndian.Uint32(p[4:]),
		dir:  direction(p[8]),
		slot: binary.BigEndian.Uint32(p[12:]),
		sent: int64(binary.BigEndian.Uint64(p[16:])),
	}, true
}

// putHeader writes a fixed RTP header (RFC 3550 §5.1): V=2, no padding, extension or CSRC,
// marker clear, PT 0.
func putHeader(b []byte, seq uint16, ts, ssrc uint32) {
	_ = b[rtpHeaderLen-1]
	b[0] = 2 << 6
	b[1] = ptPCMU
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}

// rtpPayload returns the payload of an RTP packet (RFC 3550 §5.1, §5.3.1): after the CSRCs
// and a header extension, without padding. False when b is not a well-formed RTP packet.
func rtpPayload(b []byte) ([]byte, bool) {
	if len(b) < rtpHeaderLen || b[0]>>6 != 2 {
		return nil, false
	}
	off := rtpHeaderLen + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < off+4 {
			return nil, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 && end > 0 {
		end -= int(b[end-1])
	}
	if off > end {
		return nil, false
	}
	return b[off:end], true
}

// fillTone fills p with a 1 kHz tone at about -12 dBFS in µ-law, so a recording of the
// generated audio is audible (the stamp at each packet's start is a click).
func fillTone(p []byte) {
	for i := range p {
		p[i] = g711.EncodeULaw(int16(8000 * math.Sin(2*math.Pi*float64(i%8)/8)))
	}
}
