package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCallsOfCaller(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	mk := func(n int, customer, pseudonym string) Call {
		return Call{ID: testCallID(t0.Add(time.Duration(n)*time.Minute), n), CustomerID: customer, CallerPseudonym: pseudonym,
			Caller: "+3161234567" + string(rune('0'+n%10)), Start: t0.Add(time.Duration(n) * time.Minute)}
	}
	calls := []Call{mk(1, "acme", "p1"), mk(2, "acme", "p2"), mk(3, "acme", "p1"), mk(4, "bakery", "p1"), mk(5, "acme", "p10"), mk(6, "acme", "")}
	calls[2].End = calls[2].Start.Add(time.Minute)
	putCalls(t, db, calls...)
	putCalls(t, db, calls[2]) // a second write (the call's end) indexes nothing twice

	got, err := db.CallsOfCaller("acme", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != calls[2].ID || got[1].ID != calls[0].ID {
		t.Fatalf("CallsOfCaller(acme, p1) = %v, want calls 3 and 1, newest first", ids(got))
	}
	for _, tc := range []struct{ customer, pseudonym string }{{"acme", "p"}, {"acm", "p1"}, {"acme", ""}, {"", "p1"}, {"nobody", "p1"}} {
		if got, _ := db.CallsOfCaller(tc.customer, tc.pseudonym); len(got) != 0 {
			t.Errorf("CallsOfCaller(%q, %q) = %v, want none", tc.customer, tc.pseudonym, ids(got))
		}
	}
	if got, _ := db.CallsOfCaller("bakery", "p1"); len(got) != 1 || got[0].ID != calls[3].ID {
		t.Errorf("CallsOfCaller(bakery, p1) = %v", ids(got))
	}
}

func ids(calls []Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.ID)
	}
	return out
}

// TestDeleteCall: a deleted call leaves no key or value that names it in any bucket.
func TestDeleteCall(t *testing.T) {
	db := openTest(t)
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	active := Call{ID: testCallID(now, 1), CustomerID: "acme", Caller: "+31612345678", CallerPseudonym: "pa", Start: now, RecordingID: "rec-1"}
	keep := Call{ID: testCallID(now, 2), CustomerID: "acme", Caller: "+31612345678", CallerPseudonym: "pa", Start: now, End: now}
	putCalls(t, db, active, keep)
	err := db.Write(context.Background(), func(tx *Tx) error {
		return tx.PutRecording(&Recording{ID: "rec-1", CustomerID: "acme", CallID: active.ID, Path: "acme/x.wav.enc"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var gotCall Call
	var gotRec Recording
	err = db.Write(context.Background(), func(tx *Tx) (err error) {
		gotCall, gotRec, err = tx.DeleteCall(active.ID)
		return err
	})
	if err != nil || gotCall.ID != active.ID || gotRec.ID != "rec-1" || gotRec.Path != "acme/x.wav.enc" {
		t.Fatalf("DeleteCall = %+v, %+v, %v", gotCall, gotRec, err)
	}
	for _, needle := range []string{active.ID, "rec-1"} {
		if where := rawHolds(t, db, needle); len(where) > 0 {
			t.Errorf("the store still names the deleted call (%s) in %v", needle, where)
		}
	}
	if got, _ := db.CallsOfCaller("acme", "pa"); len(got) != 1 || got[0].ID != keep.ID {
		t.Errorf("CallsOfCaller after delete = %v", ids(got))
	}
	err = db.Write(context.Background(), func(tx *Tx) error { _, _, err := tx.DeleteCall(active.ID); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteCall = %v, want ErrNotFound", err)
	}
}

func TestIndexCallers(t *testing.T) {
	db := openTest(t)
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	old := []Call{
		{ID: testCallID(now, 1), CustomerID: "acme", Caller: "+31612345678", Start: now},
		{ID: testCallID(now, 2), CustomerID: "bakery", Caller: "+31612345678", Start: now},
		{ID: testCallID(now, 3), CustomerID: "acme", Caller: "", Start: now},
		{ID: testCallID(now, 4), CustomerID: "acme", Caller: "+31600000000", CallerPseudonym: "already", Start: now},
	}
	putCalls(t, db, old...)
	pseudonym := func(customer, caller string) (string, error) {
		return "ps-" + customer + "-" + strings.TrimPrefix(caller, "+"), nil
	}
	n, err := db.IndexCallers(context.Background(), pseudonym)
	if err != nil || n != 2 {
		t.Fatalf("IndexCallers = %d, %v; want the 2 calls with a caller and no pseudonym", n, err)
	}
	if got, _ := db.CallsOfCaller("acme", "ps-acme-31612345678"); len(got) != 1 || got[0].ID != old[0].ID || got[0].CallerPseudonym != "ps-acme-31612345678" {
		t.Errorf("acme's old call after IndexCallers: %+v", got)
	}
	if got, _ := db.CallsOfCaller("bakery", "ps-bakery-31612345678"); len(got) != 1 {
		t.Errorf("bakery's old call after IndexCallers: %+v", got)
	}
	if c, _ := db.Call(old[3].ID); c.CallerPseudonym != "already" {
		t.Errorf("a call with a pseudonym was changed: %+v", c)
	}
	// Once done, it does not walk the calls again.
	putCalls(t, db, Call{ID: testCallID(now, 5), CustomerID: "acme", Caller: "+31611111111", Start: now})
	if n, err := db.IndexCallers(context.Background(), pseudonym); n != 0 || err != nil {
		t.Errorf("second IndexCallers = %d, %v; want 0", n, err)
	}
}
