package sip

import (
	"bytes"
	"net"
	"syscall"
)

// edgePacketConn is the switch's UDP socket as sipgo reads it: every datagram goes
// through the edge first, in sipgo's one reader goroutine, and only those the edge passes
// are returned from ReadFrom. Writes go straight to the socket.
type edgePacketConn struct {
	net.PacketConn
	e    *edge
	sc   scan   // used by the reader goroutine only
	out  []byte // the answer being built, reused
	norm []byte // a tightened copy of a lax message (normalize), reused
	// Of the datagram ReadFrom returned last: what admission control needs of it, read
	// from the scan (ref), and whether the bytes returned are a tightened copy, which the
	// scan's spans do not describe (normalized).
	ref        inviteRef
	normalized bool
	// queued: the datagrams passed wait in admitConn's queue before sipgo parses them, and
	// admitConn remembers them for sipgo's parse errors as it hands them on (remember).
	queued bool
}

func newEdgePacketConn(pc net.PacketConn, e *edge) *edgePacketConn {
	return &edgePacketConn{PacketConn: pc, e: e}
}

// ReadFrom returns the next datagram the edge passes; the others it answers or drops.
func (c *edgePacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		b := p[:n]
		act := c.e.inspect(&c.sc, b, addrIP(addr), false)
		if n == len(p) && c.sc.request && act != actDrop {
			// The datagram filled the buffer: the kernel cut it (RFC 3261 §18.1.1: such
			// a message should have gone over TCP).
			c.sc.fault = faultTooLarge
			act = c.e.refuse(&c.sc, b)
		}
		switch act {
		case actPass:
			c.ref = c.sc.inviteRef(b)
			c.normalized = false
			if c.sc.lax && c.sc.request && c.sc.headEnd >= 0 {
				c.norm = normalize(c.norm[:0], b, &c.sc)
				if len(c.norm) <= len(p) {
					n = copy(p, c.norm)
					b = p[:n]
					c.normalized = true
				}
			}
			if !c.queued {
				c.e.remember(b, addr, c)
			}
			return n, addr, nil
		case actAnswer:
			c.out = c.e.appendAnswer(c.out[:0], &c.sc, b)
			if err := c.sendOwn(c.out, replyAddr(&c.sc, b, addr)); err == nil {
				c.e.answered(c.sc.fault)
			}
		}
	}
}

// Methods an inviteRef tells apart.
const (
	methodOther = iota
	methodInvite
	methodAck
	// methodAnswer: a final answer to an INVITE (not a challenge), keyed by its Call-ID
	// alone (answerKey): a business line's answer to the switch (admission.answered).
	methodAnswer
)

// inviteRef is what admission control needs of a datagram (admit_conn.go): INVITE, ACK, a
// final answer to an INVITE or other, the key of its transaction (a hash of its top Via's
// branch and its Call-ID; an answer's: of its Call-ID) and whether it is outside a dialog
// (its To has no tag).
type inviteRef struct {
	method  int
	key     uint64
	initial bool
}

// inviteRef reads a passed datagram's inviteRef from the scan of b: a request with no
// branch in its top Via (RFC 2543) is methodOther, and left to sipgo and the INVITE's
// handler.
func (s *scan) inviteRef(b []byte) inviteRef {
	if s.response && s.status >= 200 && s.status != 401 && s.status != 407 && s.callID.n > 0 && s.count[hdrCSeq] > 0 {
		v := valueSpan(b, s.fields[hdrCSeq]).of(b)
		if i := bytes.IndexAny(v, " \t"); i > 0 && isMethod(trimLWS(v[i:]), "INVITE") {
			return inviteRef{method: methodAnswer, key: answerKey(s.callID.of(b))}
		}
		return inviteRef{}
	}
	if !s.request || len(s.vias) == 0 || s.callID.n == 0 {
		return inviteRef{}
	}
	var method int
	switch m := s.method.of(b); {
	case isMethod(m, "INVITE"):
		method = methodInvite
	case isMethod(m, "ACK"):
		method = methodAck
	default:
		return inviteRef{}
	}
	v := valueSpan(b, s.vias[0]).of(b)
	if i := indexOutsideBrackets(v, ','); i >= 0 {
		v = v[:i] // the first via-parm of the line
	}
	branch, ok := fieldParam(v, "branch")
	if !ok || len(branch) == 0 {
		return inviteRef{}
	}
	return inviteRef{method: method, key: inviteKey(branch, s.callID.of(b)), initial: !s.toTagged(b)}
}

// sendAnswer sends an answer over the socket. Safe for concurrent use.
func (c *edgePacketConn) sendAnswer(b []byte, to net.Addr) error {
	_, err := c.PacketConn.WriteTo(b, to)
	return err
}

// sendOwn is sendAnswer for the reader goroutine (ReadFrom's): over a socket with a write
// of its own for that goroutine (admitMeter), it allocates nothing.
func (c *edgePacketConn) sendOwn(b []byte, to net.Addr) error {
	if w, ok := c.PacketConn.(ownWriter); ok {
		_, err := w.writeOwn(b, to)
		return err
	}
	return c.sendAnswer(b, to)
}

// ownWriter is a socket with a write for its reader goroutine only (admitMeter.writeOwn).
type ownWriter interface {
	writeOwn(b []byte, to net.Addr) (int, error)
}

// replyAddr is where the answer to a request over UDP goes (RFC 3261 §18.2.2, RFC 3581
// §4): the source address, at the port of the top Via's sent-by (5060 when it has none),
// or at the source port when the Via asks for rport. sipgo answers at the same place.
func replyAddr(sc *scan, b []byte, src net.Addr) net.Addr {
	ua, ok := src.(*net.UDPAddr)
	if !ok || len(sc.vias) == 0 {
		return src
	}
	port, rport := viaPort(valueSpan(b, sc.vias[0]).of(b))
	if rport || port == ua.Port {
		return src
	}
	return &net.UDPAddr{IP: ua.IP, Port: port, Zone: ua.Zone}
}

// viaPort reads the port of a Via value's first sent-by (RFC 3261 §20.42: sent-protocol
// LWS sent-by *(SEMI via-params)), 5060 when it has none, and whether it has an rport
// parameter.
func viaPort(v []byte) (port int, rport bool) {
	port = 5060
	if i := indexOutsideBrackets(v, ','); i >= 0 {
		v = v[:i]
	}
	// Skip "SIP / 2.0 / UDP": the sent-by starts after the second '/' and the transport.
	for range 2 {
		i := bytes.IndexByte(v, '/')
		if i < 0 {
			return port, false
		}
		v = v[i+1:]
	}
	v = trimLWS(v)
	for len(v) > 0 && isToken(v[0]) {
		v = v[1:]
	}
	v = trimLWS(v)
	host := v
	params := []byte(nil)
	if i := bytes.IndexByte(v, ';'); i >= 0 {
		host, params = trimLWS(v[:i]), v[i:]
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && i > bytes.LastIndexByte(host, ']') {
		if n, ok := number(trimLWS(host[i+1:])); ok && n > 0 && n < 65536 {
			port = n
		}
	}
	for len(params) > 0 {
		params = params[1:]
		p := params
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i:]
		} else {
			params = nil
		}
		if k, _, _ := bytes.Cut(p, []byte("=")); bytes.EqualFold(trimLWS(k), []byte("rport")) {
			rport = true
		}
	}
	return port, rport
}

// SyscallConn exposes the socket (for its kernel drop counter) when it is a real one.
func (c *edgePacketConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.PacketConn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}
