package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The events one write makes of a call share its data: the first message holds it, the
// others name that message; each payload is whole all the same.
func TestOutboxSharesTheCallsData(t *testing.T) {
	db, clk := webhookFixture(t, false)
	t0 := clk.now()
	c := Call{ID: testCallID(t0, 1), CustomerID: "acme", Dialled: "+31850000001", Caller: "+31612345678", Start: t0,
		Answer: t0.Add(2 * time.Second), End: t0.Add(time.Minute), Disposition: DispAnswered, TalkSeconds: 58}
	putCalls(t, db, c) // a new record that has ended: ringing, answered and completed at once
	ms := messages(t, db, "acme")
	if got := types(ms); !slices.Equal(got, []EventType{EventCallRinging, EventCallAnswered, EventCallCompleted}) {
		t.Fatalf("events %v", got)
	}
	var datas [][]byte
	for _, m := range ms {
		var p struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		datas = append(datas, p.Data)
	}
	if !bytes.Equal(datas[0], datas[1]) || !bytes.Equal(datas[0], datas[2]) || !bytes.Contains(datas[0], []byte(`"talk_seconds":58`)) {
		t.Fatalf("data %s", datas)
	}
	if db.pg != nil {
		// The first message holds the data, the others name it.
		for i, m := range ms {
			var hasData bool
			var ref *string
			if err := db.View(func(tx *Tx) error {
				return tx.pg.row(`SELECT data IS NOT NULL, ref FROM webhook_messages WHERE customer_id = 'acme' AND id = $1`, []any{m.ID}, &hasData, &ref)
			}); err != nil {
				t.Fatal(err)
			}
			switch {
			case i == 0 && (!hasData || ref != nil):
				t.Errorf("the first message does not hold the data")
			case i > 0 && (hasData || ref == nil || *ref != ms[0].ID):
				t.Errorf("message %d: data %v ref %v, want a reference to %s", i, hasData, ref, ms[0].ID)
			}
		}
		return
	}
	if err := db.IndexOutbox(context.Background()); err != nil { // staged in webhook_fresh until then
		t.Fatal(err)
	}
	db.raw().View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMessages)
		for i, m := range ms {
			v := b.Get(compose("acme", m.ID))
			_, _, _, _, rest, err := splitMessage(v)
			if err != nil || v[0] != messageV2 {
				t.Fatalf("message %d: version %d, %v", i, v[0], err)
			}
			switch {
			case i == 0 && rest[8] != dataInline:
				t.Errorf("the first message does not hold the data")
			case i > 0 && (rest[8] != dataRef || string(rest[9:]) != ms[0].ID):
				t.Errorf("message %d: %q, want a reference to %s", i, rest[8:], ms[0].ID)
			}
		}
		return nil
	})
}

// A file of the layout before webhook_queue: its pending deliveries (one due, one retried
// with its attempt, one waiting behind an earlier message of its call) are moved into the
// queue at Open and delivered in order; the old indexes go, the records and messages stay.
func TestOutboxConvertsTheOldLayout(t *testing.T) {
	skipOnPostgres(t, "the conversion of an earlier build's outbox buckets; PostgreSQL's outbox was made in its current layout (migration 00007)")
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	err = db.Write(context.Background(), func(tx *Tx) error {
		if err := tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key-0001"}); err != nil {
			return err
		}
		return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook", EventTypes: EventTypes(), Secret: testSecret, Created: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// What the earlier build wrote: messages of version 1, deliveries as JSON, three indexes.
	ids := []string{"01HZ0000000000000000000001", "01HZ0000000000000000000002", "01HZ0000000000000000000003", "01HZ0000000000000000000004"}
	subjects := []string{"call-a", "call-a", "call-b", "call-c"}
	retryAt := t0.Add(time.Hour)
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		due, _ := tx.CreateBucketIfNotExists(bucketDueV1)
		waiting, _ := tx.CreateBucketIfNotExists(bucketWaitingV1)
		pending, _ := tx.CreateBucketIfNotExists(bucketPendingV1)
		tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 3))
		for i, id := range ids {
			payload := fmt.Appendf(nil, `{"type":"call.ringing","version":1,"id":%q,"timestamp":"2026-05-01T10:00:00Z","data":{"n":%d}}`, id, i)
			v := []byte{messageV1}
			v = binary.BigEndian.AppendUint64(v, uint64(t0.UnixNano()))
			v = append(append(v, byte(len(EventCallRinging))), EventCallRinging...)
			v = append(append(v, byte(len(subjects[i]))), subjects[i]...)
			if err := tx.Bucket(bucketMessages).Put(compose("acme", id), append(v, payload...)); err != nil {
				return err
			}
			d := Delivery{CustomerID: "acme", EndpointID: "crm", MessageID: id, Type: EventCallRinging, Subject: subjects[i], State: DeliveryPending, Next: t0}
			switch i {
			case 1: // waits for 0, of the same call
				d.Next = time.Time{}
			case 2: // retried once
				d.Next, d.AttemptCount, d.Attempts = retryAt, 1, []Attempt{{Time: t0, Status: 500, Error: "500 Internal Server Error"}}
			case 3: // delivered: not pending
				d.State, d.Next, d.AttemptCount, d.Attempts = DeliveryDelivered, time.Time{}, 1, []Attempt{{Time: t0, Status: 204}}
			}
			raw, _ := json.Marshal(d)
			if err := tx.Bucket(bucketDeliveries).Put(compose("acme", "crm", id), raw); err != nil {
				return err
			}
			if d.State != DeliveryPending {
				continue
			}
			pending.Put(compose(id, "acme", "crm"), nil)
			waiting.Put(compose("acme", "crm", d.Subject, id), nil)
			if !d.Next.IsZero() {
				due.Put(binary.BigEndian.AppendUint64(compose("acme", "crm", ""), uint64(d.Next.UnixNano())), nil)
			}
		}
		return nil
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}

	clk := &testClock{t: t0.Add(time.Minute)}
	db, err = Open(path, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v := schemaOf(t, db); v != 4 {
		t.Fatalf("schema %d after Open, want 4", v)
	}
	db.raw().View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketDueV1, bucketWaitingV1, bucketPendingV1} {
			if tx.Bucket(name) != nil {
				t.Errorf("bucket %s is still there", name)
			}
		}
		return nil
	})
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 3 || !st.Oldest.Equal(time.UnixMilli(mustIDTime(t, ids[0])).UTC()) {
		t.Fatalf("outbox after the conversion: %+v", st)
	}
	got := due(t, db, clk.now())
	if len(got) != 1 || got[0].ID != ids[0] || !bytes.Contains(got[0].Payload, []byte(`"data":{"n":0}`)) {
		t.Fatalf("due after the conversion: %+v", got)
	}
	deliver := func(d DueDelivery) {
		t.Helper()
		if err := db.Write(context.Background(), func(tx *Tx) error {
			return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
				Attempt: Attempt{Time: clk.now(), Status: 204}, Outcome: OutcomeDelivered})
		}); err != nil {
			t.Fatal(err)
		}
	}
	deliver(got[0])
	if got = due(t, db, clk.now()); len(got) != 1 || got[0].ID != ids[1] {
		t.Fatalf("due after the first of call-a: %+v", got)
	}
	deliver(got[0])
	if got = due(t, db, retryAt); len(got) != 1 || got[0].ID != ids[2] || got[0].Attempts != 1 {
		t.Fatalf("due at the retry: %+v", got)
	}
	deliver(got[0])
	dels, _, err := indexed(t, db).Deliveries("acme", "crm", "", 10)
	if err != nil || len(dels) != 4 {
		t.Fatalf("deliveries %+v, %v", dels, err)
	}
	for _, d := range dels {
		if d.State != DeliveryDelivered {
			t.Errorf("delivery %s: %v", d.MessageID, d.State)
		}
	}
	if dels[1].AttemptCount != 2 || dels[1].Attempts[0].Status != 500 {
		t.Errorf("the retried delivery lost its attempt: %+v", dels[1])
	}
}

func mustIDTime(t *testing.T, id string) int64 {
	t.Helper()
	ms, ok := idTime([]byte(id))
	if !ok {
		t.Fatalf("id %s", id)
	}
	return ms
}

// Memory holds a window of an endpoint's pending deliveries and reads the rest from disk as
// it drains: every delivery is handed out once, each call's events in order, across a
// restart, and the API lists the pending ones before any attempt.
func TestOutboxQueueWindowKeepsOrder(t *testing.T) {
	defer func(w, c int) { queueWindow, refillChunk = w, c }(queueWindow, refillChunk)
	queueWindow, refillChunk = 6, 2
	clk := &testClock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	open := testStoreOpener(t, WithClock(clk.now))
	db := open()
	ctx := context.Background()
	err := db.Write(ctx, func(tx *Tx) error {
		if err := tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key-0001"}); err != nil {
			return err
		}
		return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook", EventTypes: EventTypes(), Secret: testSecret})
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.now()
	// Five calls, each written when it starts and when it ends: three events each.
	const calls = 5
	for i := range calls {
		putCalls(t, db, Call{ID: testCallID(t0, i), CustomerID: "acme", Start: t0})
	}
	for i := range calls {
		putCalls(t, db, Call{ID: testCallID(t0, i), CustomerID: "acme", Start: t0, Answer: t0.Add(time.Second), End: t0.Add(time.Minute), Disposition: DispAnswered})
	}
	ms := messages(t, db, "acme")
	if len(ms) != 3*calls {
		t.Fatalf("%d messages", len(ms))
	}
	dels, _, err := indexed(t, db).Deliveries("acme", "crm", "", 100)
	if err != nil || len(dels) != 3*calls || dels[0].MessageID != ms[len(ms)-1].ID || dels[0].State != DeliveryPending || dels[0].Type != EventCallCompleted {
		t.Fatalf("deliveries before any attempt: %d %+v %v", len(dels), dels[0], err)
	}
	seen := map[string]bool{}
	last := map[string]string{} // per call, the last message delivered
	for round := 0; len(seen) < len(ms); round++ {
		if round == 4 { // a restart halfway: the queue is read again from disk
			db.Close()
			db = open()
		}
		if round > 3*calls {
			t.Fatalf("not drained after %d rounds: %d of %d", round, len(seen), len(ms))
		}
		got, _, err := indexed(t, db).DueDeliveries("acme", "crm", clk.now(), 3, func(string) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		if db.pg == nil { // bbolt's window in memory; PostgreSQL's queue is its table
			db.outbox.mu.Lock()
			held := len(db.outbox.queues[EndpointRef{"acme", "crm"}].byID)
			db.outbox.mu.Unlock()
			if held > queueWindow {
				t.Fatalf("round %d: memory holds %d pending deliveries, more than %d", round, held, queueWindow)
			}
		}
		if len(got) == 0 {
			t.Fatalf("round %d: nothing due with %d of %d delivered", round, len(seen), len(ms))
		}
		for _, d := range got {
			if seen[d.ID] {
				t.Fatalf("message %s handed out twice", d.ID)
			}
			if d.ID <= last[d.Subject] {
				t.Fatalf("call %s: %s after %s", d.Subject, d.ID, last[d.Subject])
			}
			seen[d.ID], last[d.Subject] = true, d.ID
			if err := db.Write(ctx, func(tx *Tx) error {
				return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
					Attempt: Attempt{Time: clk.now(), Status: 204}, Outcome: OutcomeDelivered})
			}); err != nil {
				t.Fatal(err)
			}
		}
		// Each call's events one at a time: at most one of a call is due at once.
		subjects := map[string]int{}
		for _, d := range got {
			subjects[d.Subject]++
			if subjects[d.Subject] > 1 {
				t.Fatalf("two events of call %s due at once: %+v", d.Subject, got)
			}
		}
	}
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 0 {
		t.Fatalf("outbox %+v", st)
	}
	db.Close()
}

// A window full of deliveries that wait for their retries does not hold back the newer
// ones: those due, and next in their call's order, are taken past it; a newer message of a
// call whose earlier one waits still waits.
func TestOutboxQueueTakesNewerPastAStalledWindow(t *testing.T) {
	defer func(w, c int, e time.Duration) { queueWindow, refillChunk, tailEvery = w, c, e }(queueWindow, refillChunk, tailEvery)
	queueWindow, refillChunk, tailEvery = 4, 2, time.Second
	db, clk := webhookFixture(t, false)
	ctx := context.Background()
	t0 := clk.now()
	// Four calls ring; each delivery fails and is retried in four hours: the window is full.
	for i := range 4 {
		putCalls(t, db, Call{ID: testCallID(t0, i), CustomerID: "acme", Start: t0})
	}
	later := t0.Add(4 * time.Hour)
	retried := 0
	for ds := due(t, db, t0); len(ds) > 0; ds = due(t, db, t0) {
		for _, d := range ds {
			if err := db.Write(ctx, func(tx *Tx) error {
				return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
					Attempt: Attempt{Time: t0, Status: 503}, Outcome: OutcomeRetry, Next: later})
			}); err != nil {
				t.Fatal(err)
			}
			retried++
		}
	}
	if retried != 4 {
		t.Fatalf("%d deliveries retried", retried)
	}
	// Then call 0 ends (its completion waits for its ringing) and three new calls ring.
	clk.add(time.Minute)
	now := clk.now()
	putCalls(t, db, Call{ID: testCallID(t0, 0), CustomerID: "acme", Start: t0, End: now, Disposition: DispBusy})
	for i := 4; i < 7; i++ {
		putCalls(t, db, Call{ID: testCallID(t0, i), CustomerID: "acme", Start: now})
	}
	indexed(t, db)
	got := map[string]bool{}
	for range 3 { // at most refillChunk a look
		for _, d := range due(t, db, now) {
			if d.Subject == testCallID(t0, 0) {
				t.Fatalf("call 0's %s is due while its ringing waits for its retry", d.Type)
			}
			got[d.Subject] = true
			if err := db.Write(ctx, func(tx *Tx) error {
				return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
					Attempt: Attempt{Time: now, Status: 204}, Outcome: OutcomeDelivered})
			}); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(tailEvery)
	}
	if len(got) != 3 {
		t.Fatalf("the new calls' deliveries due: %v, want the three", got)
	}
	if db.pg == nil { // bbolt's window in memory; PostgreSQL's queue is its table
		db.outbox.mu.Lock()
		held := len(db.outbox.queues[EndpointRef{"acme", "crm"}].byID)
		db.outbox.mu.Unlock()
		if held > 2*queueWindow {
			t.Fatalf("memory holds %d", held)
		}
	}
	// Call 7 rings, its delivery is retried later, and it ends; after a restart its ringing
	// is past the window, on disk only: its completion still waits for it.
	c7 := Call{ID: testCallID(t0, 7), CustomerID: "acme", Start: now}
	putCalls(t, db, c7)
	indexed(t, db)
	var ring7 []DueDelivery
	for range 3 {
		for _, d := range due(t, db, now) {
			if d.Subject == c7.ID && len(ring7) == 0 {
				ring7 = append(ring7, d)
			}
		}
		now = now.Add(tailEvery)
	}
	if len(ring7) != 1 {
		t.Fatal("call 7's ringing is not due")
	}
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: ring7[0].ID, Scheduled: ring7[0].Scheduled,
			Attempt: Attempt{Time: now, Status: 503}, Outcome: OutcomeRetry, Next: later})
	}); err != nil {
		t.Fatal(err)
	}
	c7.End, c7.Disposition = now, DispBusy
	putCalls(t, db, c7)
	db = reopenTest(t, db, WithClock(clk.now))
	for range 4 {
		for _, d := range due(t, db, now) {
			if d.Subject == c7.ID || d.Subject == testCallID(t0, 0) {
				t.Fatalf("%s of %s is due while its ringing waits for its retry", d.Type, d.Subject)
			}
		}
		now = now.Add(tailEvery)
	}
}
