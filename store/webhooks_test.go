package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testSecret is a valid endpoint secret: whsec_ and the base64 of 32 bytes.
var testSecret = SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

// testClock is a settable clock for the outbox.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// webhookFixture is a store with customers acme (an endpoint "crm" subscribed to every event
// type) and quiet (no endpoint), and acme pseudonymous when asked; on the driver of openTest.
func webhookFixture(t *testing.T, pseudonymous bool) (*DB, *testClock) {
	t.Helper()
	clk := &testClock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	var db *DB
	if testDriver(t) == "postgres" {
		db = openPostgresTest(t, WithClock(clk.now))
		// The tests take what is due themselves: other nodes' writes are not polled for.
		db.pg.outbox.pollEvery.Store(int64(time.Hour))
	} else {
		var err error
		if db, err = Open(filepath.Join(t.TempDir(), "trackline.db"), WithClock(clk.now)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		db.outbox.indexDelay.Store(int64(time.Hour)) // the tests write the index themselves (indexed)
	}
	err := db.Write(context.Background(), func(tx *Tx) error {
		for _, id := range []string{"acme", "quiet"} {
			c := Customer{ID: id, Status: StatusActive, SiteKey: id + "-key-0001", PseudonymousCallers: pseudonymous && id == "acme"}
			if err := tx.CreateCustomer(&c); err != nil {
				return err
			}
		}
		return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook", EventTypes: EventTypes(),
			Secret: testSecret, Created: clk.now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, clk
}

func TestEndpointCheck(t *testing.T) {
	db, _ := webhookFixture(t, false)
	ok := Endpoint{ID: "x", CustomerID: "acme", URL: "https://a.example/h", EventTypes: []EventType{EventCallCompleted}, Secret: testSecret}
	tests := []struct {
		name  string
		edit  func(e *Endpoint)
		field string
	}{
		{"ok", func(e *Endpoint) {}, ""},
		{"no url", func(e *Endpoint) { e.URL = "" }, "url"},
		{"ftp url", func(e *Endpoint) { e.URL = "ftp://a.example/" }, "url"},
		{"credentials", func(e *Endpoint) { e.URL = "https://u:p@a.example/" }, "url"},
		{"no types", func(e *Endpoint) { e.EventTypes = nil }, "event_types"},
		{"unknown type", func(e *Endpoint) { e.EventTypes = []EventType{"call.exploded"} }, "event_types"},
		{"type twice", func(e *Endpoint) { e.EventTypes = []EventType{EventCallCompleted, EventCallCompleted} }, "event_types"},
		{"secret without prefix", func(e *Endpoint) { e.Secret = strings.TrimPrefix(testSecret, SecretPrefix) }, "secret"},
		{"secret not base64", func(e *Endpoint) { e.Secret = SecretPrefix + "!!!" }, "secret"},
		{"secret too short", func(e *Endpoint) { e.Secret = SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 23)) }, "secret"},
		{"secret too long", func(e *Endpoint) { e.Secret = SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 65)) }, "secret"},
		{"bad previous secret", func(e *Endpoint) { e.PreviousSecret = "whsec_x" }, "previous_secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.edit(&e)
			err := db.Write(context.Background(), func(tx *Tx) error { return tx.PutEndpoint(&e) })
			var fe *FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("PutEndpoint = %v", err)
			case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
				t.Fatalf("PutEndpoint = %v, want a problem with %s", err, tt.field)
			}
		})
	}
	e := ok
	e.CustomerID = "nobody"
	if err := db.Write(context.Background(), func(tx *Tx) error { return tx.PutEndpoint(&e) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("endpoint of no customer: %v", err)
	}
	// At most MaxEndpoints per customer (acme has crm and x).
	err := db.Write(context.Background(), func(tx *Tx) error {
		for i := range MaxEndpoints - 2 {
			e := ok
			e.ID = fmt.Sprintf("e%d", i)
			if err := tx.PutEndpoint(&e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e = ok
	e.ID = "one-too-many"
	if err := db.Write(context.Background(), func(tx *Tx) error { return tx.PutEndpoint(&e) }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("endpoint %d: %v", MaxEndpoints+1, err)
	}
}

// messages reads every message of a customer, oldest first.
func messages(t *testing.T, db *DB, customerID string) []Message {
	t.Helper()
	var out []Message
	if err := db.View(func(tx *Tx) (err error) {
		out, err = tx.Messages(customerID, time.Time{}, time.Time{}, 1<<20)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func types(ms []Message) []EventType {
	var out []EventType
	for _, m := range ms {
		out = append(out, m.Type)
	}
	return out
}

// due answers the deliveries of acme's crm that are due at now.
func due(t *testing.T, db *DB, now time.Time) []DueDelivery {
	t.Helper()
	d, _, err := indexed(t, db).DueDeliveries("acme", "crm", now, 100, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCallEventsFollowTheCall(t *testing.T) {
	db, clk := webhookFixture(t, false)
	ctx := context.Background()
	t0 := clk.now()
	c := Call{ID: testCallID(t0, 1), CustomerID: "acme", Dialled: "+31850000001", Caller: "+31612345678", Channel: "Google Ads",
		Keyword: "loodgieter", LandingPage: "https://shop.example/", Gclid: "g-1", Start: t0}
	db.TakeDueEndpoints() // the endpoint's creation
	putCalls(t, db, c)
	if got := types(messages(t, db, "acme")); !slices.Equal(got, []EventType{EventCallRinging}) {
		t.Fatalf("after the first write: %v", got)
	}
	// On bbolt the message is not in the queue before its index write; PostgreSQL writes
	// its deliveries with it.
	if db.pg == nil {
		if got := db.TakeDueEndpoints(); got != nil {
			t.Fatalf("TakeDueEndpoints before the index write = %v", got)
		}
		if d, _, _ := db.DueDeliveries("acme", "crm", clk.now(), 10, func(string) bool { return false }); len(d) != 0 {
			t.Fatalf("due before the index write: %d", len(d))
		}
	}
	indexed(t, db)
	select {
	case <-db.OutboxSignal():
	default:
		t.Fatal("no signal after an event")
	}
	if got := db.TakeDueEndpoints(); !slices.Equal(got, []EndpointRef{{"acme", "crm"}}) {
		t.Fatalf("TakeDueEndpoints = %v", got)
	}
	if got := db.TakeDueEndpoints(); got != nil {
		t.Fatalf("TakeDueEndpoints again = %v", got)
	}
	// The end of the call: answered, completed and its recording, in one write.
	rec := Recording{ID: "rec-1", CustomerID: "acme", CallID: c.ID, Duration: 3 * time.Second, Size: 96044, SHA256: "ab", Created: t0.Add(time.Minute)}
	c.Answer, c.End, c.Disposition, c.TalkSeconds, c.RecordingID = t0.Add(5*time.Second), t0.Add(time.Minute), DispAnswered, 55, rec.ID
	clk.add(time.Minute)
	if err := db.Write(ctx, func(tx *Tx) error {
		if err := tx.PutRecording(&rec); err != nil {
			return err
		}
		return tx.PutCall(&c)
	}); err != nil {
		t.Fatal(err)
	}
	// Written again (a recording relinked, say): nothing new.
	putCalls(t, db, c)
	ms := messages(t, db, "acme")
	want := []EventType{EventCallRinging, EventCallAnswered, EventCallCompleted, EventRecordingReady}
	if got := types(ms); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i, m := range ms {
		if i > 0 && m.ID <= ms[i-1].ID {
			t.Errorf("message ids out of order: %s after %s", m.ID, ms[i-1].ID)
		}
		var p struct {
			Type      EventType       `json:"type"`
			Version   int             `json:"version"`
			ID        string          `json:"id"`
			Timestamp time.Time       `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Type != m.Type || p.Version != 1 || p.ID != m.ID || p.Timestamp.IsZero() || m.Subject != c.ID {
			t.Errorf("payload %s of message %+v", m.Payload, m)
		}
		// The outbox keeps the data; the payload is what encoding/json makes of the envelope.
		if want, _ := json.Marshal(envelope{Type: p.Type, Version: PayloadVersion, ID: p.ID, Timestamp: p.Timestamp, Data: p.Data}); !bytes.Equal(m.Payload, want) {
			t.Errorf("payload\n%s\nwant\n%s", m.Payload, want)
		}
		if m.Type == EventCallCompleted {
			var data callPayload
			json.Unmarshal(p.Data, &data)
			if data.Caller != c.Caller || data.Channel != "Google Ads" || data.Gclid != "g-1" || data.Disposition != DispAnswered || !p.Timestamp.Equal(c.End) {
				t.Errorf("call.completed %s", m.Payload)
			}
		}
		if m.Type == EventRecordingReady && !bytes.Contains(m.Payload, []byte(`"path":"/v1/recordings/rec-1"`)) {
			t.Errorf("recording.ready %s", m.Payload)
		}
	}
	// One call's events reach an endpoint in order: only the first is due; settling it makes
	// the next one due.
	now := clk.now()
	for i, m := range ms {
		d := due(t, db, now)
		if len(d) != 1 || d[0].ID != m.ID || !bytes.Equal(d[0].Payload, m.Payload) {
			t.Fatalf("step %d: due %+v, want %s only", i, d, m.ID)
		}
		if err := db.Write(ctx, func(tx *Tx) error {
			return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: m.ID, Scheduled: d[0].Scheduled,
				Attempt: Attempt{Time: now, Status: 204}, Outcome: OutcomeDelivered})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if d := due(t, db, now.Add(time.Hour)); len(d) != 0 {
		t.Fatalf("due after all delivered: %+v", d)
	}
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 0 {
		t.Fatalf("outbox %+v after all delivered", st)
	}
	dels, _, err := indexed(t, db).Deliveries("acme", "crm", "", 10)
	if err != nil || len(dels) != 4 || dels[0].MessageID != ms[3].ID || dels[0].State != DeliveryDelivered || dels[0].AttemptCount != 1 || dels[0].Attempts[0].Status != 204 {
		t.Fatalf("deliveries %+v %v", dels, err)
	}
}

func TestNoEventsWithoutAnEndpoint(t *testing.T) {
	db, clk := webhookFixture(t, false)
	t0 := clk.now()
	c := Call{ID: testCallID(t0, 1), CustomerID: "quiet", Start: t0}
	putCalls(t, db, c)
	c.End, c.Disposition = t0.Add(time.Minute), DispBusy
	putCalls(t, db, c)
	if ms := messages(t, db, "quiet"); len(ms) != 0 {
		t.Fatalf("messages of a customer without endpoints: %v", types(ms))
	}
	// An endpoint that wants only completions gets only those; a disabled one nothing.
	ctx := context.Background()
	err := db.Write(ctx, func(tx *Tx) error {
		if err := tx.PutEndpoint(&Endpoint{ID: "done", CustomerID: "quiet", URL: "https://q.example/", EventTypes: []EventType{EventCallCompleted}, Secret: testSecret}); err != nil {
			return err
		}
		return tx.PutEndpoint(&Endpoint{ID: "off", CustomerID: "quiet", URL: "https://q.example/", EventTypes: EventTypes(), Secret: testSecret, Disabled: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	c2 := Call{ID: testCallID(t0, 2), CustomerID: "quiet", Start: t0}
	putCalls(t, db, c2)
	c2.Answer, c2.End, c2.Disposition = t0.Add(time.Second), t0.Add(time.Minute), DispAnswered
	putCalls(t, db, c2)
	if got := types(messages(t, db, "quiet")); !slices.Equal(got, []EventType{EventCallCompleted}) {
		t.Fatalf("events %v, want call.completed only", got)
	}
	if d, _, _ := indexed(t, db).DueDeliveries("quiet", "off", clk.now(), 10, func(string) bool { return false }); len(d) != 0 {
		t.Fatalf("deliveries to a disabled endpoint: %+v", d)
	}
}

// A transaction that fails leaves no event: the event is part of the call's write.
func TestEventsAreAtomicWithTheCall(t *testing.T) {
	db, clk := webhookFixture(t, false)
	boom := errors.New("boom")
	t0 := clk.now()
	err := db.Write(context.Background(), func(tx *Tx) error {
		c := Call{ID: testCallID(t0, 1), CustomerID: "acme", Start: t0}
		if err := tx.PutCall(&c); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if ms := messages(t, db, "acme"); len(ms) != 0 {
		t.Fatalf("a failed transaction left events %v", types(ms))
	}
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 0 {
		t.Fatalf("a failed transaction left deliveries: %+v", st)
	}
	// In a batch with a failing write the other writes' events stay, once each.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			db.Write(context.Background(), func(tx *Tx) error {
				c := Call{ID: testCallID(t0, 100+i), CustomerID: "acme", Start: t0}
				if err := tx.PutCall(&c); err != nil {
					return err
				}
				if i%3 == 0 {
					return boom
				}
				return nil
			})
		})
	}
	wg.Wait()
	ms := messages(t, db, "acme")
	calls := map[string]int{}
	for _, m := range ms {
		calls[m.Subject]++
	}
	if len(ms) != 13 || len(calls) != 13 {
		t.Fatalf("%d messages of %d calls, want 13 of 13", len(ms), len(calls))
	}
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 13 || !st.Oldest.Equal(t0) {
		t.Fatalf("outbox %+v, want 13 pending since %v", st, t0)
	}
}

func TestPseudonymousCallersStayOut(t *testing.T) {
	for _, pseudo := range []bool{false, true} {
		t.Run(fmt.Sprint("pseudonymous=", pseudo), func(t *testing.T) {
			db, clk := webhookFixture(t, pseudo)
			t0 := clk.now()
			c := Call{ID: testCallID(t0, 1), CustomerID: "acme", Caller: "+31612345678", CallerLastDigits: "678", Start: t0}
			putCalls(t, db, c)
			ms := messages(t, db, "acme")
			if len(ms) != 1 {
				t.Fatalf("messages %v", types(ms))
			}
			if got := bytes.Contains(ms[0].Payload, []byte("+31612345678")); got == pseudo {
				t.Fatalf("payload %s: caller number present %v", ms[0].Payload, got)
			}
		})
	}
}

func TestCallUpdatedAndPoolExhausted(t *testing.T) {
	db, clk := webhookFixture(t, false)
	ctx := context.Background()
	t0 := clk.now()
	c := Call{ID: testCallID(t0, 1), CustomerID: "acme", Start: t0, End: t0.Add(time.Minute), Disposition: DispAnswered}
	putCalls(t, db, c)
	err := db.Write(ctx, func(tx *Tx) error {
		_, err := tx.AnnotateCall("acme", c.ID, func(c *Call) error { c.Tags, c.Value, c.Updated = []string{"lead"}, 250, t0.Add(time.Hour); return nil })
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A bad annotation writes nothing.
	db.Write(ctx, func(tx *Tx) error {
		_, err := tx.AnnotateCall("acme", c.ID, func(c *Call) error { c.Value = -1; return nil })
		return err
	})
	ms := messages(t, db, "acme")
	if got := types(ms); !slices.Equal(got, []EventType{EventCallRinging, EventCallCompleted, EventCallUpdated}) {
		t.Fatalf("events %v", got)
	}
	if !bytes.Contains(ms[2].Payload, []byte(`"tags":["lead"],"value":250`)) {
		t.Errorf("call.updated %s", ms[2].Payload)
	}
	// Pool exhaustion: one event per PoolExhaustedEvery.
	for i, at := range []time.Duration{0, time.Minute, PoolExhaustedEvery, PoolExhaustedEvery + time.Second} {
		if err := db.Write(ctx, func(tx *Tx) error {
			if err := tx.AddStats("acme", 0, 1, 0); err != nil {
				return err
			}
			return tx.PoolExhausted("acme", fmt.Sprintf("+3185000000%d", i), t0.Add(at))
		}); err != nil {
			t.Fatal(err)
		}
	}
	var ex []Message
	for _, m := range messages(t, db, "acme") {
		if m.Type == EventPoolExhausted {
			ex = append(ex, m)
		}
	}
	if len(ex) != 2 || !bytes.Contains(ex[0].Payload, []byte(`"number":"+31850000000","exhaustions_total":1`)) ||
		!bytes.Contains(ex[1].Payload, []byte(`"number":"+31850000002","exhaustions_total":3`)) {
		t.Fatalf("pool_exhausted events: %d %s", len(ex), ex)
	}
	// A change to the endpoints keeps the throttle.
	db.Write(ctx, func(tx *Tx) error { return tx.SetEndpointDisabled("acme", "crm", false, "", t0) })
	db.Write(ctx, func(tx *Tx) error {
		return tx.PoolExhausted("acme", "+31850000009", t0.Add(PoolExhaustedEvery+2*time.Second))
	})
	if n := len(messages(t, db, "acme")); n != 5 {
		t.Fatalf("%d messages after an endpoint change, want 5", n)
	}
}

func TestRecordDeliveryRetryGoneAndReplay(t *testing.T) {
	db, clk := webhookFixture(t, false)
	ctx := context.Background()
	t0 := clk.now()
	var ids []string
	for i := range 3 {
		c := Call{ID: testCallID(t0, i), CustomerID: "acme", Start: t0}
		putCalls(t, db, c)
	}
	for _, m := range messages(t, db, "acme") {
		ids = append(ids, m.ID)
	}
	d := due(t, db, t0)
	if len(d) != 3 {
		t.Fatalf("due %d, want the 3 ringing events", len(d))
	}
	// A 500: retried later; not due before.
	retry := t0.Add(30 * time.Second)
	record := func(d DueDelivery, o DeliveryOutcome, status int, next time.Time) {
		t.Helper()
		if err := db.Write(ctx, func(tx *Tx) error {
			return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
				Attempt: Attempt{Time: clk.now(), Status: status, Error: "x"}, Outcome: o, Next: next})
		}); err != nil {
			t.Fatal(err)
		}
	}
	record(d[0], OutcomeRetry, 500, retry)
	if got := due(t, db, t0); len(got) != 2 || got[0].ID != ids[1] {
		t.Fatalf("due after a retry: %+v", got)
	}
	_, next, _ := indexed(t, db).DueDeliveries("acme", "crm", t0, 1, func(string) bool { return false })
	if !next.Equal(t0) {
		t.Fatalf("next due %v with one more due now", next)
	}
	_, next, _ = indexed(t, db).DueDeliveries("acme", "crm", t0, 10, func(id string) bool { return id != ids[0] })
	if !next.Equal(retry) {
		t.Fatalf("next due %v, want the retry at %v", next, retry)
	}
	if got := due(t, db, retry); len(got) != 3 || got[2].ID != ids[0] || got[2].Attempts != 1 {
		t.Fatalf("due at the retry: %+v", got)
	}
	// A stale result (its scheduled time passed) keeps the attempt, changes nothing else.
	record(d[0], OutcomeDelivered, 200, time.Time{})
	if got := due(t, db, retry); len(got) != 3 {
		t.Fatalf("a stale result settled the delivery: %+v", got)
	}
	// 410: the endpoint is disabled; its pending deliveries fail with FailPending.
	record(d[1], OutcomeGone, 410, time.Time{})
	e, _ := db.Endpoint("acme", "crm")
	if !e.Disabled || e.DisabledReason != "gone" {
		t.Fatalf("endpoint after a 410: %+v", e)
	}
	c := Call{ID: testCallID(t0, 9), CustomerID: "acme", Start: t0}
	putCalls(t, db, c)
	if n := len(messages(t, db, "acme")); n != 3 {
		t.Fatalf("a disabled endpoint's customer got an event: %d messages", n)
	}
	n, err := db.FailPending(ctx, "acme", "crm", "endpoint disabled")
	if err != nil || n != 2 {
		t.Fatalf("FailPending = %d, %v; want 2", n, err)
	}
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 0 {
		t.Fatalf("pending after FailPending: %+v", st)
	}
	// Replay needs the endpoint enabled; then a message, or everything since a time.
	if err := db.Write(ctx, func(tx *Tx) error { return tx.ReplayMessage("acme", "crm", ids[0]) }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("replay to a disabled endpoint: %v", err)
	}
	db.Write(ctx, func(tx *Tx) error { return tx.SetEndpointDisabled("acme", "crm", false, "", clk.now()) })
	if err := db.Write(ctx, func(tx *Tx) error { return tx.ReplayMessage("acme", "crm", ids[1]) }); err != nil {
		t.Fatal(err)
	}
	if got := due(t, db, clk.now()); len(got) != 1 || got[0].ID != ids[1] || got[0].Attempts != 1 {
		t.Fatalf("due after replaying one: %+v", got)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.ReplayMessage("acme", "crm", "01NOSUCHMESSAGE00000000000") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay of no message: %v", err)
	}
	n, err = db.ReplaySince(ctx, "acme", "crm", t0)
	if err != nil || n != 3 {
		t.Fatalf("ReplaySince = %d, %v", n, err)
	}
	if got := due(t, db, clk.now()); len(got) != 3 {
		t.Fatalf("due after replaying since t0: %+v", got)
	}
	if n, _ := db.ReplaySince(ctx, "acme", "crm", t0.Add(time.Hour)); n != 0 {
		t.Fatalf("ReplaySince an hour later = %d", n)
	}
}

// A customer's purge takes its endpoints, messages and deliveries; a caller's erasure takes
// the messages of the caller's calls.
func TestWebhooksGoWithTheCustomerAndTheCaller(t *testing.T) {
	db, clk := webhookFixture(t, false)
	ctx := context.Background()
	t0 := clk.now()
	erased := Call{ID: testCallID(t0, 1), CustomerID: "acme", Caller: "+31611111111", CallerPseudonym: "p1", Start: t0}
	kept := Call{ID: testCallID(t0, 2), CustomerID: "acme", Caller: "+31622222222", CallerPseudonym: "p2", Start: t0}
	putCalls(t, db, erased, kept)
	erased.End, erased.Disposition = t0.Add(time.Minute), DispBusy
	putCalls(t, db, erased)
	if err := db.Write(ctx, func(tx *Tx) error { _, _, err := tx.DeleteCall(erased.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if w := rawHolds(t, db, erased.ID); len(w) != 0 {
		t.Fatalf("the erased call is still in %v", w)
	}
	if w := rawHolds(t, db, "+31611111111"); len(w) != 0 {
		t.Fatalf("the erased caller is still in %v", w)
	}
	if ms := messages(t, db, "acme"); len(ms) != 1 || ms[0].Subject != kept.ID {
		t.Fatalf("messages after the erasure: %+v", ms)
	}
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 1 {
		t.Fatalf("outbox after the erasure: %+v", st)
	}
	kept.End, kept.Disposition = t0.Add(time.Minute), DispBusy
	putCalls(t, db, kept)
	res, err := db.PurgeCustomer(ctx, "acme", PurgeOptions{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.WebhookEndpoints != 1 || res.WebhookMessages != 2 {
		t.Fatalf("purge %+v", res)
	}
	for _, w := range rawHolds(t, db, "acme") {
		if !strings.HasPrefix(w, "customers_purged/") {
			t.Errorf("acme is still in %s", w)
		}
	}
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 0 {
		t.Fatalf("outbox after the purge: %+v", st)
	}
}

// A call's events are staged (webhook_fresh) until the index write: a purge before it
// deletes and counts them, and the index write that follows finds nothing of them.
func TestPurgeTakesStagedEvents(t *testing.T) {
	skipOnPostgres(t, "the events staged in webhook_fresh until their index write; PostgreSQL stages nothing")
	db, clk := webhookFixture(t, false)
	if db.pg != nil {
		t.Skip("bbolt's staging: PostgreSQL indexes a message as it writes it")
	}
	ctx := context.Background()
	t0 := clk.now()
	c := Call{ID: testCallID(t0, 1), CustomerID: "acme", Caller: "+31611111111", CallerPseudonym: "p1", Start: t0}
	putCalls(t, db, c)
	indexed(t, db)
	c.End, c.Disposition = t0.Add(time.Minute), DispAnswered
	putCalls(t, db, c) // call.completed, staged
	if err := db.raw().View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketFresh).Stats().KeyN; n != 1 {
			return fmt.Errorf("%d staged messages, want the completion", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err := db.PurgeCustomer(ctx, "acme", PurgeOptions{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 1 || res.WebhookMessages != 2 {
		t.Fatalf("purge %+v, want the indexed ringing and the staged completion", res)
	}
	for range 2 {
		for _, w := range append(rawHolds(t, db, "acme"), rawHolds(t, db, "+31611111111")...) {
			if !strings.HasPrefix(w, "customers_purged/") {
				t.Errorf("acme is still in %s", w)
			}
		}
		indexed(t, db) // the index write that comes after the purge
	}
	if st, _ := db.OutboxStats(); st.Pending != 0 {
		t.Fatalf("outbox after the purge: %+v", st)
	}
}

func TestDeleteEndpoint(t *testing.T) {
	db, clk := webhookFixture(t, false)
	ctx := context.Background()
	t0 := clk.now()
	for i := range 5 {
		putCalls(t, db, Call{ID: testCallID(t0, i), CustomerID: "acme", Start: t0})
	}
	if err := db.DeleteEndpoint(ctx, "acme", "crm"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteEndpoint(ctx, "acme", "crm"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if st, _ := indexed(t, db).OutboxStats(); st.Pending != 0 {
		t.Fatalf("outbox after the delete: %+v", st)
	}
	for _, b := range [][]byte{bucketDeliveries, bucketQueue, bucketEndpoints, bucketSubscriptions} {
		if n := rawKeys(t, db, b); n != 0 {
			t.Errorf("bucket %s holds %d keys", b, n)
		}
	}
	// The messages stay (the customer's, for other endpoints to replay).
	if n := len(messages(t, db, "acme")); n != 5 {
		t.Fatalf("%d messages after deleting the endpoint, want 5", n)
	}
	putCalls(t, db, Call{ID: testCallID(t0, 9), CustomerID: "acme", Start: t0})
	if n := len(messages(t, db, "acme")); n != 5 {
		t.Fatalf("an event without an endpoint: %d messages", n)
	}
}

// The message ids are the shape of pool.NewID's and sort in the order they were made, also
// in one millisecond and when the clock goes back.
func TestMessageIDsAreOrdered(t *testing.T) {
	db, clk := webhookFixture(t, false)
	t0 := clk.now()
	for i := range 50 {
		if i == 25 {
			clk.add(-time.Hour)
		}
		putCalls(t, db, Call{ID: testCallID(t0, i), CustomerID: "acme", Start: t0})
	}
	ms := messages(t, db, "acme")
	if len(ms) != 50 {
		t.Fatalf("%d messages", len(ms))
	}
	for i, m := range ms {
		if len(m.ID) != 26 || strings.Trim(m.ID, crockford) != "" {
			t.Fatalf("id %q", m.ID)
		}
		if ms, ok := idTime([]byte(m.ID)); !ok || ms != t0.UnixMilli() {
			t.Fatalf("id %s: time %d, want %d", m.ID, ms, t0.UnixMilli())
		}
		if i > 0 && m.ID <= ms[i-1].ID {
			t.Fatalf("id %s after %s", m.ID, ms[i-1].ID)
		}
		if m.Subject != testCallID(t0, i) {
			t.Fatalf("message %d is of call %s", i, m.Subject)
		}
	}
}

// BenchmarkPutCallWebhooks measures the write that completes a call, as
// BenchmarkPutCallComplete does: while no customer has an endpoint, for a customer without
// one while another customer has one, and for a customer with an endpoint subscribed to
// every event (call.answered, call.completed and, for a quarter of the calls,
// recording.ready are written with the completion).
func BenchmarkPutCallWebhooks(b *testing.B) {
	for _, tt := range []struct {
		name  string
		owner string // the customer with the endpoint, if any
	}{{"no_endpoint", ""}, {"endpoint_of_another_customer", "other"}, {"subscribed_endpoint", "acme"}} {
		b.Run(tt.name, func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "b.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			const earlier, open = 5000, 1000
			t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
			done := make([]Call, open)
			err = db.Write(context.Background(), func(tx *Tx) error {
				for _, id := range []string{"acme", "other"} {
					if err := tx.CreateCustomer(&Customer{ID: id, Status: StatusActive, SiteKey: id + "-key"}); err != nil {
						return err
					}
				}
				for i := range earlier + open {
					c := benchCall("acme", t0.Add(time.Duration(i)*5*time.Second), i)
					if i < earlier {
						c = complete(c, i)
					} else {
						done[i-earlier] = complete(c, i)
					}
					if err := tx.PutCall(&c); err != nil {
						return err
					}
				}
				if tt.owner == "" {
					return nil
				}
				return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: tt.owner, URL: "https://crm.example/", EventTypes: EventTypes(), Secret: testSecret})
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var btx *bolt.Tx
			var tx *Tx
			for i := 0; i < b.N; i++ {
				if i%open == 0 {
					b.StopTimer()
					if btx != nil {
						btx.Rollback()
					}
					if btx, err = db.raw().Begin(true); err != nil {
						b.Fatal(err)
					}
					tx = &Tx{tx: boltTx{tx: btx}, db: db}
					b.StartTimer()
				}
				c := done[i%open]
				if err := tx.PutCall(&c); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			btx.Rollback()
		})
	}
}
