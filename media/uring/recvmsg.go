//go:build linux

package uring

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// RecvMsgHeader is the size of struct io_uring_recvmsg_out, which starts each buffer a
// multishot receive fills.
const RecvMsgHeader = 16

// payloadOffset is where the datagram starts in such a buffer: after the header, the
// NameLen bytes reserved for the source address and no control data.
const payloadOffset = RecvMsgHeader + NameLen

// ParseRecvMsg reads the buffer of a multishot receive's completion, cut to the
// completion's Res: struct io_uring_recvmsg_out (namelen, controllen, payloadlen, flags),
// then NameLen bytes of source address, then the datagram. It returns the IPv4 source
// and the payload (aliasing b), or false for a layout that does not hold together: too
// short, a source that is not IPv4 or did not fit, control data, or a datagram truncated
// because it was larger than the buffer (MSG_TRUNC).
func ParseRecvMsg(b []byte) (from netip.AddrPort, payload []byte, ok bool) {
	if len(b) < payloadOffset {
		return netip.AddrPort{}, nil, false
	}
	ne := binary.NativeEndian
	namelen, controllen := ne.Uint32(b[0:]), ne.Uint32(b[4:])
	payloadlen, flags := ne.Uint32(b[8:]), ne.Uint32(b[12:])
	if namelen < 8 || namelen > NameLen || controllen != 0 || flags&unix.MSG_TRUNC != 0 ||
		uint64(payloadlen) != uint64(len(b)-payloadOffset) {
		return netip.AddrPort{}, nil, false
	}
	name := b[RecvMsgHeader:payloadOffset]
	if ne.Uint16(name[0:]) != unix.AF_INET {
		return netip.AddrPort{}, nil, false
	}
	port := binary.BigEndian.Uint16(name[2:])
	addr := netip.AddrFrom4([4]byte(name[4:8]))
	return netip.AddrPortFrom(addr, port), b[payloadOffset:], true
}

// SockaddrInet4 is ap in the kernel's layout, for SendTo and connect; ap must be IPv4.
func SockaddrInet4(ap netip.AddrPort) unix.RawSockaddrInet4 {
	var r unix.RawSockaddrInet4
	r.Family = unix.AF_INET
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], ap.Port())
	r.Port = binary.NativeEndian.Uint16(port[:])
	r.Addr = ap.Addr().As4()
	return r
}

// Truncated reports whether a multishot receive's buffer (as for ParseRecvMsg) holds a
// datagram that was larger than the buffer (MSG_TRUNC in io_uring_recvmsg_out's flags).
func Truncated(b []byte) bool {
	return len(b) >= RecvMsgHeader && binary.NativeEndian.Uint32(b[12:])&unix.MSG_TRUNC != 0
}
