package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two nodes (two stores on one database) deliver one backlog: every message is delivered,
// none is handed to both at once, each call's events in order, and both take a share.
func TestPostgresOutboxTwoNodesShareABacklog(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	var nodes [2]*DB
	for i := range nodes {
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		nodes[i] = db
	}
	a, b := nodes[0], nodes[1]
	err := a.Write(ctx, func(tx *Tx) error {
		if err := tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key-0001"}); err != nil {
			return err
		}
		return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook", EventTypes: EventTypes(), Secret: testSecret})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Node b learns of the endpoint by polling: its EndpointsVersion moves.
	waitPolled(t, b)
	if b.EndpointsVersion() == 0 {
		t.Fatal("node b did not see the endpoint made on node a")
	}
	if eps, err := b.AllEndpoints(); err != nil || len(eps) != 1 {
		t.Fatalf("node b's endpoints: %v %v", eps, err)
	}
	// The backlog: calls that ring and then end, written half on each node (three events
	// each: ringing; answered and completed).
	const calls = 150
	t0 := time.Now()
	for i := range calls {
		db := nodes[i%2]
		c := Call{ID: testCallID(t0, i), CustomerID: "acme", Start: t0}
		putCalls(t, db, c)
		c.Answer, c.End, c.Disposition = t0.Add(time.Second), t0.Add(time.Minute), DispAnswered
		putCalls(t, db, c)
	}
	all := messages(t, a, "acme")
	if len(all) != 3*calls {
		t.Fatalf("%d messages, want %d", len(all), 3*calls)
	}
	order := map[string]int{} // a message's place among its call's
	for _, m := range all {
		order[m.ID] = len(orderOf(all, m.Subject, m.ID))
	}
	var (
		mu       sync.Mutex
		inflight = map[string]int{} // message: the worker sending it
		handed   = map[string]int{} // message: how often it was handed out
		by       = map[string]int{}
		lastOf   = map[string]int{} // call: the place of its last delivered event
		held     [2]map[string]bool // per node, what its workers hold (one dispatcher's set)
		dispatch [2]sync.Mutex      // per node: one dispatcher asks for due deliveries at a time
		perNode  [2]atomic.Int64
		failure  atomic.Pointer[string]
	)
	fail := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		failure.CompareAndSwap(nil, &s)
	}
	held[0], held[1] = map[string]bool{}, map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 { // two workers a node
		node := w % 2
		db := nodes[node]
		wg.Go(func() {
			skip := func(id string) bool { mu.Lock(); defer mu.Unlock(); return held[node][id] }
			for {
				select {
				case <-stop:
					return
				default:
				}
				dispatch[node].Lock()
				due, _, err := db.DueDeliveries("acme", "crm", time.Now(), 4, skip)
				if err != nil {
					dispatch[node].Unlock()
					fail("worker %d: %v", w, err)
					return
				}
				if len(due) == 0 {
					dispatch[node].Unlock()
					time.Sleep(5 * time.Millisecond)
					continue
				}
				for _, d := range due {
					mu.Lock()
					if other, ok := inflight[d.ID]; ok {
						fail("message %s handed to worker %d while worker %d sends it", d.ID, w, other)
					}
					if handed[d.ID] > 0 {
						fail("message %s handed out again, to worker %d (node %d) after worker %d", d.ID, w, node, by[d.ID])
					}
					by[d.ID] = w
					if o := order[d.ID]; o != lastOf[d.Subject]+1 {
						fail("call %s: event %d handed out after event %d", d.Subject, o, lastOf[d.Subject])
					}
					inflight[d.ID] = w
					handed[d.ID]++
					held[node][d.ID] = true
					mu.Unlock()
				}
				dispatch[node].Unlock()
				time.Sleep(time.Millisecond) // the attempt
				err = db.Write(ctx, func(tx *Tx) error {
					// Before the commit (as the attempt has ended); the function may run twice.
					mu.Lock()
					for _, d := range due {
						delete(inflight, d.ID)
						lastOf[d.Subject] = max(lastOf[d.Subject], order[d.ID])
					}
					mu.Unlock()
					for _, d := range due {
						if err := tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID,
							Scheduled: d.Scheduled, Attempt: Attempt{Time: time.Now(), Status: 204}, Outcome: OutcomeDelivered}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					fail("worker %d: record: %v", w, err)
					return
				}
				// Let go under the dispatcher's lock, as package integrations does (skip is asked
				// after the store read the rows).
				dispatch[node].Lock()
				mu.Lock()
				for _, d := range due {
					delete(held[node], d.ID)
				}
				mu.Unlock()
				dispatch[node].Unlock()
				perNode[node].Add(int64(len(due)))
			}
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := b.OutboxStats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending == 0 || failure.Load() != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if f := failure.Load(); f != nil {
		t.Fatal(*f)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range all {
		if handed[m.ID] != 1 {
			t.Errorf("message %s (%s of %s) handed out %d times", m.ID, m.Type, m.Subject, handed[m.ID])
		}
	}
	if perNode[0].Load() == 0 || perNode[1].Load() == 0 {
		t.Errorf("deliveries per node: %d and %d; want both to share", perNode[0].Load(), perNode[1].Load())
	}
	t.Logf("delivered by node a: %d, by node b: %d", perNode[0].Load(), perNode[1].Load())
}

// orderOf lists the ids of the messages of a subject up to id, in order.
func orderOf(all []Message, subject, id string) []string {
	var out []string
	for _, m := range all {
		if m.Subject == subject {
			out = append(out, m.ID)
			if m.ID == id {
				break
			}
		}
	}
	return out
}

// A node that claimed deliveries and died holds them for pgClaimFor: the other takes them
// after, and sees them due meanwhile as not due (its poller and DueDeliveries leave them).
// The dying node's outcome, recorded late, settles nothing the other rescheduled.
func TestPostgresOutboxClaimLapses(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	clk := &testClock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	var nodes [2]*DB
	for i := range nodes {
		db, err := OpenPostgres(ctx, dsn, WithClock(clk.now))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		db.pg.outbox.pollEvery.Store(int64(time.Hour))
		nodes[i] = db
	}
	a, b := nodes[0], nodes[1]
	err := a.Write(ctx, func(tx *Tx) error {
		if err := tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key-0001"}); err != nil {
			return err
		}
		return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook", EventTypes: EventTypes(), Secret: testSecret})
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.now()
	for i := range 3 {
		putCalls(t, a, Call{ID: testCallID(t0, i), CustomerID: "acme", Start: t0})
	}
	none := func(string) bool { return false }
	got, _, err := a.DueDeliveries("acme", "crm", t0, 10, none)
	if err != nil || len(got) != 3 {
		t.Fatalf("node a: %d due, %v", len(got), err)
	}
	// Node a may see its own claims again (its workers skip what they hold); b may not.
	if again, _, _ := a.DueDeliveries("acme", "crm", t0, 10, none); len(again) != 3 {
		t.Fatalf("node a again: %d due", len(again))
	}
	if other, next, err := b.DueDeliveries("acme", "crm", t0, 10, none); err != nil || len(other) != 0 || !next.IsZero() {
		t.Fatalf("node b while a holds them: %d due, next %v, %v", len(other), next, err)
	}
	later := t0.Add(pgClaimFor)
	other, _, err := b.DueDeliveries("acme", "crm", later, 10, none)
	if err != nil || len(other) != 3 {
		t.Fatalf("node b after the claim lapsed: %d due, %v", len(other), err)
	}
	// A's late outcome of a delivery b delivered meanwhile changes nothing but its attempts.
	record := func(db *DB, d DueDelivery, o DeliveryOutcome, next time.Time) {
		t.Helper()
		if err := db.Write(ctx, func(tx *Tx) error {
			return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
				Attempt: Attempt{Time: clk.now(), Status: 204}, Outcome: o, Next: next})
		}); err != nil {
			t.Fatal(err)
		}
	}
	record(b, other[1], OutcomeDelivered, time.Time{})
	record(a, got[1], OutcomeDelivered, time.Time{})
	dels, _, err := a.Deliveries("acme", "crm", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dels {
		if d.MessageID == got[1].ID && (d.State != DeliveryDelivered || d.AttemptCount != 2) {
			t.Fatalf("delivery %+v", d)
		}
	}
	if st, _ := a.OutboxStats(); st.Pending != 2 {
		t.Fatalf("outbox %+v, want 2 pending", st)
	}
}

// An endpoint made on one node gets the events of calls written on the other, once that
// node polled: its cache of the subscriptions is dropped.
func TestPostgresOutboxEndpointOfAnotherNode(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	var nodes [2]*DB
	for i := range nodes {
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		nodes[i] = db
	}
	a, b := nodes[0], nodes[1]
	if err := a.Write(ctx, func(tx *Tx) error {
		return tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key-0001"})
	}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitPolled(t, b)
	putCalls(t, b, Call{ID: testCallID(t0, 1), CustomerID: "acme", Start: t0}) // b reads: no endpoint
	v := b.EndpointsVersion()
	if err := a.Write(ctx, func(tx *Tx) error {
		return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook", EventTypes: EventTypes(), Secret: testSecret})
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.EndpointsVersion() == v {
		if time.Now().After(deadline) {
			t.Fatal("node b did not see the endpoint")
		}
		time.Sleep(20 * time.Millisecond)
	}
	putCalls(t, b, Call{ID: testCallID(t0, 2), CustomerID: "acme", Start: t0})
	ms := messages(t, a, "acme")
	if len(ms) != 1 || ms[0].Subject != testCallID(t0, 2) {
		t.Fatalf("messages %+v", ms)
	}
	// B's commit tells b's workers of the delivery it made.
	if got := b.TakeDueEndpoints(); len(got) == 0 {
		t.Fatal("node b's commit did not make the endpoint due")
	}
	// Node a hears of it by polling.
	deadline = time.Now().Add(10 * time.Second)
	for {
		got := a.TakeDueEndpoints()
		if len(got) == 1 && got[0] == (EndpointRef{"acme", "crm"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node a did not hear of node b's delivery")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPolled waits for a poll of the store's outbox poller that began after the call.
func waitPolled(t *testing.T, db *DB) {
	t.Helper()
	db.pg.outbox.changes.Store(-2)
	deadline := time.Now().Add(10 * time.Second)
	for db.pg.outbox.changes.Load() == -2 {
		if time.Now().After(deadline) {
			t.Fatal("the outbox poller did not poll")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
