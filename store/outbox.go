package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The webhooks' outbox. An event (events.go) is a message, written in the transaction of the
// record that caused it, with one delivery per enabled endpoint of the customer that wants
// its type; package integrations delivers them and records each attempt here. Nothing is
// written for a customer without such an endpoint (webhooks.go: the subscriptions).
//
// Buckets and keys (ids are message ids, time-ordered like pool.NewID's):
//
//	webhook_messages    customer 0x00 id                          the message (encodeMessage)
//	webhook_subjects    customer 0x00 subject 0x00 id             its subject's messages (a call's)
//	webhook_deliveries  customer 0x00 endpoint 0x00 id            the delivery (JSON)
//	webhook_due         customer 0x00 endpoint 0x00 next(8) id    pending deliveries by next attempt
//	webhook_waiting     customer 0x00 endpoint 0x00 subject 0x00 id  pending deliveries with a subject
//	webhook_pending     id 0x00 customer 0x00 endpoint            every pending delivery, oldest first
//
// next is the time of the next attempt, big-endian Unix nanoseconds, so that the workers find
// an endpoint's due work with one seek (DueDeliveries). The messages of one subject (one
// call's events) reach an endpoint in the order they were written: a delivery whose subject
// has an earlier pending delivery to the same endpoint waits (it is in webhook_waiting but
// not in webhook_due, and its Next is zero) until that one is settled, delivered or failed
// (settle). A message id is the time in milliseconds (at least the last one's) and the
// messages bucket's sequence number, so ids sort in the order they were made.
//
// webhook_pending's size is the queue depth and its first key the oldest undelivered message
// (OutboxStats). Messages and deliveries, with the attempts, are the customer's data and are
// kept as long as its calls: PurgeCustomer deletes them, and a caller's erasure deletes the
// messages of the caller's calls (DeleteCall) with their deliveries.

var (
	bucketMessages   = []byte("webhook_messages")
	bucketMsgSubject = []byte("webhook_subjects")
	bucketDeliveries = []byte("webhook_deliveries")
	bucketDue        = []byte("webhook_due")
	bucketWaiting    = []byte("webhook_waiting")
	bucketPending    = []byte("webhook_pending")

	webhookBuckets = [][]byte{bucketEndpoints, bucketSubscriptions, bucketMessages, bucketMsgSubject, bucketDeliveries,
		bucketDue, bucketWaiting, bucketPending}
)

// MaxAttemptsKept is how many attempts a delivery keeps (the most recent ones); it counts
// them all (Delivery.AttemptCount).
const MaxAttemptsKept = 50

// Message is one event of a customer, as delivered: Payload is the exact body signed and
// sent, every time, with ID as its webhook-id.
type Message struct {
	ID         string          `json:"id"`
	CustomerID string          `json:"customer_id"`
	Type       EventType       `json:"type"`
	Subject    string          `json:"subject,omitempty"` // the call of a call's events: they are delivered in order
	Created    time.Time       `json:"created"`
	Payload    json.RawMessage `json:"payload"`
}

// The message value: a version byte, the time it was made (big-endian Unix nanoseconds),
// the type and the subject (each a length byte and the bytes), then the payload.
const messageV1 = 1

func encodeMessage(created time.Time, typ EventType, subject string, payload []byte) []byte {
	v := make([]byte, 0, 1+8+2+len(typ)+len(subject)+len(payload))
	v = append(v, messageV1)
	v = binary.BigEndian.AppendUint64(v, uint64(created.UnixNano()))
	v = append(append(v, byte(len(typ))), typ...)
	v = append(append(v, byte(len(subject))), subject...)
	return append(v, payload...)
}

// decodeMessage reads a message value; the payload is copied.
func decodeMessage(customerID, id string, v []byte) (Message, error) {
	m := Message{ID: id, CustomerID: customerID}
	if len(v) < 11 || v[0] != messageV1 {
		return m, fmt.Errorf("webhook message %q: malformed", id)
	}
	m.Created = time.Unix(0, int64(binary.BigEndian.Uint64(v[1:]))).UTC()
	rest := v[9:]
	var fields [2]string
	for i := range fields {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return m, fmt.Errorf("webhook message %q: malformed", id)
		}
		fields[i], rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	}
	m.Type, m.Subject, m.Payload = EventType(fields[0]), fields[1], bytes.Clone(rest)
	return m, nil
}

// DeliveryState is where a delivery is; the zero value is unknown and never stored.
type DeliveryState uint8

// Delivery states.
const (
	DeliveryUnknown   DeliveryState = iota
	DeliveryPending                 // to be attempted (at Next, or after its subject's earlier ones)
	DeliveryDelivered               // a 2xx answered
	DeliveryFailed                  // given up, or failed with its endpoint (FailedReason)
)

var deliveryStateNames = [...]string{"unknown", "pending", "delivered", "failed"}

func (s DeliveryState) String() string {
	if int(s) < len(deliveryStateNames) {
		return deliveryStateNames[s]
	}
	return fmt.Sprintf("DeliveryState(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s DeliveryState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *DeliveryState) UnmarshalText(b []byte) error {
	for i, n := range deliveryStateNames {
		if i > 0 && n == string(b) {
			*s = DeliveryState(i)
			return nil
		}
	}
	return fmt.Errorf("unknown delivery state %q", b)
}

// Attempt is one try to deliver a message to an endpoint.
type Attempt struct {
	Time      time.Time `json:"time"`
	Status    int       `json:"status,omitempty"` // the HTTP status; 0 if there was no answer
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"` // what went wrong: a status, a timeout, a refused address
}

// Delivery is one message's way to one endpoint.
type Delivery struct {
	CustomerID string        `json:"customer_id"`
	EndpointID string        `json:"endpoint_id"`
	MessageID  string        `json:"message_id"`
	Type       EventType     `json:"type"`
	Subject    string        `json:"subject,omitempty"`
	State      DeliveryState `json:"state"`
	// Next is when a pending delivery is attempted next; zero while it waits for an earlier
	// message of its subject.
	Next         time.Time `json:"next_attempt,omitzero"`
	AttemptCount int       `json:"attempt_count"`
	Attempts     []Attempt `json:"attempts,omitempty"` // the last MaxAttemptsKept, oldest first
	// FailedReason says why a delivery failed without its attempts saying so (its endpoint
	// was disabled).
	FailedReason string `json:"failed_reason,omitempty"`
}

func deliveryKey(customerID, endpointID, messageID string) []byte {
	return compose(customerID, endpointID, messageID)
}

func dueKey(d *Delivery) []byte {
	k := compose(d.CustomerID, d.EndpointID, "")
	k = binary.BigEndian.AppendUint64(k, uint64(d.Next.UnixNano()))
	return append(k, d.MessageID...)
}

func waitingKey(d *Delivery) []byte {
	return compose(d.CustomerID, d.EndpointID, d.Subject, d.MessageID)
}

func pendingKey(d *Delivery) []byte { return compose(d.MessageID, d.CustomerID, d.EndpointID) }

// now is the outbox's clock.
func (t *Tx) now() time.Time {
	if t.db != nil {
		return t.db.now()
	}
	return time.Now()
}

// EndpointRef names an endpoint.
type EndpointRef struct{ CustomerID, EndpointID string }

// outboxState is what the outbox's readers are told of the commits: the endpoints with
// deliveries made due since they last looked (due), with a signal that there are some (it
// holds one: a reader that was busy finds it when it looks), and the count of changes to
// endpoints. ms is the millisecond of the last message id made; subs whether any customer
// has subscriptions.
type outboxState struct {
	subs         atomic.Int32 // subsUnknown, subsNone or subsSome (webhooks.go)
	ms           atomic.Int64
	signal       chan struct{}
	endpointsGen atomic.Uint64
	mu           sync.Mutex
	due          map[EndpointRef]struct{}
}

// txOutbox is what a transaction's commit tells the outbox's readers.
type txOutbox struct {
	registered bool
	due        []EndpointRef
}

// dueAt has the commit of t tell the outbox's readers that the endpoint has a delivery due.
func (t *Tx) dueAt(customerID, endpointID string) {
	if t.db == nil {
		return
	}
	t.outbox.due = append(t.outbox.due, EndpointRef{customerID, endpointID})
	if t.outbox.registered {
		return
	}
	t.outbox.registered = true
	db := t.db
	t.tx.tx.OnCommit(func() {
		db.outbox.mu.Lock()
		for _, r := range t.outbox.due {
			db.outbox.due[r] = struct{}{}
		}
		db.outbox.mu.Unlock()
		db.signalOutbox()
	})
}

func (db *DB) signalOutbox() {
	select {
	case db.outbox.signal <- struct{}{}:
	default:
	}
}

// OutboxSignal receives after a commit that made deliveries due (TakeDueEndpoints) or
// changed endpoints (EndpointsVersion). A retry's time passes without a signal.
func (db *DB) OutboxSignal() <-chan struct{} { return db.outbox.signal }

// TakeDueEndpoints answers the endpoints that got deliveries due by commits since the last
// call, and forgets them.
func (db *DB) TakeDueEndpoints() []EndpointRef {
	db.outbox.mu.Lock()
	defer db.outbox.mu.Unlock()
	if len(db.outbox.due) == 0 {
		return nil
	}
	out := make([]EndpointRef, 0, len(db.outbox.due))
	for r := range db.outbox.due {
		out = append(out, r)
	}
	clear(db.outbox.due)
	return out
}

// newMessageID makes the id of a message made at now: ten characters of milliseconds (never
// fewer than the last id's) and sixteen of the messages bucket's sequence, in Crockford
// base32, the shape of pool.NewID's ids.
func (t *Tx) newMessageID(now time.Time) (string, error) {
	seq, err := t.tx.Bucket(bucketMessages).NextSequence()
	if err != nil {
		return "", err
	}
	ms := min(max(now.UnixMilli(), 0), 1<<48-1)
	if t.db != nil {
		for {
			last := t.db.outbox.ms.Load()
			if ms <= last {
				ms = last
				break
			}
			if t.db.outbox.ms.CompareAndSwap(last, ms) {
				break
			}
		}
	}
	var b [26]byte
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	for i := 25; i >= 10; i-- {
		b[i] = crockford[seq&31]
		seq >>= 5
	}
	return string(b[:]), nil
}

// addMessage writes a message of the customer and a delivery of it to every endpoint in the
// subscriptions value subs that wants its type; payload is made with the message's id.
func (t *Tx) addMessage(subs []byte, customerID string, typ EventType, subject string, payload func(id string) ([]byte, error)) error {
	now := t.now()
	id, err := t.newMessageID(now)
	if err != nil {
		return err
	}
	body, err := payload(id)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", typ, err)
	}
	if err := t.tx.Bucket(bucketMessages).Put(compose(customerID, id), encodeMessage(now, typ, subject, body)); err != nil {
		return err
	}
	if subject != "" {
		if err := t.tx.Bucket(bucketMsgSubject).Put(compose(customerID, subject, id), nil); err != nil {
			return err
		}
	}
	err = eachSubscriber(subs, typ.bit(), func(ep []byte) error {
		d := Delivery{CustomerID: customerID, EndpointID: string(ep), MessageID: id, Type: typ, Subject: subject}
		return t.queueDelivery(&d, now)
	})
	return err
}

// queueDelivery makes d pending: due at now, or, when an earlier message of its subject is
// pending to its endpoint, waiting for it; and writes it.
func (t *Tx) queueDelivery(d *Delivery, now time.Time) error {
	d.State, d.Next, d.FailedReason = DeliveryPending, now, ""
	if d.Subject != "" {
		prefix := compose(d.CustomerID, d.EndpointID, d.Subject, "")
		w := t.tx.Bucket(bucketWaiting)
		if k, _ := w.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && string(k[len(prefix):]) < d.MessageID {
			d.Next = time.Time{}
		}
		if err := w.Put(append(prefix, d.MessageID...), nil); err != nil {
			return err
		}
	}
	if !d.Next.IsZero() {
		if err := t.tx.Bucket(bucketDue).Put(dueKey(d), nil); err != nil {
			return err
		}
		t.dueAt(d.CustomerID, d.EndpointID)
	}
	if err := t.tx.Bucket(bucketPending).Put(pendingKey(d), nil); err != nil {
		return err
	}
	return t.put(bucketDeliveries, deliveryKey(d.CustomerID, d.EndpointID, d.MessageID), d)
}

// unqueue takes a pending delivery out of the indexes of pending deliveries.
func (t *Tx) unqueue(d *Delivery) error {
	if d.State != DeliveryPending {
		return nil
	}
	if !d.Next.IsZero() {
		if err := t.tx.Bucket(bucketDue).Delete(dueKey(d)); err != nil {
			return err
		}
	}
	if d.Subject != "" {
		if err := t.tx.Bucket(bucketWaiting).Delete(waitingKey(d)); err != nil {
			return err
		}
	}
	return t.tx.Bucket(bucketPending).Delete(pendingKey(d))
}

// settle ends a pending delivery in state (delivered or failed) and makes the next message of
// its subject to its endpoint due. The caller writes d.
func (t *Tx) settle(d *Delivery, state DeliveryState) error {
	if err := t.unqueue(d); err != nil {
		return err
	}
	d.State, d.Next = state, time.Time{}
	if d.Subject == "" {
		return nil
	}
	prefix := compose(d.CustomerID, d.EndpointID, d.Subject, "")
	k, _ := t.tx.Bucket(bucketWaiting).Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil
	}
	key := deliveryKey(d.CustomerID, d.EndpointID, string(k[len(prefix):]))
	var next Delivery
	if err := t.get(bucketDeliveries, key, &next); err != nil {
		return fmt.Errorf("waiting webhook delivery %q: %w", key, err)
	}
	if next.State != DeliveryPending || !next.Next.IsZero() {
		return nil // due already
	}
	next.Next = t.now()
	if err := t.tx.Bucket(bucketDue).Put(dueKey(&next), nil); err != nil {
		return err
	}
	t.dueAt(next.CustomerID, next.EndpointID)
	return t.put(bucketDeliveries, key, &next)
}

// unindexDelivery takes the delivery under an index key of webhook_deliveries out of the
// indexes of pending deliveries (the caller deletes the record).
func (t *Tx) unindexDelivery(key []byte) error {
	var d Delivery
	err := t.get(bucketDeliveries, key, &d)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return t.unqueue(&d)
}

// DueDelivery is a delivery whose attempt is due, with its message.
type DueDelivery struct {
	Message
	EndpointID string
	// Scheduled is the time the attempt was due at: RecordDelivery changes the delivery
	// only while that is still its next attempt.
	Scheduled time.Time
	// Attempts is how many attempts were made before.
	Attempts int
}

// DueDeliveries answers at most limit deliveries to an endpoint whose attempt is due at
// now, the earliest due first, leaving out those skip holds (in flight); and when the first
// one not answered is due (zero: none is pending, but those left out).
func (db *DB) DueDeliveries(customerID, endpointID string, now time.Time, limit int, skip func(messageID string) bool) ([]DueDelivery, time.Time, error) {
	var out []DueDelivery
	var next time.Time
	err := db.View(func(tx *Tx) error {
		prefix := compose(customerID, endpointID, "")
		msgs := tx.tx.Bucket(bucketMessages)
		c := tx.tx.Bucket(bucketDue).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rest := k[len(prefix):]
			if len(rest) < 8 {
				return fmt.Errorf("webhook due key %q: malformed", k)
			}
			at := time.Unix(0, int64(binary.BigEndian.Uint64(rest)))
			id := string(rest[8:])
			if at.After(now) || len(out) == limit {
				if !skip(id) {
					next = at
					return nil
				}
				continue
			}
			if skip(id) {
				continue
			}
			var d Delivery
			if err := tx.get(bucketDeliveries, deliveryKey(customerID, endpointID, id), &d); err != nil {
				return fmt.Errorf("due webhook delivery %q: %w", k, err)
			}
			v := msgs.Get(compose(customerID, id))
			if v == nil {
				return fmt.Errorf("webhook message %q of a due delivery: %w", id, ErrNotFound)
			}
			m, err := decodeMessage(customerID, id, v)
			if err != nil {
				return err
			}
			out = append(out, DueDelivery{Message: m, EndpointID: endpointID, Scheduled: at, Attempts: d.AttemptCount})
		}
		return nil
	})
	return out, next, err
}

// DeliveryOutcome is what an attempt comes to.
type DeliveryOutcome uint8

// Delivery outcomes. The zero value is unknown: RecordDelivery takes none.
const (
	OutcomeUnknown   DeliveryOutcome = iota
	OutcomeDelivered                 // a 2xx: delivered
	OutcomeRetry                     // try again at DeliveryResult.Next
	OutcomeFailed                    // given up
	OutcomeGone                      // a 410: failed, and the endpoint is disabled
)

// DeliveryResult is an attempt of a due delivery and what it came to.
type DeliveryResult struct {
	CustomerID, EndpointID, MessageID string
	Scheduled                         time.Time // DueDelivery.Scheduled
	Attempt                           Attempt
	Outcome                           DeliveryOutcome
	Next                              time.Time // OutcomeRetry: the next attempt
}

// RecordDelivery keeps an attempt with its delivery and settles or reschedules the
// delivery, if it is still the one that was due at r.Scheduled (a replay may have
// rescheduled it meanwhile: the attempt is kept all the same). A delivery that is gone
// (its endpoint or customer deleted, its caller erased) is no error. OutcomeGone disables
// the endpoint ("gone"); its other pending deliveries are FailPending's.
func (t *Tx) RecordDelivery(r *DeliveryResult) error {
	if r.Outcome == OutcomeUnknown || r.Outcome > OutcomeGone {
		return fmt.Errorf("webhook delivery %q: %w", r.MessageID, invalid("outcome", "unknown outcome %d", r.Outcome))
	}
	key := deliveryKey(r.CustomerID, r.EndpointID, r.MessageID)
	var d Delivery
	err := t.get(bucketDeliveries, key, &d)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	d.AttemptCount++
	d.Attempts = append(d.Attempts, r.Attempt)
	if n := len(d.Attempts); n > MaxAttemptsKept {
		d.Attempts = slices.Delete(d.Attempts, 0, n-MaxAttemptsKept)
	}
	if d.State == DeliveryPending && d.Next.Equal(r.Scheduled) {
		switch r.Outcome {
		case OutcomeDelivered:
			err = t.settle(&d, DeliveryDelivered)
		case OutcomeFailed, OutcomeGone:
			err = t.settle(&d, DeliveryFailed)
		case OutcomeRetry:
			if !storable(r.Next) {
				return fmt.Errorf("webhook delivery %q: %w", r.MessageID, invalid("next", "must be a time of years 1970-2261"))
			}
			if err := t.tx.Bucket(bucketDue).Delete(dueKey(&d)); err != nil {
				return err
			}
			d.Next = r.Next
			err = t.tx.Bucket(bucketDue).Put(dueKey(&d), nil)
		}
		if err != nil {
			return err
		}
	}
	if err := t.put(bucketDeliveries, key, &d); err != nil {
		return err
	}
	if r.Outcome == OutcomeGone {
		err := t.SetEndpointDisabled(r.CustomerID, r.EndpointID, true, "gone", r.Attempt.Time)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// FailPending fails every pending delivery of an endpoint with reason (its endpoint was
// disabled), in transactions of at most DefaultPurgeBatch, and answers how many.
func (db *DB) FailPending(ctx context.Context, customerID, endpointID, reason string) (int, error) {
	prefix := compose(customerID, endpointID, "")
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var ids []string
		err := db.View(func(tx *Tx) error {
			seen := map[string]bool{}
			for _, b := range [][]byte{bucketWaiting, bucketDue} {
				c := tx.tx.Bucket(b).Cursor()
				for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(ids) < DefaultPurgeBatch; k, _ = c.Next() {
					var id string
					if bytes.Equal(b, bucketDue) {
						id = string(k[len(prefix)+8:])
					} else if i := bytes.LastIndexByte(k, 0); i >= 0 {
						id = string(k[i+1:])
					}
					if !seen[id] {
						seen[id] = true
						ids = append(ids, id)
					}
				}
			}
			return nil
		})
		if err != nil || len(ids) == 0 {
			return total, err
		}
		n := 0
		err = db.Write(ctx, func(tx *Tx) error {
			n = 0
			for _, id := range ids {
				key := deliveryKey(customerID, endpointID, id)
				var d Delivery
				if err := tx.get(bucketDeliveries, key, &d); err != nil {
					return fmt.Errorf("pending webhook delivery %q: %w", id, err)
				}
				if d.State != DeliveryPending {
					continue
				}
				if err := tx.settle(&d, DeliveryFailed); err != nil {
					return err
				}
				d.FailedReason = reason
				if err := tx.put(bucketDeliveries, key, &d); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("fail the pending webhook deliveries of %q: %w", endpointID, err)
		}
		total += n
	}
}

// ReplayMessage delivers a message of the customer to an endpoint again (or for the first
// time): its delivery becomes pending, due now (behind an earlier pending message of its
// subject); a pending one is due now (one waiting for an earlier message of its subject
// keeps waiting), and an attempt in flight no longer settles it. ErrNotFound for no such endpoint or
// message; a *FieldError for a disabled endpoint ("disabled") or one that does not want the
// message's type ("message_id").
func (t *Tx) ReplayMessage(customerID, endpointID, messageID string) error {
	e, err := t.Endpoint(customerID, endpointID)
	if err != nil {
		return err
	}
	if !e.Enabled() {
		return fmt.Errorf("webhook endpoint %q: %w", endpointID, invalid("disabled", "the endpoint is disabled: enable it first"))
	}
	v := t.tx.Bucket(bucketMessages).Get(compose(customerID, messageID))
	if v == nil {
		return fmt.Errorf("webhook message %q: %w", messageID, ErrNotFound)
	}
	m, err := decodeMessage(customerID, messageID, v)
	if err != nil {
		return err
	}
	if !e.Subscribes(m.Type) {
		return fmt.Errorf("webhook message %q: %w", messageID, invalid("message_id", "the endpoint does not subscribe to %s", m.Type))
	}
	key := deliveryKey(customerID, endpointID, messageID)
	var d Delivery
	switch err := t.get(bucketDeliveries, key, &d); {
	case errors.Is(err, ErrNotFound):
		d = Delivery{CustomerID: customerID, EndpointID: endpointID, MessageID: messageID, Type: m.Type, Subject: m.Subject}
	case err != nil:
		return err
	case d.State == DeliveryPending && d.Next.IsZero():
		return nil // waiting for an earlier message of its subject: it comes after it
	case d.State == DeliveryPending:
		// Due now, even if an attempt is in flight (its outcome no longer settles it).
		if err := t.tx.Bucket(bucketDue).Delete(dueKey(&d)); err != nil {
			return err
		}
		d.Next = t.now()
		if err := t.tx.Bucket(bucketDue).Put(dueKey(&d), nil); err != nil {
			return err
		}
		t.dueAt(customerID, endpointID)
		return t.put(bucketDeliveries, key, &d)
	}
	return t.queueDelivery(&d, t.now())
}

// ReplaySince replays (ReplayMessage) to an endpoint every message of the customer made at
// or after since, up to now, of the types the endpoint wants, in transactions of at most
// DefaultPurgeBatch; it answers how many were replayed.
func (db *DB) ReplaySince(ctx context.Context, customerID, endpointID string, since time.Time) (int, error) {
	e, err := db.Endpoint(customerID, endpointID)
	if err != nil {
		return 0, err
	}
	if !e.Enabled() {
		return 0, fmt.Errorf("webhook endpoint %q: %w", endpointID, invalid("disabled", "the endpoint is disabled: enable it first"))
	}
	prefix := compose(customerID, "")
	from := append(bytes.Clone(prefix), idTimePrefix(max(since.UnixMilli(), 0))...)
	hi := append(bytes.Clone(prefix), idTimePrefix(db.now().UnixMilli()+1)...)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var ids []string
		var last []byte
		err := db.View(func(tx *Tx) error {
			c := tx.tx.Bucket(bucketMessages).Cursor()
			k, v := c.Seek(from)
			for ; k != nil && bytes.Compare(k, hi) < 0 && len(ids) < DefaultPurgeBatch; k, v = c.Next() {
				last = bytes.Clone(k)
				m, err := decodeMessage(customerID, string(k[len(prefix):]), v)
				if err != nil {
					return err
				}
				if e.Subscribes(m.Type) {
					ids = append(ids, m.ID)
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if len(ids) > 0 {
			err = db.Write(ctx, func(tx *Tx) error {
				for _, id := range ids {
					if err := tx.ReplayMessage(customerID, endpointID, id); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += len(ids)
		}
		if last == nil {
			return total, nil
		}
		from = append(last, 0) // the next key after last
	}
}

// Deliveries lists an endpoint's deliveries, the newest message first, starting below the
// message id before ("" for the newest), at most limit of them; next is the cursor of the
// following page ("" at the end).
func (t *Tx) Deliveries(customerID, endpointID, before string, limit int) (out []Delivery, next string, err error) {
	prefix := compose(customerID, endpointID, "")
	c := t.tx.Bucket(bucketDeliveries).Cursor()
	from := append(compose(customerID, endpointID), 1) // after every key of the endpoint
	if before != "" {
		from = append(bytes.Clone(prefix), before...)
	}
	for k, v := seekBefore(c, from); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		if len(out) == limit {
			return out, out[len(out)-1].MessageID, nil
		}
		var d Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return nil, "", fmt.Errorf("decode webhook delivery %q: %w", k, err)
		}
		out = append(out, d)
	}
	return out, "", nil
}

// Deliveries runs Tx.Deliveries in a read-only transaction.
func (db *DB) Deliveries(customerID, endpointID, before string, limit int) ([]Delivery, string, error) {
	var out []Delivery
	var next string
	err := db.View(func(tx *Tx) (err error) {
		out, next, err = tx.Deliveries(customerID, endpointID, before, limit)
		return err
	})
	return out, next, err
}

// Message reads one message of a customer; ErrNotFound if there is none.
func (t *Tx) Message(customerID, id string) (Message, error) {
	v := t.tx.Bucket(bucketMessages).Get(compose(customerID, id))
	if v == nil {
		return Message{}, fmt.Errorf("webhook message %q: %w", id, ErrNotFound)
	}
	return decodeMessage(customerID, id, v)
}

// Messages lists the customer's messages made in [from, to) (zero: open), oldest first, at
// most limit of them.
func (t *Tx) Messages(customerID string, from, to time.Time, limit int) ([]Message, error) {
	prefix := compose(customerID, "")
	lo := append(bytes.Clone(prefix), idTimePrefix(max(from.UnixMilli(), 0))...)
	var out []Message
	c := t.tx.Bucket(bucketMessages).Cursor()
	for k, v := c.Seek(lo); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
		m, err := decodeMessage(customerID, string(k[len(prefix):]), v)
		if err != nil {
			return nil, err
		}
		if !to.IsZero() && !m.Created.Before(to) {
			break
		}
		out = append(out, m)
	}
	return out, nil
}

// OutboxStats describe the deliveries still to make.
type OutboxStats struct {
	Pending int       // pending deliveries
	Oldest  time.Time // when the oldest message with a pending delivery was made (zero: none)
}

// OutboxStats reads the outbox's depth and age.
func (db *DB) OutboxStats() (OutboxStats, error) {
	var st OutboxStats
	err := db.View(func(tx *Tx) error {
		b := tx.tx.Bucket(bucketPending)
		st.Pending = b.Stats().KeyN
		if k, _ := b.Cursor().First(); k != nil {
			if ms, ok := idTime(k); ok {
				st.Oldest = time.UnixMilli(ms).UTC()
			}
		}
		return nil
	})
	return st, err
}

// deleteSubjectMessages deletes the customer's messages of a subject (a call's events) with
// their deliveries to every endpoint (a caller's erasure).
func (t *Tx) deleteSubjectMessages(customerID, subject string) error {
	prefix := compose(customerID, subject, "")
	var ids []string
	c := t.tx.Bucket(bucketMsgSubject).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	if len(ids) == 0 {
		return nil
	}
	var eps []string
	ep := compose(customerID, "")
	ec := t.tx.Bucket(bucketEndpoints).Cursor()
	for k, _ := ec.Seek(ep); k != nil && bytes.HasPrefix(k, ep); k, _ = ec.Next() {
		eps = append(eps, string(k[len(ep):]))
	}
	for _, id := range ids {
		for _, e := range eps {
			key := deliveryKey(customerID, e, id)
			if err := t.unindexDelivery(key); err != nil {
				return err
			}
			if err := t.tx.Bucket(bucketDeliveries).Delete(key); err != nil {
				return err
			}
		}
		if err := t.tx.Bucket(bucketMessages).Delete(compose(customerID, id)); err != nil {
			return err
		}
		if err := t.tx.Bucket(bucketMsgSubject).Delete(compose(customerID, subject, id)); err != nil {
			return err
		}
	}
	return nil
}
