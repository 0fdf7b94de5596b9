// Package pool is dynamic number insertion: it hands each website session a tracked number
// from its customer's pool, classifies the visit's channel, and maps a call on a number at a
// moment back to the session (or static channel) that number stood for.
//
// It knows nothing of SIP or HTTP. It keeps an in-memory index of every customer, number and
// live lease, rebuilt from the store at start, and persists every change through the store's
// group-commit writer before answering, so attribution survives a crash.
//
// Leases. A lease runs for Config.Lease after the last touch. A number is available again
// only after its last lease ended and the attribution grace window passed, so a late call is
// not attributed to a newer visitor. Every pool number sits in one min-heap per customer keyed
// by the end of its last lease: the minimum is the least recently used available number; if
// even that one is inside the grace window or still leased, the pool is exhausted and it is
// reused anyway (the lease that ended longest ago, else the least recently touched live one),
// and the exhaustion is counted.
//
// Attribution. Each number keeps its last few assignments in memory, newest first; older
// moments are answered from the store's assignment index.
//
// Caveat: a session id given by a client is only honoured if the store knows it for the same
// customer; otherwise a new id is minted.
package pool
