package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/store/keyring"
)

// keyringSecrets seals endpoint secrets with the customers' keys, as package integrations'
// Sealer does for trackline serve and trackline migrate.
type keyringSecrets struct{ k *keyring.Keyring }

func (s keyringSecrets) SealSecret(customerID, secret string) ([]byte, error) {
	key, err := s.k.Get(customerID)
	if err != nil {
		return nil, err
	}
	return key.Seal("TLWHT", "webhook-secret", "test", []byte(secret))
}

func (s keyringSecrets) OpenSecret(customerID string, sealed []byte) (string, error) {
	key, err := s.k.Lookup(customerID)
	if err != nil {
		return "", err
	}
	plain, err := key.Open("TLWHT", "webhook-secret", "test", sealed)
	return string(plain), err
}

// A store with webhooks (endpoints with sealed secrets, one rotated and one disabled,
// messages of calls and a pool exhaustion, deliveries delivered, retried, failed, pending
// and waiting for their call's earlier event) is copied into PostgreSQL and verified by
// CopyTo; the copy then serves the webhooks as the source would have: the same deliveries
// due, each call's events in order, the secrets opened and sealed in the rows.
func TestPostgresMigrateWebhooks(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	keys, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sealer := keyringSecrets{keys}
	src, err := Open(filepath.Join(t.TempDir(), "trackline.db"), WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.SealEndpointSecrets(ctx, sealer); err != nil {
		t.Fatal(err)
	}
	t0 := clk.now()
	previous := SecretPrefix + strings.Repeat("QUJD", 11) + "QQ=="
	err = src.Write(ctx, func(tx *Tx) error {
		for _, id := range []string{"acme", "bakery"} {
			if err := tx.CreateCustomer(&Customer{ID: id, Status: StatusActive, SiteKey: id + "-key-0001"}); err != nil {
				return err
			}
		}
		if err := tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook", EventTypes: EventTypes(),
			Secret: testSecret, PreviousSecret: previous, PreviousExpires: t0.Add(time.Hour), Created: t0}); err != nil {
			return err
		}
		if err := tx.PutEndpoint(&Endpoint{ID: "sheet", CustomerID: "acme", URL: "https://sheet.example/hook",
			EventTypes: []EventType{EventCallCompleted}, Secret: testSecret, Created: t0}); err != nil {
			return err
		}
		return tx.PutEndpoint(&Endpoint{ID: "off", CustomerID: "bakery", URL: "https://off.example/hook", EventTypes: EventTypes(),
			Secret: testSecret, Created: t0, Disabled: true, DisabledReason: "operator"})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Four calls of acme, each ringing and then completed; one pool exhaustion.
	for i := range 4 {
		putCalls(t, src, Call{ID: testCallID(t0, i), CustomerID: "acme", Caller: "+3161234567" + string(rune('0'+i)), Start: t0})
	}
	clk.add(time.Minute)
	for i := range 4 {
		putCalls(t, src, Call{ID: testCallID(t0, i), CustomerID: "acme", Caller: "+3161234567" + string(rune('0'+i)), Start: t0,
			Answer: t0.Add(time.Second), End: clk.now(), Disposition: DispAnswered})
	}
	if err := src.Write(ctx, func(tx *Tx) error {
		if err := tx.AddStats("acme", 1, 1, 1); err != nil {
			return err
		}
		return tx.PoolExhausted("acme", "+31850000001", clk.now())
	}); err != nil {
		t.Fatal(err)
	}
	indexed(t, src)
	// crm: call 0's ringing delivered, call 1's retried later, call 2's failed; the rest pending.
	ds, _, err := src.DueDeliveries("acme", "crm", clk.now(), 100, func(string) bool { return false })
	if err != nil || len(ds) < 3 {
		t.Fatalf("due on the source: %d %v", len(ds), err)
	}
	outcomes := []struct {
		o      DeliveryOutcome
		status int
	}{{OutcomeDelivered, 204}, {OutcomeRetry, 503}, {OutcomeFailed, 410}}
	for i, x := range outcomes {
		d := ds[i]
		if err := src.Write(ctx, func(tx *Tx) error {
			return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
				Attempt: Attempt{Time: clk.now(), Status: x.status, LatencyMS: 12.5}, Outcome: x.o, Next: clk.now().Add(time.Hour)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	srcDue := func(db *DB, ep string, at time.Time) []string {
		t.Helper()
		ds, _, err := db.DueDeliveries("acme", ep, at, 100, func(string) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range ds {
			call := "-"
			if d.Subject != "" {
				call = d.Subject[len(d.Subject)-1:]
			}
			ids = append(ids, string(d.Type)+"/"+call+"/"+d.ID)
		}
		return ids
	}
	later := clk.now().Add(2 * time.Hour)
	wantCRM, wantSheet := srcDue(src, "crm", later), srcDue(src, "sheet", later)

	dst := openPostgresTest(t, WithClock(clk.now), WithFieldKeys(keyringFields{keys}))
	dst.pg.outbox.pollEvery.Store(int64(time.Hour))
	// Without a sealer on the destination the secrets would be in the clear: refused.
	if _, err := src.CopyTo(ctx, dst, nil); err == nil || !strings.Contains(err.Error(), "secret sealer") {
		t.Fatalf("copy to a destination without a sealer: %v", err)
	}
	if _, err := dst.SealEndpointSecrets(ctx, sealer); err != nil {
		t.Fatal(err)
	}
	rep, err := src.CopyTo(ctx, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 4 calls, each ringing, answered and completed, and the exhaustion: 13 messages; crm
	// gets all 13, sheet the 4 completions.
	if rep["webhook_endpoints"] != 3 || rep["webhook_messages"] != 13 || rep["webhook_deliveries"] != 17 || rep["webhook_pool_exhausted"] != 1 {
		t.Fatalf("report %v", rep)
	}
	// The copy's deliveries are due as the source's: the same ones, in the same order.
	if got := srcDue(dst, "crm", later); strings.Join(got, " ") != strings.Join(wantCRM, " ") {
		t.Errorf("crm due on the copy %v, on the source %v", got, wantCRM)
	}
	if got := srcDue(dst, "sheet", later); strings.Join(got, " ") != strings.Join(wantSheet, " ") {
		t.Errorf("sheet due on the copy %v, on the source %v", got, wantSheet)
	}
	// Call 1's completion waits for its ringing's retry on the copy too.
	for _, id := range srcDue(dst, "crm", clk.now()) {
		if strings.HasPrefix(id, string(EventCallCompleted)+"/1/") {
			t.Errorf("call 1's completion due before its ringing: %v", id)
		}
	}
	e, err := dst.Endpoint("acme", "crm")
	if err != nil || e.Secret != testSecret || e.PreviousSecret != previous {
		t.Fatalf("the copied endpoint's secrets: %+v %v", e, err)
	}
	for _, s := range []string{testSecret, previous, "+31612345670"} {
		if rows := pgRawHolds(t, dst, s); len(rows) > 0 {
			t.Errorf("%q in the clear in %v", s, rows)
		}
	}
	// A new event on the copy goes after the copied ones, to the enabled endpoints.
	clk.add(time.Minute)
	if err := dst.Write(ctx, func(tx *Tx) error {
		return tx.PutCall(&Call{ID: testCallID(clk.now(), 9), CustomerID: "acme", Start: clk.now()})
	}); err != nil {
		t.Fatal(err)
	}
	ms := messages(t, dst, "acme")
	if len(ms) != 14 || ms[13].Subject != testCallID(clk.now(), 9) || ms[13].ID <= ms[12].ID {
		t.Fatalf("messages after a new call: %d, the last %+v", len(ms), ms[len(ms)-1])
	}
}

// Every webhooks bucket is copied or rebuilt: none is refused as unknown.
func TestMigrateWebhooksKindsComplete(t *testing.T) {
	for _, b := range webhookBuckets {
		if _, ok := migrateWebhooksKinds[string(b)]; !ok {
			t.Errorf("bucket %s is not in migrateWebhooksKinds", b)
		}
	}
}
