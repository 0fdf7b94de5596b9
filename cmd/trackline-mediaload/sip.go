package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

const (
	// answerTimeout bounds one call's setup, INVITE to 200 (RFC 3261 Timer B).
	answerTimeout = 32 * time.Second
	// byeTimeout bounds one BYE transaction.
	byeTimeout = 5 * time.Second
	// callerPrefix + 8 digits of the call index is the caller number the trunk presents;
	// the line finds the call by the last 8 digits of the caller the switch passes on.
	callerPrefix = "+316"
)

// peer is one sipgo user agent on a UDP socket of its own: the trunk or the line.
type peer struct {
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	conn    *net.UDPConn
	addr    netip.AddrPort
	contact sipmsg.ContactHeader
}

func newPeer(addr netip.AddrPort, log *slog.Logger) (*peer, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("listen sip: %w", err)
	}
	// A burst of setups or BYEs must not overflow the socket (capped by net.core.rmem_max).
	conn.SetReadBuffer(4 << 20)
	conn.SetWriteBuffer(4 << 20)
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	host, port := local.Addr().String(), int(local.Port())
	p := &peer{conn: conn, addr: local,
		contact: sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: host, Port: port}}}
	if p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("trackline-mediaload"), sipgo.WithUserAgentHostname(host)); err != nil {
		conn.Close()
		return nil, err
	}
	if p.srv, err = sipgo.NewServer(p.ua, sipgo.WithServerLogger(log)); err == nil {
		p.cli, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname(host), sipgo.WithClientPort(port),
			sipgo.WithClientConnectionAddr(local.String()), sipgo.WithClientLogger(log))
	}
	if err != nil {
		p.close()
		return nil, err
	}
	p.srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	return p, nil
}

// serve starts serving the socket (register handlers first). The serving goroutine
// returns when close closes the socket.
func (p *peer) serve() {
	go p.srv.ServeUDP(p.conn)
	for range 1000 {
		if c, err := p.ua.TransportLayer().GetConnection("udp", p.addr.String()); err == nil && c != nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *peer) close() {
	if p.ua != nil {
		p.ua.Close()
	}
	p.conn.Close()
}

// callState is one call of the run.
type callState struct {
	hangup      chan struct{} // closed to make the trunk hang up
	lineClaimed atomic.Bool   // the line has taken the call
	up          atomic.Bool   // answered; set before the ramp's Done

	// Written by the call's trunk goroutine, read after it has ended.
	fail     string // why setup failed: a status code, "timeout", "sdp", ...
	setup    time.Duration
	answered time.Time
	ended    time.Time
	dropped  bool // the far end hung up first
	byeFail  bool
}

func callerNumber(call int) string { return fmt.Sprintf("%s%08d", callerPrefix, call) }

// callIndex finds the call from the caller number the line sees: its last 8 digits.
func callIndex(user string, calls int) (int, bool) {
	var d []byte
	for i := range len(user) {
		if c := user[i]; c >= '0' && c <= '9' {
			d = append(d, c)
		}
	}
	if len(d) < 8 {
		return 0, false
	}
	n, err := strconv.Atoi(string(d[len(d)-8:]))
	if err != nil || n >= calls {
		return 0, false
	}
	return n, true
}

// placeCall is call i's trunk goroutine: INVITE, media once answered, BYE when told.
func (g *gen) placeCall(ctx context.Context, i int, number string) {
	defer g.callsWG.Done()
	c := &g.calls[i]
	start := time.Now()
	d, reason := g.setupCall(ctx, i, number)
	if d == nil {
		c.fail = reason
		g.rampWG.Done()
		return
	}
	defer d.Close()
	c.setup, c.answered = time.Since(start), time.Now()
	c.up.Store(true)
	g.rampWG.Done()

	select {
	case <-c.hangup:
	case <-d.Context().Done():
		c.dropped = true
	case <-ctx.Done():
	}
	g.eng.deactivate(i, trunkToLine)
	if !c.dropped && ctx.Err() == nil {
		bctx, cancel := context.WithTimeout(ctx, byeTimeout)
		if err := d.Bye(bctx); err != nil {
			c.byeFail = true
			g.log.Debug("bye", "call", i, "err", err)
		}
		cancel()
	}
	c.ended = time.Now()
}

// setupCall places call i: its RTP socket, the INVITE with the offer, the answer, the ACK,
// and the trunk's stream. It returns the dialog, or nil and why not.
func (g *gen) setupCall(ctx context.Context, i int, number string) (*sipgo.DialogClientSession, string) {
	fd, port, err := g.eng.openSocket(g.cfg.bind, i, lineToTrunk)
	if err != nil {
		g.log.Warn("rtp socket", "call", i, "err", err)
		return nil, "socket"
	}
	sw := g.cfg.switchAddr
	to := sipmsg.Uri{Scheme: "sip", User: number, Host: sw.Addr().String(), Port: int(sw.Port())}
	req := sipmsg.NewRequest(sipmsg.INVITE, to)
	from := &sipmsg.FromHeader{
		Address: sipmsg.Uri{Scheme: "sip", User: callerNumber(i), Host: g.trunk.contact.Address.Host, Port: g.trunk.contact.Address.Port},
		Params:  sipmsg.NewParams(),
	}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sipmsg.ToHeader{Address: to})
	ct := sipmsg.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.SetBody(sdpBody("trunk", rand.Uint64()>>1, g.cfg.bind, port))

	sctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	d, err := g.trunkDialogs.WriteInvite(sctx, req)
	if err != nil {
		g.log.Warn("invite", "call", i, "err", err)
		return nil, "transport"
	}
	if err := d.WaitAnswer(sctx, sipgo.AnswerOptions{}); err != nil {
		d.Close()
		var de *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &de):
			return nil, strconv.Itoa(de.Res.StatusCode)
		case ctx.Err() != nil:
			return nil, "aborted"
		case sctx.Err() != nil:
			return nil, "timeout"
		}
		g.log.Warn("invite", "call", i, "err", err)
		return nil, "error"
	}
	if err := d.Ack(sctx); err != nil {
		g.log.Warn("ack", "call", i, "err", err)
	}
	remote, err := sdpAudioAddr(d.InviteResponse.Body())
	if err == nil && !remote.Addr().IsLoopback() {
		err = fmt.Errorf("%s is not a loopback address", remote.Addr())
	}
	if err != nil {
		g.log.Warn("switch answer", "call", i, "err", err)
		bctx, bcancel := context.WithTimeout(ctx, byeTimeout)
		d.Bye(bctx)
		bcancel()
		d.Close()
		return nil, "sdp"
	}
	g.eng.activate(i, trunkToLine, fd, remote)
	return d, ""
}

// answerCall is the line's INVITE handler: it finds the call from the caller number,
// answers with an RTP port of its own, and sends media until the call ends.
func (g *gen) answerCall(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		// A re-INVITE: not part of the benchmark (RFC 3261 §14.2 allows refusing it).
		tx.Respond(sipmsg.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	g.lineLive.Add(1)
	defer g.lineLive.Add(-1)
	from := req.From()
	i, ok := 0, false
	if from != nil {
		i, ok = callIndex(from.Address.User, len(g.calls))
	}
	if !ok || !g.calls[i].lineClaimed.CompareAndSwap(false, true) {
		g.lineRejected.Add(1)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 404, "Not Found", nil))
		return
	}
	remote, err := sdpAudioAddr(req.Body())
	if err == nil && !remote.Addr().IsLoopback() {
		err = fmt.Errorf("%s is not a loopback address", remote.Addr())
	}
	if err != nil {
		g.log.Warn("line offer", "call", i, "err", err)
		g.lineFailed.Add(1)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	ip := g.line.addr.Addr()
	fd, port, err := g.eng.openSocket(ip, i, trunkToLine)
	if err != nil {
		g.log.Warn("rtp socket", "call", i, "err", err)
		g.lineFailed.Add(1)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 503, "Service Unavailable", nil))
		return
	}
	d, err := g.lineDialogs.ReadInvite(req, tx)
	if err != nil {
		g.lineFailed.Add(1)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	defer d.Close()
	if g.cfg.ring > 0 {
		d.Respond(180, "Ringing", nil)
		t := time.NewTimer(g.cfg.ring)
		select {
		case <-t.C:
		case <-g.ctx.Done():
		}
		t.Stop()
	}
	// Blocks until the switch's ACK.
	if err := d.RespondSDP(sdpBody("line", rand.Uint64()>>1, ip, port)); err != nil {
		g.log.Warn("line answer", "call", i, "err", err)
		g.lineFailed.Add(1)
		return
	}
	g.eng.activate(i, lineToTrunk, fd, remote)
	g.lineUp.Add(1)
	select {
	case <-d.Context().Done():
	case <-g.ctx.Done():
	}
	g.eng.deactivate(i, lineToTrunk)
}

// handlers registers both peers' request handlers.
func (g *gen) handlers() {
	g.trunk.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if err := g.trunkDialogs.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		}
	})
	g.line.srv.OnInvite(g.answerCall)
	g.line.srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		g.lineDialogs.ReadAck(req, tx)
	})
	g.line.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if err := g.lineDialogs.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		}
	})
}
