package sip

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// edgeListener is the switch's TCP listener as sipgo accepts from it: connections from
// banned sources, and from sources that are no trunk once they go over their rate, are
// closed at once; the others are read through edgeConn.
type edgeListener struct {
	net.Listener
	e *edge
}

// Accept returns the next connection the edge admits.
func (l *edgeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrIP(c.RemoteAddr())
		if l.e.admitConn(ip) {
			return &edgeConn{Conn: c, e: l.e, src: ip}, nil
		}
		c.Close()
	}
}

// admitConn decides about a new TCP connection from ip.
func (e *edge) admitConn(ip netip.Addr) bool {
	if e.trunkIndex(ip) >= 0 {
		return true
	}
	now := e.now()
	switch {
	case e.limiter.isBanned(ip, now):
		e.m.dropped[dropBanned].Inc()
		return false
	case !e.limiter.allow(ip, now):
		e.m.dropped[dropRateLimited].Inc()
		return false
	}
	return true
}

// edgeConn frames a TCP stream into messages by their Content-Length (RFC 3261 §18.3) and
// hands sipgo, one Read at a time, only the messages the edge passes. A stream that cannot
// be framed (no Content-Length, a header section or body over the limits) is answered
// when it can be and then ended: sipgo sees the end of the stream and closes it.
type edgeConn struct {
	net.Conn
	e   *edge
	src netip.Addr

	// Used by the reading goroutine only.
	sc         scan
	in         []byte // bytes read: in[start:end] are not framed yet
	start, end int
	out        []byte // the rest of a passed message, for the next Reads
	err        error  // the stream's end: returned once out is empty
	ans        []byte
	norm       []byte // a tightened copy of a lax message (normalize)

	wmu sync.Mutex // one writer at a time: sipgo's messages and the edge's answers
}

// errStreamEnded ends a stream the edge cannot frame; sipgo takes it as the peer's EOF.
var errStreamEnded = io.EOF

// Read returns the next bytes of messages the edge passed.
func (c *edgeConn) Read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.err != nil {
			return 0, c.err
		}
		if c.frame() {
			continue
		}
		if c.err == nil {
			c.fill()
		}
	}
}

// frame takes the next message (or keep-alive) off the buffer: passed ones go to out.
// It reports false when more bytes are needed or the stream ended.
func (c *edgeConn) frame() bool {
	data := c.in[c.start:c.end]
	if len(data) == 0 {
		return false
	}
	if data[0] == '\r' || data[0] == '\n' {
		// CRLF keep-alives between messages (RFC 5626 §3.5.1): sipgo answers a ping.
		k := 0
		for k < len(data) && k < 4 && (data[k] == '\r' || data[k] == '\n') {
			k++
		}
		c.start += k
		c.out = data[:k]
		return true
	}
	lim := &c.e.lim
	he := bytes.Index(data, []byte("\r\n\r\n"))
	if he < 0 {
		if len(data) > lim.maxHeader {
			c.endStream(data, faultTooLarge)
		}
		return false
	}
	head := data[:he+4]
	if len(head) > lim.maxHeader {
		c.endStream(head, faultTooLarge)
		return false
	}
	c.sc.readMessage(head, true, lim)
	if c.sc.clen < 0 || c.sc.clen > lim.maxBody {
		c.endStream(head, fault{})
		return false
	}
	total := len(head) + c.sc.clen
	if len(data) < total {
		return false
	}
	msg := data[:total]
	c.start += total
	switch c.e.inspect(&c.sc, msg, c.src, true) {
	case actPass:
		if c.sc.lax && c.sc.request {
			c.norm = normalize(c.norm[:0], msg, &c.sc)
			msg = c.norm
		}
		c.e.remember(msg, c.RemoteAddr(), c)
		c.out = msg
	case actAnswer:
		c.answer(msg)
	}
	return true
}

// endStream answers the message that cannot be framed when the edge would answer it (f,
// when set, is its fault), then ends the stream.
func (c *edgeConn) endStream(head []byte, f fault) {
	act := c.e.inspect(&c.sc, head, c.src, true)
	if f.code != 0 && c.sc.request && act != actDrop {
		c.sc.fault = f
		act = c.e.refuse(&c.sc, head)
	}
	switch {
	case act == actAnswer:
		c.answer(head)
	case act == actPass || !c.sc.request:
		c.e.m.dropped[dropStream].Inc()
	}
	c.err = errStreamEnded
}

func (c *edgeConn) answer(msg []byte) {
	c.ans = c.e.appendAnswer(c.ans[:0], &c.sc, msg)
	if c.sendAnswer(c.ans, nil) == nil {
		c.e.answered(c.sc.fault)
	}
}

// fill reads more of the stream, after moving what is not framed yet to the buffer's front.
func (c *edgeConn) fill() {
	if c.in == nil {
		c.in = make([]byte, c.e.lim.maxHeader+c.e.lim.maxBody+4)
	}
	if c.start == c.end {
		c.start, c.end = 0, 0
	} else if c.end == len(c.in) {
		c.end = copy(c.in, c.in[c.start:c.end])
		c.start = 0
	}
	n, err := c.Conn.Read(c.in[c.end:])
	c.end += n
	if err != nil && n == 0 {
		c.err = err
	}
}

// Write sends sipgo's messages.
func (c *edgeConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.Write(b)
}

// sendAnswer sends the edge's answer on the connection, waiting at most 2 s for a peer
// that does not read.
func (c *edgeConn) sendAnswer(b []byte, _ net.Addr) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Conn.Write(b)
	c.Conn.SetWriteDeadline(time.Time{})
	return err
}
