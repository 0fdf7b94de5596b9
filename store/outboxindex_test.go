package store

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// indexed writes the outbox's index entries of the messages committed so far (the index
// writer does so within OutboxIndexDelay) and answers db.
func indexed(t testing.TB, db *DB) *DB {
	t.Helper()
	if err := db.IndexOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// A switch killed between a message's commit and its index write (the index write is made
// up to OutboxIndexDelay later): the file as the kill left it, opened again, has every
// message in the queue once, the one delivered before the kill not again, each call's
// events in order, and the next messages' ids after the ones written before.
func TestOutboxIndexAfterACrash(t *testing.T) {
	skipOnPostgres(t, "the deferred outbox index a kill leaves unwritten; PostgreSQL inserts a message's deliveries with it, TestEventsAreAtomicWithTheCall")
	dir := t.TempDir()
	clk := &testClock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	db, err := Open(filepath.Join(dir, "live.db"), WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.outbox.indexDelay.Store(int64(time.Hour)) // no index write but those the test makes
	ctx := context.Background()
	err = db.Write(ctx, func(tx *Tx) error {
		if err := tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key-0001"}); err != nil {
			return err
		}
		return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook", EventTypes: EventTypes(), Secret: testSecret})
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.now()
	// Call 0 rings and is indexed (the cursor is its message); its delivery is made.
	putCalls(t, db, Call{ID: testCallID(t0, 0), CustomerID: "acme", Caller: "+31611111110", Start: t0})
	first := due(t, db, t0)
	if len(first) != 1 {
		t.Fatalf("due %d", len(first))
	}
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: first[0].ID, Scheduled: first[0].Scheduled,
			Attempt: Attempt{Time: t0, Status: 204}, Outcome: OutcomeDelivered})
	}); err != nil {
		t.Fatal(err)
	}
	// Then calls 0-3 end and calls 1-3 ring, without an index write: ten messages.
	for i := 1; i <= 3; i++ {
		putCalls(t, db, Call{ID: testCallID(t0, i), CustomerID: "acme", Caller: "+3161111111" + strconv.Itoa(i), Start: t0})
	}
	clk.add(time.Minute)
	for i := 0; i <= 3; i++ {
		putCalls(t, db, Call{ID: testCallID(t0, i), CustomerID: "acme", Caller: "+3161111111" + strconv.Itoa(i), Start: t0,
			Answer: t0.Add(time.Second), End: t0.Add(time.Minute), Disposition: DispAnswered})
	}
	all := messages(t, db, "acme")
	if len(all) != 1+3+4*2 {
		t.Fatalf("%d messages", len(all))
	}
	if n := rawKeys(t, db, bucketQueue); n != 0 {
		t.Fatalf("%d queue entries before the index write", n)
	}
	// The kill: the file as it is now, every commit durable and nothing else.
	raw, err := os.ReadFile(filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed.db")
	if err := os.WriteFile(crashed, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(crashed, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if n := rawKeys(t, db2, bucketQueue); n != len(all)-1 {
		t.Fatalf("%d queue entries after the restart, want %d", n, len(all)-1)
	}
	if n := rawKeys(t, db2, bucketMsgSubject); n != len(all) {
		t.Fatalf("%d subject entries after the restart, want %d", n, len(all))
	}
	// Every message but the delivered one is handed out once, each call's in order.
	seen := map[string]bool{first[0].ID: true}
	for round := 0; len(seen) < len(all); round++ {
		if round > len(all) {
			t.Fatalf("not drained: %d of %d", len(seen), len(all))
		}
		got, _, err := db2.DueDeliveries("acme", "crm", clk.now(), 100, func(string) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatalf("nothing due with %d of %d delivered", len(seen), len(all))
		}
		for _, d := range got {
			if seen[d.ID] {
				t.Fatalf("%s handed out again", d.ID)
			}
			for _, m := range all { // the call's earlier messages went first
				if m.Subject == d.Subject && m.ID < d.ID && !seen[m.ID] {
					t.Fatalf("%s (%s) before %s", d.ID, d.Type, m.ID)
				}
			}
			seen[d.ID] = true
			if err := db2.Write(ctx, func(tx *Tx) error {
				return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
					Attempt: Attempt{Time: clk.now(), Status: 204}, Outcome: OutcomeDelivered})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A caller's erasure finds the messages indexed at the restart.
	if err := db2.Write(ctx, func(tx *Tx) error { _, _, err := tx.DeleteCall(testCallID(t0, 2)); return err }); err != nil {
		t.Fatal(err)
	}
	if w := rawHolds(t, db2, "+31611111112"); len(w) != 0 {
		t.Fatalf("the erased caller is still in %v", w)
	}
	// The ids made after the restart follow those made before, also with the clock behind.
	clk.add(-time.Hour)
	putCalls(t, db2, Call{ID: testCallID(t0, 9), CustomerID: "acme", Start: t0})
	ms := messages(t, db2, "acme")
	if last := ms[len(ms)-1]; last.Subject != testCallID(t0, 9) || last.ID <= all[len(all)-1].ID {
		t.Fatalf("the message after the restart %+v, the last before %s", last, all[len(all)-1].ID)
	}
}

// rawKeys counts the keys of a bucket.
//
// On PostgreSQL it counts the rows that hold what the bucket holds on bbolt: the delivery
// records are the deliveries attempted or settled; the queue the pending ones; the
// subscriptions the customers with an enabled endpoint.
func rawKeys(t *testing.T, db *DB, name []byte) int {
	t.Helper()
	n := 0
	if db.pg != nil {
		q, ok := map[string]string{
			string(bucketDeliveries):    `SELECT count(*) FROM webhook_deliveries WHERE state <> 1 OR attempt_count > 0`,
			string(bucketQueue):         `SELECT count(*) FROM webhook_deliveries WHERE state = 1`,
			string(bucketEndpoints):     `SELECT count(*) FROM webhook_endpoints`,
			string(bucketSubscriptions): `SELECT count(DISTINCT customer_id) FROM webhook_endpoints WHERE enabled`,
			string(bucketMessages):      `SELECT count(*) FROM webhook_messages`,
			string(bucketMsgSubject):    `SELECT count(*) FROM webhook_messages WHERE subject <> ''`,
		}[string(name)]
		if !ok {
			t.Fatalf("rawKeys of %s on postgres", name)
		}
		if err := db.View(func(tx *Tx) error { return tx.pg.row(q, nil, &n) }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := db.raw().View(func(tx *bolt.Tx) error { n = tx.Bucket(name).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
