package sip

import (
	"net"
	"syscall"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// socketDrops reads the kernel's drop counter of a UDP socket (SO_MEMINFO's
// SK_MEMINFO_DROPS): datagrams lost because its receive buffer was full. It is one system
// call and no allocation however many sockets the machine has, where /proc/net/udp would
// list every one of them (the switch's RTP ports among them: thousands under load, on
// every scrape). It returns 0 when the counter cannot be read.
func socketDrops(c net.PacketConn) uint64 {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var info [unix.SK_MEMINFO_VARS]uint32
	size := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	err = raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err != nil || errno != 0 || size < 4*(unix.SK_MEMINFO_DROPS+1) {
		return 0
	}
	return uint64(info[unix.SK_MEMINFO_DROPS])
}

// dropsCollector exports the switch socket's receive drops.
func (s *Switch) dropsCollector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "trackline_sip_udp_receive_drops_total",
		Help: "SIP datagrams the kernel dropped because the switch's UDP receive buffer was full.",
	}, func() float64 {
		if !s.addr.IsValid() || s.udp == nil {
			return 0
		}
		return float64(socketDrops(s.udp))
	})
}
