//go:build linux

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/trackline/trackline/g711"
)

// The kernel path (Config.Kernel): once a call is bridged and both legs have latched, each
// direction's datagrams are forwarded by an eBPF program at the ingress of the interface
// they arrive on, rewritten exactly as the relay below would rewrite them, without
// reaching the anchor's sockets. The program hands each one it forwards, as it arrived, to
// a ring buffer that the first packet loop reads every kernelDrainEvery: the statistics,
// the RTP timeout, the recording and the legs' outgoing streams are kept from those copies
// as from relayed packets. What the program does not forward (other sources, bad RTP, a
// new SSRC, an unknown payload type, a full ring) reaches the socket and the relay as
// before.
//
// The program is written with github.com/cilium/ebpf's asm package (kernel_prog.go) and
// loaded, attached (TCX, Linux 6.6+), fed and read through that library; it needs
// CAP_BPF and CAP_NET_ADMIN (or root), and New falls back to user space when it cannot load.
// Links are not pinned: when the process ends, for whatever reason, the kernel detaches the
// program and frees its maps.

// Config.Kernel's values.
const (
	KernelAuto = "auto" // the kernel path where the process may load it, else user space
	KernelOn   = "on"   // the kernel path or an error
	KernelOff  = "off"  // user space only
)

// kernelDrainEvery is how often the first loop reads the kernel path's ring.
const kernelDrainEvery = 5 * time.Millisecond

// kernelRingSize holds about 300 ms of 1,000 calls' packets (a record takes 520 bytes):
// far more than a drain's gap.
const kernelRingSize = 16 << 20

type kernelPath struct {
	mu       sync.Mutex // one reader of the ring at a time; guards cnt, rec and closed
	cnt      counters   // what the ring's records added since the last publish
	coll     *ebpf.Collection
	flows    *ebpf.Map // in coll
	prog     *ebpf.Program
	ring     *ringbuf.Reader
	rec      ringbuf.Record // each record is copied into its RawSample, reused
	links    []link.Link
	stats    io.Closer // the kernel's run-time statistics while open; nil without
	clockOff int64     // CLOCK_MONOTONIC minus monoNow
	ip       [4]byte
	tags     atomic.Uint32
	onRecord func([]byte) // Engine.kernelRecord, made once: a method value allocates
	closed   bool         // guarded by mu
	// fmu guards the flow table's descriptor against close while sessions use it (under
	// their mu, which drain takes inside mu: hence a lock of its own).
	fmu     sync.RWMutex
	fclosed bool
}

// newKernelPath loads the program and attaches it to the ingress of the interface that
// has ip. The flows' keys and rewritten sources are that address: an unspecified one
// (0.0.0.0) cannot have a kernel path.
func newKernelPath(ip netip.Addr, maxFlows int) (*kernelPath, error) {
	if !ip.Is4() || ip.IsUnspecified() {
		return nil, fmt.Errorf("the kernel path needs a specific IPv4 media address, not %v", ip)
	}
	k := &kernelPath{ip: ip.As4(), rec: ringbuf.Record{RawSample: make([]byte, 0, recSize)}}
	ok := false
	defer func() {
		if !ok {
			k.close()
		}
	}()
	var err error
	if k.coll, err = ebpf.NewCollection(kernelSpec(maxFlows, kernelRingSize)); err != nil {
		return nil, err // a program the verifier refuses: an *ebpf.VerifierError with its log
	}
	k.flows, k.prog = k.coll.Maps[flowsMap], k.coll.Programs[forwardProg]
	if k.ring, err = newRingReader(k.coll.Maps[ringMap]); err != nil {
		return nil, err
	}
	ifs, err := ingressInterfaces(ip)
	if err != nil {
		return nil, err
	}
	for _, idx := range ifs {
		// After whatever is attached there already (link.Tail): the program's TCX_NEXT
		// hands what it does not take on to it.
		l, err := link.AttachTCX(link.TCXOptions{Interface: idx, Program: k.prog, Attach: ebpf.AttachTCXIngress, Anchor: link.Tail()})
		if err != nil {
			return nil, fmt.Errorf("attach to the ingress of interface %d: %w", idx, err)
		}
		k.links = append(k.links, l)
	}
	if k.stats, err = ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err != nil {
		k.stats = nil // the program works without; trackline_media_kernel_cpu_seconds_total stays 0
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, err
	}
	k.clockOff = ts.Nano() - monoNow()
	ok = true
	return k, nil
}

// newRingReader reads ring without blocking: its deadline has passed, so a ReadInto that
// finds the ring empty returns os.ErrDeadlineExceeded at once (its epoll_wait has a zero
// timeout) instead of waiting for a wake-up, which the program never asks for
// (BPF_RB_NO_WAKEUP).
func newRingReader(ring *ebpf.Map) (*ringbuf.Reader, error) {
	r, err := ringbuf.NewReader(ring)
	if err != nil {
		return nil, err
	}
	r.SetDeadline(time.Unix(1, 0))
	return r, nil
}

// ingressInterfaces are the interfaces whose ingress the program watches.
func ingressInterfaces(ip netip.Addr) ([]int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []int
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == ip {
					out = append(out, ifc.Index)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no interface that is up has %s", ip)
	}
	return out, nil
}

// close detaches the program and frees the tables; sessions that close later find the
// flows gone and the ring read.
func (k *kernelPath) close() {
	k.fmu.Lock()
	k.fclosed = true
	k.fmu.Unlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	k.closed = true
	for _, l := range k.links {
		l.Close()
	}
	if k.ring != nil {
		k.ring.Close()
	}
	if k.coll != nil {
		k.coll.Close() // the program and both maps
	}
	if k.stats != nil {
		k.stats.Close()
	}
}

// cpuSeconds is the time the program has run, while statistics are on; 0 for a nil or
// closed kernel path.
func (k *kernelPath) cpuSeconds() float64 {
	if k == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stats == nil || k.closed {
		return 0
	}
	st, err := k.prog.Stats()
	if err != nil {
		return 0
	}
	return st.Runtime.Seconds()
}

// flowKey is the table key of datagrams from src to the anchor's port.
func (k *kernelPath) flowKey(src *rawAddr, port int) [flowKeySize]byte {
	var key [flowKeySize]byte
	copy(key[0:4], src.Addr[:])
	copy(key[4:8], k.ip[:])
	binary.BigEndian.PutUint16(key[8:], ntohs(src.Port))
	binary.BigEndian.PutUint16(key[10:], uint16(port))
	return key
}

// offload puts lg's direction (lg to peer) in the kernel, or takes it out where it may no
// longer be there. Called under the session's mu after the relay rewrote a packet of ssrc,
// when the flow is not in the table or has another SSRC (its deltas change only with it).
func (k *kernelPath) offload(lg, peer *leg, ssrc uint32) error {
	s := lg.s
	want := s.bridged && !s.closing && lg.srtp == nil && peer.srtp == nil && lg.latched && peer.latched && peer.destOK && peer.gen == genNone &&
		lg.law == peer.law && lg.law != g711.None && peer.out.srcOK && peer.out.src == ssrc
	local := isLoopback(lg.dest.Addr) && isLoopback(peer.dest.Addr) && isLoopback(k.ip)
	if want && !local && (isLoopback(lg.dest.Addr) || isLoopback(peer.dest.Addr) || isLoopback(k.ip)) {
		want = false // loopback on one side only: the stack would refuse the result
	}
	if !want {
		return k.unload(lg)
	}
	if lg.kernelTag == 0 {
		lg.kernelTag = uint32(lg.pair) | (k.tags.Add(1)&0xffff|1)<<16
	}
	tag := lg.kernelTag
	var v [flowValSize]byte
	copy(v[fvSaddr:], k.ip[:])
	copy(v[fvDaddr:], peer.dest.Addr[:])
	binary.BigEndian.PutUint16(v[fvPorts:], uint16(peer.port))
	binary.BigEndian.PutUint16(v[fvPorts+2:], ntohs(peer.dest.Port))
	binary.BigEndian.PutUint32(v[fvSSRCIn:], ssrc)
	binary.BigEndian.PutUint32(v[fvSSRCOut:], peer.out.ssrc)
	binary.LittleEndian.PutUint32(v[fvSeqDelta:], uint32(peer.out.seqDelta))
	binary.LittleEndian.PutUint32(v[fvTSDelta:], peer.out.tsDelta)
	v[fvPTAudio], v[fvPTAudio+1] = lg.law.PayloadType(), peer.law.PayloadType()
	if lg.te != 0 && peer.te != 0 {
		v[fvTEIn], v[fvTEIn+1] = lg.te, peer.te
	}
	binary.LittleEndian.PutUint32(v[fvFlow:], tag)
	if local {
		binary.LittleEndian.PutUint32(v[fvFlags:], flowLocal)
	} else {
		ifindex, err := routeIfindex(k.ip, peer.dest.Addr)
		if err != nil {
			lg.kernelRefused = true
			return errors.Join(err, k.unload(lg))
		}
		binary.LittleEndian.PutUint32(v[fvIfindex:], uint32(ifindex))
	}
	key := k.flowKey(&lg.dest, lg.port)
	if err := k.update(key[:], v[:]); err != nil {
		lg.kernelRefused = true
		return errors.Join(err, k.unload(lg))
	}
	lg.kernel, lg.kernelKey, lg.kernelSSRC = true, key, ssrc
	return nil
}

// unload takes lg's direction out of the kernel. Called under the session's mu.
func (k *kernelPath) unload(lg *leg) error {
	if !lg.kernel {
		return nil
	}
	lg.kernel = false
	k.fmu.RLock()
	defer k.fmu.RUnlock()
	if k.fclosed {
		return nil
	}
	if err := k.flows.Delete(lg.kernelKey[:]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// update puts a flow in the table, unless the kernel path has closed.
func (k *kernelPath) update(key, value []byte) error {
	k.fmu.RLock()
	defer k.fmu.RUnlock()
	if k.fclosed {
		return errors.New("the kernel path is closed")
	}
	return k.flows.Update(key, value, ebpf.UpdateAny)
}

// routeIfindex asks the kernel's routing table (netlink RTM_GETROUTE) which interface
// datagrams from src to dst leave by. A destination that is one of the host's own
// addresses is an error: the kernel path sends only to loopback peers on loopback.
func routeIfindex(src, dst [4]byte) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, fmt.Errorf("route lookup: %w", err)
	}
	defer unix.Close(fd)
	const hdr, rtm, attr = unix.SizeofNlMsghdr, unix.SizeofRtMsg, 8
	req := make([]byte, hdr+rtm+2*attr)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.RTM_GETROUTE)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], 1) // sequence
	req[hdr], req[hdr+1], req[hdr+2] = unix.AF_INET, 32, 32
	for i, a := range []struct {
		typ  uint16
		addr [4]byte
	}{{unix.RTA_DST, dst}, {unix.RTA_SRC, src}} {
		at := req[hdr+rtm+i*attr:]
		binary.NativeEndian.PutUint16(at[0:], attr)
		binary.NativeEndian.PutUint16(at[2:], a.typ)
		copy(at[4:], a.addr[:])
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("route lookup: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("route lookup: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("route lookup: %w", err)
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if e := -int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return 0, fmt.Errorf("route lookup: %w", unix.Errno(e))
				}
			}
		case unix.RTM_NEWROUTE:
			if len(m.Data) < rtm {
				continue
			}
			if typ := m.Data[7]; typ != unix.RTN_UNICAST {
				return 0, fmt.Errorf("route lookup: %v is not a unicast route's (type %d)", netip.AddrFrom4(dst), typ)
			}
			attrs, err := syscall.ParseNetlinkRouteAttr(&m)
			if err != nil {
				return 0, fmt.Errorf("route lookup: %w", err)
			}
			for _, a := range attrs {
				if a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4 {
					return int(binary.NativeEndian.Uint32(a.Value)), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("route lookup: no interface for %v", netip.AddrFrom4(dst))
}

// isLoopback reports whether an address in the kernel's layout is in 127.0.0.0/8.
func isLoopback(a [4]byte) bool { return a[0] == 127 }

// drain reads the ring: each record is a packet the kernel forwarded, accounted as the
// relay accounts a packet it relays. The first loop drains every kernelDrainEvery, and a
// session about to close drains first, so that its statistics hold every packet. Called
// without any session's mu.
func (e *Engine) drain() {
	k := e.kernel
	k.mu.Lock()
	if !k.closed {
		k.read()
	}
	k.mu.Unlock()
}

// read hands each record in the ring to onRecord, in order. It never blocks, and it makes
// no system call while the ring holds records: ReadInto waits (without waiting, see
// newRingReader) only when it finds the ring empty, and read asks it for a record only
// while the ring has bytes in it. A record the program is still writing is waited for (the
// program writes it within a few instructions, on another core). It allocates nothing:
// every record is copied into the same buffer (recSize). Called under mu.
func (k *kernelPath) read() {
	for k.ring.AvailableBytes() > 0 {
		if err := k.ring.ReadInto(&k.rec); err != nil {
			return // os.ErrDeadlineExceeded: what was left were records the program discarded
		}
		k.onRecord(k.rec.RawSample)
	}
}

// publish adds the ring's tallies to the metrics.
func (k *kernelPath) publish(m *metrics) {
	k.mu.Lock()
	c := k.cnt
	k.cnt = counters{}
	k.mu.Unlock()
	m.rxCaller.Add(float64(c.rx[caller]))
	m.rxCallee.Add(float64(c.rx[callee]))
	m.relayed.Add(float64(c.relayed))
	m.kernelPackets.Add(float64(c.relayed))
}

// kernelRecord accounts for one ring record. Called under the kernel path's mu.
func (e *Engine) kernelRecord(rec []byte) {
	if len(rec) < recHeader {
		return
	}
	tag := binary.LittleEndian.Uint32(rec)
	n := int(binary.LittleEndian.Uint32(rec[4:]))
	at := int64(binary.LittleEndian.Uint64(rec[8:])) - e.kernel.clockOff
	if n < rtpHeaderLen || recHeader+n > len(rec) {
		return
	}
	p := rec[recHeader : recHeader+n]
	pair := int(tag & 0xffff)
	if pair >= len(e.slots) {
		return
	}
	lg := e.slots[pair].Load()
	if lg == nil {
		return
	}
	s := lg.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || lg.kernelTag != tag {
		return // from a call that had the port pair before
	}
	pt, seq, ts, ssrc := rtpFields(p)
	lg.lastRx = max(lg.lastRx, at)
	lg.rx.update(ssrc, seq, ts, uint32(at/125_000), len(p))
	c := &e.kernel.cnt
	c.rx[lg.side]++
	c.relayed++
	if pt == lg.law.PayloadType() && s.rec != nil {
		s.rec.write(lg.side, ssrc, ts, p[rtpHeaderLen:], lg.law, at)
	}
	s.legs[1-lg.side].out.relayed(ssrc, seq, ts, at)
}

// kernelAvailable says whether the kernel path can load here (on loopback).
func kernelAvailable() error {
	k, err := newKernelPath(netip.MustParseAddr("127.0.0.1"), 16)
	if err != nil {
		return err
	}
	k.close()
	return nil
}
