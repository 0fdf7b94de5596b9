package sip

import (
	"context"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// allowed is what the switch answers in Allow headers.
const allowed = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"

func (s *Switch) handleAck(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.m.requests.WithLabelValues("ACK").Inc()
	if e, ok := s.calls.match(req); ok && e.leg == legCaller {
		e.call.a.ReadAck(req, tx)
	}
	// An ACK is never answered (RFC 3261 §17.1.1.3).
}

// handleBye ends the leg it came from; the call's owner hangs up the other (RFC 3261 §15).
func (s *Switch) handleBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.m.requests.WithLabelValues("BYE").Inc()
	e, ok := s.calls.match(req)
	if !ok {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	e.call.hungUpBy(e.leg)
	var err error
	switch e.leg {
	case legCaller:
		err = e.call.a.ReadBye(req, tx)
	case legCallee:
		if b := e.call.b.Load(); b != nil {
			err = b.ReadBye(req, tx)
		}
	}
	if err != nil {
		s.respond(req, tx, 500, "Server Internal Error")
		return
	}
	s.m.response("sent", 200) // ReadBye answered it (sipgo): the one response not sent by send or answer
}

// handleCancel answers CANCELs that match no pending INVITE; the transaction layer answers
// the others itself (200 for the CANCEL, 487 for the INVITE).
func (s *Switch) handleCancel(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.m.requests.WithLabelValues("CANCEL").Inc()
	s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
}

// handleOptions answers keep-alives outside a dialog and forwards in-dialog OPTIONS.
func (s *Switch) handleOptions(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if req.To() != nil && req.To().Params.Has("tag") {
		s.handleInDialog(req, tx)
		return
	}
	s.m.requests.WithLabelValues("OPTIONS").Inc()
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		s.respond(req, tx, 400, "Bad Request")
		return
	}
	hdrs := []sipmsg.Header{sipmsg.NewHeader("Allow", allowed), sipmsg.NewHeader("Accept", "application/sdp")}
	if down, retry := s.refusing(); down {
		// A dispatcher's ping: take this switch out of service (drain.go, storedown.go).
		s.respond(req, tx, 503, "Service Unavailable", append(hdrs, retry)...)
		return
	}
	s.respond(req, tx, 200, "OK", hdrs...)
}

func (s *Switch) handleNoRoute(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.m.requests.WithLabelValues("other").Inc()
	if req.IsAck() {
		return
	}
	s.respond(req, tx, 405, "Method Not Allowed", sipmsg.NewHeader("Allow", allowed))
}

// handleReInvite forwards a re-INVITE (hold, resume, session refresh) to the other leg.
func (s *Switch) handleReInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.forward(req, tx)
}

// handleInDialog forwards INFO, UPDATE and in-dialog OPTIONS to the other leg.
func (s *Switch) handleInDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.m.requests.WithLabelValues(string(req.Method)).Inc()
	s.forward(req, tx)
}

// forwardedHeaders are copied from an in-dialog request to its twin on the other leg.
var forwardedHeaders = []string{"Content-Type", "Info-Package", "Session-Expires", "Min-SE", "Supported", "Require"}

// forward relays an in-dialog request to the other leg and its final answer back
// (RFC 3261 §12.2: each leg keeps its own dialog; we are UAS on one and UAC on the other).
func (s *Switch) forward(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	e, ok := s.calls.match(req)
	if !ok {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	c := e.call
	if c.agentUp.Load() {
		s.answerInDialog(c, req, tx)
		return
	}
	b := c.b.Load()
	if b == nil || b.InviteResponse == nil {
		s.respond(req, tx, 491, "Request Pending")
		return
	}
	// The caller's dialog takes requests only once its 200 is out and acknowledged (RFC 3261
	// §13.3.1.4); the business line may send as soon as it has answered.
	if e.leg == legCallee {
		select {
		case <-c.confirmed:
		case <-time.After(32 * time.Second): // 64*T1: the caller's 200 is retransmitted no longer
			s.respond(req, tx, 491, "Request Pending")
			return
		}
	}
	// Session changes one at a time: a second re-INVITE or UPDATE while one is pending is
	// glare (RFC 3261 §14.1).
	if req.IsInvite() || req.Method == sipmsg.UPDATE {
		if !c.fwdMu.TryLock() {
			s.respond(req, tx, 491, "Request Pending")
			return
		}
	} else {
		c.fwdMu.Lock()
	}
	reply, ok := s.relay(c, e.leg, b, req, tx)
	c.fwdMu.Unlock() // before answering: the originator may send its next request at once
	if !ok {
		return
	}
	if err := s.send(tx, reply); err != nil {
		c.log.Debug("relay in-dialog answer", "err", err)
	}
}

// relay sends req's twin on the other leg and builds the answer for the originator; it
// answers the originator itself (and returns false) when that fails.
func (s *Switch) relay(c *call, from leg, b *sipgo.DialogClientSession, req *sipmsg.Request, tx sipmsg.ServerTransaction) (*sipmsg.Response, bool) {

	var target sipmsg.Uri
	if from == legCaller {
		if err := c.a.ReadRequest(req, tx); err != nil {
			s.respond(req, tx, 500, "Server Internal Error", sipmsg.NewHeader("Retry-After", "1"))
			return nil, false
		}
		ct := b.InviteResponse.Contact()
		if ct == nil {
			s.respond(req, tx, 500, "Server Internal Error")
			return nil, false
		}
		target = *ct.Address.Clone()
	} else {
		target = *c.a.InviteRequest.Contact().Address.Clone()
	}
	out := sipmsg.NewRequest(req.Method, target)
	for _, name := range forwardedHeaders {
		for _, h := range req.GetHeaders(name) {
			out.AppendHeader(sipmsg.HeaderClone(h))
		}
	}
	if body := req.Body(); len(body) > 0 {
		if c.ms != nil && isSDP(req.ContentType()) {
			var err error
			if body, err = c.ms.Rewrite(from == legCaller, body); err != nil {
				c.log.Info("in-dialog SDP refused", "err", err)
				s.respond(req, tx, 488, "Not Acceptable Here")
				return nil, false
			}
		}
		out.SetBody(body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	var res *sipmsg.Response
	var err error
	if from == legCaller {
		out.SetTransport(b.InviteRequest.Transport())
		res, err = b.Do(ctx, out)
		if err == nil && out.IsInvite() && res.IsSuccess() {
			ack := sipmsg.NewRequest(sipmsg.ACK, target)
			ack.SetTransport(out.Transport())
			err = b.WriteRequest(ack)
		}
	} else {
		out.SetTransport(c.a.InviteRequest.Transport())
		res, err = c.a.Do(ctx, out)
		if err == nil && out.IsInvite() && res.IsSuccess() {
			ack := sipmsg.NewRequest(sipmsg.ACK, target)
			ack.SetTransport(out.Transport())
			err = c.a.WriteRequest(ack)
		}
	}
	if err != nil || res == nil {
		c.log.Info("in-dialog request not answered by the other leg", "method", string(req.Method), "err", err)
		s.respond(req, tx, 408, "Request Timeout")
		return nil, false
	}
	s.m.response("received", res.StatusCode)
	body := res.Body()
	if c.ms != nil && len(body) > 0 && isSDP(res.ContentType()) {
		if body, err = c.ms.Rewrite(from != legCaller, body); err != nil {
			c.log.Info("in-dialog SDP answer refused", "err", err)
			body = nil
		}
	}
	reply := sipmsg.NewResponseFromRequest(req, res.StatusCode, res.Reason, body)
	if h := res.ContentType(); h != nil && len(body) > 0 {
		reply.AppendHeader(sipmsg.HeaderClone(h))
	}
	if req.IsInvite() && res.IsSuccess() {
		contact := s.dialogUA(req.Transport()).ContactHDR
		reply.AppendHeader(&contact)
	}
	if req.IsInvite() && res.IsSuccess() {
		c.log.Debug("session changed", "from", from.String())
	}
	return reply, true
}

func isSDP(h *sipmsg.ContentTypeHeader) bool {
	return h != nil && strings.EqualFold(h.Value(), "application/sdp")
}
