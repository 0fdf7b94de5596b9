package store

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
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
// number, writes the assignment and counts the session (if New) and an exhaustion, as the
// pool does in memory on bbolt. Only on a shared store (ErrNotShared on bbolt).
//
// It is one statement, sent with the transaction's other writes (no round trip of its own):
// res is filled when the statement has run, which is before Write returns nil. The write
// fails with ErrNoNumbers if the customer has no available pool number.
func (t *Tx) LeaseNumber(r LeaseRequest, res *LeaseResult) error {
	if t.pg == nil {
		return ErrNotShared
	}
	return t.pg.leaseNumber(r, t.pg.shard, res)
}

// pgLease decides and writes a lease in one statement: the session's own number if it holds
// one (cur), else the least recently leased available number no other transaction holds
// whose lease and grace are over (free), else (an exhaustion) the least recently leased one
// no other transaction holds (taken). The free test is in free's WHERE, not only in
// decided: a number another transaction leased and committed after this statement's
// snapshot is locked here in its new version, and PostgreSQL checks the WHERE (not the
// ORDER BY) again on that version, so a number just leased elsewhere is passed over
// instead of taken as if the pool were exhausted. The free test is a bound on the pool's
// index (numbers_lru: customer, lease_until_ns, e164), so an exhausted pool's free finds
// nothing at once instead of filtering every number; a number with no holder has
// lease_until_ns 0, or that of a lease that ended long ago (ExpireSessions clears the
// holder of sessions past their retention). The rules of package pool's lease (a live
// lease extended in its record until the record spans AssignmentSpan, then a new record that
// cuts it; an expired one renewed on the same number in a new record; a number taken from
// another session cuts its lease if live, and is an exhaustion within its grace); the
// number's row, the assignment record and the counters written. Parameters: $1 customer,
// $2 session, $3 now (ns), $4 until (ns), $5 the session is new, $6 AssignmentSpan (ns),
// $7 grace (ns), $8 the committer's counter shard.
const pgLease = `WITH cur AS (
	SELECT e164, lease_session, lease_from_ns, lease_until_ns, true AS own FROM numbers
	WHERE NOT $5::boolean AND customer_id = $1 AND lease_session = $2 AND kind = 'pool' AND state = 'available'
	LIMIT 1 FOR UPDATE),
free AS (
	SELECT e164, lease_session, lease_from_ns, lease_until_ns, false AS own FROM numbers
	WHERE customer_id = $1 AND kind = 'pool' AND state = 'available' AND NOT EXISTS (SELECT FROM cur)
		AND lease_until_ns <= $3::bigint - $7::bigint
	ORDER BY lease_until_ns, e164 LIMIT 1 FOR UPDATE SKIP LOCKED),
taken AS (
	SELECT e164, lease_session, lease_from_ns, lease_until_ns, false AS own FROM numbers
	WHERE customer_id = $1 AND kind = 'pool' AND state = 'available' AND NOT EXISTS (SELECT FROM cur)
		AND NOT EXISTS (SELECT FROM free)
	ORDER BY lease_until_ns, e164 LIMIT 1 FOR UPDATE SKIP LOCKED),
chosen AS (SELECT * FROM cur UNION ALL SELECT * FROM free UNION ALL SELECT * FROM taken),
decided AS (
	SELECT e164,
		CASE WHEN own AND $3 <= lease_until_ns AND $3 - lease_from_ns < $6 THEN lease_from_ns ELSE $3 END AS from_ns,
		CASE WHEN own AND $3 <= lease_until_ns AND $3 - lease_from_ns >= $6 THEN lease_from_ns
			WHEN NOT own AND lease_session <> '' AND $3 < lease_until_ns THEN lease_from_ns END AS cut_from_ns,
		NOT own AND lease_session <> '' AND $3 < lease_until_ns + $7 AS exhausted
	FROM chosen),
held AS (
	UPDATE numbers n SET lease_session = $2, lease_from_ns = d.from_ns, lease_until_ns = $4
	FROM decided d WHERE n.e164 = d.e164),
rec AS (
	INSERT INTO assignments (customer_id, from_ns, number, session_id, until_ns, cut_from_ns)
	SELECT $1, from_ns, e164, $2, $4, cut_from_ns FROM decided
	ON CONFLICT (customer_id, from_ns, number, session_id) DO UPDATE SET until_ns = excluded.until_ns),
counted AS (
	INSERT INTO customer_stats AS s (customer_id, shard, sessions_total, exhaustions)
	SELECT $1, $8, CASE WHEN $5::boolean THEN 1 ELSE 0 END, CASE WHEN exhausted THEN 1 ELSE 0 END
	FROM decided WHERE $5::boolean OR exhausted
	ON CONFLICT (customer_id, shard) DO UPDATE SET sessions_total = s.sessions_total + excluded.sessions_total,
		exhaustions = s.exhaustions + excluded.exhaustions)
SELECT e164, from_ns, cut_from_ns, exhausted FROM decided`

func (t *pgTx) leaseNumber(r LeaseRequest, shard int, res *LeaseResult) error {
	if !t.write {
		return errReadOnly
	}
	if t.abort != nil {
		return t.abort
	}
	t.mine = append(t.mine, pgStmt{sql: pgLease, fn: t.fn,
		args: []any{r.CustomerID, r.SessionID, r.Now.UnixNano(), r.Until.UnixNano(), r.New, int64(AssignmentSpan), int64(r.Grace), shard},
		scan: func(row pgx.Row) error {
			var from int64
			var cut *int64
			a := Assignment{CustomerID: r.CustomerID, SessionID: r.SessionID, Until: r.Until}
			err := row.Scan(&a.Number, &from, &cut, &res.Exhausted)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNoNumbers
			}
			if err != nil {
				return err
			}
			a.From = time.Unix(0, from).UTC()
			if cut != nil {
				a.CutFrom = time.Unix(0, *cut).UTC()
			}
			res.Assignment = a
			return nil
		}})
	return nil
}
