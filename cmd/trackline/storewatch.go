package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Watching the store. A node on a shared store (PostgreSQL) must not take calls it cannot
// record while the database is away (down, restarting, unreachable): the watcher pings it
// every storePingEvery; after storeDownAfter pings in a row failed, the switch refuses new
// calls and Kamailio's pings with 503 (sip.Switch.SetStoreDown) until one ping succeeds
// again. /readyz's store check pings on its own, so an HTTP balancer moves away meanwhile.
// Nothing is restarted: pgx's pool makes new connections once the server answers again.

// Timing of the watcher.
const (
	storePingEvery = time.Second
	storeDownAfter = 2 // failed pings in a row: one slow ping under load is no outage
)

// storePinger is the store as the watcher sees it; *store.DB is one.
type storePinger interface {
	Ready(ctx context.Context) error
}

// storeGate is told when the store goes away and comes back; *sip.Switch is one.
type storeGate interface {
	SetStoreDown(down bool) bool
}

// newStoreUp is the gauge of the watcher's verdict.
func newStoreUp() prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "trackline_store_up",
		Help: "1 while the store answers its pings, 0 while new calls are refused because it does not.",
	})
	g.Set(1)
	return g
}

// watchStore pings db until ctx ends and tells gate (and up) what it finds.
func watchStore(ctx context.Context, db storePinger, gate storeGate, up prometheus.Gauge, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, every)
		err := db.Ready(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			failed = 0
			up.Set(1)
			if gate.SetStoreDown(false) {
				logger.Info("store reachable again: new calls taken")
			}
		case failed+1 >= storeDownAfter:
			failed = storeDownAfter
			up.Set(0)
			if gate.SetStoreDown(true) {
				logger.Error("store unreachable: new calls refused with 503 until it answers", "err", err)
			}
		default:
			failed++
		}
	}
}

// runStoreWatch runs watchStore on a shared store (PostgreSQL; a bbolt file is no server
// that goes away) until ctx ends or stop is called; stop waits for it.
func runStoreWatch(ctx context.Context, db interface {
	storePinger
	Driver() string
}, gate storeGate, reg prometheus.Registerer, logger *slog.Logger) (stop func(), err error) {
	up := newStoreUp() // registered on bbolt too (always 1): the alert rules find it
	if err := reg.Register(up); err != nil {
		return nil, err
	}
	if db.Driver() == "bbolt" {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { watchStore(ctx, db, gate, up, storePingEvery, logger); close(done) }()
	return func() { cancel(); <-done }, nil
}
