package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/store"
)

// SweepConfig holds the retention rules the sweeper applies.
type SweepConfig struct {
	// Interval between runs (default 1h). The first run is at start.
	Interval time.Duration
	// RetentionMonths is how long a customer's data is kept after its contract ended,
	// unless the customer has its own (default 3).
	RetentionMonths int
	// SessionDays is how long a session that never led to a call is kept (default 90).
	SessionDays int
	// AuditMonths is how long audit entries are kept (default 24).
	AuditMonths int
	// ExportDir receives the archives of customers that chose export_then_delete.
	ExportDir string
	// ArchiveHandover is how long an archive stays in ExportDir for the operator to hand
	// over; a run deletes the archives older than that (default 30 days).
	ArchiveHandover time.Duration
	// Batch bounds the deletions of one store transaction (default store.DefaultPurgeBatch).
	Batch int
}

func (c *SweepConfig) defaults() {
	if c.Interval <= 0 {
		c.Interval = time.Hour
	}
	if c.RetentionMonths <= 0 {
		c.RetentionMonths = 3
	}
	if c.SessionDays <= 0 {
		c.SessionDays = 90
	}
	if c.AuditMonths <= 0 {
		c.AuditMonths = 24
	}
	if c.ArchiveHandover <= 0 {
		c.ArchiveHandover = 30 * 24 * time.Hour
	}
}

// Archive is what the sweeper needs of a customer's files: its export archive written into
// a directory (durably, before anything is deleted), and its recording files removed.
// Package recordings provides one (recordings.Exporter).
type Archive interface {
	// ExportFile writes the customer's export archive into dir and answers its path once
	// the file is complete and fsynced.
	ExportFile(ctx context.Context, dir, customerID string) (string, error)
	// RemoveCustomer deletes the customer's recording files.
	RemoveCustomer(customerID string) error
	// ExpireArchives deletes the archives in dir made before before (and what is left of
	// exports begun before it) and answers their file names.
	ExpireArchives(dir string, before time.Time) ([]string, error)
}

// Sweeper is the periodic retention job: it ends contracts whose end date passed, deletes
// lapsed trials at once, and the data of ended contracts after their retention period (as
// the customer chose: deleted, or exported and then deleted), expires sessions that never
// led to a call, releases numbers whose quarantine is over and prunes the audit log. Each
// action and each run is written in the audit log (ids and counts only) and counted in
// metrics.
type Sweeper struct {
	p       *Pool
	cfg     SweepConfig
	archive Archive
	log     *slog.Logger
	m       *sweepMetrics
}

// SweepOption configures NewSweeper.
type SweepOption func(*Sweeper)

// SweepLogger sets the sweeper's logger.
func SweepLogger(l *slog.Logger) SweepOption { return func(s *Sweeper) { s.log = l } }

// SweepRegisterer registers the sweeper's metrics on r.
func SweepRegisterer(r prometheus.Registerer) SweepOption {
	return func(s *Sweeper) { s.m.reg = r }
}

// NewSweeper makes the sweeper of p's customers. It takes time from p's clock.
func NewSweeper(p *Pool, cfg SweepConfig, archive Archive, opts ...SweepOption) (*Sweeper, error) {
	cfg.defaults()
	if archive == nil {
		return nil, errors.New("sweeper: no archive")
	}
	s := &Sweeper{p: p, cfg: cfg, archive: archive, log: slog.New(slog.DiscardHandler), m: newSweepMetrics()}
	for _, o := range opts {
		o(s)
	}
	if err := s.m.register(); err != nil {
		return nil, err
	}
	return s, nil
}

// Run sweeps at once and then every Interval until ctx ends. A run that fails is logged and
// counted; the next one tries again. In a cluster one node sweeps at a time (the store's
// Exclusive: a PostgreSQL advisory lock); the others skip that run.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		ran, err := s.p.db.Exclusive(ctx, "retention-sweep", func(ctx context.Context) error {
			_, err := s.Sweep(ctx)
			return err
		})
		if err != nil && ctx.Err() == nil {
			s.log.Error("retention sweep", "err", err)
		}
		if !ran && err == nil {
			s.log.Debug("retention sweep skipped: another node runs it")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SweepReport counts what one run did, by kind: records deleted (calls, sessions, ...) and
// actions (contracts_ended, trials_expired, customers_purged, exports, archives_deleted,
// numbers_released, numbers_returned, deferred).
type SweepReport map[string]int

func (r SweepReport) add(counts map[string]int) {
	for k, v := range counts {
		if v != 0 {
			r[k] += v
		}
	}
}

// Sweep runs the retention rules once, at the pool clock's now. It goes on past a failing
// customer and answers every failure joined.
func (s *Sweeper) Sweep(ctx context.Context) (SweepReport, error) {
	now := s.p.now().UTC()
	rep := SweepReport{}
	var errs []error
	fail := func(err error) {
		s.m.errors.Inc()
		errs = append(errs, err)
	}
	for _, c := range s.p.Customers() {
		if ctx.Err() != nil {
			break
		}
		if err := s.sweepCustomer(ctx, c, now, rep); err != nil {
			fail(fmt.Errorf("customer %s: %w", c.ID, err))
		}
	}
	// Archives whose handover window is over: they hold plain recordings and callers.
	if s.cfg.ExportDir != "" {
		gone, err := s.archive.ExpireArchives(s.cfg.ExportDir, now.Add(-s.cfg.ArchiveHandover))
		if err != nil {
			fail(fmt.Errorf("delete archives: %w", err))
		}
		if len(gone) > 0 {
			rep["archives_deleted"] += len(gone)
			s.m.archivesDeleted.Add(float64(len(gone)))
			if err := s.audit(ctx, now, "retention.archive_delete", "", nil, gone...); err != nil {
				fail(err)
			}
		}
	}
	rels, err := s.p.ReleaseDue(ctx, now)
	if err != nil {
		fail(err)
	}
	for _, r := range rels {
		action, kind := "number.release", "numbers_released"
		if r.Returned {
			action, kind = "number.return", "numbers_returned"
		}
		rep[kind]++
		if err := s.audit(ctx, now, action, r.CustomerID, nil, r.Number); err != nil {
			fail(err)
		}
	}
	// In a cluster: the open calls of a node unseen for store.LostNodeAfter end as lost
	// (store/pg_nodes.go); one audit entry per lost node, naming it.
	lost, ended, err := s.p.db.EndLostCalls(ctx, now, store.LostNodeAfter)
	if err != nil {
		fail(fmt.Errorf("end a lost node's calls: %w", err))
	}
	if len(ended) > 0 {
		rep["lost_calls_ended"] += len(ended)
		for _, n := range lost {
			if err := s.audit(ctx, now, "node.lost", "", map[string]int{"last_seen_unix": int(n.Seen.Unix())}, n.ID); err != nil {
				fail(err)
			}
		}
	}
	pruned, err := s.p.db.PruneAudit(ctx, now.AddDate(0, -s.cfg.AuditMonths, 0), s.cfg.Batch)
	if err != nil {
		fail(err)
	}
	if pruned > 0 {
		rep["audit_entries"] += pruned
	}
	for kind, n := range rep {
		if isRecordKind(kind) {
			s.m.deleted.WithLabelValues(kind).Add(float64(n))
		}
	}
	// bbolt keeps deleted records in its freed pages: after deleting customers, rewrite the
	// file without them (the switch keeps serving meanwhile).
	if rep["customers"] > 0 {
		if _, err := s.p.db.Compact(ctx); err != nil {
			fail(fmt.Errorf("compact the store: %w", err))
		} else {
			rep["compactions"]++
		}
	}
	if len(errs) > 0 {
		rep["errors"] = len(errs)
	}
	s.m.runs.Inc()
	if err := s.audit(ctx, now, "sweep.run", "", rep); err != nil {
		fail(err)
	}
	if len(errs) == 0 {
		s.m.lastSuccess.Set(float64(now.Unix()))
	}
	s.log.Info("retention sweep", "actions", map[string]int(rep))
	return rep, errors.Join(errs...)
}

// recordKinds are the report's counts of deleted records (the rest are actions).
var recordKinds = map[string]bool{
	"calls": true, "recordings": true, "sessions": true, "assignments": true, "numbers": true,
	"channels": true, "tokens": true, "customers": true, "audit_entries": true, "webhook_messages": true,
}

func isRecordKind(k string) bool { return recordKinds[k] }

// sweepCustomer applies the rules to one customer.
func (s *Sweeper) sweepCustomer(ctx context.Context, c store.Customer, now time.Time, rep SweepReport) error {
	switch {
	case TrialLapsed(&c, now):
		// A trial that ended without a contract keeps nothing, and frees its numbers now.
		return s.purge(ctx, c, now, false, "trial.expire", "trials_expired", rep)
	case c.Status == store.StatusActive && !c.ContractEnds.IsZero() && !now.Before(c.ContractEnds):
		if _, err := s.p.EndContract(ctx, c.ID, c.ContractEnds); err != nil {
			return fmt.Errorf("end contract: %w", err)
		}
		rep["contracts_ended"]++
		if err := s.audit(ctx, now, "contract.end", c.ID, nil); err != nil {
			return err
		}
	case c.Status == store.StatusEnded:
		months := c.RetentionMonths
		if months <= 0 {
			months = s.cfg.RetentionMonths
		}
		if !now.Before(c.EndedAt.AddDate(0, months, 0)) {
			if c.RetentionAction == store.RetainExportThenDelete {
				path, err := s.archive.ExportFile(ctx, s.cfg.ExportDir, c.ID)
				if err != nil {
					return fmt.Errorf("export before deletion (nothing deleted): %w", err)
				}
				s.m.exports.Inc()
				rep["exports"]++
				if err := s.audit(ctx, now, "retention.export", c.ID, nil, filepath.Base(path)); err != nil {
					return err
				}
			}
			return s.purge(ctx, c, now, true, "retention.purge", "customers_purged", rep)
		}
	}
	// Sessions that never led to a call, whatever the contract; the months over keep
	// their session counts first.
	if _, err := s.p.db.FreezeSessionCounts(ctx, c.ID, now); err != nil {
		return err
	}
	res, err := s.p.db.ExpireSessions(ctx, c.ID, now.AddDate(0, 0, -s.cfg.SessionDays), s.cfg.Batch)
	rep.add(map[string]int{"sessions": res.Sessions, "assignments": res.Assignments})
	for ids := res.SessionIDs; len(ids) > 0; {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		if aerr := s.audit(ctx, now, "sessions.expire", c.ID, nil, chunk...); aerr != nil {
			return aerr
		}
	}
	if err != nil {
		return fmt.Errorf("expire sessions: %w", err)
	}
	// Webhook messages, with their deliveries' attempts, are kept for the retention period
	// (those still pending until they are settled).
	months := c.RetentionMonths
	if months <= 0 {
		months = s.cfg.RetentionMonths
	}
	pruned, err := s.p.db.PruneWebhookMessages(ctx, c.ID, now.AddDate(0, -months, 0), s.cfg.Batch)
	rep.add(map[string]int{"webhook_messages": pruned})
	if err != nil {
		return fmt.Errorf("prune webhook messages: %w", err)
	}
	return nil
}

// purge removes a customer's recording files, then its records (so that a run cut short
// leaves the records, and the next run repeats both).
// A customer with calls in progress (their recordings are being written) is left for a
// later run.
func (s *Sweeper) purge(ctx context.Context, c store.Customer, now time.Time, hold bool, action, kind string, rep SweepReport) error {
	busy, err := s.p.db.HasActiveCalls(c.ID)
	if err != nil {
		return err
	}
	if !busy {
		if err = s.archive.RemoveCustomer(c.ID); err != nil {
			return err
		}
	}
	var res store.PurgeResult
	if !busy {
		res, err = s.p.Purge(ctx, c.ID, hold)
	}
	if busy || errors.Is(err, store.ErrActiveCalls) {
		rep["deferred"]++
		s.log.Info("deletion deferred: calls in progress", "customer", c.ID)
		return nil
	}
	counts := res.Counts()
	rep.add(counts)
	if err != nil {
		return err
	}
	rep[kind]++
	rep["customers"]++
	return s.audit(ctx, now, action, c.ID, counts)
}

// audit commits an entry of the sweeper.
func (s *Sweeper) audit(ctx context.Context, at time.Time, action, customerID string, counts map[string]int, ids ...string) error {
	e := store.AuditEntry{Time: at, Actor: "sweeper", Action: action, CustomerID: customerID, IDs: ids, Counts: counts}
	if err := s.p.db.Write(ctx, func(tx *store.Tx) error { return tx.AppendAudit(&e) }); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

type sweepMetrics struct {
	reg     prometheus.Registerer
	runs    prometheus.Counter
	errors  prometheus.Counter
	exports prometheus.Counter
	// archivesDeleted counts archives deleted at the end of their handover window.
	archivesDeleted prometheus.Counter
	deleted         *prometheus.CounterVec
	lastSuccess     prometheus.Gauge
}

func newSweepMetrics() *sweepMetrics {
	return &sweepMetrics{
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_retention_sweeps_total", Help: "Runs of the retention sweeper.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_retention_sweep_errors_total", Help: "Failures in retention sweeper runs (a customer, a number, the audit log).",
		}),
		exports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_retention_exports_total", Help: "Customer archives the sweeper wrote to the export directory before deletion.",
		}),
		archivesDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_retention_archives_deleted_total", Help: "Archives the sweeper deleted from the export directory when their handover window was over.",
		}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_retention_deleted_total", Help: "Records the retention sweeper deleted, by kind.",
		}, []string{"kind"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_retention_last_success_timestamp_seconds", Help: "When the last retention sweep without errors ran (Unix time).",
		}),
	}
}

func (m *sweepMetrics) register() error {
	if m.reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.runs, m.errors, m.exports, m.archivesDeleted, m.deleted, m.lastSuccess} {
		if err := m.reg.Register(c); err != nil {
			return fmt.Errorf("register sweeper metrics: %w", err)
		}
	}
	return nil
}
