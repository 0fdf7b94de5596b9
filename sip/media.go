package sip

import "context"

// CallInfo is what a Media learns about a call when it is set up.
type CallInfo struct {
	CallID     string // trackline's call id
	CustomerID string
	Dialled    string
	Channel    string
}

// Media is the seam through which RTP is anchored. When Anchor returns a nil session the
// SDP passes through untouched (direct media), the cheapest path.
type Media interface {
	Anchor(ctx context.Context, call CallInfo, offer []byte) (MediaSession, error)
}

// MediaSession is one anchored call's media.
type MediaSession interface {
	// Offer is the SDP to send to the business line in place of the caller's.
	Offer() []byte
	// Answer takes the business line's SDP answer and returns the SDP for the caller.
	Answer(remote []byte) ([]byte, error)
	// Close releases the call's media resources.
	Close() error
}
