package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/store"
)

// Two nodes on one PostgreSQL database lease from one pool: 50 visitors, each made on one
// node and renewed on either, for a few seconds. No number is held by two sessions at once
// (checked from the assignment records), every session keeps its number while it renews,
// and a call on a number is attributed on the other node to the session that holds it.
func TestSharedPoolTwoNodes(t *testing.T) {
	ctx := context.Background()
	dbA, dbB := sharedStores(t)
	const numbers, visitors = 60, 50
	now := time.Now().UTC()
	err := dbA.Write(ctx, func(tx *store.Tx) error {
		c := store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: "acme-site-key-0001",
			Created: now, ActiveSince: now}
		if err := tx.CreateCustomer(&c); err != nil {
			return err
		}
		for i := 0; i < numbers; i++ {
			n := store.Number{E164: fmt.Sprintf("+318500%05d", i), CustomerID: "acme", Kind: store.KindPool, State: store.NumberAvailable, Created: now}
			if err := tx.PutNumber(&n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*Pool, 2)
	for i, db := range []*store.DB{dbA, dbB} {
		if nodes[i], err = New(db, Config{Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu     sync.Mutex
		leases = map[string]string{} // session -> its number
		errs   []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for v := 0; v < visitors; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := nodes[v%2].Assign(ctx, "acme", Visit{LandingURL: fmt.Sprintf("https://acme.example/?v=%d", v)})
			if err != nil {
				fail(fmt.Errorf("visitor %d: %w", v, err))
				return
			}
			mu.Lock()
			leases[l.SessionID] = l.Number
			mu.Unlock()
			for i := 0; time.Now().Before(deadline) && i < 200; i++ {
				again, err := nodes[rand.IntN(2)].Touch(ctx, "acme", l.SessionID)
				if err != nil {
					fail(fmt.Errorf("visitor %d renews: %w", v, err))
					return
				}
				if again.Number != l.Number {
					fail(fmt.Errorf("visitor %d: number %s became %s while its lease was live", v, l.Number, again.Number))
					return
				}
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(leases) != visitors {
		t.Fatalf("%d sessions leased, want %d", len(leases), visitors)
	}
	owner := map[string]string{}
	for s, n := range leases {
		if o, taken := owner[n]; taken {
			t.Errorf("number %s held by %s and %s at once", n, o, s)
		}
		owner[n] = s
	}

	// From the records: on each number, the assignments of different sessions do not
	// overlap (a record cut short ends where the next began).
	var recs []store.Assignment
	if err := dbB.View(func(tx *store.Tx) error {
		return tx.Assignments("acme", time.Time{}, time.Time{}, func(a store.Assignment) bool { recs = append(recs, a); return true })
	}); err != nil {
		t.Fatal(err)
	}
	byNumber := map[string][]store.Assignment{}
	for _, a := range recs {
		byNumber[a.Number] = append(byNumber[a.Number], a)
	}
	for n, rs := range byNumber {
		sort.Slice(rs, func(i, j int) bool { return rs[i].From.Before(rs[j].From) })
		applyCuts(rs)
		for i := 1; i < len(rs); i++ {
			if rs[i].SessionID != rs[i-1].SessionID && rs[i].From.Before(rs[i-1].Until) {
				t.Errorf("number %s: %s's lease %v-%v overlaps %s's from %v", n, rs[i-1].SessionID, rs[i-1].From, rs[i-1].Until, rs[i].SessionID, rs[i].From)
			}
		}
	}

	// A call on a number made on either node is attributed by the other to its holder.
	checked := 0
	for s, n := range leases {
		for _, p := range nodes {
			a, err := p.Attribute(n, time.Now())
			if err != nil || a.Session == nil || a.Session.ID != s || a.Candidates != 1 {
				t.Errorf("attribution of %s: %+v %v, want session %s", n, a, err, s)
			}
		}
		if checked++; checked == 10 {
			break
		}
	}
}

// sharedStores opens two stores on one fresh PostgreSQL database: two nodes' stores.
func sharedStores(t testing.TB) (*store.DB, *store.DB) {
	t.Helper()
	srv, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	ctx := context.Background()
	if err := srv.CreateDatabase(ctx, "pool", ""); err != nil {
		t.Fatal(err)
	}
	open := func() *store.DB {
		db, err := store.OpenPostgres(ctx, srv.DSN("pool"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	if !a.Shared() {
		t.Fatal("a PostgreSQL store is not shared")
	}
	return a, b
}

// Expired leases on a shared pool: a session that comes back keeps its number if nobody took
// it, and new sessions get the least recently leased numbers, whichever node leased them.
func TestSharedPoolExpiry(t *testing.T) {
	ctx := context.Background()
	dbA, dbB := sharedStores(t)
	now := time.Now().UTC()
	err := dbA.Write(ctx, func(tx *store.Tx) error {
		c := store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: "acme-site-key-0001", Created: now, ActiveSince: now}
		if err := tx.CreateCustomer(&c); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			n := store.Number{E164: fmt.Sprintf("+3185000000%d", i), CustomerID: "acme", Kind: store.KindPool, State: store.NumberAvailable, Created: now}
			if err := tx.PutNumber(&n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Lease: 200 * time.Millisecond, Grace: time.Nanosecond}
	a, err := New(dbA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(dbB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var first []Lease
	for i, p := range []*Pool{a, b, a} {
		l, err := p.Assign(ctx, "acme", Visit{LandingURL: fmt.Sprintf("https://acme.example/%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, l)
	}
	if first[0].Number == first[1].Number || first[1].Number == first[2].Number || first[0].Number == first[2].Number {
		t.Fatalf("three sessions, numbers %s %s %s: want three", first[0].Number, first[1].Number, first[2].Number)
	}
	time.Sleep(300 * time.Millisecond) // every lease expired, past its grace
	back, err := b.Touch(ctx, "acme", first[1].SessionID)
	if err != nil || back.Number != first[1].Number {
		t.Fatalf("session back after its lease expired: %+v %v, want its number %s again", back, err, first[1].Number)
	}
	got := map[string]bool{}
	for i, p := range []*Pool{b, a} {
		l, err := p.Assign(ctx, "acme", Visit{LandingURL: fmt.Sprintf("https://acme.example/new/%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		got[l.Number] = true
	}
	if !got[first[0].Number] || !got[first[2].Number] {
		t.Errorf("new sessions got %v, want the expired numbers %s and %s", got, first[0].Number, first[2].Number)
	}
	// The session that came back has two records on its number: the expired lease and the new.
	var n int
	if err := dbA.View(func(tx *store.Tx) error {
		return tx.NumberAssignments("acme", first[1].Number, time.Time{}, time.Time{}, func(a store.Assignment) bool {
			if a.SessionID == first[1].SessionID {
				n++
			}
			return true
		})
	}); err != nil || n != 2 {
		t.Errorf("records of the returning session: %d (%v), want 2", n, err)
	}
}

// A customer made and changed on one node reaches the other through the store's
// notifications: it leases there, and stops leasing there once its contract ended.
func TestSharedPoolFollowsOtherNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dbA, dbB := sharedStores(t)
	a, err := New(dbA, Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(dbB, Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Made on A after B started: B learns of it.
	if _, err := a.CreateCustomer(ctx, store.Customer{ID: "late", Name: "Late", Status: store.StatusActive, SiteKey: "late-site-key-0001",
		AllowedOrigins: []string{"https://late.example"}, BusinessLines: []string{"sip:+31205550000@127.0.0.1:5090"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ImportNumbers(ctx, "late", []NumberInput{{Number: "+31850000101"}, {Number: "+31850000102"}}); err != nil {
		t.Fatal(err)
	}
	var l Lease
	waitFor(t, "node B to lease for a customer made on node A", func() error {
		var err error
		l, err = b.Assign(ctx, "late", Visit{LandingURL: "https://late.example/"})
		return err
	})
	if l.Number != "+31850000101" && l.Number != "+31850000102" {
		t.Fatalf("lease on node B: %+v", l)
	}
	if c, err := b.CustomerBySiteKey("late-site-key-0001"); err != nil || c.ID != "late" {
		t.Errorf("site key on node B: %+v %v", c, err)
	}
	// Ended on A: B stops leasing.
	if _, err := a.UpdateCustomer(ctx, "late", func(c *store.Customer) { c.Status = store.StatusEnded }); err != nil {
		t.Fatal(err)
	}
	// Wait by reading, not by leasing: every lease while B still counts the customer active
	// would take a number.
	waitFor(t, "node B to see the customer ended", func() error {
		c, err := b.Customer("late")
		if err == nil && c.Status != store.StatusEnded {
			err = fmt.Errorf("status %v", c.Status)
		}
		return err
	})
	if _, err := b.Assign(ctx, "late", Visit{LandingURL: "https://late.example/"}); !errors.Is(err, ErrCustomerEnded) {
		t.Errorf("assign on node B after the contract ended on A: %v, want ErrCustomerEnded", err)
	}
}

// waitFor polls fn until it answers nil, for at most 5 s.
func waitFor(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkAssignBackends is a new web session through the pool (classification, the lease
// and its write) from 32 concurrent visitors a core, on one node's bbolt store (the lease in
// memory) and on a shared PostgreSQL store (the lease in the database: store.LeaseNumber).
// free: leases of a millisecond with no grace, so that the 2,000 numbers never run out.
// exhausted: leases of an hour on 200 numbers, so that after the first 200 sessions every
// lease takes the least recently leased live number (and counts an exhaustion).
func BenchmarkAssignBackends(b *testing.B) {
	for _, driver := range []string{"bbolt", "postgres"} {
		for _, pool := range []struct {
			name    string
			numbers int
			cfg     Config
		}{
			{"free", 2000, Config{Lease: time.Millisecond, Grace: time.Nanosecond}},
			{"exhausted", 200, Config{Lease: time.Hour}},
		} {
			b.Run(driver+"/"+pool.name, func(b *testing.B) {
				benchmarkAssign(b, driver, pool.numbers, pool.cfg)
			})
		}
	}
}

func benchmarkAssign(b *testing.B, driver string, numbers int, cfg Config) {
	ctx := context.Background()
	var db *store.DB
	if driver == "postgres" {
		db, _ = sharedStores(b)
	} else {
		var err error
		if db, err = store.Open(b.TempDir() + "/t.db"); err != nil {
			b.Fatal(err)
		}
		defer db.Close()
	}
	p, err := New(db, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.CreateCustomer(ctx, store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: "acme-site-key"}); err != nil {
		b.Fatal(err)
	}
	in := make([]NumberInput, 0, numbers)
	for i := 1; i <= numbers; i++ {
		in = append(in, NumberInput{Number: numberOf(i)})
	}
	if _, err := p.ImportNumbers(ctx, "acme", in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Assign(ctx, "acme", Visit{LandingURL: "https://shop.example/?utm_source=google&utm_medium=cpc"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A shared pool on PostgreSQL that exhausts writes the webhooks' number.pool_exhausted (in a
// write of its own, after the lease): one event per store.PoolExhaustedEvery however many
// leases exhaust it on whichever node, with the number taken and the count, and a delivery
// pending to the endpoint that wants it.
func TestSharedPoolExhaustedEvent(t *testing.T) {
	ctx := context.Background()
	dbA, dbB := sharedStores(t)
	now := time.Now().UTC()
	secret := store.SecretPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	err := dbA.Write(ctx, func(tx *store.Tx) error {
		c := store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: "acme-site-key-0001",
			Created: now, ActiveSince: now}
		if err := tx.CreateCustomer(&c); err != nil {
			return err
		}
		for i := range 2 {
			n := store.Number{E164: fmt.Sprintf("+318500%05d", i), CustomerID: "acme", Kind: store.KindPool, State: store.NumberAvailable, Created: now}
			if err := tx.PutNumber(&n); err != nil {
				return err
			}
		}
		return tx.PutEndpoint(&store.Endpoint{ID: "ops", CustomerID: "acme", URL: "https://ops.example/hook",
			EventTypes: []store.EventType{store.EventPoolExhausted}, Secret: secret, Created: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*Pool, 2)
	for i, db := range []*store.DB{dbA, dbB} {
		if nodes[i], err = New(db, Config{Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	// Two visitors take the two numbers; the next three exhaust the pool, on both nodes.
	var taken []string
	for v := range 5 {
		l, err := nodes[v%2].Assign(ctx, "acme", Visit{LandingURL: fmt.Sprintf("https://acme.example/?v=%d", v)})
		if err != nil {
			t.Fatalf("visitor %d: %v", v, err)
		}
		taken = append(taken, l.Number)
	}
	var msgs []store.Message
	var st store.CustomerStats
	if err := dbB.View(func(tx *store.Tx) (err error) {
		if msgs, err = tx.Messages("acme", time.Time{}, time.Time{}, 100); err != nil {
			return err
		}
		st, err = tx.Stats("acme")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if st.Exhaustions != 3 {
		t.Fatalf("%d exhaustions counted, want 3", st.Exhaustions)
	}
	if len(msgs) != 1 || msgs[0].Type != store.EventPoolExhausted {
		t.Fatalf("messages %+v, want one number.pool_exhausted", msgs)
	}
	var p struct {
		Data struct {
			CustomerID  string `json:"customer_id"`
			Number      string `json:"number"`
			Exhaustions uint64 `json:"exhaustions_total"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msgs[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Data.CustomerID != "acme" || p.Data.Number != taken[2] || p.Data.Exhaustions != 1 {
		t.Fatalf("payload %s, want the third lease's number %s and 1 exhaustion", msgs[0].Payload, taken[2])
	}
	due, _, err := dbA.DueDeliveries("acme", "ops", time.Now(), 10, func(string) bool { return false })
	if err != nil || len(due) != 1 || due[0].ID != msgs[0].ID {
		t.Fatalf("due to the endpoint: %+v %v", due, err)
	}
}
