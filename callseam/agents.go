package callseam

import (
	"context"
	"errors"
	"time"
)

// Business lines of the form "webrtc:<group>" ring browser agents instead of a SIP URI. The
// call's owner treats an answering agent like an answering SIP line: the anchor takes the
// agent's SDP as the business line's.

// Errors an Agents returns from Ring. Each one lets the switch try the next business line;
// the caller gets 480 when none is left.
var (
	ErrNoAgent       = errors.New("no agent of the group is online")
	ErrAgentRejected = errors.New("every ringing agent rejected the call")
	ErrAgentNoAnswer = errors.New("no agent accepted within the ring timeout")
	ErrAgentMedia    = errors.New("the agent's media did not connect")
)

// Agents rings browser agents.
type Agents interface {
	// Ring rings every online agent of r.Group at once and returns the first that accepts,
	// once its media is connected. It returns one of the errors above, or ctx's error when
	// the caller gave up first.
	Ring(ctx context.Context, r AgentRing) (AgentCall, error)
}

// AgentRing is a call offered to an agent group, with what the agent page shows of it.
type AgentRing struct {
	CallID      string
	CustomerID  string
	Group       string
	Caller      string
	Dialled     string
	Channel     string
	Keyword     string
	LandingPage string
	// Offer is the anchor's SDP for the business line: where to send the agent's audio and
	// the G.711 law to use first.
	Offer []byte
	// RingTimeout bounds the wait for an agent to accept.
	RingTimeout time.Duration
	// Ringing is called (once) when the first agent's page rings.
	Ringing func()
}

// AgentCall is an answered agent.
type AgentCall interface {
	// AgentID names the agent (its token's id) for the call record.
	AgentID() string
	// SDP is the agent leg's answer for the anchor, as a SIP line's 200 would carry it.
	SDP() []byte
	// Done is closed when the agent hangs up, closes its page or its media fails.
	Done() <-chan struct{}
	// Hangup ends the agent's side with the reason shown on its page; it is idempotent and
	// releases everything the call holds.
	Hangup(reason string)
}
