package store

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Leases decided in the database, for nodes that share one pool (package pool's shared
// mode). On bbolt the pool decides in memory (one node) and writes the assignment; on
// PostgreSQL every node of a cluster leases from the same numbers, so the choice is made
// here, under row locks: the session's own number (FOR UPDATE), or else the least recently
// leased available number of the customer that no other transaction holds at this moment
// (FOR UPDATE SKIP LOCKED), so that two nodes never hand out one number at once and neither
// waits for the other. The numbers table keeps each number's current lease (migration
// 00002); the assignments table its history, as on bbolt.

// ErrNoNumbers is LeaseNumber's answer for a customer without available pool numbers.
var ErrNoNumbers = errors.New("store: no available pool numbers")

// ErrNotShared is LeaseNumber's answer on a store that is one node's own (bbolt): there the
// pool leases from memory.
var ErrNotShared = errors.New("store: leases are decided in the store only when it is shared")

// LeaseRequest asks for a lease of one of the customer's pool numbers to a session.
type LeaseRequest struct {
	CustomerID, SessionID string
	// Now is the moment of the lease; it runs until Until.
	Now, Until time.Time
	// Grace is how long after a lease's end a call is still attributed to it: a number taken
	// within it counts as an exhaustion of the pool.
	Grace time.Duration
	// New: the session was made by this request, so it holds no number yet.
	New bool
}

// LeaseResult is the lease made: the assignment record written (its From is when the
// session's hold on the number began or was last renewed in a new record), and whether the
// number was taken while its previous lease was live or in its grace (an exhaustion).
type LeaseResult struct {
	Assignment Assignment
	Exhausted  bool
}

// Shared tells whether several nodes may use the store at once (PostgreSQL): the pool then
// leases through LeaseNumber and reads attributions from the store.
func (db *DB) Shared() bool { return db.pg != nil }

// LeaseNumber renews the session's lease, or gives it the least recently leased available
// number, and writes the assignment. Only on a shared store (ErrNotShared on bbolt).
func (t *Tx) LeaseNumber(r LeaseRequest) (LeaseResult, error) {
	if t.pg == nil {
		return LeaseResult{}, ErrNotShared
	}
	return t.pg.leaseNumber(r)
}

func (t *pgTx) leaseNumber(r LeaseRequest) (LeaseResult, error) {
	now := r.Now.UnixNano()
	a := Assignment{CustomerID: r.CustomerID, SessionID: r.SessionID, From: r.Now, Until: r.Until}
	if !r.New {
		var from, end int64
		err := t.row(`SELECT e164, lease_from_ns, lease_until_ns FROM numbers
			WHERE customer_id = $1 AND lease_session = $2 AND kind = 'pool' AND state = 'available'
			LIMIT 1 FOR UPDATE`, []any{r.CustomerID, r.SessionID}, &a.Number, &from, &end)
		switch {
		case err == nil && now <= end && now-from < int64(AssignmentSpan):
			// A live lease: extended in its record.
			a.From = time.Unix(0, from).UTC()
			return LeaseResult{Assignment: a}, t.holdNumber(&a, from)
		case err == nil && now <= end:
			// Live, renewed in its record for long enough: it goes on in a new record, which
			// ends the old one (CutFrom).
			a.CutFrom = time.Unix(0, from).UTC()
			return LeaseResult{Assignment: a}, t.holdNumber(&a, now)
		case err == nil:
			// Expired, and nobody took the number since: a new lease of the same number.
			return LeaseResult{Assignment: a}, t.holdNumber(&a, now)
		case !errors.Is(err, ErrNotFound):
			return LeaseResult{}, err
		}
	}
	var holder string
	var from, end int64
	err := t.row(`SELECT e164, lease_session, lease_from_ns, lease_until_ns FROM numbers
		WHERE customer_id = $1 AND kind = 'pool' AND state = 'available'
		ORDER BY lease_until_ns, e164 LIMIT 1 FOR UPDATE SKIP LOCKED`,
		[]any{r.CustomerID}, &a.Number, &holder, &from, &end)
	if errors.Is(err, ErrNotFound) {
		return LeaseResult{}, ErrNoNumbers
	}
	if err != nil {
		return LeaseResult{}, err
	}
	res := LeaseResult{}
	if holder != "" {
		res.Exhausted = now < end+int64(r.Grace)
		if now < end {
			// Every number is live: the least recently renewed lease is cut short.
			a.CutFrom = time.Unix(0, from).UTC()
		}
	}
	res.Assignment = a
	return res, t.holdNumber(&a, now)
}

// holdNumber writes a's record and makes it the number's current lease, begun at from (the
// record's start: a renewal keeps it).
func (t *pgTx) holdNumber(a *Assignment, from int64) error {
	if err := t.putAssignment(a); err != nil {
		return err
	}
	return t.exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != 1 {
			return ErrNotFound
		}
		return nil
	}, `UPDATE numbers SET lease_session = $2, lease_from_ns = $3, lease_until_ns = $4 WHERE e164 = $1`,
		a.Number, a.SessionID, from, a.Until.UnixNano())
}
