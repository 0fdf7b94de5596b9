package rtpcap

import (
	"encoding/binary"
	"testing"
)

func TestPCMU(t *testing.T) {
	audio := make([]byte, 400) // 2.5 frames
	for i := range audio {
		audio[i] = byte(i)
	}
	b := PCMU(audio, 0xABCD)
	if binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("pcap header % x", b[:24])
	}
	off, frames, got := 24, 0, []byte{}
	for off < len(b) {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		frame := b[off+16 : off+16+n]
		rtp := frame[14+20+8:]
		if rtp[0] != 0x80 || rtp[1] != 0 || binary.BigEndian.Uint32(rtp[8:]) != 0xABCD || binary.BigEndian.Uint16(rtp[2:]) != uint16(1000+frames) {
			t.Fatalf("frame %d: RTP header % x", frames, rtp[:12])
		}
		got = append(got, rtp[12:]...)
		off += 16 + n
		frames++
	}
	if frames != 3 || string(got) != string(audio) {
		t.Fatalf("%d frames, payload %d bytes", frames, len(got))
	}
}
