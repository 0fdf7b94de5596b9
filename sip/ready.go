package sip

// Listening reports whether the switch takes new calls: its UDP and TCP sockets are bound
// (Listen succeeded) and it is neither draining nor closed. It is the SIP part of the
// process's readiness (/readyz); it does not notice a socket that failed under sipgo, which
// only ends its serve loops on Close.
func (s *Switch) Listening() bool {
	return s.addr.IsValid() && s.udp != nil && s.tcp != nil && !s.draining.Load()
}
