package sip

import (
	"context"
	"errors"
	"time"

	"github.com/trackline/trackline/callseam"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Business lines of the form "webrtc:<group>" ring the browser agents of that group instead
// of a SIP URI. The agents live behind the callseam.Agents seam (package agents implements
// it); the call's owner goroutine treats an answering agent like an answering SIP line: the anchor
// takes the agent's SDP as the business line's, so the disclaimer, whisper and recording
// rules apply unchanged and the recording's right channel is the agent's audio.

// agentScheme starts a business line that rings browser agents.
const agentScheme = "webrtc:"

// WithAgents lets business lines ring browser agents ("webrtc:<group>").
func WithAgents(a callseam.Agents) Option { return func(s *Switch) { s.agents = a } }

// agentGroup returns the group of a "webrtc:<group>" business line.
func agentGroup(line string) (string, bool) {
	if len(line) <= len(agentScheme) || line[:len(agentScheme)] != agentScheme {
		return "", false
	}
	return line[len(agentScheme):], true
}

// hasAgentLine reports whether a customer's lines include a browser agent group.
func hasAgentLine(lines []string) bool {
	for _, l := range lines {
		if _, ok := agentGroup(l); ok {
			return true
		}
	}
	return false
}

// ringAgents rings the browser agents of a group until one answers, none is left, the ring
// timeout passes or the caller gives up.
func (s *Switch) ringAgents(c *call, group string, ms callseam.MediaSession, timeout time.Duration, start time.Time) (callseam.AgentCall, ringResult) {
	if s.agents == nil || ms == nil {
		// Without the anchor (a late offer) the caller's RTP cannot reach a browser.
		c.log.Info("business line skipped: browser agents need anchored media", "line", agentScheme+group,
			"agents", s.agents != nil, "anchored", ms != nil)
		return nil, ringResult{code: 480}
	}
	ctx, cancel := context.WithCancel(c.a.Context())
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	ag, err := s.agents.Ring(ctx, callseam.AgentRing{
		CallID: c.id, CustomerID: c.rec.CustomerID, Group: group, Caller: c.caller, Dialled: c.rec.Dialled,
		Channel: c.rec.Channel, Keyword: c.rec.Keyword, LandingPage: c.rec.LandingPage,
		Offer: ms.Offer(), RingTimeout: timeout,
		Ringing: func() { s.agentsRinging(c, ms, start) },
	})
	if err == nil {
		s.m.setup.WithLabelValues("answer").Observe(s.now().Sub(start).Seconds())
		return ag, ringResult{}
	}
	switch {
	case c.a.Context().Err() != nil:
		c.hungUpBy(legCaller)
		return nil, ringResult{cancelled: true}
	case errors.Is(err, callseam.ErrAgentNoAnswer):
		return nil, ringResult{noAnswer: true}
	}
	c.log.Info("browser agents did not answer", "line", agentScheme+group, "err", err)
	return nil, ringResult{code: 480}
}

// agentsRinging marks the call ringing and, unless the disclaimer plays as early media,
// tells the caller with 180.
func (s *Switch) agentsRinging(c *call, ms callseam.MediaSession, start time.Time) {
	if c.rec.Ringing.IsZero() {
		c.rec.Ringing = s.now().UTC()
		s.m.setup.WithLabelValues("provisional").Observe(s.now().Sub(start).Seconds())
	}
	if ms.Early() {
		return
	}
	s.answer(c.a, 180, "Ringing", nil)
}

// answerInDialog answers the caller's in-dialog requests in a call that a browser agent took:
// there is no SIP dialog to forward them to. A re-INVITE or UPDATE (a session refresh, a
// new address) updates the anchor's caller leg and is answered with the anchor's SDP; INFO
// and OPTIONS get 200.
//
// Caveat: the answer to a hold (a=sendonly) keeps the anchor's direction; the anchor itself
// treats the call as held (no RTP timeout) until the caller resumes.
func (s *Switch) answerInDialog(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if err := c.a.ReadRequest(req, tx); err != nil {
		s.respond(req, tx, 500, "Server Internal Error", sipmsg.NewHeader("Retry-After", "1"))
		return
	}
	var body []byte
	if req.IsInvite() || req.Method == sipmsg.UPDATE {
		if len(req.Body()) > 0 && isSDP(req.ContentType()) {
			c.fwdMu.Lock()
			_, err := c.ms.Rewrite(true, req.Body())
			c.fwdMu.Unlock()
			if err != nil {
				c.log.Info("in-dialog SDP refused", "err", err)
				s.respond(req, tx, 488, "Not Acceptable Here")
				return
			}
		}
		body = c.ms.CallerSDP()
	}
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", body)
	if len(body) > 0 {
		ct := sipmsg.ContentTypeHeader("application/sdp")
		res.AppendHeader(&ct)
	}
	if req.IsInvite() {
		contact := s.dialogUA(req.Transport()).ContactHDR
		res.AppendHeader(&contact)
	}
	if err := s.send(tx, res); err != nil {
		c.log.Debug("answer in-dialog request", "err", err)
	}
}
