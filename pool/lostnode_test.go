package pool

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// The retention sweep, run on one node of a cluster, ends the open calls of a node unseen
// for longer than store.LostNodeAfter (store/pg_nodes.go), counts them and writes an audit
// entry naming the lost node; the call of a node that beats stays open.
func TestSweepEndsALostNodesCalls(t *testing.T) {
	ctx := context.Background()
	srv, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if err := srv.CreateDatabase(ctx, "pool", ""); err != nil {
		t.Fatal(err)
	}
	// Node a's clock is ten minutes behind node b's: its last beat is that old for b.
	now := time.Now().UTC()
	later := now.Add(10 * time.Minute)
	open := func(at time.Time) *store.DB {
		db, err := store.OpenPostgres(ctx, srv.DSN("pool"), store.WithClock(func() time.Time { return at }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dbA, dbB := open(now), open(later)
	if err := dbA.Write(ctx, func(tx *store.Tx) error {
		return tx.CreateCustomer(&store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: "acme-site-key-0001",
			Created: now, ActiveSince: now})
	}); err != nil {
		t.Fatal(err)
	}
	if err := dbA.Heartbeat(ctx, "node-a"); err != nil { // node a's last beat, then it dies
		t.Fatal(err)
	}
	lost := store.Call{ID: NewID(now), CustomerID: "acme", Dialled: "+31850000001", Node: "node-a", Start: now}
	alive := store.Call{ID: NewID(now.Add(time.Millisecond)), CustomerID: "acme", Dialled: "+31850000001", Node: "node-b", Start: now}
	if err := dbA.Write(ctx, func(tx *store.Tx) error {
		if err := tx.PutCall(&lost); err != nil {
			return err
		}
		return tx.PutCall(&alive)
	}); err != nil {
		t.Fatal(err)
	}
	// Node b sweeps ten minutes later, having beaten just before.
	clock := func() time.Time { return later }
	if err := dbB.Heartbeat(ctx, "node-b"); err != nil {
		t.Fatal(err)
	}
	p, err := New(dbB, Config{}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sw, err := NewSweeper(p, SweepConfig{ExportDir: filepath.Join(t.TempDir(), "exports")}, recordings.NewExporter(dbB, t.TempDir(), keys))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sw.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep["lost_calls_ended"] != 1 {
		t.Fatalf("report %v", rep)
	}
	c, err := dbB.Call(lost.ID)
	if err != nil || c.End.IsZero() || c.EndReason != store.LostEndReason || c.Disposition != store.DispFailed {
		t.Fatalf("the lost node's call: %+v %v", c, err)
	}
	if c, err := dbB.Call(alive.ID); err != nil || !c.End.IsZero() {
		t.Fatalf("the live node's call: %+v %v", c, err)
	}
	log, _, err := dbB.AuditLog(store.AuditFilter{})
	if err != nil || !slices.ContainsFunc(log, func(e store.AuditEntry) bool {
		return e.Action == "node.lost" && slices.Equal(e.IDs, []string{"node-a"})
	}) {
		t.Fatalf("no node.lost entry naming node-a: %+v %v", log, err)
	}
}
