package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every rule of a lease decided in the database (pg_lease.go), step by step on a pool of two
// numbers, with the assignment records and counters it writes.
func TestPostgresLeaseNumber(t *testing.T) {
	db := openPostgresTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	err := db.Write(ctx, func(tx *Tx) error {
		if err := tx.CreateCustomer(&Customer{ID: "acme", Name: "Acme", Status: StatusActive, SiteKey: "acme-site-key-0001"}); err != nil {
			return err
		}
		for _, n := range []Number{
			{E164: "+31850000001", CustomerID: "acme", Kind: KindPool, State: NumberAvailable},
			{E164: "+31850000002", CustomerID: "acme", Kind: KindPool, State: NumberAvailable},
			{E164: "+31850000003", CustomerID: "acme", Kind: KindStatic, State: NumberAvailable},
			{E164: "+31850000004", CustomerID: "acme", Kind: KindPool, State: NumberQuarantined},
		} {
			if err := tx.PutNumber(&n); err != nil {
				return err
			}
		}
		return tx.CreateCustomer(&Customer{ID: "empty", Name: "Empty", Status: StatusActive, SiteKey: "empty-site-key-01"})
	})
	if err != nil {
		t.Fatal(err)
	}
	const lease, grace = 10 * time.Minute, 5 * time.Minute
	lease1 := func(customer, session string, at time.Time, isNew bool) (LeaseResult, error) {
		var res LeaseResult
		err := db.Write(ctx, func(tx *Tx) error {
			return tx.LeaseNumber(LeaseRequest{CustomerID: customer, SessionID: session, Now: at, Until: at.Add(lease), Grace: grace, New: isNew}, &res)
		})
		return res, err
	}
	show := func(r LeaseResult) string {
		s := fmt.Sprintf("%s %s from+%v", r.Assignment.SessionID, r.Assignment.Number, r.Assignment.From.Sub(t0))
		if !r.Assignment.CutFrom.IsZero() {
			s += fmt.Sprintf(" cuts+%v", r.Assignment.CutFrom.Sub(t0))
		}
		if r.Exhausted {
			s += " exhausted"
		}
		return s
	}
	steps := []struct {
		name    string
		session string
		at      time.Duration
		isNew   bool
		want    string
	}{
		{"first session: a number never leased", "s1", 0, true, "s1 +31850000001 from+0s"},
		{"second session: the other number", "s2", time.Minute, true, "s2 +31850000002 from+1m0s"},
		{"renewal of a live lease: the same record", "s1", 5 * time.Minute, false, "s1 +31850000001 from+0s"},
		// s2's lease (until +11m) ended, within its grace (+16m): taken, an exhaustion, no cut.
		{"every number held: the least recent, in its grace", "s3", 12 * time.Minute, true, "s3 +31850000002 from+12m0s exhausted"},
		{"renewed", "s1", 14 * time.Minute, false, "s1 +31850000001 from+0s"},
		{"renewed again", "s1", 23 * time.Minute, false, "s1 +31850000001 from+0s"},
		{"live past the record's span: a new record cutting it", "s1", 31 * time.Minute, false, "s1 +31850000001 from+31m0s cuts+0s"},
		{"renewed in the new record", "s1", 39 * time.Minute, false, "s1 +31850000001 from+31m0s"},
		// s3's lease (until +22m) ended past its grace (+27m).
		{"past the grace: no exhaustion", "s4", 40 * time.Minute, true, "s4 +31850000002 from+40m0s"},
		// s1 until +49m, s4 until +50m: both live.
		{"all live: the least recent is cut short", "s5", 45 * time.Minute, true, "s5 +31850000001 from+45m0s cuts+31m0s exhausted"},
		// s1 lost its number to s5: it gets the least recent one, s4's (live until +50m).
		{"a session whose number was taken", "s1", 46 * time.Minute, false, "s1 +31850000002 from+46m0s cuts+40m0s exhausted"},
		// s5's lease ended at +55m; nobody took its number: a new record on it, no cut.
		{"expired, not taken: the same number again", "s5", 60 * time.Minute, false, "s5 +31850000001 from+1h0m0s"},
	}
	for _, st := range steps {
		r, err := lease1("acme", st.session, t0.Add(st.at), st.isNew)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := show(r); got != st.want {
			t.Errorf("%s: %s, want %s", st.name, got, st.want)
		}
	}
	if _, err := lease1("empty", "x1", t0, true); !errors.Is(err, ErrNoNumbers) {
		t.Errorf("a customer without pool numbers: %v, want ErrNoNumbers", err)
	}
	var recs []string
	var stats CustomerStats
	err = db.View(func(tx *Tx) error {
		if err := tx.Assignments("acme", time.Time{}, time.Time{}, func(a Assignment) bool {
			s := fmt.Sprintf("%s@%s+%v-%v", a.SessionID, a.Number[len(a.Number)-1:], a.From.Sub(t0), a.Until.Sub(t0))
			if !a.CutFrom.IsZero() {
				s += fmt.Sprintf("/cut+%v", a.CutFrom.Sub(t0))
			}
			recs = append(recs, s)
			return true
		}); err != nil {
			return err
		}
		var err error
		stats, err = tx.Stats("acme")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[s1@1+0s-33m0s s2@2+1m0s-11m0s s3@2+12m0s-22m0s s1@1+31m0s-49m0s/cut+0s s4@2+40m0s-50m0s s5@1+45m0s-55m0s/cut+31m0s s1@2+46m0s-56m0s/cut+40m0s s5@1+1h0m0s-1h10m0s]"
	if fmt.Sprint(recs) != want {
		t.Errorf("records:\n%v\nwant\n%s", recs, want)
	}
	if stats.SessionsTotal != 5 || stats.Exhaustions != 3 {
		t.Errorf("counters %+v, want 5 sessions and 3 exhaustions", stats)
	}
	// On bbolt the pool leases in memory.
	bolt, err := Open(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	err = bolt.Write(ctx, func(tx *Tx) error { return tx.LeaseNumber(LeaseRequest{}, new(LeaseResult)) })
	if !errors.Is(err, ErrNotShared) || bolt.Shared() || !db.Shared() {
		t.Errorf("bbolt: %v, shared %v; postgres shared %v", err, bolt.Shared(), db.Shared())
	}
}

// Nodes leasing at once from a pool just big enough for them all never take a number whose
// lease is live: a number leased and committed by another node while this node's statement
// runs is passed over, not taken as an exhaustion (pgLease's free).
func TestPostgresLeaseRace(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	const nodes, perNode, rounds = 4, 6, 5
	dbs := make([]*DB, nodes)
	for i := range dbs {
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	t0 := time.Now().UTC()
	err := dbs[0].Write(ctx, func(tx *Tx) error {
		if err := tx.CreateCustomer(&Customer{ID: "acme", Name: "Acme", Status: StatusActive, SiteKey: "acme-site-key-0001"}); err != nil {
			return err
		}
		for i := range nodes * perNode * rounds {
			if err := tx.PutNumber(&Number{E164: fmt.Sprintf("+318500%05d", i), CustomerID: "acme", Kind: KindPool, State: NumberAvailable}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every round leases as many sessions as the numbers still free: the pool ends full.
	held := map[string]string{}
	var mu sync.Mutex
	for round := range rounds {
		var wg sync.WaitGroup
		for n, db := range dbs {
			for v := range perNode {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := fmt.Sprintf("s-%d-%d-%d", round, n, v)
					var res LeaseResult
					err := db.Write(ctx, func(tx *Tx) error {
						return tx.LeaseNumber(LeaseRequest{CustomerID: "acme", SessionID: s, Now: t0, Until: t0.Add(time.Hour), Grace: time.Hour, New: true}, &res)
					})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						t.Errorf("%s: %v", s, err)
					case res.Exhausted:
						t.Errorf("%s took %s from a live lease with free numbers left", s, res.Assignment.Number)
					case held[res.Assignment.Number] != "":
						t.Errorf("%s and %s hold %s", held[res.Assignment.Number], s, res.Assignment.Number)
					default:
						held[res.Assignment.Number] = s
					}
				}()
			}
		}
		wg.Wait()
	}
}

// New sessions that share a batch are leased in one statement per customer (pgLeaseSet):
// whatever the batch's shape, each gets what leasing them one after the other gives. The
// same leases run once as one batch (customer "set") and once a write each (customer
// "seq"), on pools of 4 numbers (and a static and a quarantined one): numbers never leased,
// then some free and some held (exhaustions that cut live leases), then more sessions than
// numbers (the rest leased one by one after the set, cutting the set's own leases), then a
// customer without pool numbers: ErrNoNumbers for its sessions only, the others in the
// batch committed.
func TestPostgresLeaseSet(t *testing.T) {
	db := openPostgresTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	const lease, grace = 10 * time.Minute, 5 * time.Minute
	err := db.Write(ctx, func(tx *Tx) error {
		for _, c := range []string{"set", "seq", "none"} {
			if err := tx.CreateCustomer(&Customer{ID: c, Name: c, Status: StatusActive, SiteKey: c + "-site-key-0001"}); err != nil {
				return err
			}
		}
		for i, c := range []string{"set", "seq"} {
			for j, n := range []Number{
				{Kind: KindPool, State: NumberAvailable}, {Kind: KindPool, State: NumberAvailable},
				{Kind: KindPool, State: NumberAvailable}, {Kind: KindPool, State: NumberAvailable},
				{Kind: KindStatic, State: NumberAvailable}, {Kind: KindPool, State: NumberQuarantined},
			} {
				n.E164, n.CustomerID = fmt.Sprintf("+3185%d00000%d", i, j), c
				if err := tx.PutNumber(&n); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// show is a lease without the customer's own digit of the number.
	show := func(res LeaseResult, err error) string {
		if err != nil {
			return err.Error()
		}
		a := res.Assignment
		s := fmt.Sprintf("%s n%s from+%v", a.SessionID, a.Number[len(a.Number)-1:], a.From.Sub(t0))
		if !a.CutFrom.IsZero() {
			s += fmt.Sprintf(" cuts+%v", a.CutFrom.Sub(t0))
		}
		if res.Exhausted {
			s += " exhausted"
		}
		return s
	}
	// leases: one batch of customer c's new sessions (batch) or a write each; the k-th at
	// at+k seconds.
	leases := func(c string, batch bool, at time.Duration, names ...string) []string {
		res := make([]LeaseResult, len(names))
		errs := make([]error, len(names))
		fns := make([]func(*Tx) error, len(names))
		for i, name := range names {
			now := t0.Add(at + time.Duration(i)*time.Second)
			fns[i] = func(tx *Tx) error {
				return tx.LeaseNumber(LeaseRequest{CustomerID: c, SessionID: name, Now: now, Until: now.Add(lease), Grace: grace, New: true}, &res[i])
			}
		}
		if batch {
			reqs := make([]*writeReq, len(fns))
			for i, fn := range fns {
				reqs[i] = &writeReq{fn: fn, done: make(chan error, 1)}
			}
			db.pg.commit(db, reqs)
			for i, r := range reqs {
				errs[i] = <-r.done
			}
		} else {
			for i, fn := range fns {
				errs[i] = db.Write(ctx, fn)
			}
		}
		out := make([]string, len(names))
		for i := range names {
			out[i] = show(res[i], errs[i])
		}
		return out
	}
	for _, step := range []struct {
		name  string
		at    time.Duration
		count int
	}{
		{"numbers never leased", 0, 3},
		// a: until +10m0s..+10m2s; at +12m one number free (never leased), the others in
		// their grace: exhaustions without cuts.
		{"one free, then the least recent held", 12 * time.Minute, 3},
		// all four live (until +20m..+22m2s): the batch of six takes all four, the last two
		// cut this batch's first two.
		{"more sessions than numbers", 13 * time.Minute, 6},
	} {
		names := make([]string, step.count)
		for i := range names {
			names[i] = fmt.Sprintf("%s-%d", strings.Fields(step.name)[0], i)
		}
		got, want := leases("set", true, step.at, names...), leases("seq", false, step.at, names...)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: one batch\n%s\none by one\n%s", step.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// A batch of two customers' sessions: the one without pool numbers fails alone.
	var resSet, resNone LeaseResult
	now := t0.Add(time.Hour)
	reqs := []*writeReq{
		{fn: func(tx *Tx) error {
			return tx.LeaseNumber(LeaseRequest{CustomerID: "none", SessionID: "n1", Now: now, Until: now.Add(lease), Grace: grace, New: true}, &resNone)
		}, done: make(chan error, 1)},
		{fn: func(tx *Tx) error {
			return tx.LeaseNumber(LeaseRequest{CustomerID: "set", SessionID: "late", Now: now, Until: now.Add(lease), Grace: grace, New: true}, &resSet)
		}, done: make(chan error, 1)},
	}
	db.pg.commit(db, reqs)
	if err := <-reqs[0].done; !errors.Is(err, ErrNoNumbers) {
		t.Errorf("a customer without pool numbers: %v, want ErrNoNumbers", err)
	}
	if err := <-reqs[1].done; err != nil || resSet.Assignment.Number == "" || resSet.Exhausted {
		t.Errorf("the other session of the batch: %v %+v", err, resSet)
	}
	var set, seq CustomerStats
	err = db.View(func(tx *Tx) (err error) {
		if set, err = tx.Stats("set"); err != nil {
			return err
		}
		seq, err = tx.Stats("seq")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if set.SessionsTotal != 13 || set.Exhaustions != seq.Exhaustions || seq.SessionsTotal != 12 {
		t.Errorf("counters: batched %+v, one by one %+v; want 13 and 12 sessions, the same exhaustions", set, seq)
	}
}
