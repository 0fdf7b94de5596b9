package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The webhooks' part of CopyTo (migrate.go): the customers' endpoints, their messages and
// the messages' deliveries with their attempts, and when each customer's last
// number.pool_exhausted event was written. They are read through the operations both
// backends answer (Endpoints, Messages, Deliveries), so the comparison after the copy reads
// the destination the way the switch does:
//
//   - An endpoint's secrets are opened on the way out and sealed again with the
//     destination's sealer (the same customers' keys: trackline migrate gives both stores
//     the sealer trackline serve uses), as PostgreSQL keeps them; a destination without a
//     sealer is refused rather than given the secrets in the clear.
//   - A message keeps its id, its times and its payload byte for byte: PostgreSQL keeps the
//     payload's data (sealed: it may hold a caller's number) and makes the envelope when it
//     reads it, so the data is taken out of the source's envelope and the envelope made
//     again must be the source's exact bytes, or the copy stops naming the message. Each
//     copied message holds its own data (no reference to another message's).
//   - A delivery keeps its state, attempts, count and next attempt; messages are inserted
//     in id order, so a subject's messages keep their order (msg_seq), and a pending
//     delivery that waits for an earlier one of its subject waits on PostgreSQL too.
//   - No claim is copied: the source was a stopped switch.

// migrateWebhooksKinds are the webhooks' buckets on bbolt (see migrateKinds).
var migrateWebhooksKinds = map[string]string{
	string(bucketEndpoints):     "webhook_endpoints",
	string(bucketSubscriptions): "", // the enabled endpoints' types: rebuilt; its pool_exhausted time is copied
	string(bucketMessages):      "webhook_messages",
	string(bucketFresh):         "webhook_messages", // a call's events not indexed yet: read as messages
	string(bucketMsgSubject):    "",                 // index of messages
	string(bucketQueue):         "webhook_deliveries",
	string(bucketDeliveries):    "webhook_deliveries",
}

// webhooksRecords are the webhooks CopyTo copies, in the order both backends list them.
type webhooksRecords struct {
	endpoints  []Endpoint
	messages   []Message
	deliveries []Delivery
	exhausted  []migrateExhausted
}

// migrateExhausted is when a customer's last number.pool_exhausted event was written.
type migrateExhausted struct {
	CustomerID string `json:"customer_id"`
	At         int64  `json:"at"` // Unix ns
}

// readWebhooks reads the webhooks of the customers.
func (t *Tx) readWebhooks(customers []Customer) (*webhooksRecords, error) {
	r := &webhooksRecords{}
	for _, cu := range customers {
		eps, err := t.Endpoints(cu.ID)
		if err != nil {
			return nil, err
		}
		r.endpoints = append(r.endpoints, eps...)
		// Every message at once, as the other records: the copy holds the source in memory.
		msgs, err := t.Messages(cu.ID, time.Time{}, time.Time{}, math.MaxInt32)
		if err != nil {
			return nil, err
		}
		r.messages = append(r.messages, msgs...)
		for _, ep := range eps {
			for before := ""; ; {
				page, next, err := t.Deliveries(cu.ID, ep.ID, before, 1000)
				if err != nil {
					return nil, err
				}
				r.deliveries = append(r.deliveries, page...)
				if next == "" {
					break
				}
				before = next
			}
		}
		at, err := t.poolExhaustedAt(cu.ID)
		if err != nil {
			return nil, err
		}
		if at != 0 {
			r.exhausted = append(r.exhausted, migrateExhausted{CustomerID: cu.ID, At: at})
		}
	}
	return r, nil
}

// poolExhaustedAt is when the customer's last number.pool_exhausted event was written (Unix
// ns; 0: never, or not kept).
func (t *Tx) poolExhaustedAt(customerID string) (int64, error) {
	if t.pg != nil {
		var at int64
		err := t.pg.row(`SELECT at FROM webhook_pool_exhausted WHERE customer_id = $1`, []any{customerID}, &at)
		if errors.Is(err, ErrNotFound) {
			return 0, nil
		}
		return at, err
	}
	v := t.tx.Bucket(bucketSubscriptions).Get(compose(customerID, ""))
	if len(v) < subsHeader || v[0] != subsVersion {
		return 0, nil
	}
	return int64(binary.BigEndian.Uint64(v[9:])), nil
}

// copyTo adds the writes of the copy: the endpoints, then the messages in id order, then
// their deliveries.
func (r *webhooksRecords) copyTo(add func(kind string, fn func(*Tx) error)) {
	for i := range r.endpoints {
		e := r.endpoints[i]
		add("webhook_endpoints", func(tx *Tx) error { return tx.putEndpoint(&e) })
	}
	for i := range r.messages {
		m := &r.messages[i]
		add("webhook_messages", func(tx *Tx) error { return tx.pgCopyMessage(m) })
	}
	for i := range r.deliveries {
		d := &r.deliveries[i]
		add("webhook_deliveries", func(tx *Tx) error { return tx.pg.copyDelivery(d) })
	}
	for _, x := range r.exhausted {
		add("webhook_pool_exhausted", func(tx *Tx) error {
			return tx.pg.exec(nil, `INSERT INTO webhook_pool_exhausted (customer_id, at) VALUES ($1, $2)`, x.CustomerID, x.At)
		})
	}
}

// pgCopyMessage inserts a message as it is: its data taken out of its payload, sealed.
func (t *Tx) pgCopyMessage(m *Message) error {
	var env struct {
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(m.Payload, &env); err != nil {
		return fmt.Errorf("webhook message %q of %q: its payload: %w", m.ID, m.CustomerID, err)
	}
	if !bytes.Equal(envelopeJSON(m.Type, m.ID, env.Timestamp, env.Data), m.Payload) {
		return fmt.Errorf("webhook message %q of %q: its payload is not the envelope PostgreSQL makes of its data (an earlier build's layout): not copied", m.ID, m.CustomerID)
	}
	data, err := t.pgSealData(m.CustomerID, m.ID, env.Data)
	if err != nil {
		return err
	}
	return t.pg.exec(nil, `INSERT INTO webhook_messages (customer_id, id, type, subject, created, at, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		m.CustomerID, m.ID, string(m.Type), m.Subject, m.Created.UnixNano(), env.Timestamp.UnixNano(), data)
}

// copyDelivery inserts a delivery as it is. A pending one that waits for an earlier message
// of its subject (no Next) is due from its message's creation, as PostgreSQL's own are:
// the wait is read from the earlier pending delivery.
func (t *pgTx) copyDelivery(d *Delivery) error {
	attempts, err := json.Marshal(d.Attempts)
	if err != nil {
		return fmt.Errorf("encode webhook delivery %q: %w", d.MessageID, err)
	}
	if d.Attempts == nil {
		attempts = []byte("[]")
	}
	var next any
	if d.State == DeliveryPending && !d.Next.IsZero() {
		next = d.Next.UnixNano()
	}
	return t.exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("webhook delivery of %q to %q: its message is not there: %w", d.MessageID, d.EndpointID, ErrNotFound)
		}
		return nil
	}, `INSERT INTO webhook_deliveries (customer_id, endpoint_id, message_id, msg_seq, subject, state, next_at,
			attempt_count, attempts, failed_reason)
		SELECT $1, $2, m.id, m.seq, m.subject, $3::smallint, CASE WHEN $3::smallint = 1 THEN coalesce($4::bigint, m.created) END, $5, $6, $7
		FROM webhook_messages m WHERE m.customer_id = $1 AND m.id = $8`,
		d.CustomerID, d.EndpointID, int16(d.State), next, d.AttemptCount, attempts, d.FailedReason, d.MessageID)
}
