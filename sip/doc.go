// Package sip is trackline's back-to-back user agent (B2BUA): it takes calls on tracked
// numbers from the telecom trunk, writes the attributed call record, and bridges each call to
// the customer's business line as a second, independent dialog.
//
// One goroutine owns each call: the INVITE handler. It answers 100 Trying, routes the dialled
// number through package pool, writes the call record durably, rings the business lines in
// order (failover), relays provisional and final answers, waits on both dialogs while the call
// is up, hangs up the survivor, and completes the record (a recorded call's record is
// completed once its recording is durable, by a writer of its own: complete.go; the call's
// goroutine ends at the hang-up). In-dialog requests (ACK, BYE,
// re-INVITE, UPDATE, INFO, OPTIONS) are matched to their call through a table indexed by both
// legs' dialog ids and forwarded to the other leg.
//
// SDP passes through unchanged unless a Media anchors the call (package media, through the
// callseam.Media interface, which lives below both). A business line "webrtc:<group>" rings
// browser agents through callseam.Agents (package agents): such a call is always anchored, and
// the agent's SDP takes the place of a SIP line's answer; the caller's in-dialog requests are then answered
// here, since there is no second dialog to forward them to.
//
// sipgo's message package is imported as sipmsg in every file, to keep it apart from this one.
//
// Caveats (sipgo v1.7.2): sip.ServerTransactionContext is inverted and not used; finished
// transactions are kept 64*T1 by sipgo, so the memory of a call outlives it by ~32 s; header
// values that we build from caller input are checked for CR/LF here because sipgo does not.
package sip
