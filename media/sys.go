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
	r.Port = ntohs(ap.Port()) // network byte order
	r.Addr = ap.Addr().As4()
	return r
}

// ntohs swaps a port between host (little-endian) and network byte order, both ways.
func ntohs(p uint16) uint16 { return p<<8 | p>>8 }

// recvfrom reads one datagram without allocating: the raw system call on a non-blocking
// socket, with the source written into from. It returns the datagram's real length
// (MSG_TRUNC), which is larger than len(p) when the datagram did not fit.
func recvfrom(fd int, p []byte, from *rawAddr) (int, unix.Errno) {
	fromLen := uint32(unix.SizeofSockaddrInet4)
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_TRUNC, uintptr(unsafe.Pointer(from)), uintptr(unsafe.Pointer(&fromLen)))
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

// sleep pauses the calling thread for d ns as a raw system call: like epollWait, the loop's
// thread keeps its P.
func sleep(d int64) {
	ts := unix.NsecToTimespec(d)
	unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
}

// loopSlice is the scheduler slice a loop's thread asks for when it runs without real-time
// priority. A loop sleeps between batches; when it wakes while both cores are busy, EEVDF
// (Linux 6.6+) lets it preempt a running thread only if its virtual deadline comes first,
// and with the default slice (0.7-3 ms by core count) it often waits out the running
// thread's: packets then sit in their sockets for milliseconds. A short slice (sched_runtime
// of SCHED_OTHER, Linux 6.12+; clamped by the kernel to at least 0.1 ms) makes its deadline
// early, so it runs at once, in short turns. It needs no privilege and changes no share of
// the CPU.
const loopSlice = 100 * time.Microsecond

// How a loop's thread is scheduled (loopScheduling).
const (
	schedRealtime = "realtime" // SCHED_FIFO at the configured priority
	schedSlice    = "slice"    // SCHED_OTHER with loopSlice
	schedExternal = "external" // a policy other than SCHED_OTHER set from outside (e.g. chrt), left alone
)

// loopScheduling schedules the calling (locked) thread for a packet loop. With prio > 0 it
// asks for SCHED_FIFO at prio: the loop then preempts every ordinary thread the moment
// packets wake it, and no busy core holds its packets back (Asterisk's -p and FreeSWITCH's
// -rp do the same for their media threads). That needs RLIMIT_RTPRIO >= prio (systemd:
// LimitRTPRIO=) or CAP_SYS_NICE; without it, or with prio <= 0, the thread gets loopSlice
// under SCHED_OTHER. SCHED_FLAG_RESET_ON_FORK keeps either from passing to threads this one
// creates. The loop sleeps in epoll_wait whenever its sockets are empty, and the kernel's
// real-time throttling (sched_rt_runtime_us) keeps a flood from taking a whole core. It
// returns how the thread is scheduled now, and the error that refused real-time priority. A
// thread started under another policy than SCHED_OTHER (chrt) keeps it.
func loopScheduling(prio int) (string, error) {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return "", err
	}
	switch a.Policy {
	case unix.SCHED_NORMAL:
	case unix.SCHED_FIFO, unix.SCHED_RR: // real-time already (chrt)
		return schedRealtime, nil
	default:
		return schedExternal, nil
	}
	var rtErr error
	if prio > 0 {
		rt := *a
		rt.Policy, rt.Priority, rt.Nice, rt.Runtime = unix.SCHED_FIFO, uint32(prio), 0, 0
		rt.Flags = unix.SCHED_FLAG_RESET_ON_FORK
		if rtErr = unix.SchedSetAttr(0, &rt, 0); rtErr == nil {
			return schedRealtime, nil
		}
	}
	a.Runtime = uint64(loopSlice)
	a.Flags = unix.SCHED_FLAG_RESET_ON_FORK
	if err := unix.SchedSetAttr(0, a, 0); err != nil {
		return "", err
	}
	return schedSlice, rtErr
}

// send writes one datagram on a connected socket.
func send(fd int, p []byte) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	return e
}

// sendOn sends p on fd: without an address when fd is connected (to the leg's destination),
// else to to.
func sendOn(fd int, connected bool, p []byte, to *rawAddr) unix.Errno {
	if connected {
		return send(fd, p)
	}
	return sendto(fd, p, to)
}

// connectTo connects a UDP socket to a: it may then send without an address, which spares
// the kernel a route lookup per datagram, and it receives only a's datagrams.
func connectTo(fd int, a *rawAddr) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(a)), unix.SizeofSockaddrInet4)
	return e
}

// disconnect dissolves a UDP socket's association (connect to AF_UNSPEC): it receives from
// every source again.
func disconnect(fd int) unix.Errno {
	a := rawAddr{Family: unix.AF_UNSPEC}
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&a)), unix.SizeofSockaddrInet4)
	return e
}

// openStray binds a second socket to the address of fd (bound to ip:port). Once fd is
// connected, the kernel delivers the datagrams of its peer to fd and those of every other
// source to the stray socket, so that strict-source drops can still be counted. Both sockets
// share the port through SO_REUSEPORT only while the second binds: the option is cleared on
// both at once, so no third socket, of this process or another, can bind the port.
func openStray(fd int, ip netip.Addr, port int) (int, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return -1, err
	}
	defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 0)
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		unix.Close(s)
		return -1, err
	}
	if err := unix.Bind(s, &unix.SockaddrInet4{Port: port, Addr: ip.As4()}); err != nil {
		unix.Close(s)
		return -1, err
	}
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 0); err != nil {
		unix.Close(s)
		return -1, err
	}
	return s, nil
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
