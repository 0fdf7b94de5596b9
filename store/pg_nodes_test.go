package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

// A node unseen for longer than the bound has its open calls ended as lost, at the time it
// was last seen (at their start, if later), answered ones as answered; the calls of a node
// that beats, of a node without heartbeats (an earlier build) and without a node stay open,
// and so does what its node ended itself. A second run ends nothing more.
func TestPostgresLostNodeCallsEnded(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	db := openPostgresTest(t, WithClock(clk.now))
	t0 := clk.now()
	for _, n := range []string{"node-a", "node-b"} {
		if err := db.Heartbeat(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	call := func(i int, node string, start time.Time) Call {
		return Call{ID: testCallID(t0, i), CustomerID: "acme", Dialled: "+31850000001", Caller: "+31612345678", Node: node, Start: start}
	}
	a1, a2, a3, a4 := call(1, "node-a", t0.Add(-time.Minute)), call(2, "node-a", t0.Add(-time.Minute)), call(3, "node-a", t0.Add(30*time.Second)), call(4, "node-a", t0)
	a2.Answer = t0
	a4.End, a4.Disposition = t0.Add(time.Second), DispBusy
	b1, old, none := call(5, "node-b", t0), call(6, "node-old", t0), call(7, "", t0)
	putCalls(t, db, a1, a2, a3, a4, b1, old, none)

	open := func() []string {
		t.Helper()
		var ids []string
		if err := db.View(func(tx *Tx) error {
			return tx.ActiveCalls(func(c Call) bool { ids = append(ids, c.ID); return true })
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}
	// Four minutes on, node b beats: nobody is lost yet.
	clk.add(4 * time.Minute)
	if err := db.Heartbeat(ctx, "node-b"); err != nil {
		t.Fatal(err)
	}
	if nodes, ended, err := db.EndLostCalls(ctx, clk.now(), LostNodeAfter); err != nil || len(nodes) != 0 || len(ended) != 0 {
		t.Fatalf("within the bound: %v %v %v", nodes, ended, err)
	}
	// Six minutes after node a's last beat (node b beat two minutes ago).
	clk.add(2 * time.Minute)
	nodes, ended, err := db.EndLostCalls(ctx, clk.now(), LostNodeAfter)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].ID != "node-a" || !nodes[0].Seen.Equal(t0) {
		t.Fatalf("lost nodes %+v", nodes)
	}
	slices.Sort(ended)
	if want := []string{a1.ID, a2.ID, a3.ID}; !slices.Equal(ended, want) {
		t.Fatalf("ended %v, want %v", ended, want)
	}
	if got, want := open(), []string{b1.ID, old.ID, none.ID}; !slices.Equal(got, want) {
		t.Fatalf("open after: %v, want %v", got, want)
	}
	for _, w := range []struct {
		c    Call
		end  time.Time
		disp Disposition
	}{{a1, t0, DispFailed}, {a2, t0, DispAnswered}, {a3, a3.Start, DispFailed}} {
		c, err := db.Call(w.c.ID)
		if err != nil || !c.End.Equal(w.end) || c.Disposition != w.disp || c.EndReason != LostEndReason || c.HangupBy != PartySwitch || c.Caller != "+31612345678" {
			t.Errorf("call %s: end %v %s %q %s, %v", w.c.ID, c.End, c.Disposition, c.EndReason, c.HangupBy, err)
		}
	}
	if c, _ := db.Call(a4.ID); c.Disposition != DispBusy || c.EndReason != "" {
		t.Errorf("the call node a ended itself: %+v", c)
	}
	if nodes, ended, err := db.EndLostCalls(ctx, clk.now(), LostNodeAfter); err != nil || len(nodes) != 0 || len(ended) != 0 {
		t.Fatalf("a second run: %v %v %v", nodes, ended, err)
	}
	all, err := db.Nodes(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "node-a" || all[1].ID != "node-b" || !all[1].Seen.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("nodes %+v %v", all, err)
	}
}

// Every exported operation is on PostgreSQL: trackline serve refuses the driver otherwise,
// so a method added without its entry in pgImplemented stops every node of a cluster.
// (DB.AuditRaw is the tests' own, export_test.go: not in the binary.)
func TestPostgresMissingIsEmpty(t *testing.T) {
	missing := slices.DeleteFunc(PostgresMissing(), func(name string) bool { return name == "DB.AuditRaw" })
	if len(missing) > 0 {
		t.Fatalf("not on PostgreSQL: %v (add them to pgImplemented)", missing)
	}
}
