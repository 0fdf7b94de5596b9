package sip

import (
	"context"
	"testing"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// A switch told its store is down refuses pings and new calls with 503 and a short
// Retry-After, lets the call in progress go on, and takes calls again once told the store is
// back; an operator's drain meanwhile keeps its own Retry-After and outlives the store's
// return.
func TestStoreDownRefusesPingsAndNewCalls(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, drain: 45 * time.Second})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}
	if !e.sw.SetStoreDown(true) || e.sw.SetStoreDown(true) || !e.sw.StoreDown() {
		t.Fatal("SetStoreDown(true) does not report the change once")
	}
	res := e.options(t)
	if res.StatusCode != 503 {
		t.Fatalf("ping with the store down: %d, want 503", res.StatusCode)
	}
	if h := res.GetHeader("Retry-After"); h == nil || h.Value() != storeDownRetry {
		t.Fatalf("ping with the store down: Retry-After %v, want %s", h, storeDownRetry)
	}
	if _, err := e.call("+31850000101"); statusOf(err) != 503 {
		t.Fatalf("new call with the store down: %d (%v), want 503", statusOf(err), err)
	}
	if e.sw.Draining() || !e.sw.Listening() {
		t.Errorf("store down shows as a drain: draining %v, listening %v", e.sw.Draining(), e.sw.Listening())
	}
	select {
	case <-d.Context().Done():
		t.Fatal("the call in progress ended when the store went down")
	case <-time.After(200 * time.Millisecond):
	}

	// An operator's drain while the store is down: the drain's Retry-After; the store's
	// return does not lift it.
	e.sw.SetDraining(true)
	if h := e.options(t).GetHeader("Retry-After"); h == nil || h.Value() != "45" {
		t.Errorf("draining with the store down: Retry-After %v, want 45", h)
	}
	if !e.sw.SetStoreDown(false) {
		t.Fatal("SetStoreDown(false) does not report the change")
	}
	if res := e.options(t); res.StatusCode != 503 {
		t.Errorf("drained switch after the store came back: %d, want 503", res.StatusCode)
	}
	e.sw.SetDraining(false)

	if res := e.options(t); res.StatusCode != 200 {
		t.Fatalf("ping with the store back: %d, want 200", res.StatusCode)
	}
	hangup(t, d)
	if rec := e.record(); rec.HangupBy != "caller" {
		t.Fatalf("the call in progress: %+v", rec)
	}
	d, err = e.call("+31850000101")
	if err != nil {
		t.Fatalf("new call with the store back: %v", err)
	}
	hangup(t, d)
}

// On a store of one node (bbolt) an open record is this switch's whatever node id it names
// (the host was renamed, node_id changed): it is completed. On a shared store only the
// node's own are (e2e/cluster_pg_test.go, TestClusterPGKill).
func TestRecoverRecordsOfAnotherNodeIDOnOneBox(t *testing.T) {
	e := newEnv(t, envOpts{})
	open := store.Call{ID: pool.NewID(time.Now()), CustomerID: "acme", Start: time.Now(), Answer: time.Now(), Node: "old-host"}
	if err := e.db.Write(context.Background(), func(tx *store.Tx) error { return tx.PutCall(&open) }); err != nil {
		t.Fatal(err)
	}
	n, err := e.sw.RecoverRecords(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("recovered %d, %v", n, err)
	}
	if rec := e.record(); rec.EndReason != "switch restarted" || rec.Node != "old-host" {
		t.Fatalf("record %+v", rec)
	}
}
