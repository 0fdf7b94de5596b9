package sip

import sipmsg "github.com/emiago/sipgo/sip"

// A switch whose store cannot be reached (a shared PostgreSQL down or restarting) refuses new
// calls rather than take calls it cannot record: new INVITEs and a dispatcher's OPTIONS pings
// get 503 Service Unavailable with a Retry-After of storeDownRetry seconds, as while draining,
// so Kamailio takes the node out at its next ping and sends new calls elsewhere (or answers
// 503 itself when every node's store is down). The calls in progress go on. The process's
// watcher of the store (cmd/trackline) sets it and lifts it once the store answers again: no
// restart. Unlike a drain, it is no operator's to lift, and Listening is unchanged (the
// store's own readiness check reports it).

// storeDownRetry is the Retry-After, in seconds, of the 503s while the store is down: a
// restart of the database takes seconds.
const storeDownRetry = "5"

// SetStoreDown records whether the store can be reached; it answers whether that changed.
func (s *Switch) SetStoreDown(down bool) bool {
	return s.storeDown.Swap(down) != down
}

// StoreDown tells whether new calls are refused because the store cannot be reached.
func (s *Switch) StoreDown() bool { return s.storeDown.Load() }

// refusing tells whether a new call or a ping gets 503 now, and with which Retry-After.
func (s *Switch) refusing() (bool, sipmsg.Header) {
	if s.draining.Load() {
		return true, s.retryAfter()
	}
	if s.storeDown.Load() {
		return true, sipmsg.NewHeader("Retry-After", storeDownRetry)
	}
	return false, nil
}
