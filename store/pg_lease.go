package store

import (
	"errors"
	"fmt"
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
// one (cur, found through the session's assignments), else the least recently leased
// available number no other transaction holds whose lease and grace are over (free), else
// (an exhaustion) the least recently leased one no other transaction holds (taken). The free
// test is in free's WHERE, not only in decided: a number another transaction leased and
// committed after this statement's snapshot is locked here in its new version, and
// PostgreSQL checks the WHERE (not the ORDER BY) again on that version, so a number just
// leased elsewhere is passed over instead of taken as if the pool were exhausted. A number
// with no holder has lease_until_ns 0, or that of a lease that ended long ago
// (ExpireSessions clears the holder of sessions past their retention). The lease columns
// are not indexed (migration 00009): free and taken read the customer's numbers. The rules
// of package pool's lease (a live lease extended in its record until the record spans
// AssignmentSpan, then a new record that cuts it; an expired one renewed on the same number
// in a new record; a number taken from another session cuts its lease if live, and is an
// exhaustion within its grace); the number's row, the assignment record and the counters
// written. Parameters: $1 customer, $2 session, $3 now (ns), $4 until (ns), $5 the session
// is new, $6 AssignmentSpan (ns), $7 grace (ns), $8 the committer's counter shard.
//
// New sessions do not use it when they share a batch: pgLeaseSet leases them all at once.
const pgLease = `WITH cur AS (
	SELECT e164, lease_session, lease_from_ns, lease_until_ns, true AS own FROM numbers
	WHERE NOT $5::boolean AND customer_id = $1 AND lease_session = $2 AND kind = 'pool' AND state = 'available'
		AND e164 IN (SELECT number FROM assignments WHERE session_id = $2 AND customer_id = $1)
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

// pgLeaseSet leases numbers to a batch's new sessions of one customer in one statement, as
// pgLease would one after the other: the customer's numbers are read once, without locks,
// for the least recently leased (cand: a bounded sort, more than the sessions, since other
// transactions may hold some of them), and the first n of them that no other transaction
// holds and none changed since this statement's snapshot are locked (locked: a number
// another transaction leased and committed meanwhile is locked in its new version, whose
// lease_until_ns is not the one read, so PostgreSQL's re-check of the join drops it instead
// of taking it as if the pool were exhausted). The planner joins cand to a second read of
// the customer's numbers (hash join), which measured cheaper here than looking each
// candidate up by its key. In the pool's order a free number (lease and
// grace over) comes before a held one, so the k-th session gets the k-th number: free ones
// while they last, then exhaustions. Each number's row, assignment record and the counters
// (one upsert) are written; a row per session that got a number is answered. Fewer rows than
// sessions: the candidates ran out (a pool smaller than the batch, or held by others;
// pgTx.leaseSetStmt leases the rest one by one with pgLease, each then cutting one of the
// batch's leases as it would have), or there were none (ErrNoNumbers). Parameters: $1
// customer, $2 sessions, $3 their now (ns), $4 their until (ns), $5 grace (ns), $6 the
// committer's counter shard.
const pgLeaseSet = `WITH req AS (
	SELECT * FROM unnest($2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS r(session_id, now_ns, until_ns, k)),
cand AS (
	SELECT e164, lease_until_ns FROM numbers
	WHERE customer_id = $1 AND kind = 'pool' AND state = 'available'
	ORDER BY lease_until_ns, e164 LIMIT 4 * cardinality($2::text[]) + 64),
locked AS (
	SELECT n.e164, n.lease_session, n.lease_from_ns, n.lease_until_ns FROM cand c
	JOIN numbers n ON n.e164 = c.e164 AND n.lease_until_ns = c.lease_until_ns
		AND n.customer_id = $1 AND n.kind = 'pool' AND n.state = 'available'
	ORDER BY c.lease_until_ns, c.e164 LIMIT cardinality($2::text[]) FOR UPDATE OF n SKIP LOCKED),
picked AS (
	SELECT *, row_number() OVER (ORDER BY lease_until_ns, e164) AS k FROM locked),
decided AS (
	SELECT r.session_id, r.now_ns, r.until_ns, p.e164,
		CASE WHEN p.lease_session <> '' AND r.now_ns < p.lease_until_ns THEN p.lease_from_ns END AS cut_from_ns,
		p.lease_session <> '' AND r.now_ns < p.lease_until_ns + $5::bigint AS exhausted
	FROM req r JOIN picked p ON p.k = r.k),
held AS (
	UPDATE numbers n SET lease_session = d.session_id, lease_from_ns = d.now_ns, lease_until_ns = d.until_ns
	FROM decided d WHERE n.e164 = d.e164),
rec AS (
	INSERT INTO assignments (customer_id, from_ns, number, session_id, until_ns, cut_from_ns)
	SELECT $1, now_ns, e164, session_id, until_ns, cut_from_ns FROM decided
	ON CONFLICT (customer_id, from_ns, number, session_id) DO UPDATE SET until_ns = excluded.until_ns),
counted AS (
	INSERT INTO customer_stats AS s (customer_id, shard, sessions_total, exhaustions)
	SELECT $1, $6, count(*), count(*) FILTER (WHERE exhausted) FROM decided HAVING count(*) > 0
	ON CONFLICT (customer_id, shard) DO UPDATE SET sessions_total = s.sessions_total + excluded.sessions_total,
		exhaustions = s.exhaustions + excluded.exhaustions)
SELECT session_id, e164, now_ns, cut_from_ns, exhausted FROM decided`

// pgLeaseItem is a new session's lease kept for pgLeaseSet (pgStmt.lease).
type pgLeaseItem struct {
	r     LeaseRequest
	shard int
	res   *LeaseResult
}

func (t *pgTx) leaseNumber(r LeaseRequest, shard int, res *LeaseResult) error {
	if !t.write {
		return errReadOnly
	}
	if t.abort != nil {
		return t.abort
	}
	if r.New {
		// Sent with the batch's other new sessions of the customer (sendLeases).
		t.mine = append(t.mine, pgStmt{fn: t.fn, lease: &pgLeaseItem{r: r, shard: shard, res: res}})
		return nil
	}
	t.mine = append(t.mine, t.leaseStmt(pgLeaseItem{r: r, shard: shard, res: res}, t.fn))
	return nil
}

// leaseStmt is one lease in a statement of its own (pgLease).
func (t *pgTx) leaseStmt(l pgLeaseItem, fn int) pgStmt {
	r, res := l.r, l.res
	return pgStmt{sql: pgLease, fn: fn,
		args: []any{r.CustomerID, r.SessionID, r.Now.UnixNano(), r.Until.UnixNano(), r.New, int64(AssignmentSpan), int64(r.Grace), l.shard},
		scan: func(row pgx.Row) error {
			var number string
			var from int64
			var cut *int64
			err := row.Scan(&number, &from, &cut, &res.Exhausted)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNoNumbers
			}
			if err != nil {
				return err
			}
			res.Assignment = leaseAssignment(r, number, from, cut)
			return nil
		}}
}

// leaseAssignment is the assignment record a lease statement answered.
func leaseAssignment(r LeaseRequest, number string, from int64, cut *int64) Assignment {
	a := Assignment{CustomerID: r.CustomerID, SessionID: r.SessionID, Number: number, From: time.Unix(0, from).UTC(), Until: r.Until}
	if cut != nil {
		a.CutFrom = time.Unix(0, *cut).UTC()
	}
	return a
}

// leaseSetKey groups new sessions' leases that one pgLeaseSet statement makes.
type leaseSetKey struct {
	customer string
	grace    time.Duration
	shard    int
}

// leaseSets turns a run of new sessions' leases (in the order their functions made them)
// into one pgLeaseSet statement per customer. A session leased twice in the run has its
// later lease in a statement of its own after the sets, as it would run after the first.
func (t *pgTx) leaseSets(items []pgStmt) []pgStmt {
	var keys []leaseSetKey
	sets := map[leaseSetKey][]pgStmt{}
	seen := map[string]bool{}
	var again []pgStmt
	for _, it := range items {
		l := it.lease
		if seen[l.r.SessionID] {
			again = append(again, t.leaseStmt(*l, it.fn))
			continue
		}
		seen[l.r.SessionID] = true
		k := leaseSetKey{l.r.CustomerID, l.r.Grace, l.shard}
		if sets[k] == nil {
			keys = append(keys, k)
		}
		sets[k] = append(sets[k], it)
	}
	out := make([]pgStmt, 0, len(keys)+len(again))
	for _, k := range keys {
		out = append(out, t.leaseSetStmt(k, sets[k]))
	}
	return append(out, again...)
}

// leaseSetStmt is the pgLeaseSet statement of one customer's new sessions. Its rows fill
// each lease's result; the sessions without one are leased one by one afterwards
// (t.after), or fail with ErrNoNumbers if no session got a number.
func (t *pgTx) leaseSetStmt(k leaseSetKey, items []pgStmt) pgStmt {
	n := len(items)
	sessions, nows, untils := make([]string, n), make([]int64, n), make([]int64, n)
	bySession := make(map[string]int, n)
	fn := items[0].fn
	for i, it := range items {
		r := it.lease.r
		sessions[i], nows[i], untils[i] = r.SessionID, r.Now.UnixNano(), r.Until.UnixNano()
		bySession[r.SessionID] = i
		if it.fn != fn {
			fn = -1 // a failure at the server blames no one function
		}
	}
	return pgStmt{sql: pgLeaseSet, fn: fn,
		args: []any{k.customer, sessions, nows, untils, int64(k.grace), k.shard},
		each: func(rows pgx.Rows) error {
			got := make([]bool, n)
			leased := 0
			for rows.Next() {
				var session, number string
				var from int64
				var cut *int64
				var exhausted bool
				if err := rows.Scan(&session, &number, &from, &cut, &exhausted); err != nil {
					return err
				}
				i, ok := bySession[session]
				if !ok || got[i] {
					return fmt.Errorf("store: lease of a session not asked for: %s", session)
				}
				l := items[i].lease
				l.res.Assignment, l.res.Exhausted = leaseAssignment(l.r, number, from, cut), exhausted
				got[i] = true
				leased++
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if leased == 0 {
				fns := make([]int, 0, n)
				for _, it := range items {
					fns = append(fns, it.fn)
				}
				return t.failAll(ErrNoNumbers, fns)
			}
			for i, it := range items {
				if !got[i] {
					t.after = append(t.after, t.leaseStmt(*it.lease, it.fn))
				}
			}
			return nil
		}}
}

// EventWanted tells whether a write of the customer's events of type e may write anything
// (Tx.PoolExhausted): false only when this node's cache of the enabled webhook endpoints
// (pg_outbox.go) holds no endpoint of the customer that wants it, which is what that write
// would find itself. The shared pool spares the write, and the wait for its commit, after
// each lease that exhausted the pool when nobody listens for it. Always true on bbolt.
func (db *DB) EventWanted(customerID string, e EventType) bool {
	if db.pg == nil {
		return true
	}
	subs := db.pg.outbox.subs.Load()
	if subs == nil {
		return true // not cached: the write reads the endpoints
	}
	for _, s := range (*subs)[customerID] {
		if s.mask&e.bit() != 0 {
			return true
		}
	}
	return false
}
