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
// Attribution. Each number keeps its last few assignments in memory, newest first, loaded at
// start from the store's records of the recent window (store.AssignmentSpan + Lease + Grace:
// every lease that may still cover a moment from then on). Older moments are answered from
// the store: the customer's records that began in that window before the moment. A lease
// renewed for longer than store.AssignmentSpan goes on in a new record (a segment of the same
// lease); candidates count sessions, not records. After a restart a number whose last lease
// ended before the window counts as never leased for the choice of the least recently used.
//
// Contract lifecycle (lifecycle.go). A customer is a trial, active or ended, with its dates;
// InService says whether it hands out numbers and takes calls at a moment, so that a trial
// or contract that ran out is refused at once, before any job ran. A contract that ends
// quarantines its numbers (Config.QuarantineMonths); a trial that ends without a contract is
// deleted whole and frees its numbers at once. Purge deletes a customer's records and its
// place in memory; the quarantined numbers of a deleted customer stay held, without an
// owner, until ReleaseDue frees them (not those marked for porting).
//
// Retention (sweep.go). The Sweeper runs the rules periodically on the pool's clock: it ends
// contracts whose end date passed, deletes lapsed trials, deletes (or exports, then deletes)
// the data of ended contracts after their retention period, expires sessions that never led
// to a call, releases numbers and prunes the audit log. Files are not the pool's: the
// sweeper reaches them through the Archive interface (package recordings implements it).
//
// Caveat: a session id given by a client is only honoured if the store knows it for the same
// customer; otherwise a new id is minted.
package pool
