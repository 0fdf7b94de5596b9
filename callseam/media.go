package callseam

import (
	"context"
	"errors"
	"net/netip"

	"github.com/trackline/trackline/store"
)

// Errors a Media returns from Anchor and from MediaSession methods that take SDP. An offer
// the anchor cannot carry is answered 488, a malformed one 400.
var (
	ErrNotAcceptable = errors.New("no acceptable media")
	ErrBadSDP        = errors.New("malformed SDP")
)

// CallInfo is what a Media learns about a call when it is set up.
type CallInfo struct {
	CallID     string // trackline's call id
	CustomerID string
	Dialled    string
	Channel    string
	Start      int64 // Unix nanoseconds of the INVITE
	// CallerSignal is the IP the trunk's INVITE came from; CallerNAT and CalleeNAT say that
	// the operator marked the trunk or the business lines as behind NAT. The anchor latches a
	// leg's RTP only onto the IP its SDP names or, behind NAT, onto the signalling's IP.
	CallerSignal netip.Addr
	CallerNAT    bool
	CalleeNAT    bool
	// Anchor asks for anchored media whatever the customer's recording and prompts: a
	// business line is a browser agent, whose audio only the anchor can bridge.
	Anchor bool

	// NotRecorded is set by Anchor when the customer records calls but this one is not
	// recorded, with the reason (e.g. consent not confirmed).
	NotRecorded string
}

// Media is the seam through which RTP is anchored. When Anchor returns a nil session the
// SDP passes through untouched (direct media), the cheapest path.
type Media interface {
	Anchor(ctx context.Context, call *CallInfo, offer []byte) (MediaSession, error)
}

// MediaSession is one anchored call's media. Its methods are called from the call's owner
// goroutine, except Rewrite, which in-dialog requests call (one at a time).
type MediaSession interface {
	// Offer is the SDP to send to the business line in place of the caller's.
	Offer() []byte
	// CallerSDP is the answer for the caller, the same in 183 and 200.
	CallerSDP() []byte
	// Early reports whether a disclaimer plays as early media: the caller gets 183 with
	// CallerSDP at once, and the business line's 180/183 are not relayed.
	Early() bool
	// Callee takes the business line's SDP (from 183 or 200) and the IP that response came
	// from (invalid when there is none, e.g. a browser agent): where the line is behind NAT,
	// its RTP may come from there.
	Callee(sdp []byte, signal netip.Addr) error
	// Answered tells the media that the business line answered (a whisper prompt starts).
	Answered()
	// Ready is closed when the call may be bridged: the disclaimer and whisper are over.
	Ready() <-chan struct{}
	// Bridge connects the legs; recording starts here.
	Bridge()
	// Rewrite turns SDP from one leg (fromCaller) into the SDP for the other, in dialog.
	Rewrite(fromCaller bool, sdp []byte) ([]byte, error)
	// Done is closed when the media ends the call (no RTP within the timeout).
	Done() <-chan struct{}
	// Close releases the media, completes rec's media fields and returns the call's
	// recording, or nil.
	Close(rec *store.Call) *store.Recording
	// CloseThen is Close without waiting for the recording to be finished (its fsync): it
	// releases the media and completes rec's media fields at once. It returns false when
	// there is no recording to finish (then is never called); else then gets the call's
	// recording, or nil when it could not be finished, exactly once, when the recording is
	// durable: from another goroutine, possibly before CloseThen returns. then must not
	// block.
	CloseThen(rec *store.Call, then func(*store.Recording)) bool
}
