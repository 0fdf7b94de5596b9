package sip

import (
	"strconv"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Draining, for a dispatcher in front of several switches (configs/kamailio, docs/cluster.md).
//
// A draining switch answers new INVITEs and out-of-dialog OPTIONS with 503 Service
// Unavailable and a Retry-After, while the calls in progress go on to their end. A
// dispatcher that pings the switch with OPTIONS takes it out of service at its next ping, and
// one that meets the 503 on an INVITE tries another switch: no new call lands here.
//
// A switch drains on shutdown (Drain, Close: SIGTERM), which cannot be undone, and when an
// operator asks for it (SetDraining, the admin API), which the operator can lift again.

// SetDraining starts (on) or lifts (off) an operator's drain and reports whether the switch
// drains afterwards: once a shutdown drain has begun, the switch drains for good.
func (s *Switch) SetDraining(on bool) bool {
	s.admitMu.Lock()
	defer s.admitMu.Unlock()
	if !s.shuttingDown {
		s.draining.Store(on)
	}
	return s.draining.Load()
}

// retryAfter is the Retry-After of a draining switch's 503s (RFC 3261 §20.33): the drain
// timeout, the longest a shutdown drain lasts.
func (s *Switch) retryAfter() sipmsg.Header {
	return sipmsg.NewHeader("Retry-After", strconv.Itoa(int(s.cfg.DrainTimeout.Seconds())))
}
