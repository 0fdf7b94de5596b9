//go:build linux

package uring

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// layout builds a multishot receive buffer: the header, the NameLen bytes of address
// area (family, port, address; the rest zero) and the payload.
func layout(namelen, controllen, payloadlen, flags uint32, family uint16, src netip.AddrPort, payload []byte) []byte {
	b := make([]byte, RecvMsgHeader+NameLen, RecvMsgHeader+NameLen+len(payload))
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], namelen)
	ne.PutUint32(b[4:], controllen)
	ne.PutUint32(b[8:], payloadlen)
	ne.PutUint32(b[12:], flags)
	ne.PutUint16(b[16:], family)
	binary.BigEndian.PutUint16(b[18:], src.Port())
	a := src.Addr().As4()
	copy(b[20:], a[:])
	return append(b, payload...)
}

// refParse is the plain reading of the layout the kernel documents for
// struct io_uring_recvmsg_out, for comparison with ParseRecvMsg.
func refParse(b []byte) (netip.AddrPort, []byte, bool) {
	type out struct{ namelen, controllen, payloadlen, flags uint32 }
	if len(b) < int(unsafe.Sizeof(out{}))+unix.SizeofSockaddrInet4 {
		return netip.AddrPort{}, nil, false
	}
	var h out
	h.namelen = binary.NativeEndian.Uint32(b[0:4])
	h.controllen = binary.NativeEndian.Uint32(b[4:8])
	h.payloadlen = binary.NativeEndian.Uint32(b[8:12])
	h.flags = binary.NativeEndian.Uint32(b[12:16])
	var sa unix.RawSockaddrInet4
	copy((*[unix.SizeofSockaddrInet4]byte)(unsafe.Pointer(&sa))[:], b[16:32])
	rest := b[32:]
	switch {
	case h.namelen < 8, h.namelen > unix.SizeofSockaddrInet4: // no room for an IPv4 source, or cut
		return netip.AddrPort{}, nil, false
	case h.controllen != 0: // no control area was reserved
		return netip.AddrPort{}, nil, false
	case h.flags&unix.MSG_TRUNC != 0, int(h.payloadlen) != len(rest):
		return netip.AddrPort{}, nil, false
	case sa.Family != unix.AF_INET:
		return netip.AddrPort{}, nil, false
	}
	port := uint16(sa.Port>>8) | uint16(sa.Port&0xff)<<8
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 { // big-endian host: already in order
		port = sa.Port
	}
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), rest, true
}

func TestParseRecvMsg(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.7:40002")
	pl := []byte("an RTP packet, more or less")
	n := uint32(len(pl))
	cases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"valid", layout(16, 0, n, 0, unix.AF_INET, src, pl), true},
		{"empty datagram", layout(16, 0, 0, 0, unix.AF_INET, src, nil), true},
		{"short name length still holds an IPv4 source", layout(8, 0, n, 0, unix.AF_INET, src, pl), true},
		{"MSG_CTRUNC only", layout(16, 0, n, unix.MSG_CTRUNC, unix.AF_INET, src, pl), true},
		{"nil", nil, false},
		{"header only", layout(16, 0, 0, 0, unix.AF_INET, src, nil)[:RecvMsgHeader], false},
		{"address cut", layout(16, 0, 0, 0, unix.AF_INET, src, nil)[:RecvMsgHeader+NameLen-1], false},
		{"no source", layout(0, 0, n, 0, unix.AF_INET, src, pl), false},
		{"name length below an IPv4 source", layout(7, 0, n, 0, unix.AF_INET, src, pl), false},
		{"IPv6-sized source", layout(28, 0, n, 0, unix.AF_INET, src, pl), false},
		{"huge name length", layout(0xffffffff, 0, n, 0, unix.AF_INET, src, pl), false},
		{"IPv6 family", layout(16, 0, n, 0, unix.AF_INET6, src, pl), false},
		{"control data", layout(16, 8, n, 0, unix.AF_INET, src, pl), false},
		{"truncated datagram", layout(16, 0, n, unix.MSG_TRUNC, unix.AF_INET, src, pl), false},
		{"payload length beyond the buffer", layout(16, 0, n+1, 0, unix.AF_INET, src, pl), false},
		{"payload length short of the buffer", layout(16, 0, n-1, 0, unix.AF_INET, src, pl), false},
		{"huge payload length", layout(16, 0, 0xffffffff, 0, unix.AF_INET, src, pl), false},
	}
	for _, c := range cases {
		from, payload, ok := ParseRecvMsg(c.b)
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.name, ok, c.ok)
			continue
		}
		if !ok {
			if from.IsValid() || payload != nil {
				t.Errorf("%s: rejected, but returned %v and %d bytes", c.name, from, len(payload))
			}
			continue
		}
		if from != src {
			t.Errorf("%s: source %v, want %v", c.name, from, src)
		}
		if want := c.b[RecvMsgHeader+NameLen:]; !bytes.Equal(payload, want) || cap(payload) != cap(want) {
			t.Errorf("%s: payload %q, want %q aliasing the buffer", c.name, payload, want)
		}
	}
}

// FuzzRecvMsgOut: ParseRecvMsg never panics and agrees with the plain reading.
func FuzzRecvMsgOut(f *testing.F) {
	src := netip.MustParseAddrPort("10.1.2.3:5004")
	f.Add(layout(16, 0, 4, 0, unix.AF_INET, src, []byte{0x80, 0, 0, 1}))
	f.Add(layout(16, 0, 0, 0, unix.AF_INET, src, nil))
	f.Add(layout(16, 0, 5, unix.MSG_TRUNC, unix.AF_INET, src, []byte("hello")))
	f.Add(layout(28, 0, 1, 0, unix.AF_INET6, src, []byte{1}))
	f.Add([]byte{})
	f.Add(make([]byte, 31))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
		// The same bytes made mostly valid, so that the valid side gets explored too: the
		// payload length that fits, no control data, an IPv4 family, no MSG_TRUNC; the name
		// length and the rest as fuzzed.
		if len(b) >= RecvMsgHeader+NameLen {
			v := bytes.Clone(b)
			ne := binary.NativeEndian
			ne.PutUint32(v[4:], 0)
			ne.PutUint32(v[8:], uint32(len(v)-RecvMsgHeader-NameLen))
			ne.PutUint32(v[12:], ne.Uint32(v[12:])&^unix.MSG_TRUNC)
			ne.PutUint16(v[16:], unix.AF_INET)
			ne.PutUint32(v[0:], 6+ne.Uint32(v[0:])%12) // 6..17: around the bounds 8 and 16
			checkParse(t, v)
		}
	})
}

func checkParse(t *testing.T, b []byte) {
	from, payload, ok := ParseRecvMsg(b)
	rfrom, rpayload, rok := refParse(b)
	if ok != rok || from != rfrom || !bytes.Equal(payload, rpayload) {
		t.Fatalf("ParseRecvMsg = %v %v %x, reference %v %v %x", from, ok, payload, rfrom, rok, rpayload)
	}
	if ok && len(payload) > 0 && &payload[0] != &b[RecvMsgHeader+NameLen] {
		t.Fatalf("payload does not alias the buffer")
	}
}

func TestSockaddrInet4(t *testing.T) {
	ap := netip.MustParseAddrPort("198.51.100.9:31000")
	sa := SockaddrInet4(ap)
	b := (*[unix.SizeofSockaddrInet4]byte)(unsafe.Pointer(&sa))[:]
	want := layout(16, 0, 0, 0, unix.AF_INET, ap, nil)[RecvMsgHeader:]
	if !bytes.Equal(b, want) {
		t.Errorf("SockaddrInet4(%v) = % x, want % x", ap, b, want)
	}
}
