package media

import (
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// epoch anchors the monotonic clock of the packet path.
var epoch = time.Now()

// monoNow is nanoseconds since epoch on the monotonic clock.
func monoNow() int64 { return int64(time.Since(epoch)) }

// rawAddr is an IPv4 socket address in the kernel's layout, kept ready for sendto.
type rawAddr = unix.RawSockaddrInet4

func toRaw(ap netip.AddrPort) rawAddr {
	var r rawAddr
	r.Family = unix.AF_INET
	p := ap.Port()
	r.Port = p<<8 | p>>8 // network byte order
	r.Addr = ap.Addr().As4()
	return r
}

// recvfrom reads one datagram without allocating: the raw system call on a non-blocking
// socket, with the source written into from.
func recvfrom(fd int, p []byte, from *rawAddr) (int, unix.Errno) {
	fromLen := uint32(unix.SizeofSockaddrInet4)
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		0, uintptr(unsafe.Pointer(from)), uintptr(unsafe.Pointer(&fromLen)))
	return int(n), e
}

// sendto writes one datagram without allocating.
func sendto(fd int, p []byte, to *rawAddr) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		0, uintptr(unsafe.Pointer(to)), unix.SizeofSockaddrInet4)
	return e
}

// epollWait is epoll_wait as a raw system call: the loop's thread keeps its P while it
// waits, so the scheduler never hands the P off and takes it back around every wait.
func epollWait(epfd int, events []unix.EpollEvent, msec int) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(msec), 0, 0)
	return int(n), e
}

// openUDP binds a non-blocking UDP socket to ip:port.
func openUDP(ip netip.Addr, port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// Expedited forwarding (DSCP 46) for voice, as switches and routers expect.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, 0xb8)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: ip.As4()}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
