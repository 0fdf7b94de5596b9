package store

import (
	"context"
	"testing"
	"time"
)

// The retention of webhook messages: those made before the cut that no endpoint has
// pending go with their deliveries (the attempts) and subject entries, a batch at a time;
// a pending one stays, and so do the messages that share its data; newer ones stay.
func TestPruneWebhookMessages(t *testing.T) {
	db, clk := webhookFixture(t, false)
	ctx := context.Background()
	t0 := clk.now()
	// Call 0 rings, then ends: call.ringing, then call.answered and call.completed, the
	// second sharing the first's data. Call 1 is made ended in one write: call.ringing,
	// call.answered and call.completed of one data, and recording.ready; its completion
	// stays pending (and so its recording.ready, which waits for it). Call 2 rings, pending.
	c0 := Call{ID: testCallID(t0, 0), CustomerID: "acme", Start: t0}
	putCalls(t, db, c0)
	c0.Answer, c0.End, c0.Disposition = t0.Add(time.Second), t0.Add(time.Minute), DispAnswered
	putCalls(t, db, c0)
	putCalls(t, db, Call{ID: testCallID(t0, 1), CustomerID: "acme", Start: t0, Answer: t0.Add(time.Second), End: t0.Add(time.Minute),
		Disposition: DispAnswered, RecordingID: "rec-1"})
	putCalls(t, db, Call{ID: testCallID(t0, 2), CustomerID: "acme", Start: t0})
	all := messages(t, db, "acme")
	if len(all) != 3+4+1 {
		t.Fatalf("%d messages", len(all))
	}
	settle := func(d DueDelivery) {
		t.Helper()
		if err := db.Write(ctx, func(tx *Tx) error {
			return tx.RecordDelivery(&DeliveryResult{CustomerID: "acme", EndpointID: "crm", MessageID: d.ID, Scheduled: d.Scheduled,
				Attempt: Attempt{Time: clk.now(), Status: 204}, Outcome: OutcomeDelivered})
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 { // call 0's deliveries, and call 1's first two
		for _, d := range due(t, db, clk.now()) {
			if d.Subject == c0.ID || d.Subject == testCallID(t0, 1) && d.Type != EventCallCompleted {
				settle(d)
			}
		}
	}
	// Four months on, call 3 rings.
	clk.add(4 * 30 * 24 * time.Hour)
	putCalls(t, db, Call{ID: testCallID(clk.now(), 3), CustomerID: "acme", Start: clk.now()})
	indexed(t, db)
	n, err := db.PruneWebhookMessages(ctx, "acme", clk.now().AddDate(0, -3, 0), 1)
	if err != nil || n != 3 {
		t.Fatalf("pruned %d, want call 0's 3: %v", n, err)
	}
	left := messages(t, db, "acme")
	if len(left) != 4+1+1 || left[0].Subject != testCallID(t0, 1) || left[4].Subject != testCallID(t0, 2) {
		t.Fatalf("left %d: %+v", len(left), left)
	}
	for _, m := range left { // every one readable: the data they share is there
		if err := db.View(func(tx *Tx) error { _, err := tx.Message("acme", m.ID); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if n := rawKeys(t, db, bucketDeliveries); n != 2 { // call 1's two settled ones
		t.Fatalf("%d delivery records left", n)
	}
	if n := rawKeys(t, db, bucketMsgSubject); n != len(left) {
		t.Fatalf("%d subject entries left, %d messages", n, len(left))
	}
	// Once call 1's last are settled, its four go; call 2's pending one stays.
	for range 2 {
		for _, d := range due(t, db, clk.now()) {
			if d.Subject == testCallID(t0, 1) {
				settle(d)
			}
		}
	}
	if n, err := db.PruneWebhookMessages(ctx, "acme", clk.now().AddDate(0, -3, 0), 2); err != nil || n != 4 {
		t.Fatalf("pruned %d, want call 1's 4: %v", n, err)
	}
	if left := messages(t, db, "acme"); len(left) != 2 {
		t.Fatalf("left %d", len(left))
	}
	if n := rawKeys(t, db, bucketDeliveries); n != 0 {
		t.Fatalf("%d delivery records left", n)
	}
}
