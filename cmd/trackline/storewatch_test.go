package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/store"
)

// gateLog records what the watcher tells the switch.
type gateLog struct {
	mu   sync.Mutex
	down atomic.Bool
	seen []bool
}

func (g *gateLog) SetStoreDown(down bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, down)
	return g.down.Swap(down) != down
}

// A node on PostgreSQL whose database goes away: readiness reports the store down, the
// watcher closes the gate (new calls refused) within a few pings, and once the server is
// back both recover and writes go through again, without reopening anything.
func TestStoreWatchPostgresDownAndBack(t *testing.T) {
	srv, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	if err := srv.CreateDatabase(ctx, "node", ""); err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenPostgres(ctx, srv.DSN("node"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stopping atomic.Bool
	var storeCheck func(context.Context) error
	dir := t.TempDir()
	for _, c := range readiness(&stopping, db, nil, dir, dir, 0) {
		if c.Name == "store" {
			storeCheck = c.Fn
		}
	}
	gate, up := &gateLog{}, newStoreUp()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		watchStore(wctx, db, gate, up, 100*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	defer func() { cancel(); <-done }()
	write := func(id string) error {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		c := store.Customer{ID: id, Name: id, Status: store.StatusActive, SiteKey: id + "-site-key-0001", Created: time.Now().UTC()}
		return db.Write(wctx, func(tx *store.Tx) error { return tx.CreateCustomer(&c) })
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 15 s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	checkErr := func() error {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return storeCheck(cctx)
	}

	if err := write("before"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if gate.down.Load() || checkErr() != nil || testutil.ToFloat64(up) != 1 {
		t.Fatalf("store up: gate down %v, readiness %v", gate.down.Load(), checkErr())
	}

	for _, crash := range []bool{false, true} {
		srv.Pause(crash)
		waitFor("readiness reports the store down", func() bool { return checkErr() != nil })
		waitFor("the gate closes", gate.down.Load)
		if testutil.ToFloat64(up) != 0 {
			t.Error("trackline_store_up not 0 while the store is down")
		}
		if err := write("during"); err == nil {
			t.Fatal("a write succeeded with the database down")
		}
		if err := srv.Resume(); err != nil {
			t.Fatal(err)
		}
		waitFor("the gate opens again", func() bool { return !gate.down.Load() })
		waitFor("readiness recovers", func() bool { return checkErr() == nil })
		if testutil.ToFloat64(up) != 1 {
			t.Error("trackline_store_up not 1 after recovery")
		}
		id := "after-fast"
		if crash {
			id = "after-crash"
		}
		if err := write(id); err != nil {
			t.Fatalf("write after the database came back (crash %v): %v", crash, err)
		}
	}
	// What was committed before the outages is there.
	for _, id := range []string{"before", "after-fast", "after-crash"} {
		if err := db.View(func(tx *store.Tx) error { _, err := tx.Customer(id); return err }); err != nil {
			t.Errorf("customer %s: %v", id, err)
		}
	}
	// One failed ping alone does not close the gate: the first verdict after the start was up.
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if len(gate.seen) == 0 || gate.seen[0] {
		t.Errorf("first verdicts %v: want up first", gate.seen[:min(3, len(gate.seen))])
	}
}
