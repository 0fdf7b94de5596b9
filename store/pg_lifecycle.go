package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The data lifecycle on PostgreSQL (lifecycle.go has bbolt's and the contracts): deleting a
// customer (PurgeCustomer), expiring sessions, freezing the months' session counts, the
// caller index of old calls; and what bbolt's file operations mean here (Backup, Compact,
// CompactionDue, Path, Size). The state bbolt keeps in its meta bucket is in store_state
// (migrations/00008_lifecycle.sql).
//
// Erasure. A deleted row stays on disk as a dead row version until VACUUM removes it, and
// its insert stays in the WAL (and in archives, replicas, backups) until the segment is
// recycled and overwritten. So the personal fields are sealed with the customer's key
// (pg_seal.go, pg_rollupnames.go): no caller number or landing page reaches a page or the
// WAL in plain text, and destroying the customer's key (its erasure) makes every copy
// unreadable. Deletions that should leave no row version behind mark the store
// (MarkCompactionDue), and Compact, a VACUUM of the store's tables, removes the dead row
// versions and their index entries. VACUUM makes the space reusable and truncates empty
// pages at a table's end; it does not overwrite the bytes in the pages it keeps, which stay
// until reused: sealed, as the WAL's.

// pgStateCompactionDue and pgStateCallersIndexed are store_state's keys.
const (
	pgStateCompactionDue  = "compaction_due"
	pgStateCallersIndexed = "callers_indexed"
)

// ErrExternalBackup is DB.Backup's error on PostgreSQL: the database is backed up with
// PostgreSQL's own tools.
var ErrExternalBackup = errors.New("store: the PostgreSQL store is backed up with PostgreSQL's own tools " +
	"(pg_dump for a copy, pg_basebackup and WAL archiving for point-in-time recovery), not by trackline")

// pgPurgeStep deletes (or with set, updates) the rows of a table where holds ($1 is the
// customer's id), at most a batch a statement.
type pgPurgeStep struct {
	table, where string
	count        func(*PurgeResult) *int // what the rows count as; nil: not counted
	set          string                  // an UPDATE's SET list instead of a DELETE
	also         func(tx *Tx) error      // run in each of the step's transactions
}

// pgOfCustomer is the usual where of a step.
const pgOfCustomer = `customer_id = $1`

// pgPurgeTables are the steps of PurgeCustomer, one line a table: what hangs off the calls
// and the calls first, the counters last; numbers and the customer itself are steps of their
// own (pgPurge). A table that does not exist is passed over (the tables of a migration
// written meanwhile by other work); a table with a customer_id column that still holds rows
// of the customer afterwards, and is not in pgPurgeKept, fails the purge before the customer
// goes (pgPurgeLeft): add its line here.
var pgPurgeTables = []pgPurgeStep{
	// The webhooks (migration 00007): no event is delivered from here on.
	// Every node reads the endpoints again (their caches drop the customer's).
	{table: "webhook_endpoints", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.WebhookEndpoints },
		also: func(tx *Tx) error { return tx.endpointsChanged("") }},
	{table: "webhook_deliveries", where: pgOfCustomer},
	{table: "webhook_messages", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.WebhookMessages }},
	{table: "webhook_pool_exhausted", where: pgOfCustomer},
	// Google Ads (migration 00006): the upload states, the settings with sealed credentials.
	{table: "googleads_uploads", where: pgOfCustomer},
	{table: "googleads_settings", where: pgOfCustomer},
	// Calls, recordings, rollups, usage (migration 00005).
	{table: "calls", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.Calls }},
	{table: "recordings", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.Recordings }},
	{table: "rollup_channels", where: pgOfCustomer},
	{table: "rollup_names", where: pgOfCustomer},
	{table: "usage_months", where: pgOfCustomer},
	// Sessions, assignments, channels, counters (migration 00001), tokens (00003).
	{table: "sessions", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.Sessions }},
	{table: "assignments", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.Assignments }},
	{table: "channels", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.Channels }},
	{table: "tokens", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.Tokens }},
	{table: "customer_stats", where: pgOfCustomer},
	// The web app's users (migration 00006) with their sessions and invitations; then the
	// operators' sessions that looked at the customer look at none.
	{table: "app_sessions", where: `user_id IN (SELECT id FROM users WHERE customer_id = $1)`},
	{table: "invitations", where: `user_id IN (SELECT id FROM users WHERE customer_id = $1)`},
	{table: "users", where: pgOfCustomer, count: func(r *PurgeResult) *int { return &r.Users }},
	{table: "app_sessions", where: pgOfCustomer, set: `customer_id = ''`},
}

// pgPurgeKept are the tables with a customer_id column whose rows outlive the customer:
// the audit log (ids only, its own retention: PruneAudit) and the numbers held in
// quarantine (their customer_id is then empty).
var pgPurgeKept = map[string]bool{"audit_log": true, "numbers": true}

// pgPurge is PurgeCustomer on PostgreSQL (see there): the tables of pgPurgeTables in
// statements of at most opts.Batch rows each, the numbers, then the customer.
func (db *DB) pgPurge(ctx context.Context, customerID string, opts PurgeOptions) (PurgeResult, error) {
	var res PurgeResult
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	err := db.View(func(tx *Tx) error {
		if _, err := tx.Customer(customerID); err != nil {
			return fmt.Errorf("customer %q: %w", customerID, err)
		}
		busy, err := tx.pg.hasActiveCalls(customerID)
		if err == nil && busy {
			err = ErrActiveCalls
		}
		return err
	})
	if err != nil {
		return res, fmt.Errorf("purge customer: %w", err)
	}
	var tables map[string]bool
	err = db.View(func(tx *Tx) error {
		tables = map[string]bool{}
		return tx.pg.query(`SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`, nil, func(r pgx.Rows) error {
			var name string
			err := r.Scan(&name)
			tables[name] = true
			return err
		})
	})
	if err != nil {
		return res, fmt.Errorf("purge customer: %w", err)
	}
	for _, st := range pgPurgeTables {
		if !tables[st.table] {
			continue
		}
		n, err := db.pgPurgeRows(ctx, st, []any{customerID}, batch)
		if st.count != nil {
			*st.count(&res) += n
		}
		if err != nil {
			return res, fmt.Errorf("purge %s of %s: %w", st.table, customerID, err)
		}
	}
	// Numbers: with HoldQuarantined the quarantined ones stay, without an owner or a lease.
	if opts.HoldQuarantined {
		err := db.Write(ctx, func(tx *Tx) error {
			return tx.pg.exec(func(tag pgconn.CommandTag) error { res.HeldNumbers = int(tag.RowsAffected()); return nil },
				`UPDATE numbers SET customer_id = '', channel_id = '', lease_session = '', lease_from_ns = 0, lease_until_ns = 0
				WHERE customer_id = $1 AND state = $2`, customerID, NumberQuarantined.String())
		})
		if err != nil {
			return res, fmt.Errorf("purge numbers of %s: %w", customerID, err)
		}
	}
	n, err := db.pgPurgeRows(ctx, pgPurgeStep{table: "numbers", where: pgOfCustomer}, []any{customerID}, batch)
	res.Numbers += n
	if err != nil {
		return res, fmt.Errorf("purge numbers of %s: %w", customerID, err)
	}
	if err := db.pgPurgeLeft(customerID); err != nil {
		return res, fmt.Errorf("purge customer %s: %w", customerID, err)
	}
	at := opts.At
	if at.IsZero() {
		at = time.Now()
	}
	err = db.Write(ctx, func(tx *Tx) error {
		if _, err := tx.pg.customer(customerID); err != nil {
			return err
		}
		if err := tx.pg.exec(nil, `DELETE FROM customers WHERE id = $1`, customerID); err != nil {
			return err
		}
		if err := tx.pg.putPurged(customerID, at); err != nil {
			return err
		}
		return tx.pg.markCompactionDue()
	})
	if err != nil {
		return res, fmt.Errorf("purge customer %s: %w", customerID, err)
	}
	return res, nil
}

// pgPurgeRows deletes (or updates) the rows of a step, at most batch a transaction, and
// answers how many.
func (db *DB) pgPurgeRows(ctx context.Context, st pgPurgeStep, args []any, batch int) (int, error) {
	t := pgx.Identifier{st.table}.Sanitize()
	some := `ctid = ANY (ARRAY(SELECT ctid FROM ` + t + ` WHERE ` + st.where + ` LIMIT ` + strconv.Itoa(batch) + `))`
	q := `DELETE FROM ` + t + ` WHERE ` + some
	if st.set != "" {
		q = `UPDATE ` + t + ` SET ` + st.set + ` WHERE ` + some
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int
		err := db.Write(ctx, func(tx *Tx) error {
			if err := tx.pg.exec(func(tag pgconn.CommandTag) error { n = int(tag.RowsAffected()); return nil }, q, args...); err != nil {
				return err
			}
			if st.also != nil {
				return st.also(tx)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// pgPurgeLeft fails if a table with a customer_id column still holds rows of the customer
// (other than pgPurgeKept's): a table PurgeCustomer does not know must not keep a deleted
// customer's data behind its back.
func (db *DB) pgPurgeLeft(customerID string) error {
	var left []string
	err := db.View(func(tx *Tx) error {
		var tables []string
		err := tx.pg.query(`SELECT c.table_name FROM information_schema.columns c
			JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
			WHERE c.table_schema = current_schema() AND c.column_name = 'customer_id' AND t.table_type = 'BASE TABLE'
			ORDER BY 1`, nil, func(r pgx.Rows) error {
			var name string
			err := r.Scan(&name)
			tables = append(tables, name)
			return err
		})
		if err != nil {
			return err
		}
		for _, table := range tables {
			if pgPurgeKept[table] {
				continue
			}
			var yes bool
			if err := tx.pg.row(`SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{table}.Sanitize()+` WHERE customer_id = $1)`,
				[]any{customerID}, &yes); err != nil {
				return err
			}
			if yes {
				left = append(left, table)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("tables %v still hold the customer's rows: the purge (pgPurgeTables) does not know them", left)
	}
	return nil
}

func (t *pgTx) hasActiveCalls(customerID string) (bool, error) {
	var busy bool
	err := t.row(`SELECT EXISTS (SELECT 1 FROM calls WHERE customer_id = $1 AND ended IS NULL)`, []any{customerID}, &busy)
	return busy, err
}

// pgExpireSessions is ExpireSessions on PostgreSQL: the sessions made before `before` (by
// their time-ordered ids) that no call names, then the assignments that began before it
// whose session is gone, each in transactions of at most batch rows.
func (db *DB) pgExpireSessions(ctx context.Context, customerID string, before time.Time, batch int) (ExpireResult, error) {
	var res ExpireResult
	cut := string(idTimePrefix(before.UnixMilli()))
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var ids []string
		err := db.Write(ctx, func(tx *Tx) error {
			ids = ids[:0]
			err := tx.pg.query(`SELECT id FROM sessions s WHERE customer_id = $1 AND id < $2
				AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.customer_id = $1 AND c.session_id = s.id AND c.session_id <> '')
				ORDER BY id LIMIT $3 FOR UPDATE`, []any{customerID, cut, batch}, func(r pgx.Rows) error {
				var id string
				err := r.Scan(&id)
				ids = append(ids, id)
				return err
			})
			if err != nil || len(ids) == 0 {
				return err
			}
			if err := tx.pg.exec(nil, `DELETE FROM sessions WHERE id = ANY ($1)`, ids); err != nil {
				return err
			}
			// A number's lease state names its last holder (pg_lease.go): not an expired one.
			return tx.pg.exec(nil, `UPDATE numbers SET lease_session = '' WHERE customer_id = $1 AND lease_session = ANY ($2)`,
				customerID, ids)
		})
		if err != nil {
			return res, fmt.Errorf("expire sessions of %s: %w", customerID, err)
		}
		res.SessionIDs = append(res.SessionIDs, ids...)
		res.Sessions = len(res.SessionIDs)
		if len(ids) < batch {
			break
		}
	}
	// Assignments: a record that cut another short (CutFrom) first brings that one's end
	// down to its own start, as bbolt's deleteAssignment.
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var n int
		err := db.Write(ctx, func(tx *Tx) error {
			var from []int64
			var numbers, sessions []string
			err := tx.pg.query(`SELECT from_ns, number, session_id FROM assignments a WHERE customer_id = $1 AND from_ns < $2
				AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = a.session_id)
				ORDER BY from_ns, number, session_id LIMIT $3 FOR UPDATE`, []any{customerID, before.UnixNano(), batch},
				func(r pgx.Rows) error {
					var f int64
					var num, sess string
					err := r.Scan(&f, &num, &sess)
					from, numbers, sessions = append(from, f), append(numbers, num), append(sessions, sess)
					return err
				})
			n = len(from)
			if err != nil || n == 0 {
				return err
			}
			const doomed = `unnest($2::bigint[], $3::text[], $4::text[]) AS d(from_ns, number, session_id)`
			if err := tx.pg.exec(nil, `UPDATE assignments o SET until_ns = k.from_ns
				FROM `+doomed+` JOIN assignments k ON k.customer_id = $1 AND k.from_ns = d.from_ns AND k.number = d.number AND k.session_id = d.session_id
				WHERE o.customer_id = $1 AND o.number = k.number AND o.from_ns = k.cut_from_ns AND o.until_ns > k.from_ns
					AND (o.from_ns, o.session_id) <> (k.from_ns, k.session_id)`, customerID, from, numbers, sessions); err != nil {
				return err
			}
			return tx.pg.exec(nil, `DELETE FROM assignments a USING `+doomed+`
				WHERE a.customer_id = $1 AND a.from_ns = d.from_ns AND a.number = d.number AND a.session_id = d.session_id`,
				customerID, from, numbers, sessions)
		})
		if err != nil {
			return res, fmt.Errorf("expire assignments of %s: %w", customerID, err)
		}
		res.Assignments += n
		if n < batch {
			return res, nil
		}
	}
}

// pgFreezeSessionCounts is FreezeSessionCounts on PostgreSQL: the months from that of the
// customer's oldest session to the last one over by `before`, those not frozen yet, each
// counted and frozen in one statement that leaves a month frozen meanwhile alone.
func (db *DB) pgFreezeSessionCounts(ctx context.Context, customerID string, before time.Time) (int, error) {
	var oldest *string
	frozen := map[string]bool{}
	err := db.View(func(tx *Tx) error {
		if err := tx.pg.row(`SELECT min(id) FROM sessions WHERE customer_id = $1`, []any{customerID}, &oldest); err != nil {
			return err
		}
		return tx.pg.query(`SELECT month FROM usage_months WHERE customer_id = $1 AND sessions_frozen`, []any{customerID},
			func(r pgx.Rows) error {
				var m string
				err := r.Scan(&m)
				frozen[m] = true
				return err
			})
	})
	if err != nil || oldest == nil {
		return 0, err
	}
	ms, ok := idTime([]byte(*oldest))
	if !ok {
		return 0, nil
	}
	n := 0
	month, _ := ParseMonth(Month(time.UnixMilli(ms)))
	for ; !month.AddDate(0, 1, 0).After(before); month = month.AddDate(0, 1, 0) {
		if frozen[Month(month)] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		lo, hi := string(idTimePrefix(month.UnixMilli())), string(idTimePrefix(month.AddDate(0, 1, 0).UnixMilli()))
		var did bool
		err := db.Write(ctx, func(tx *Tx) error {
			return tx.pg.exec(func(tag pgconn.CommandTag) error { did = tag.RowsAffected() > 0; return nil },
				`INSERT INTO usage_months AS u (customer_id, month, sessions, sessions_frozen)
				SELECT $1, $2, count(*), true FROM sessions WHERE customer_id = $1 AND id >= $3 AND id < $4
				ON CONFLICT (customer_id, month) DO UPDATE SET sessions = excluded.sessions, sessions_frozen = true
				WHERE NOT u.sessions_frozen`, customerID, Month(month), lo, hi)
		})
		if err != nil {
			return n, fmt.Errorf("freeze session count of %s %s: %w", customerID, Month(month), err)
		}
		if did {
			n++
		}
	}
	return n, nil
}

// pgIndexCallers is IndexCallers on PostgreSQL: the calls without a pseudonym (copied from
// a bbolt store written before the caller index) get theirs, made from the opened caller,
// then store_state records that it ran.
func (db *DB) pgIndexCallers(ctx context.Context, pseudonym func(customerID, caller string) (string, error)) (int, error) {
	var done bool
	type pending struct{ id, customer, caller string }
	var todo []pending
	err := db.View(func(tx *Tx) error {
		if err := tx.pg.row(`SELECT EXISTS (SELECT 1 FROM store_state WHERE key = $1)`, []any{pgStateCallersIndexed}, &done); err != nil || done {
			return err
		}
		return tx.pg.query(`SELECT id, customer_id, caller FROM calls WHERE caller_pseudonym = '' AND caller IS NOT NULL ORDER BY id`, nil,
			func(r pgx.Rows) error {
				var p pending
				var sealed []byte
				if err := r.Scan(&p.id, &p.customer, &sealed); err != nil {
					return err
				}
				caller, err := tx.pg.open("calls.caller", p.customer, p.id, sealed)
				if err != nil {
					return fmt.Errorf("call %q: %w", p.id, err)
				}
				if caller != "" {
					p.caller = caller
					todo = append(todo, p)
				}
				return nil
			})
	})
	if err != nil || done {
		return 0, err
	}
	n := 0
	for chunk := range slices.Chunk(todo, 1000) {
		ids, ps := make([]string, len(chunk)), make([]string, len(chunk))
		for i, p := range chunk {
			ids[i] = p.id
			if ps[i], err = pseudonym(p.customer, p.caller); err != nil {
				return n, fmt.Errorf("index callers: %w", err)
			}
		}
		err := db.Write(ctx, func(tx *Tx) error {
			return tx.pg.exec(nil, `UPDATE calls c SET caller_pseudonym = d.p FROM unnest($1::text[], $2::text[]) AS d(id, p)
				WHERE c.id = d.id AND c.caller_pseudonym = ''`, ids, ps)
		})
		if err != nil {
			return n, fmt.Errorf("index callers: %w", err)
		}
		n += len(chunk)
	}
	err = db.Write(ctx, func(tx *Tx) error {
		return tx.pg.exec(nil, `INSERT INTO store_state (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`, pgStateCallersIndexed)
	})
	return n, err
}

// markCompactionDue is MarkCompactionDue: the mark, counted, so that a Compact clears only
// the marks it saw before it began.
func (t *pgTx) markCompactionDue() error {
	return t.exec(nil, `INSERT INTO store_state AS s (key) VALUES ($1) ON CONFLICT (key) DO UPDATE SET n = s.n + 1`,
		pgStateCompactionDue)
}

func (s *pgStore) compactionDue(ctx context.Context) (bool, int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT n FROM store_state WHERE key = $1`, pgStateCompactionDue).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("store: postgres: %w", err)
	}
	return true, n, nil
}

// compact is Compact on PostgreSQL: VACUUM of the store's tables (with their indexes), which
// removes the row versions that deletions left and that no transaction can see any more;
// then the mark is cleared, unless a deletion marked it again meanwhile. It holds no write
// back: VACUUM takes no lock that conflicts with reads and writes. A transaction open since
// before the deletions (a long read) keeps their row versions alive: VACUUM leaves those.
func (s *pgStore) compact(ctx context.Context) (CompactStats, error) {
	var st CompactStats
	_, marks, err := s.compactionDue(ctx)
	if err != nil {
		return st, err
	}
	if st.Before, err = s.size(ctx); err != nil {
		return st, err
	}
	// VACUUM passes over a table its user may not vacuum with a warning, not an error: such
	// a table fails the compaction instead (the store's user owns its tables, unless an
	// administrator made them).
	type table struct {
		name string
		own  bool
	}
	var tables []string
	var foreign []string
	rows, err := s.pool.Query(ctx, `SELECT tablename, pg_has_role(tableowner, 'MEMBER')
			OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
		FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`)
	if err == nil {
		var all []table
		all, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
			var t table
			err := r.Scan(&t.name, &t.own)
			return t, err
		})
		for _, t := range all {
			if t.own {
				tables = append(tables, t.name)
			} else {
				foreign = append(foreign, t.name)
			}
		}
	}
	if err != nil {
		return st, fmt.Errorf("compact store: %w", err)
	}
	if len(foreign) > 0 {
		return st, fmt.Errorf("compact store: the database user may not vacuum %v: make it their owner", foreign)
	}
	start := time.Now()
	if len(tables) > 0 {
		list := make([]string, len(tables))
		for i, t := range tables {
			list[i] = pgx.Identifier{t}.Sanitize()
		}
		// One statement, outside a transaction block (VACUUM runs in none); the simple
		// protocol, since it takes no parameters.
		q := `VACUUM (INDEX_CLEANUP ON) ` + strings.Join(list, ", ")
		if _, err := s.pool.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			return st, fmt.Errorf("compact store: vacuum: %w", err)
		}
	}
	st.Copy = time.Since(start)
	if marks > 0 {
		if _, err := s.pool.Exec(ctx, `DELETE FROM store_state WHERE key = $1 AND n = $2`, pgStateCompactionDue, marks); err != nil {
			return st, fmt.Errorf("compact store: %w", err)
		}
	}
	st.After, err = s.size(ctx)
	return st, err
}

// size is the database's size on disk (pg_database_size): its tables, indexes and TOAST,
// not the WAL.
func (s *pgStore) size(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: postgres: %w", err)
	}
	return n, nil
}

// path names the database without its password: postgres://user@host:port/database, or
// with a Unix socket's directory postgres://user@/database?host=dir&port=port.
func (s *pgStore) path() string {
	c := s.pool.Config().ConnConfig
	port := strconv.Itoa(int(c.Port))
	if strings.HasPrefix(c.Host, "/") {
		return "postgres://" + c.User + "@/" + c.Database + "?host=" + c.Host + "&port=" + port
	}
	return "postgres://" + c.User + "@" + net.JoinHostPort(c.Host, port) + "/" + c.Database
}
