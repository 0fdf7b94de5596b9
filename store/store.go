package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/trackline/trackline/internal/rearm"
)

// SchemaVersion is the layout this build reads and writes. Version 2 keeps assignments by
// customer and time (assignments.go); version 3 adds the daily rollups (rollups.go), which
// every write that completes a call must keep, so that a build of version 2 must not write
// such a file. Version 4 keeps the webhooks' pending deliveries in webhook_queue and writes
// messages that an earlier build cannot read (outbox.go). Open converts a file of version 1,
// 2 or 3.
const SchemaVersion = 4

var (
	bucketMeta        = []byte("meta")
	bucketCustomers   = []byte("customers")
	bucketSiteKeys    = []byte("site_keys")
	bucketChannels    = []byte("channels")
	bucketNumbers     = []byte("numbers")
	bucketSessions    = []byte("sessions")
	bucketSessByCust  = []byte("sessions_by_customer")
	bucketStats       = []byte("customer_stats")
	bucketCalls       = []byte("calls")
	bucketCallsByCust = []byte("calls_by_customer")
	bucketCallsActive = []byte("calls_active")
	bucketRecordings  = []byte("recordings")
	bucketTokens      = []byte("tokens")
	bucketTokensByCu  = []byte("tokens_by_customer")
	bucketAudit       = []byte("audit")
	bucketAuditByCust = []byte("audit_by_customer")
	bucketAgentTokens = []byte("agent_tokens")
	bucketAgentByCu   = []byte("agent_tokens_by_customer")
	bucketSessCalled  = []byte("sessions_called")
	bucketUsage       = []byte("usage")
	bucketPurged      = []byte("customers_purged")

	allBuckets = [][]byte{bucketMeta, bucketCustomers, bucketSiteKeys, bucketChannels, bucketNumbers,
		bucketSessions, bucketSessByCust, bucketAssignByTime, bucketStats, bucketCalls, bucketCallsByCust,
		bucketCallsActive, bucketRecordings}
	// schema3Buckets are the buckets schema 3 added: a file of schema 3 has them.
	schema3Buckets = [][]byte{bucketRollups}
	// addedBuckets were added to schema 1 (or 2) later. Adding a bucket changes no existing key or
	// value, so it needs no new schema version: Open creates them in a file an earlier build
	// wrote, an earlier build ignores them, and Verify accepts a file without them.
	addedBuckets = slices.Concat([][]byte{bucketTokens, bucketTokensByCu, bucketAudit, bucketAuditByCust, bucketAgentTokens, bucketAgentByCu,
		bucketSessCalled, bucketUsage, bucketPurged, bucketCallsByCaller, bucketAdsSettings, bucketAdsUploads}, userBuckets, webhookBuckets)

	keySchema = []byte("schema_version")
)

// maxBatch bounds how many writes share one transaction.
const maxBatch = 2048

// DB is the open store.
type DB struct {
	// cur is the open file. Compact replaces it; readers hold the handle they started on
	// (acquire), so a swap neither waits for them nor pulls the file from under them.
	cur     atomic.Pointer[handle]
	path    string
	log     *slog.Logger
	retired sync.WaitGroup // handles replaced by Compact, closing once their readers are done

	writes    chan *writeReq
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	mu        sync.RWMutex // guards closed against concurrent Write/Close
	closed    bool

	commitSeconds prometheus.Histogram
	batchSize     prometheus.Histogram

	compactMu sync.Mutex // one Compact at a time
	// replay, owned by the committer, is non-nil while Compact copies the file: every
	// committed change is logged in it, to be made in the copy before the swap.
	replay *opLog
	// afterSnapshot, if set (tests), runs in Compact once the snapshot is taken.
	afterSnapshot func()

	// The webhooks' outbox (outbox.go): the clock of its messages, and what its readers are
	// told of the commits.
	now    func() time.Time
	outbox outboxState

	// pg is the PostgreSQL backend of a DB opened by OpenPostgres (pg.go); nil on bbolt.
	pg *pgStore
}

type writeReq struct {
	fn   func(*Tx) error
	done chan error
	// detached writes have no waiter: the committer logs their failure and recycles them.
	detached string
	// ctl, when set, is run by the committer between two commits instead of fn.
	ctl func() error
}

// finish reports the outcome of r to its waiter, or for a detached write logs a failure.
func (db *DB) finish(r *writeReq, err error) {
	if r.detached == "" {
		r.done <- err
		return
	}
	if err != nil {
		db.log.Error("store write failed", "write", r.detached, "err", err)
	}
	r.fn, r.detached = nil, ""
	reqPool.Put(r)
}

var reqPool = sync.Pool{New: func() any { return &writeReq{done: make(chan error, 1)} }}

// Option configures Open.
type Option func(*options)

type options struct {
	log       *slog.Logger
	reg       prometheus.Registerer
	timeout   time.Duration
	now       func() time.Time
	fieldKeys FieldKeys // PostgreSQL only (pg_seal.go)
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the store's metrics on r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithClock sets the clock of the webhooks' outbox (the time of its messages and of their
// ids); the default is time.Now. The other records carry the times their callers give.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLockTimeout bounds how long Open waits for another process's file lock.
func WithLockTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Open opens (creating if needed) the store file at path and starts its committer.
func Open(path string, opts ...Option) (*DB, error) {
	o := options{log: slog.New(slog.DiscardHandler), timeout: 2 * time.Second, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	b, err := bolt.Open(path, 0o600, boltOptions(o.timeout))
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// A copy left by a compaction that did not finish (a crash) holds nothing the file
	// does not: remove it. The file's lock, held now, keeps another process from compacting.
	if err := os.Remove(path + compactSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		b.Close()
		return nil, fmt.Errorf("remove unfinished compaction: %w", err)
	}
	db := newDB(path, o)
	db.cur.Store(newHandle(b))
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	if o.reg != nil {
		for _, c := range []prometheus.Collector{db.commitSeconds, db.batchSize} {
			if err := o.reg.Register(c); err != nil {
				b.Close()
				return nil, fmt.Errorf("register store metrics: %w", err)
			}
		}
	}
	if err := db.startOutbox(); err != nil {
		b.Close()
		return nil, err
	}
	go db.commitLoop()
	go db.releaseLoop() // rss.go
	return db, nil
}

// newDB is a DB of either backend, its committer not started.
func newDB(path string, o options) *DB {
	return &DB{
		path:   path,
		log:    o.log,
		writes: make(chan *writeReq, 4*maxBatch),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		now:    o.now,
		outbox: outboxState{signal: make(chan struct{}, 1), due: map[EndpointRef]struct{}{}, queues: map[EndpointRef]*epQueue{}},
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trackline_store_commit_seconds",
			Help:    "Time to commit one store transaction (writes and fsync).",
			Buckets: []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512},
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trackline_store_batch_writes",
			Help:    "Writes coalesced into one store transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
	}
}

// boltOptions are the options every store file is opened with.
func boltOptions(timeout time.Duration) *bolt.Options {
	return &bolt.Options{
		Timeout:         timeout,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 256 << 20,
		NoFreelistSync:  true,
	}
}

func (db *DB) init() error {
	var version uint32
	err := db.cur.Load().b.Update(func(tx *bolt.Tx) error {
		// The version is read first: a file of an unknown schema is left as it is.
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketMeta, err)
		}
		v := meta.Get(keySchema)
		switch {
		case v == nil:
			version = SchemaVersion // a new file
			if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
				return err
			}
		case len(v) == 4 && binary.BigEndian.Uint32(v) >= 1 && binary.BigEndian.Uint32(v) <= SchemaVersion:
			version = binary.BigEndian.Uint32(v)
		default:
			return fmt.Errorf("%w: file has %x, this build knows %d", ErrSchema, v, SchemaVersion)
		}
		// Derived buckets added later are filled from the records once, when created.
		backfill := tx.Bucket(bucketUsage) == nil && tx.Bucket(bucketSessions) != nil
		for _, name := range slices.Concat(allBuckets, schema3Buckets, addedBuckets) {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if backfill {
			if err := (&Tx{tx: boltTx{tx: tx}}).backfillUsage(); err != nil {
				return fmt.Errorf("fill usage counters: %w", err)
			}
		}
		// The webhooks' pending deliveries of an earlier layout (outbox.go).
		if tx.Bucket(bucketPendingV1) != nil {
			n, err := convertOutbox(tx)
			if err != nil {
				return fmt.Errorf("convert the webhook outbox: %w", err)
			}
			db.log.Info("store converted the webhook outbox to its queue", "pending", n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if version == 1 {
		start := time.Now()
		n, err := db.migrateAssignments()
		if err != nil {
			return err
		}
		db.log.Info("store converted to schema 2", "assignments", n, "took", time.Since(start).Round(time.Millisecond))
	}
	if err := db.convertToSchema3(version < 3); err != nil {
		return err
	}
	if version < 4 {
		// The outbox was converted in the first transaction (convertOutbox).
		return db.cur.Load().b.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 4))
		})
	}
	return nil
}

// convertToSchema3 fills the daily rollups of a file of schema 2 (start), or goes on with a
// filling cut short (its mark is in meta); the file says schema 3 from the first step.
func (db *DB) convertToSchema3(start bool) error {
	b := db.cur.Load().b
	if start {
		if err := db.startSchema3(); err != nil {
			return fmt.Errorf("convert the store to schema 3: %w", err)
		}
	}
	var pending bool
	if err := b.View(func(tx *bolt.Tx) error { pending = tx.Bucket(bucketMeta).Get(keyRollupsAfter) != nil; return nil }); err != nil || !pending {
		return err
	}
	began := time.Now()
	n, err := db.backfillRollups(rollupBackfillBatch)
	if err != nil {
		return fmt.Errorf("convert the store to schema 3: fill the daily rollups: %w", err)
	}
	db.log.Info("store converted to schema 3", "calls", n, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// startSchema3 makes a file of schema 2 one of schema 3 whose rollups are to be filled from
// the first call on.
func (db *DB) startSchema3() error {
	return db.cur.Load().b.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyRollupsAfter, []byte{}); err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, 3))
	})
}

// Close stops the committer after the queued writes and closes the file. It is idempotent.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.stopOutbox()
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		close(db.stop)
		<-db.done
		if db.outbox.indexDone != nil {
			<-db.outbox.indexDone
		}
		if db.pg != nil {
			db.closeErr = db.pg.close()
			return
		}
		db.closeErr = db.cur.Load().b.Close()
		db.retired.Wait()
	})
	return db.closeErr
}

// Write runs fn in a read-write transaction shared with other concurrent writes and returns
// once that transaction is durable. fn may run more than once (after another write in its
// batch failed), so it must only depend on its arguments and the transaction.
func (db *DB) Write(ctx context.Context, fn func(*Tx) error) error {
	p, err := db.Enqueue(ctx, fn)
	if err != nil {
		return err
	}
	return p.Wait()
}

// Pending is a queued write; Wait for its outcome exactly once.
type Pending struct{ r *writeReq }

// Enqueue queues fn like Write but returns before the commit. Writes are committed in the
// order they were enqueued, so a caller that enqueues under its own lock keeps its order on
// disk while waiting outside the lock. On PostgreSQL with several committers (pg.go:
// pgCommitters) only a write queued after another's Wait returned is sure to commit after it.
func (db *DB) Enqueue(ctx context.Context, fn func(*Tx) error) (Pending, error) {
	return db.enqueue(ctx, fn, "")
}

func (db *DB) enqueue(ctx context.Context, fn func(*Tx) error, detached string) (Pending, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return Pending{}, ErrClosed
	}
	r := reqPool.Get().(*writeReq)
	r.fn, r.detached = fn, detached
	select {
	case db.writes <- r:
		return Pending{r}, nil
	case <-ctx.Done():
		r.fn, r.detached = nil, ""
		reqPool.Put(r)
		return Pending{}, ctx.Err()
	}
}

// enqueueDetached queues fn like Enqueue, for a write nobody waits for: it shares the next
// commit, and the committer logs its failure under name.
func (db *DB) enqueueDetached(ctx context.Context, name string, fn func(*Tx) error) error {
	_, err := db.enqueue(ctx, fn, name)
	return err
}

// Wait blocks until the write is durable or failed. Once queued a write is committed or fails
// whatever happens to the caller's context, so the caller never answers before knowing.
func (p Pending) Wait() error {
	err := <-p.r.done
	p.r.fn = nil
	reqPool.Put(p.r)
	return err
}

// commitLoop is the only writer. It exits when stop is closed and the queue is drained.
// A control request (ctl) ends the batch being filled and runs after its commit, so it
// sees every write queued before it committed and none queued after.
func (db *DB) commitLoop() {
	defer close(db.done)
	db.commits()
}

// commits is the committer's loop: on bbolt the only one, on PostgreSQL one of several
// (pg.go: pgCommitters), each taking the batch queued while the others' are in flight.
func (db *DB) commits() {
	batch := make([]*writeReq, 0, maxBatch)
	var linger rearm.Timer // (bbolt) waits for the writes a small batch lingers for
	var last time.Time     // when the last commit started
	var lastN int          // and how many writes it held
	for {
		var ctl *writeReq
		select {
		case r := <-db.writes:
			if r.ctl != nil {
				db.control(r)
				continue
			}
			batch = append(batch[:0], r)
		case <-db.stop:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-db.writes:
					if r.ctl != nil {
						db.control(r)
					} else {
						db.commit(append(batch[:0], r))
					}
				default:
					return
				}
			}
		}
		batch, ctl = db.fill(batch)
		if ctl == nil && len(batch) < maxBatch {
			// Let the goroutines that are ready run first: under load those the last
			// commit woke answer, and their clients' next requests join this batch (in the
			// sessions bench 20 % larger batches and 10 % more sessions per second, at a
			// lower p99); without load there is nothing to yield to.
			for range commitYields {
				runtime.Gosched()
			}
			batch, ctl = db.fill(batch)
		}
		if db.pg == nil && ctl == nil && len(batch) < lingerBatch && max(len(batch), lastN) > 1 && time.Since(last) < lingerCycle {
			batch, ctl = db.linger(batch, &linger, last.Add(lingerCycle))
		}
		last, lastN = time.Now(), len(batch)
		db.commit(batch)
		if ctl != nil {
			db.control(ctl)
		}
	}
}

// commitYields is how often the committer yields before it commits a batch.
const commitYields = 2

// A small batch lingers while commits follow each other (bbolt). A commit costs bbolt about 80
// KB of allocation, and the CPU to make and write it, whatever it holds: it reads every page it
// changes, and the paths from the buckets' roots to them, into nodes (a call's start and end
// touch the calls, their indexes, usage and rollups), while a call's own share is about 15 KB
// (BenchmarkCommitBatch: 96 KB a call in commits of one call's writes, 43 KB of three, 23 KB of
// ten). The switch's writes came two or three to a commit, one write per call's start, so that
// the commits made 45 % of the bytes the switch allocated with the disclaimer. So while the
// last commit started less than lingerCycle ago (writes come faster than commits end) and this
// batch or the last held more than one write (a single writer waiting for each of its writes in
// turn gains nothing by waiting), a batch of fewer than lingerBatch waits for more until
// lingerCycle after the last commit's start, as long as each comes within lingerGap of the one
// before: a write waits at most lingerCycle longer, and writers that all wait for this commit
// (a closed loop) cost it at most lingerGap. Without load a write commits at once, as before,
// and so does a large batch (the sessions' 64 clients).
const (
	lingerBatch = 16
	lingerCycle = 12 * time.Millisecond
	lingerGap   = 4 * time.Millisecond
)

// linger adds to batch the writes that come until deadline, up to lingerBatch, while each
// comes within lingerGap of the last; it stops at a control request and returns it. t is
// the committer's timer.
func (db *DB) linger(batch []*writeReq, t *rearm.Timer, deadline time.Time) ([]*writeReq, *writeReq) {
	until := func() time.Time {
		if gap := time.Now().Add(lingerGap); gap.Before(deadline) {
			return gap
		}
		return deadline
	}
	end := until()
	for len(batch) < lingerBatch {
		wait := time.Until(end)
		if wait <= 0 {
			break
		}
		select {
		case r := <-db.writes:
			if r.ctl != nil {
				return batch, r
			}
			batch = append(batch, r)
			end = until()
		case <-t.After(wait): // or sooner: look again
		}
	}
	return batch, nil
}

// fill adds the writes queued now to batch, up to maxBatch; it stops at a control request
// and returns it, to be run after the batch's commit.
func (db *DB) fill(batch []*writeReq) ([]*writeReq, *writeReq) {
	for len(batch) < maxBatch {
		select {
		case r := <-db.writes:
			if r.ctl != nil {
				return batch, r
			}
			batch = append(batch, r)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// control runs a control request and reports its outcome.
func (db *DB) control(r *writeReq) {
	r.done <- r.ctl()
}

// update runs fn in a write transaction of the current file; while a compaction copies,
// the changes of a transaction that commits are logged for the copy.
func (db *DB) update(fn func(*Tx) error) error {
	var log *opLog
	if db.replay != nil {
		log = &opLog{}
	}
	err := db.cur.Load().b.Update(func(tx *bolt.Tx) error {
		return fn(&Tx{tx: boltTx{tx: tx, log: log}, db: db})
	})
	if err == nil && log != nil {
		db.replay.ops = append(db.replay.ops, log.ops...)
	}
	return err
}

func (db *DB) commit(batch []*writeReq) {
	if db.pg != nil {
		db.pg.commit(db, batch)
		return
	}
	start := time.Now()
	failed := -1
	err := db.update(func(t *Tx) error {
		for i, r := range batch {
			if err := r.fn(t); err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	db.commitSeconds.Observe(time.Since(start).Seconds())
	db.batchSize.Observe(float64(len(batch)))
	if err == nil {
		for _, r := range batch {
			db.finish(r, nil)
		}
		return
	}
	if failed < 0 {
		// The commit itself failed (disk full, I/O error): every write in it failed.
		db.log.Error("store commit failed", "err", err, "writes", len(batch))
		for _, r := range batch {
			db.finish(r, err)
		}
		return
	}
	// One write failed: the others are innocent, run each on its own.
	for _, r := range batch {
		db.finish(r, db.update(r.fn))
	}
}

// View runs fn in a read-only transaction. fn must copy out what it keeps and return quickly.
func (db *DB) View(fn func(*Tx) error) error {
	if db.pg != nil {
		return db.pg.view(db, fn)
	}
	return db.view(func(tx *bolt.Tx) error { return fn(&Tx{tx: boltTx{tx: tx}, db: db}) })
}

// view runs fn in a read-only bbolt transaction of the current file.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	h := db.acquire()
	defer h.release()
	return h.b.View(fn)
}

// Path is the file's path; on PostgreSQL the database's address without its password
// (postgres://user@host:port/database).
func (db *DB) Path() string {
	if db.pg != nil {
		return db.pg.path()
	}
	return db.path
}

// Size is the file's current size in bytes; on PostgreSQL the database's
// (pg_database_size: tables and indexes, not the WAL).
func (db *DB) Size() (int64, error) {
	if db.pg != nil {
		ctx, cancel := context.WithTimeout(db.pg.ctx, pgTxTimeout)
		defer cancel()
		return db.pg.size(ctx)
	}
	var n int64
	err := db.view(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}
