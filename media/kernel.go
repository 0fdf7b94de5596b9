//go:build linux

package media

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trackline/trackline/media/ebpf"
	"github.com/trackline/trackline/media/g711"
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

// Config.Kernel's values.
const (
	KernelAuto = "auto" // the kernel path where the process may load it, else user space
	KernelOn   = "on"   // the kernel path or an error
	KernelOff  = "off"  // user space only
)

// kernelDrainEvery is how often the first loop reads the kernel path's ring.
const kernelDrainEvery = 5 * time.Millisecond

// kernelRingSize holds about 150 ms of 1,000 calls' packets: far more than a drain's gap.
const kernelRingSize = 16 << 20

type kernelPath struct {
	mu       sync.Mutex // one reader of the ring at a time; guards cnt
	cnt      counters   // what the ring's records added since the last publish
	flows    *ebpf.Map
	ring     *ebpf.Ring
	prog     *ebpf.Prog
	links    []*ebpf.Link
	stats    int   // the run-time statistics' descriptor, -1 without
	clockOff int64 // CLOCK_MONOTONIC minus monoNow
	ip       [4]byte
	tags     atomic.Uint32
}

// newKernelPath loads the program and attaches it to the ingress of the interface that
// has ip (every interface that is up for an unspecified address).
func newKernelPath(ip netip.Addr, maxFlows int) (*kernelPath, error) {
	k := &kernelPath{stats: -1, ip: ip.As4()}
	ok := false
	defer func() {
		if !ok {
			k.close()
		}
	}()
	var err error
	if k.flows, err = ebpf.NewHash("tl_flows", flowKeySize, flowValSize, maxFlows); err != nil {
		return nil, err
	}
	if k.ring, err = ebpf.NewRing("tl_rtp", kernelRingSize); err != nil {
		return nil, err
	}
	insns, err := forwardProgram(k.flows.FD(), k.ring.FD())
	if err != nil {
		return nil, err
	}
	if k.prog, err = ebpf.LoadTC("tl_forward", insns); err != nil {
		return nil, err
	}
	ifs, err := ingressInterfaces(ip)
	if err != nil {
		return nil, err
	}
	for _, idx := range ifs {
		l, err := ebpf.AttachTCXIngress(k.prog, idx)
		if err != nil {
			return nil, err
		}
		k.links = append(k.links, l)
	}
	if k.stats, err = ebpf.EnableStats(); err != nil {
		k.stats = -1 // the program works without; its CPU is then not published
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, err
	}
	k.clockOff = ts.Nano() - monoNow()
	ok = true
	return k, nil
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
		if ip.IsUnspecified() {
			out = append(out, ifc.Index)
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

func (k *kernelPath) close() {
	for _, l := range k.links {
		l.Close()
	}
	k.prog.Close()
	k.ring.Close()
	k.flows.Close()
	if k.stats >= 0 {
		unix.Close(k.stats)
	}
}

// cpuSeconds is the time the program has run, while statistics are on.
func (k *kernelPath) cpuSeconds() float64 {
	if k.stats < 0 {
		return 0
	}
	_, ns, err := k.prog.Stats()
	if err != nil {
		return 0
	}
	return float64(ns) / 1e9
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

func ntohs(p uint16) uint16 { return p<<8 | p>>8 }

// offload puts lg's direction (lg to peer) in the kernel, or takes it out where it may no
// longer be there. Called under the session's mu after the relay rewrote a packet of ssrc.
func (k *kernelPath) offload(lg, peer *leg, ssrc uint32) error {
	s := lg.s
	want := s.bridged && !s.closing && lg.latched && peer.latched && peer.destOK && peer.gen == genNone &&
		lg.law == peer.law && lg.law != g711.None && peer.out.srcOK && peer.out.src == ssrc
	local := isLoopback(lg.dest.Addr) && isLoopback(peer.dest.Addr) && isLoopback(k.ip)
	if want && !local && (isLoopback(lg.dest.Addr) || isLoopback(peer.dest.Addr) || isLoopback(k.ip)) {
		want = false // loopback on one side only: the stack would refuse the result
	}
	if !want {
		return k.unload(lg)
	}
	if lg.kernel && lg.kernelSSRC == ssrc && lg.kernelDeltas == [2]uint32{uint32(peer.out.seqDelta), peer.out.tsDelta} {
		return nil
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
	}
	key := k.flowKey(&lg.dest, lg.port)
	if err := k.flows.Update(key[:], v[:]); err != nil {
		lg.kernel = false
		return err
	}
	lg.kernel, lg.kernelKey, lg.kernelSSRC = true, key, ssrc
	lg.kernelDeltas = [2]uint32{uint32(peer.out.seqDelta), peer.out.tsDelta}
	return nil
}

// unload takes lg's direction out of the kernel. Called under the session's mu.
func (k *kernelPath) unload(lg *leg) error {
	if !lg.kernel {
		return nil
	}
	lg.kernel = false
	return k.flows.Delete(lg.kernelKey[:])
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
	k.ring.Read(e.kernelRecord)
	k.mu.Unlock()
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
