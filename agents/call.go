package agents

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/pion/webrtc/v4"
)

// callState is where a call offered to agents is.
type callState uint8

const (
	stateUnknown   callState = iota
	stateRinging             // ringing on every idle agent of the group
	stateAccepted            // one agent accepted; its media is being connected
	stateConnected           // the agent's media is up
	stateEnded
)

var stateNames = [...]string{"unknown", "ringing", "accepted", "connected", "ended"}

func (s callState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// eventKind is what the signalling tells a call's Ring goroutine.
type eventKind uint8

const (
	evUnknown  eventKind = iota
	evAccepted           // an agent accepted
	evAllGone            // every ringing agent rejected or left
	evAnswer             // the accepting agent's SDP answer
)

type event struct {
	kind eventKind
	a    *agent
	sdp  string
}

// call is one call offered to an agent group. Its Ring goroutine (the sip call's owner)
// rings, connects the winner's media and hands the call back as a callseam.AgentCall.
type call struct {
	h      *Hub
	id     string
	r      callseam.AgentRing
	law    law
	anchor netip.AddrPort // the anchor's RTP socket of the business line leg
	events chan event

	// Guarded by h.mu.
	state    callState
	ringers  map[*agent]struct{}
	winner   *agent
	answered bool // the winner's answer has come

	// The media bridge, guarded by mu until ended.
	mu     sync.Mutex
	ended  bool
	pc     *webrtc.PeerConnection
	sock   *net.UDPConn
	pumps  sync.WaitGroup
	sdp    []byte
	failed sync.Once // counts the media failure once

	done    chan struct{}
	endOnce sync.Once
}

var _ callseam.AgentCall = (*call)(nil)

// AgentID implements callseam.AgentCall.
func (c *call) AgentID() string { return c.winner.tokenID }

// SDP implements callseam.AgentCall.
func (c *call) SDP() []byte { return c.sdp }

// Done implements callseam.AgentCall.
func (c *call) Done() <-chan struct{} { return c.done }

// Hangup implements callseam.AgentCall.
func (c *call) Hangup(reason string) {
	if reason == "" {
		reason = "ended"
	}
	c.end(reason, false)
}

// Ring implements callseam.Agents.
func (h *Hub) Ring(ctx context.Context, r callseam.AgentRing) (callseam.AgentCall, error) {
	lw, anchorPort, err := parseOffer(r.Offer)
	if err != nil {
		h.m.calls.WithLabelValues(outMediaFailed).Inc()
		return nil, fmt.Errorf("%w: %v", callseam.ErrAgentMedia, err)
	}
	c := &call{h: h, id: r.CallID, r: r, law: lw, anchor: netip.AddrPortFrom(h.cfg.MediaIP, anchorPort),
		events: make(chan event, 4), state: stateRinging, done: make(chan struct{})}
	h.mu.Lock()
	ringers := h.idle(r.CustomerID, r.Group)
	if len(ringers) == 0 || h.closed || h.calls[c.id] != nil {
		h.mu.Unlock()
		h.m.calls.WithLabelValues(outNoAgent).Inc()
		return nil, callseam.ErrNoAgent
	}
	c.ringers = map[*agent]struct{}{}
	h.calls[c.id] = c
	ring := outMsg{Type: msgRing, CallID: c.id, Caller: r.Caller, Dialled: r.Dialled, Group: r.Group, Channel: r.Channel,
		Keyword: r.Keyword, LandingPage: r.LandingPage, RingSeconds: int((r.RingTimeout + time.Second - 1) / time.Second)}
	for _, a := range ringers {
		c.ringers[a] = struct{}{}
		a.ringing[c.id] = c
		a.send(ring)
	}
	h.mu.Unlock()
	if r.Ringing != nil {
		r.Ringing()
	}

	timer := time.NewTimer(r.RingTimeout)
	defer timer.Stop()
	var winner *agent
	for winner == nil {
		select {
		case <-ctx.Done():
			h.stopRinging(c, "caller_hung_up")
			h.m.calls.WithLabelValues(outCancelled).Inc()
			return nil, ctx.Err()
		case <-timer.C:
			h.stopRinging(c, "timeout")
			h.m.calls.WithLabelValues(outNoAnswer).Inc()
			return nil, callseam.ErrAgentNoAnswer
		case ev := <-c.events:
			switch ev.kind {
			case evAllGone:
				h.stopRinging(c, "rejected")
				h.m.calls.WithLabelValues(outRejected).Inc()
				return nil, callseam.ErrAgentRejected
			case evAccepted:
				winner = ev.a
			}
		}
	}
	if err := c.connect(ctx, winner); err != nil {
		if ctx.Err() != nil {
			c.end("caller_hung_up", false)
			h.m.calls.WithLabelValues(outCancelled).Inc()
			return nil, ctx.Err()
		}
		c.end("media_failed", false)
		h.m.calls.WithLabelValues(outMediaFailed).Inc()
		h.log.Info("agent media failed", "call_id", c.id, "agent", winner.tokenID, "err", err)
		return nil, fmt.Errorf("%w: %v", callseam.ErrAgentMedia, err)
	}
	h.m.calls.WithLabelValues(outAnswered).Inc()
	h.log.Info("agent answered", "call_id", c.id, "agent", winner.tokenID)
	return c, nil
}

// stopRinging ends a call that Ring gives up on: the agents still ringing stop, with the
// reason; an agent that accepted in the meantime is told the call is gone.
func (h *Hub) stopRinging(c *call, reason string) {
	h.mu.Lock()
	for a := range c.ringers {
		delete(a.ringing, c.id)
		a.send(outMsg{Type: msgCancel, CallID: c.id, Reason: reason})
	}
	c.ringers = nil
	accepted := c.state == stateAccepted
	if !accepted {
		c.state = stateEnded
		if h.calls[c.id] == c {
			delete(h.calls, c.id)
		}
	}
	h.mu.Unlock()
	if accepted {
		c.end(reason, false)
	}
}

// dropRinger removes an agent from a ringing call; the call's Ring goroutine learns when
// none is left. Called under h.mu.
func (h *Hub) dropRinger(c *call, a *agent) {
	if _, ok := c.ringers[a]; !ok {
		return
	}
	delete(c.ringers, a)
	if c.state == stateRinging && len(c.ringers) == 0 {
		c.post(event{kind: evAllGone})
	}
}

// post hands an event to the call's Ring goroutine without blocking: at most one accept, one
// all-gone and one answer are ever posted, within the channel's room.
func (c *call) post(ev event) {
	select {
	case c.events <- ev:
	default:
	}
}

// accept gives a ringing call to the first agent that takes it; the others stop ringing, and
// so do the winner's other rings.
func (h *Hub) accept(a *agent, id string) *protoError {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := a.ringing[id]
	if c == nil {
		if c := h.calls[id]; c != nil && c.winner == a {
			return refuse(errBadField, id, "the call is accepted already")
		}
		return unknownCall(id)
	}
	if a.busy != nil {
		return refuse(errBusy, id, "this page is in a call already")
	}
	c.state, c.winner, a.busy = stateAccepted, a, c
	delete(a.ringing, id)
	delete(c.ringers, a)
	for o := range c.ringers {
		delete(o.ringing, id)
		o.send(outMsg{Type: msgCancel, CallID: id, Reason: "answered_elsewhere"})
	}
	c.ringers = nil
	for oid, oc := range a.ringing {
		delete(a.ringing, oid)
		h.dropRinger(oc, a)
		a.send(outMsg{Type: msgCancel, CallID: oid, Reason: "busy"})
	}
	c.post(event{kind: evAccepted, a: a})
	return nil
}

// reject stops a call ringing on one agent's page.
func (h *Hub) reject(a *agent, id string) *protoError {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := a.ringing[id]
	if c == nil {
		return unknownCall(id)
	}
	delete(a.ringing, id)
	h.dropRinger(c, a)
	a.send(outMsg{Type: msgCancel, CallID: id, Reason: "rejected"})
	return nil
}

// answer passes the accepting agent's SDP answer to the call's Ring goroutine.
func (h *Hub) answer(a *agent, id, sdp string) *protoError {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls[id]
	if c == nil || c.winner != a {
		return unknownCall(id)
	}
	if c.state != stateAccepted || c.answered {
		return refuse(errBadField, id, "the call is not waiting for an answer")
	}
	c.answered = true
	c.post(event{kind: evAnswer, a: a, sdp: sdp})
	return nil
}

// hangup ends the agent's call, or rejects a call ringing on its page.
func (h *Hub) hangup(a *agent, id string) *protoError {
	h.mu.Lock()
	if a.ringing[id] != nil {
		h.mu.Unlock()
		return h.reject(a, id)
	}
	c := h.calls[id]
	h.mu.Unlock()
	if c == nil || c.winner != a {
		return unknownCall(id)
	}
	c.end("agent", true)
	return nil
}

// errEnded reports a call that ended while its media was being connected.
var errEnded = errors.New("the call ended")

// end ends an accepted call once: Done closes, the media bridge closes, the agent is free
// again and, unless it ended the call itself, its page is told why.
func (c *call) end(reason string, byAgent bool) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.ended = true
		pc, sock := c.pc, c.sock
		c.mu.Unlock()
		close(c.done)
		if sock != nil {
			sock.Close()
		}
		if pc != nil {
			pc.Close()
		}
		c.pumps.Wait()
		h := c.h
		h.mu.Lock()
		if h.calls[c.id] == c {
			delete(h.calls, c.id)
		}
		w := c.winner
		if w != nil && w.busy == c {
			w.busy = nil
		}
		c.state = stateEnded
		h.mu.Unlock()
		if w != nil && !byAgent {
			w.send(outMsg{Type: msgEnded, CallID: c.id, Reason: reason})
		}
		if w != nil {
			h.log.Info("agent call ended", "call_id", c.id, "agent", w.tokenID, "reason", reason)
		}
	})
}
