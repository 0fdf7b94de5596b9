package store

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// PruneWebhookMessages deletes the customer's webhook messages made before `before` (the
// retention period's start) that no endpoint still has pending, with their deliveries (the
// attempts) and subject entries, in transactions of at most batch messages (0:
// DefaultPurgeBatch), oldest first; it answers how many messages it deleted. A pending one is
// kept until it is settled (delivered or given up, within three days). The messages one
// write made of a call share their data (outbox.go): they go together, or are all kept.
// The retention sweep runs it for every customer (package pool).
func (db *DB) PruneWebhookMessages(ctx context.Context, customerID string, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	if db.pg != nil {
		return db.pgPruneWebhookMessages(ctx, customerID, before, batch)
	}
	// A call's events wait in webhook_fresh until the index writer moves them (at most
	// ~100 ms): move them now, so that the prune sees every message made before before.
	if err := db.IndexOutbox(ctx); err != nil {
		return 0, fmt.Errorf("prune the webhook messages of %q: %w", customerID, err)
	}
	prefix := compose(customerID, "")
	hi := append(bytes.Clone(prefix), idTimePrefix(max(before.UnixMilli(), 0))...)
	from := bytes.Clone(prefix)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, scanned := 0, 0
		var next []byte
		err := db.Write(ctx, func(tx *Tx) error {
			n, scanned, next = 0, 0, nil
			var err error
			n, scanned, next, err = tx.pruneMessages(customerID, prefix, from, hi, batch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune the webhook messages of %q: %w", customerID, err)
		}
		total += n
		if next == nil || scanned == 0 {
			return total, nil
		}
		from = next
	}
}

// pruneMessages deletes the settled messages among at most batch messages from the key
// from up to hi (exclusive); it answers how many it deleted, how many it looked at, and the
// key to go on from (nil: the end).
func (t *Tx) pruneMessages(customerID string, prefix, from, hi []byte, batch int) (int, int, []byte, error) {
	msgs := t.tx.Bucket(bucketMessages)
	var eps []string
	ep := compose(customerID, "")
	ec := t.tx.Bucket(bucketEndpoints).Cursor()
	for k, _ := ec.Seek(ep); k != nil && bytes.HasPrefix(k, ep); k, _ = ec.Next() {
		eps = append(eps, string(k[len(ep):]))
	}
	queue := t.tx.Bucket(bucketQueue)
	type msg struct {
		id, subject, owner string // owner: the message holding its data
		pending            bool
	}
	var list []msg
	var next []byte
	c := msgs.Cursor()
	for k, v := c.Seek(from); k != nil && bytes.Compare(k, hi) < 0; k, v = c.Next() {
		id := string(k[len(prefix):])
		version, _, _, subject, rest, err := splitMessage(v)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("webhook message %q: %w", id, err)
		}
		m := msg{id: id, subject: subject, owner: id}
		if version == messageV2 && len(rest) >= 10 && rest[8] == dataRef {
			m.owner = string(rest[9:])
		}
		if len(list) >= batch && m.owner == m.id {
			// A full batch ends where a message holds its own data: the messages that
			// share data (at most four of one write, which follow the one holding it)
			// are in one batch.
			next = bytes.Clone(k)
			break
		}
		for _, e := range eps {
			if queue.Get(compose(customerID, e, id)) != nil {
				m.pending = true
				break
			}
		}
		list = append(list, m)
	}
	keep := map[string]bool{} // owners with a pending message
	for _, m := range list {
		if m.pending {
			keep[m.owner] = true
		}
	}
	n := 0
	for _, m := range list {
		if keep[m.owner] {
			continue
		}
		for _, e := range eps {
			if err := t.tx.Bucket(bucketDeliveries).Delete(deliveryKey(customerID, e, m.id)); err != nil {
				return 0, 0, nil, err
			}
		}
		if m.subject != "" {
			if err := t.tx.Bucket(bucketMsgSubject).Delete(compose(customerID, m.subject, m.id)); err != nil {
				return 0, 0, nil, err
			}
		}
		if err := msgs.Delete(compose(customerID, m.id)); err != nil {
			return 0, 0, nil, err
		}
		n++
	}
	return n, len(list), next, nil
}
