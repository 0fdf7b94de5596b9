// Package rtpcap writes RTP streams as pcap files, the form sipp plays (play_pcap_audio):
// for the e2e tests' peers and for `make call`.
package rtpcap

import (
	"bytes"
	"encoding/binary"
)

// PCMU is a pcap file (Ethernet frames, IPv4/UDP from 127.0.0.1:40000 to 127.0.0.1:40002,
// 20 ms apart) of one RTP stream carrying the µ-law audio ulaw in 160-byte frames, payload
// type 0, with the given SSRC. sipp rewrites the addresses when it plays it.
func PCMU(ulaw []byte, ssrc uint32) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b2c3d4)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535)
	le.PutUint32(hdr[20:], 1) // LINKTYPE_ETHERNET
	b.Write(hdr)
	for i := 0; i*160 < len(ulaw); i++ {
		payload := ulaw[i*160 : min(len(ulaw), (i+1)*160)]
		rtpPkt := make([]byte, 12+len(payload))
		rtpPkt[0] = 0x80
		binary.BigEndian.PutUint16(rtpPkt[2:], uint16(1000+i))
		binary.BigEndian.PutUint32(rtpPkt[4:], uint32(i*160))
		binary.BigEndian.PutUint32(rtpPkt[8:], ssrc)
		copy(rtpPkt[12:], payload)
		udpLen := 8 + len(rtpPkt)
		frame := make([]byte, 14+20+udpLen)
		binary.BigEndian.PutUint16(frame[12:], 0x0800)
		ip := frame[14:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
		ip[8], ip[9] = 64, 17
		copy(ip[12:], []byte{127, 0, 0, 1})
		copy(ip[16:], []byte{127, 0, 0, 1})
		udp := ip[20:]
		binary.BigEndian.PutUint16(udp[0:], 40000)
		binary.BigEndian.PutUint16(udp[2:], 40002)
		binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
		copy(udp[8:], rtpPkt)
		rec := make([]byte, 16)
		us := i * 20000
		le.PutUint32(rec[0:], uint32(1700000000+us/1e6))
		le.PutUint32(rec[4:], uint32(us%1e6))
		le.PutUint32(rec[8:], uint32(len(frame)))
		le.PutUint32(rec[12:], uint32(len(frame)))
		b.Write(rec)
		b.Write(frame)
	}
	return b.Bytes()
}
