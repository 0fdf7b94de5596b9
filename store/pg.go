package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/prometheus/client_golang/prometheus"
)

// The PostgreSQL backend (OpenPostgres). The same DB and Tx serve both backends: a DB opened
// on PostgreSQL holds a *pgStore, and each of its transactions a *pgTx; every Tx method that
// PostgreSQL implements begins with `if t.pg != nil` and does its work in SQL, on tables
// with a column per field the store selects, orders or constrains by (pg_*.go, and the
// schema in migrations/). There is no table of keys and values.
//
// Write path. Writes queue and share a transaction as on bbolt: a committer goroutine takes
// what was queued while the previous commit was in flight, and runs the functions one after
// the other in one PostgreSQL transaction (READ COMMITTED). There may be several of them
// (pgCommitters; one now), each on its own connection, so that a batch is sent while
// another's COMMIT waits for its WAL flush and the server works on several at once; each
// adds to counters in a row of its own (pgStore.shards), so that they do not queue for each
// other's row locks. Writes in flight at the same time have no order between them (a write
// queued after another's Wait returned commits after it). A write
// function's statements are not sent as it makes them: they are kept, and added to the
// transaction's pending statements only if the function returns nil, so a function that
// fails leaves nothing behind without a savepoint. The pending statements are sent in one
// pipelined round trip (pgx.Batch) before any read, so that a function sees what the
// functions before it wrote, and at the end together with COMMIT: a batch of writes that
// read nothing costs one round trip and one WAL flush however many share it. When a
// statement's outcome may still fail its function (a lease that finds no number, a row
// count checked), COMMIT goes in a second round trip once the outcomes were read. A run of
// writes of one kind next to each other is one statement (coalesce): the batch's sessions
// in one INSERT, its new sessions' leases in one statement per customer (pg_lease.go), so
// that a batch of new web sessions is two statements however many share it. A function that
// reads after its own writes has them sent first, under a savepoint, which is rolled back if
// it then fails.
//
// A statement that fails at the server (a unique key taken) aborts the transaction: the
// statement names its function, which gets the error, and the others run again in a new
// transaction. A serialization failure or deadlock (SQLSTATE 40001, 40P01: other nodes write
// the same rows) runs the whole batch again, a bounded number of times. An error nobody can
// be blamed for runs every function in a transaction of its own. Reads of a record that a
// write function may change take its row lock (SELECT ... FOR UPDATE), since other nodes
// write concurrently; lists do not.
//
// Reads (DB.View) run in a read-only REPEATABLE READ transaction: one snapshot, as bbolt's.
// Times are kept to the microsecond (timestamptz), except the assignments', whose From names
// a record (CutFrom) and is kept in nanoseconds.
//
// Personal fields (a session's landing page and referrer, a call's caller, landing page and
// referrer) are bytea columns holding a sealed value: with WithFieldKeys, AES-256-GCM under
// the customer's key (pg_seal.go).

// migrations are the schema's migrations, applied in order at open by goose.
//
//go:embed migrations/*.sql
var migrations embed.FS

// pgSchemaTable is the table in which goose keeps the migrations applied.
const pgSchemaTable = "trackline_schema"

// pgTxTimeout bounds one transaction of the committer, or a read.
const pgTxTimeout = 30 * time.Second

// pgRetries bounds how often a batch runs again after a serialization failure or deadlock.
const pgRetries = 10

// pgStatsShards is how many rows of counters each customer has: a committer adds to one of
// them (pgStore.shards), so that the nodes and a node's committers do not wait for each
// other's commit on one hot row.
const pgStatsShards = 16

// pgCommitters is how many batches of writes a node has in flight at once (see the top).
// One: a batch's new sessions cost the server a read of their customer's pool however many
// they are (pg_lease.go, pgLeaseSet), so fewer, larger batches cost it less per session. On
// one 2-core host with the database, the cluster bench's node took 14,400-16,300 sessions/s
// with one, 11,300 with two and 11,400 with three (PostgreSQL 34-36, 59 and 71 us of CPU a
// session; docs/benchmarks.md "The session rate on PostgreSQL"). More may pay with the
// database on a host of its own; not measured.
const pgCommitters = 1

// pgStore is the PostgreSQL side of a DB.
// pgMinConns is the least size of a node's connection pool when the DSN does not set
// pool_max_conns.
const pgMinConns = 12

type pgStore struct {
	pool   *pgxpool.Pool
	keys   FieldKeys       // nil: personal fields in plain text (pg_seal.go)
	ctx    context.Context // cancelled by close, after the committer stopped
	cancel context.CancelFunc
	// shards holds the rows of the counters (pgStatsShards) this process adds to, one per
	// committer: a transaction takes one for its run.
	shards chan int
	outbox *pgOutbox // the webhooks' cache and poller (pg_outbox.go)
}

// OpenPostgres opens the store in the PostgreSQL database dsn names (a libpq URL or
// key=value string; see pgx's ParseConfig), applies the schema's migrations that the
// database lacks, and starts the committer. Several processes may open one database at once
// (the nodes of a cluster): migrations run under an advisory lock. ErrSchema if the database
// has migrations this build does not know (a newer build migrated it).
//
// Not every operation is implemented on PostgreSQL yet (see PostgresMissing); the others
// panic with a message that names them.
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	o := options{log: slog.New(slog.DiscardHandler), timeout: 2 * time.Second, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: the error of ParseConfig does not repeat it.
		return nil, fmt.Errorf("store: postgres dsn: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// pgxpool's default (4 on two cores) is short for a node: the committer, reads of
		// the API and the web app, the webhook workers' claims and the notifications'
		// listener (which holds one) at once. A DSN's pool_max_conns still decides.
		cfg.MaxConns = max(cfg.MaxConns, pgMinConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	if err := pgMigrate(ctx, pool, o.log); err != nil {
		pool.Close()
		return nil, err
	}
	db := newDB("", o)
	sctx, cancel := context.WithCancel(context.Background())
	db.pg = &pgStore{pool: pool, keys: o.fieldKeys, ctx: sctx, cancel: cancel, shards: make(chan int, pgCommitters),
		outbox: newPgOutbox()}
	base := rand.IntN(pgStatsShards)
	for i := range pgCommitters {
		db.pg.shards <- (base + i) % pgStatsShards
	}
	if o.reg != nil {
		for _, c := range []prometheus.Collector{db.commitSeconds, db.batchSize} {
			if err := o.reg.Register(c); err != nil {
				pool.Close()
				return nil, fmt.Errorf("register store metrics: %w", err)
			}
		}
	}
	go db.pgCommitLoops()
	db.pg.startOutbox(db)
	return db, nil
}

// pgCommitLoops runs the pgCommitters committers until Close, then closes done.
func (db *DB) pgCommitLoops() {
	var wg sync.WaitGroup
	for range pgCommitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db.commits()
		}()
	}
	wg.Wait()
	close(db.done)
}

// pgMigrate applies the migrations the database lacks. goose (github.com/pressly/goose/v3)
// does it, through pgx's database/sql driver: its Provider keeps no global state, reads the
// embedded files, runs each migration in its own transaction and holds a PostgreSQL advisory
// lock meanwhile, so that nodes started together migrate once. golang-migrate would do the
// same with more dependencies and global driver registration.
func pgMigrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close() // does not close the pool
	// A node that finds another migrating looks again every second (goose's default: 5 s).
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return err
	}
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, files,
		goose.WithSessionLocker(locker), goose.WithTableName(pgSchemaTable), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	sources := p.ListSources()
	latest := sources[len(sources)-1].Version
	current, err := p.GetDBVersion(ctx)
	if err != nil && !errors.Is(err, goose.ErrNoCurrentVersion) {
		return fmt.Errorf("store: schema version: %w", err)
	}
	if current > latest {
		return fmt.Errorf("%w: database has migration %d, this build knows %d", ErrSchema, current, latest)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for _, r := range results {
		log.Info("store migrated", "migration", r.Source.Path, "took", r.Duration.Round(time.Millisecond))
	}
	return nil
}

// close ends the pool; the committer has stopped.
func (s *pgStore) close() error {
	s.cancel()
	<-s.outbox.done
	s.pool.Close()
	return nil
}

// Ready tells whether the store can serve: on PostgreSQL the server answers within ctx; on
// bbolt the file is open.
func (db *DB) Ready(ctx context.Context) error {
	db.mu.RLock()
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if db.pg != nil {
		if err := db.pg.pool.Ping(ctx); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		return nil
	}
	return db.View(func(*Tx) error { return nil })
}

// Driver names the backend: "bbolt" or "postgres".
func (db *DB) Driver() string {
	if db.pg != nil {
		return "postgres"
	}
	return "bbolt"
}

// pgStmt is a statement of a write, kept until it is sent.
type pgStmt struct {
	sql  string
	args []any
	fn   int // the write function that made it; -1 for the transaction's own
	// check, if set, reads the statement's outcome (rows affected) and may fail its function.
	check func(pgconn.CommandTag) error
	// scan, if set, reads the one row the statement answers (its function learns the result
	// once the statement is sent: a write that needs no read before it, pg_lease.go) and
	// may fail its function; pgx.ErrNoRows when it answers none.
	scan func(pgx.Row) error
	// each, if set, reads the rows the statement answers (a statement of several functions).
	each func(pgx.Rows) error
	// A write kept to be sent in one statement with the others of its kind next to it in the
	// transaction (coalesce), sql empty: a session (pg_sessions.go), a new session's lease
	// (pg_lease.go).
	sess  *pgSessionRow
	lease *pgLeaseItem
}

// grouped: the statement is one of a kind sent together (coalesce).
func (s *pgStmt) grouped() bool { return s.sess != nil || s.lease != nil }

// pgTx is the PostgreSQL side of a Tx.
type pgTx struct {
	s     *pgStore
	db    *DB
	ctx   context.Context
	conn  *pgxpool.Conn
	write bool
	shard int // the row of the counters a write adds to
	// queued are the statements of the functions that returned nil, not sent yet; mine are
	// those of the running function fn.
	queued, mine []pgStmt
	fn           int
	// savepoint: the running function's writes were sent under SAVEPOINT fn, to be released
	// or rolled back when it returns.
	savepoint bool
	// abort is the error that failed the transaction (at the server, or a statement's outcome
	// failed its function), blames the functions whose statement it was (none known: empty).
	// Everything after it fails with it.
	abort  error
	blames []int
	// after are statements a statement's outcome asks for, sent once its pipeline was read
	// (pgLeaseSet's sessions left without a number).
	after []pgStmt
	// statsAdd and mineStats are the counters' additions of the finished functions and of the
	// running one, sent as one statement per customer (pg_sessions.go: addStats).
	statsAdd, mineStats map[string]*pgStatsDelta
	// committed and mineCommitted are what the finished functions and the running one have
	// the commit do (afterCommit); endpointsChanged: a function changed webhook endpoints.
	committed, mineCommitted []func()
	endpointsChanged         bool
}

// afterCommit has f called once the transaction committed, if the running function
// returns nil (bbolt's Tx.OnCommit).
func (t *pgTx) afterCommit(f func()) { t.mineCommitted = append(t.mineCommitted, f) }

var errReadOnly = errors.New("store: write in a read transaction")

// exec keeps a statement of the running write function, to be sent if it returns nil.
func (t *pgTx) exec(check func(pgconn.CommandTag) error, sql string, args ...any) error {
	if !t.write {
		return errReadOnly
	}
	if t.abort != nil {
		return t.abort
	}
	t.mine = append(t.mine, pgStmt{sql: sql, args: args, fn: t.fn, check: check})
	return nil
}

// fail records the error that failed the transaction, the first one only.
func (t *pgTx) fail(err error, fn int) error {
	if fn < 0 {
		return t.failAll(err, nil)
	}
	return t.failAll(err, []int{fn})
}

// failAll records the error that failed the transaction and the functions it fails.
func (t *pgTx) failAll(err error, fns []int) error {
	if t.abort == nil {
		t.abort, t.blames = err, fns
	}
	return t.abort
}

// coalesce turns each run of grouped writes into their statements: the sessions in one, the
// new sessions' leases in one per customer (sessions and leases touch tables of their own,
// so the run's order between the two kinds does not matter).
func (t *pgTx) coalesce(stmts []pgStmt) []pgStmt {
	if !slices.ContainsFunc(stmts, func(s pgStmt) bool { return s.grouped() }) {
		return stmts
	}
	out := make([]pgStmt, 0, len(stmts))
	for i := 0; i < len(stmts); {
		if !stmts[i].grouped() {
			out = append(out, stmts[i])
			i++
			continue
		}
		var sessions, leases []pgStmt
		for ; i < len(stmts) && stmts[i].grouped(); i++ {
			if stmts[i].sess != nil {
				sessions = append(sessions, stmts[i])
			} else {
				leases = append(leases, stmts[i])
			}
		}
		if len(sessions) > 0 {
			out = append(out, sessionsStmt(sessions))
		}
		if len(leases) > 0 {
			out = append(out, t.leaseSets(leases)...)
		}
	}
	return out
}

// outcomeRead: a statement's outcome may fail its function (or ask for more statements), so
// the transaction commits only once it was read.
func outcomeRead(stmts []pgStmt) bool {
	return slices.ContainsFunc(stmts, func(s pgStmt) bool { return s.check != nil || s.scan != nil || s.each != nil || s.lease != nil })
}

// send sends statements in one pipelined round trip and reads their outcomes; then those
// the outcomes asked for (after), in another.
func (t *pgTx) send(stmts []pgStmt) error {
	if len(stmts) == 0 {
		return nil
	}
	stmts = t.coalesce(stmts)
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
	br := t.conn.SendBatch(t.ctx, b)
	for _, s := range stmts {
		var err error
		switch {
		case s.scan != nil:
			err = s.scan(br.QueryRow())
		case s.each != nil:
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				err = s.each(rows)
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
		default:
			var tag pgconn.CommandTag
			tag, err = br.Exec()
			if err == nil && s.check != nil {
				err = s.check(tag)
			}
		}
		if err != nil {
			br.Close()
			return t.fail(err, s.fn)
		}
	}
	if err := br.Close(); err != nil {
		return t.fail(err, -1)
	}
	if len(t.after) > 0 {
		after := t.after
		t.after = nil
		return t.send(after)
	}
	return nil
}

// beforeRead sends the pending writes, so that a read sees them: the finished functions',
// and the running one's under a savepoint.
func (t *pgTx) beforeRead() error {
	if t.abort != nil {
		return t.abort
	}
	if !t.write || len(t.queued)+len(t.mine)+len(t.statsAdd)+len(t.mineStats) == 0 {
		return nil
	}
	stmts := append(t.queued, t.statsStmts(t.statsAdd, -1)...)
	if len(t.mine)+len(t.mineStats) > 0 {
		if !t.savepoint {
			stmts = append(stmts, pgStmt{sql: "SAVEPOINT fn", fn: t.fn})
			t.savepoint = true
		}
		stmts = append(stmts, t.mine...)
		stmts = append(stmts, t.statsStmts(t.mineStats, t.fn)...)
	}
	t.queued, t.mine = nil, nil
	return t.send(stmts)
}

// forUpdate is the locking clause of a read of one record: in a write transaction the
// function may change what it read, while other nodes write too.
func (t *pgTx) forUpdate() string {
	if t.write {
		return " FOR UPDATE"
	}
	return ""
}

// query runs a read and calls each for every row; each must only scan.
func (t *pgTx) query(sql string, args []any, each func(pgx.Rows) error) error {
	if err := t.beforeRead(); err != nil {
		return err
	}
	rows, err := t.conn.Query(t.ctx, sql, args...)
	if err != nil {
		return t.readErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return t.readErr(err)
	}
	return nil
}

// row runs a read of one row into dest; ErrNotFound without one.
func (t *pgTx) row(sql string, args []any, dest ...any) error {
	if err := t.beforeRead(); err != nil {
		return err
	}
	err := t.conn.QueryRow(t.ctx, sql, args...).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return t.readErr(err)
	}
	return nil
}

// readErr: a read that failed at the server (or lost the connection) failed the transaction.
func (t *pgTx) readErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) || t.conn.Conn().IsClosed() {
		return t.fail(err, t.fn)
	}
	return err // a scan into the wrong type: the transaction goes on
}

// pgRetryable tells a failure that running the transaction again may cure: a
// serialization failure or a deadlock.
func pgRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// pgUniqueNames names what a unique constraint keeps unique, for the ErrExists it makes.
var pgUniqueNames = map[string]string{
	"customers_pkey":         "customer",
	"customers_site_key_key": "site key",
}

// pgError is what a write function that made a failing statement is told: a unique
// violation is ErrExists.
func pgError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		if pe.ConstraintName == "users_email_key" { // another node gave the address meanwhile
			return fmt.Errorf("user: %w", ErrEmailTaken)
		}
		what := pgUniqueNames[pe.ConstraintName]
		if what == "" {
			what = strings.TrimSuffix(pe.ConstraintName, "_pkey")
		}
		return fmt.Errorf("%s: %w", what, ErrExists)
	}
	return err
}

// commit runs a batch of writes in one transaction (see the comment at the top) and
// reports each its outcome.
func (s *pgStore) commit(db *DB, batch []*writeReq) {
	start := time.Now()
	errs := make([]error, len(batch))
	out := make([]bool, len(batch)) // failed by a statement: not run again
	retries := 0
	for {
		blames, abort := s.run(db, batch, errs, out)
		switch {
		case abort == nil:
			db.commitSeconds.Observe(time.Since(start).Seconds())
			db.batchSize.Observe(float64(len(batch)))
			for i, r := range batch {
				db.finish(r, errs[i])
			}
			return
		case pgRetryable(abort) && retries < pgRetries:
			retries++
			clear(errs)
			clear(out)
			time.Sleep(time.Duration(rand.IntN(retries*2+1)) * time.Millisecond)
		case len(blames) > 0:
			for _, b := range blames {
				errs[b], out[b] = pgError(abort), true
			}
		case len(batch) > 1 && s.ctx.Err() == nil && !errors.Is(abort, context.DeadlineExceeded) && isPgError(abort):
			// Nobody to blame (the commit itself failed): each function on its own.
			for _, r := range batch {
				s.commit(db, []*writeReq{r})
			}
			return
		default:
			// The server is gone, the connection broke or the commit's outcome is unknown:
			// every write of the batch failed.
			db.log.Error("store commit failed", "err", abort, "writes", len(batch))
			for i, r := range batch {
				if !out[i] {
					errs[i] = abort
				}
				db.finish(r, errs[i])
			}
			return
		}
	}
}

func isPgError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// run runs the functions of the batch not marked out in one transaction. It answers the
// functions to blame (none known: empty) and the error that aborted the transaction, or nil
// once it committed; errs holds what each function returned.
func (s *pgStore) run(db *DB, batch []*writeReq, errs []error, out []bool) ([]int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, pgTxTimeout)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	shard := <-s.shards
	defer func() { s.shards <- shard }()
	p := &pgTx{s: s, db: db, ctx: ctx, conn: conn, write: true, shard: shard, queued: []pgStmt{{sql: "BEGIN", fn: -1}}}
	tx := &Tx{pg: p, db: db}
	for i, r := range batch {
		if out[i] {
			continue
		}
		p.fn, p.savepoint, p.mine, p.mineCommitted = i, false, nil, nil
		err := r.fn(tx)
		if p.abort != nil {
			break
		}
		errs[i] = err
		if err == nil {
			p.mergeStats()
			p.committed = append(p.committed, p.mineCommitted...)
		}
		clear(p.mineStats)
		switch {
		case err == nil:
			p.queued = append(p.queued, p.mine...)
			if p.savepoint {
				p.queued = append(p.queued, pgStmt{sql: "RELEASE SAVEPOINT fn", fn: -1})
			}
		case p.savepoint:
			p.queued = append(p.queued, pgStmt{sql: "ROLLBACK TO SAVEPOINT fn", fn: -1}, pgStmt{sql: "RELEASE SAVEPOINT fn", fn: -1})
		}
	}
	p.mine = nil
	if p.abort == nil {
		stmts := append(p.queued, p.statsStmts(p.statsAdd, -1)...)
		commit := pgStmt{sql: "COMMIT", fn: -1}
		if outcomeRead(stmts) {
			// An outcome may fail its function after the server ran the statement (a lease
			// finding no number): COMMIT only once every outcome was read.
			if p.send(stmts) == nil {
				p.send([]pgStmt{commit})
			}
		} else {
			p.send(append(stmts, commit))
		}
	}
	if p.abort != nil {
		// The connection is in a transaction (failed, or whose outcome failed a function),
		// or in none if COMMIT failed: ROLLBACK ends the first and warns of the second. A
		// broken connection is dropped by Release.
		conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return p.blames, p.abort
	}
	for _, f := range p.committed {
		f()
	}
	return nil, nil
}

// view runs fn in a read-only snapshot.
func (s *pgStore) view(db *DB, fn func(*Tx) error) error {
	ctx, cancel := context.WithTimeout(s.ctx, pgTxTimeout)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store: postgres: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fmt.Errorf("store: postgres: %w", err)
	}
	p := &pgTx{s: s, db: db, ctx: ctx, conn: conn}
	err = fn(&Tx{pg: p, db: db})
	if _, cerr := conn.Exec(context.WithoutCancel(ctx), "COMMIT"); err == nil && cerr != nil {
		err = fmt.Errorf("store: postgres: %w", cerr)
	}
	return err
}

// pgImplemented are the exported methods of Tx and DB that work on PostgreSQL.
var pgImplemented = map[string]bool{
	// DB
	"DB.Write": true, "DB.Enqueue": true, "DB.View": true, "DB.Close": true, "DB.Ready": true,
	"DB.Driver": true, "DB.Purged": true, "DB.Exclusive": true,
	// CopyTo is the bbolt store's: it copies into PostgreSQL (trackline migrate).
	"DB.CopyTo": true,
	// Tx: customers, channels, numbers (pg_records.go)
	"Tx.Customer": true, "Tx.CreateCustomer": true, "Tx.PutCustomer": true, "Tx.Customers": true,
	"Tx.Purged": true, "Tx.PutChannel": true, "Tx.Channels": true, "Tx.Number": true,
	"Tx.HasNumber": true, "Tx.PutNumber": true, "Tx.Numbers": true, "Tx.DeleteNumber": true,
	// Tx: sessions, counters, assignments (pg_sessions.go)
	"Tx.Session": true, "Tx.PutSession": true, "Tx.PutEncodedSession": true, "Tx.SessionsOf": true,
	"Tx.Stats": true, "Tx.AddStats": true, "Tx.PutAssignment": true, "Tx.Assignments": true,
	"Tx.NumberAssignments": true,
	// tokens and the audit log (pg_access.go)
	"Tx.PutToken": true, "Tx.TokenByHash": true, "Tx.TokensOf": true, "Tx.DeleteToken": true,
	"Tx.AppendAudit": true, "Tx.AuditLog": true, "DB.TokenByHash": true, "DB.Tokens": true,
	"DB.AuditLog": true, "DB.Audit": true, "DB.PruneAudit": true,
	// calls, recordings, rollups (pg_calls.go)
	"Tx.PutCall": true, "Tx.Call": true, "Tx.Calls": true, "Tx.ActiveCalls": true, "Tx.CallsOfCaller": true,
	"Tx.AnnotateCall": true, "Tx.DeleteCall": true, "Tx.PutRecording": true, "Tx.Recording": true, "Tx.Rollups": true, "DB.Calls": true, "DB.Call": true,
	"DB.Recording": true, "DB.CallsOfCaller": true, "DB.Rollups": true, "Tx.Usage": true, "DB.Usage": true,
	// the shared pool's leases and the customers' change notifications (pg_lease.go, pg_notify.go)
	"DB.Shared": true, "Tx.LeaseNumber": true, "DB.CustomerChanges": true, "DB.EventWanted": true,
	// webhooks: endpoints, events, the outbox (pg_outbox*.go)
	"DB.AllEndpoints": true, "DB.DeleteEndpoint": true, "DB.Deliveries": true, "DB.DueDeliveries": true,
	"DB.Endpoint": true, "DB.Endpoints": true, "DB.EndpointsVersion": true, "DB.FailPending": true,
	"DB.IndexOutbox": true, "DB.OutboxSignal": true, "DB.OutboxStats": true, "DB.PruneWebhookMessages": true,
	"DB.ReplaySince": true, "DB.SealEndpointSecrets": true, "DB.TakeDueEndpoints": true, "DB.WebhookMessagesOf": true,
	"Tx.Deliveries": true, "Tx.Endpoint": true, "Tx.Endpoints": true, "Tx.Message": true, "Tx.Messages": true,
	"Tx.PoolExhausted": true, "Tx.PutEndpoint": true, "Tx.RecordDelivery": true, "Tx.ReplayMessage": true,
	"Tx.SetEndpointDisabled": true,
	// the web app's users, sessions, invitations (pg_users.go)
	"Tx.User": true, "Tx.Users": true, "Tx.UserByEmail": true, "Tx.PutUser": true, "Tx.DeleteUser": true,
	"Tx.AppSession": true, "Tx.PutAppSession": true, "Tx.DeleteAppSession": true, "Tx.PruneAppSessions": true,
	"Tx.Invitation": true, "Tx.PutInvitation": true, "Tx.TakeInvitation": true, "DB.User": true,
	"DB.UserByEmail": true, "DB.Users": true, "DB.AppSession": true, "DB.Invitation": true,
	// Google Ads settings and upload states (pg_googleads.go)
	"Tx.AllGoogleAds": true, "Tx.GoogleAds": true, "Tx.PutGoogleAds": true, "Tx.DeleteGoogleAds": true,
	"Tx.ConversionCandidates": true, "Tx.ConversionUpload": true, "Tx.ConversionUploads": true,
	"Tx.PutConversionUpload": true,
	// the data lifecycle, and what the file operations mean on PostgreSQL (pg_lifecycle.go)
	"DB.PurgeCustomer": true, "DB.ExpireSessions": true, "DB.FreezeSessionCounts": true, "DB.HasActiveCalls": true,
	"DB.IndexCallers": true, "DB.Backup": true, "DB.Compact": true, "DB.CompactionDue": true, "Tx.MarkCompactionDue": true,
	"DB.Path": true, "DB.Size": true,
}

// PostgresMissing lists the exported methods of DB and Tx that the PostgreSQL backend does
// not implement yet ("Tx.PutCall", ...), in order; trackline serve refuses the postgres
// driver while it is not empty. A method not implemented panics on PostgreSQL.
func PostgresMissing() []string {
	var out []string
	for _, t := range []reflect.Type{reflect.TypeFor[*DB](), reflect.TypeFor[*Tx]()} {
		for i := range t.NumMethod() {
			name := t.Elem().Name() + "." + t.Method(i).Name
			if !pgImplemented[name] {
				out = append(out, name)
			}
		}
	}
	return out
}
