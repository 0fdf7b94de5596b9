package sip

import (
	"bytes"
	"hash/maphash"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	sipmsg "github.com/emiago/sipgo/sip"
	"golang.org/x/sys/unix"
)

// admitMeter is the switch's UDP socket as the edge and sipgo read it: each datagram is
// read with the kernel's receive timestamp (SO_TIMESTAMPNS), and the time it waited in the
// socket's queue, from that timestamp to the read, goes to the admission control. It
// passes every datagram on unchanged; writes and everything else go straight to the socket.
// It is read by sipgo's one UDP reader goroutine only.
type admitMeter struct {
	*net.UDPConn
	a   *admission
	now func() time.Time
	oob [64]byte
}

// meterUDP wraps c for admission control, or returns it as it is when it is not a UDP
// socket or the kernel does not stamp datagrams (the delay signal is then missing, and only
// the configured cap applies).
func meterUDP(c net.PacketConn, a *admission, now func() time.Time) net.PacketConn {
	uc, ok := c.(*net.UDPConn)
	if !ok || a == nil {
		return c
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c
	}
	return &admitMeter{UDPConn: uc, a: a, now: now}
}

// ReadFrom reads a datagram and observes how long it waited.
func (m *admitMeter) ReadFrom(p []byte) (int, net.Addr, error) {
	n, oobn, _, addr, err := m.UDPConn.ReadMsgUDP(p, m.oob[:])
	if err != nil {
		if addr == nil {
			return n, nil, err // not a typed nil in the interface
		}
		return n, addr, err
	}
	if ts, ok := rxTimestamp(m.oob[:oobn]); ok {
		now := m.now()
		m.a.observe(now.Sub(ts), now)
	}
	return n, addr, nil
}

// rxTimestamp finds the SCM_TIMESTAMPNS control message (socket(7)) in oob without
// allocating: a cmsghdr (length, level, type) and a struct timespec.
func rxTimestamp(oob []byte) (time.Time, bool) {
	const hdr = int(unsafe.Sizeof(unix.Cmsghdr{}))
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return time.Time{}, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= hdr+int(unsafe.Sizeof(unix.Timespec{})) {
			var ts unix.Timespec
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts)), oob[hdr:l])
			return time.Unix(ts.Unix()), true
		}
		l = (l + unix.SizeofPtr - 1) &^ (unix.SizeofPtr - 1) // CMSG_ALIGN
		if l >= len(oob) {
			break
		}
		oob = oob[l:]
	}
	return time.Time{}, false
}

// admitConn decides on new calls over UDP as sipgo's reader takes their INVITEs, before
// sipgo parses them: a refused INVITE costs no transaction, no goroutine and nothing that
// lingers, and its 503 goes out without waiting for a handler. It answers with the same
// 503 when the INVITE is retransmitted and drops the ACK of that 503 (RFC 3261 §17.2.1:
// what the INVITE's server transaction would do), and passes everything else on, the
// retransmissions of admitted INVITEs included. A datagram it cannot read its keys from
// goes on to sipgo, and the INVITE's handler decides (Switch.shed).
// It is read by sipgo's one UDP reader goroutine only.
type admitConn struct {
	net.PacketConn
	s   *Switch
	out []byte
}

// ReadFrom returns the next datagram that is not a refused INVITE or its ACK.
func (c *admitConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		b := p[:n]
		method, key, initial := inviteKeyOf(b)
		switch {
		case method == methodInvite && initial:
			if c.s.inv.admitted(key) {
				return n, addr, nil // a retransmission: sipgo's transaction answers it
			}
			if !c.s.inv.refused(key) {
				if reason := c.s.adm.allow(c.s.now(), true); reason == "" {
					c.s.inv.admit(key)
					return n, addr, nil
				}
				c.s.inv.refuse(key)
			}
			if !c.refuse(b, key, addr) {
				return n, addr, nil // unreadable after all: sipgo answers it
			}
		case method == methodAck && c.s.inv.refused(key):
			// the ACK of a 503 sent here: nothing more to do
		default:
			return n, addr, nil
		}
	}
}

// refuse sends a refused INVITE its 503, with Retry-After and a To tag made from its key,
// so that a retransmission gets the very same answer. It reports whether it could.
func (c *admitConn) refuse(b []byte, key uint64, src net.Addr) bool {
	msg, err := sipmsg.ParseMessage(b)
	req, ok := msg.(*sipmsg.Request)
	if err != nil || !ok || req.Via() == nil || req.To() == nil {
		return false
	}
	res := sipmsg.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
	if to := res.To(); to != nil {
		if to.Params == nil {
			to.Params = sipmsg.NewParams()
		}
		to.Params.Add("tag", strconv.FormatUint(key, 36))
	}
	res.AppendHeader(sipmsg.NewHeader("Retry-After", shedRetryAfter))
	c.out = c.out[:0]
	c.out = append(c.out, res.String()...)
	_, err = c.PacketConn.WriteTo(c.out, replyTo(req.Via(), src))
	return err == nil
}

// replyTo is where a response over UDP goes (RFC 3261 §18.2.2, RFC 3581 §4): the source
// address, at the port of the top Via's sent-by unless it asks for rport or names none.
func replyTo(via *sipmsg.ViaHeader, src net.Addr) net.Addr {
	ua, ok := src.(*net.UDPAddr)
	if !ok || via.Port == 0 || via.Port == ua.Port || via.Params != nil && via.Params.Has("rport") {
		return src
	}
	return &net.UDPAddr{IP: ua.IP, Port: via.Port, Zone: ua.Zone}
}

// Methods inviteKeyOf tells apart.
const (
	methodOther = iota
	methodInvite
	methodAck
)

// inviteKeyOf reads an INVITE's or ACK's key, a hash of its top Via's branch and its
// Call-ID, and whether it is outside a dialog (no To tag), from the raw message: a scan of
// its header lines, compact forms included (RFC 3261 §7.3.3). A message it cannot read
// them from is methodOther.
func inviteKeyOf(b []byte) (method int, key uint64, initial bool) {
	switch {
	case bytes.HasPrefix(b, []byte("INVITE ")):
		method = methodInvite
	case bytes.HasPrefix(b, []byte("ACK ")):
		method = methodAck
	default:
		return methodOther, 0, false
	}
	var branch, callID []byte
	toSeen, tagged := false, false
	line := 0
	for rest := b; len(rest) > 0; {
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			return methodOther, 0, false // no end of the header
		}
		l := bytes.TrimRight(rest[:end], "\r")
		rest = rest[end+1:]
		if line++; line == 1 {
			continue // the request line
		}
		if len(l) == 0 {
			break // the end of the header
		}
		if l[0] == ' ' || l[0] == '\t' {
			return methodOther, 0, false // a folded line: leave it to the parser
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return methodOther, 0, false
		}
		name = bytes.TrimSpace(name)
		switch {
		case branch == nil && (bytes.EqualFold(name, []byte("via")) || bytes.EqualFold(name, []byte("v"))):
			branch = viaBranch(value)
			if branch == nil {
				return methodOther, 0, false
			}
		case callID == nil && (bytes.EqualFold(name, []byte("call-id")) || bytes.EqualFold(name, []byte("i"))):
			callID = bytes.TrimSpace(value)
		case bytes.EqualFold(name, []byte("to")) || bytes.EqualFold(name, []byte("t")):
			if toSeen {
				return methodOther, 0, false // two To headers: leave it to the parser
			}
			toSeen, tagged = true, hasTag(value)
		}
	}
	if branch == nil || len(callID) == 0 || !toSeen {
		return methodOther, 0, false
	}
	return method, inviteKey(branch, callID), !tagged
}

// inviteKey is the key of an INVITE (and of the ACK of its non-2xx answer): a hash of its
// top Via's branch and its Call-ID.
func inviteKey(branch, callID []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(inviteSeed)
	h.Write(branch)
	h.WriteByte(0)
	h.Write(callID)
	return h.Sum64()
}

// inviteSeed seeds the keys' hash; fixed for the process.
var inviteSeed = maphash.MakeSeed()

// viaBranch is the branch parameter of a Via value's first via-parm, nil when it has none.
func viaBranch(v []byte) []byte {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	for {
		i := bytes.IndexByte(v, ';')
		if i < 0 {
			return nil
		}
		v = v[i+1:]
		p := v
		if j := bytes.IndexByte(p, ';'); j >= 0 {
			p = p[:j]
		}
		k, val, _ := bytes.Cut(p, []byte("="))
		if bytes.EqualFold(bytes.TrimSpace(k), []byte("branch")) {
			if val = bytes.TrimSpace(val); len(val) > 0 {
				return val
			}
			return nil
		}
	}
}

// hasTag tells whether a To value carries a tag parameter (outside its URI's angle brackets).
func hasTag(v []byte) bool {
	if i := bytes.LastIndexByte(v, '>'); i >= 0 {
		v = v[i+1:]
	}
	for {
		i := bytes.IndexByte(v, ';')
		if i < 0 {
			return false
		}
		v = v[i+1:]
		k, _, _ := bytes.Cut(v, []byte("="))
		if j := bytes.IndexByte(k, ';'); j >= 0 {
			k = k[:j]
		}
		if bytes.EqualFold(bytes.TrimSpace(k), []byte("tag")) {
			return true
		}
	}
}

// inviteKeys remembers which INVITEs were admitted and which refused, by key, the last
// inviteKeysKept of each: long enough to cover an INVITE's retransmissions (RFC 3261
// Timer B, 32 s) at a few thousand calls a second. Safe for concurrent use.
type inviteKeys struct {
	mu  sync.Mutex
	adm keyRing
	ref keyRing
}

const inviteKeysKept = 1 << 16

func (k *inviteKeys) admitted(key uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.adm.has(key)
}
func (k *inviteKeys) refused(key uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ref.has(key)
}
func (k *inviteKeys) admit(key uint64)  { k.mu.Lock(); defer k.mu.Unlock(); k.adm.add(key) }
func (k *inviteKeys) refuse(key uint64) { k.mu.Lock(); defer k.mu.Unlock(); k.ref.add(key) }

// keyRing is a set of the last inviteKeysKept keys added.
type keyRing struct {
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func (r *keyRing) has(key uint64) bool {
	_, ok := r.set[key]
	return ok
}

func (r *keyRing) add(key uint64) {
	if r.set == nil {
		r.set = make(map[uint64]struct{}, inviteKeysKept)
		r.ring = make([]uint64, 0, inviteKeysKept)
	}
	if _, ok := r.set[key]; ok {
		return
	}
	if len(r.ring) < inviteKeysKept {
		r.ring = append(r.ring, key)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = key
		r.next = (r.next + 1) % inviteKeysKept
	}
	r.set[key] = struct{}{}
}

// SyscallConn exposes the socket beneath, as the edge's connection does.
func (c *admitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.PacketConn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}
