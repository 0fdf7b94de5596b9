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

	bolt "go.etcd.io/bbolt"
)

// The webhooks' outbox. An event (events.go) is a message, written in the transaction of the
// record that caused it, with a delivery pending to every enabled endpoint of the customer
// that wants its type; package integrations delivers them and records each attempt here.
// Nothing is written for a customer without such an endpoint (webhooks.go: the
// subscriptions).
//
// Buckets and keys (ids are message ids, time-ordered like pool.NewID's):
//
//	webhook_messages    customer 0x00 id                 the message (encodeMessage)
//	webhook_fresh       customer 0x00 id                 a call's event not indexed yet (the same value)
//	webhook_subjects    customer 0x00 subject 0x00 id    its subject's messages (a call's)
//	webhook_queue       customer 0x00 endpoint 0x00 id   a pending delivery (outboxqueue.go)
//	webhook_deliveries  customer 0x00 endpoint 0x00 id   a delivery's attempts and state (JSON)
//
// The write that makes a call's event puts one key in webhook_fresh, which holds the
// messages of the last index write's hundred milliseconds or so (outboxindex.go): that is
// all the call's transaction pays for its events. The index write moves them into
// webhook_messages and puts their keys in the next two, all at the right end of the
// customer's keys (ids grow). Other events (number.pool_exhausted) are written to
// webhook_messages at once. A delivery's record is written with its first attempt (or when a replay or
// a disabled endpoint settles it): a delivery that has none is pending and not attempted yet.
// Which pending deliveries are due, and the order of a subject's (one call's events reach an
// endpoint in the order they were written), is kept in memory and rebuilt from webhook_queue
// (outboxqueue.go). A message id is the time in milliseconds (at least the last one's) and
// a sequence number (webhook_fresh's, which goes on from webhook_messages' of files written
// before it), so ids sort in the order they were made.
//
// Files written before this layout had the pending deliveries in webhook_due,
// webhook_waiting and webhook_pending; Open moves them into webhook_queue and drops those
// buckets (convertOutbox). Messages and deliveries, with the attempts, are the customer's data
// and are kept as long as its calls: PurgeCustomer deletes them, and a caller's erasure
// deletes the messages of the caller's calls (DeleteCall) with their deliveries.

var (
	bucketMessages   = []byte("webhook_messages")
	bucketFresh      = []byte("webhook_fresh")
	bucketMsgSubject = []byte("webhook_subjects")
	bucketDeliveries = []byte("webhook_deliveries")

	// The buckets of the layout before webhook_queue (convertOutbox).
	bucketDueV1     = []byte("webhook_due")
	bucketWaitingV1 = []byte("webhook_waiting")
	bucketPendingV1 = []byte("webhook_pending")

	webhookBuckets = [][]byte{bucketEndpoints, bucketSubscriptions, bucketMessages, bucketMsgSubject, bucketDeliveries, bucketQueue, bucketFresh}
)

// appendFill is the fill of the pages of the buckets whose keys grow at their right end: a
// page split there leaves the left page this full instead of half (bbolt's default), so that
// the same keys take fewer pages to write.
const appendFill = 0.9

// appending is a bucket written at its right end.
func (t *Tx) appending(name []byte) bucket {
	b := t.tx.Bucket(name)
	b.b.FillPercent = appendFill
	return b
}

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
// the type and the subject (each a length byte and the bytes), then in version 1 the
// payload; in version 2 the event's timestamp (Unix nanoseconds) and the payload's data: a
// byte 0 and the data's JSON, or a byte 1 and the id of a message of the same customer that
// holds the same data (the events one write makes of a call share their data). A version 2
// payload is the envelope (envelopeJSON) made of the type, the id, the timestamp and the
// data: the same bytes every time it is read. Version 1 is what files written before
// version 2 hold; it is read as it is.
const (
	messageV1 = 1
	messageV2 = 2
)

// messageV2 value's data kinds.
const (
	dataInline = 0
	dataRef    = 1
)

// encodeMessage makes a version 2 message value: data inline, or (ref not "") the id of the
// message that holds it.
func encodeMessage(created time.Time, typ EventType, subject string, at time.Time, data []byte, ref string) []byte {
	v := make([]byte, 0, 1+8+2+len(typ)+len(subject)+9+len(data)+len(ref))
	v = append(v, messageV2)
	v = binary.BigEndian.AppendUint64(v, uint64(created.UnixNano()))
	v = append(append(v, byte(len(typ))), typ...)
	v = append(append(v, byte(len(subject))), subject...)
	v = binary.BigEndian.AppendUint64(v, uint64(at.UnixNano()))
	if ref != "" {
		return append(append(v, dataRef), ref...)
	}
	return append(append(v, dataInline), data...)
}

// splitMessage reads a message value's parts: for version 1 rest is the payload, for
// version 2 the timestamp and the data.
func splitMessage(v []byte) (version byte, created int64, typ EventType, subject string, rest []byte, err error) {
	if len(v) < 11 || (v[0] != messageV1 && v[0] != messageV2) {
		return 0, 0, "", "", nil, errors.New("malformed")
	}
	rest = v[9:]
	var fields [2]string
	for i := range fields {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return 0, 0, "", "", nil, errors.New("malformed")
		}
		fields[i], rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	}
	if v[0] == messageV2 && len(rest) < 9 {
		return 0, 0, "", "", nil, errors.New("malformed")
	}
	return v[0], int64(binary.BigEndian.Uint64(v[1:])), EventType(fields[0]), fields[1], rest, nil
}

// decodeMessage reads a message value of the customer; msgs finds the data of a message
// that refers to another's.
func decodeMessage(msgs bucket, customerID, id string, v []byte) (Message, error) {
	m := Message{ID: id, CustomerID: customerID}
	version, created, typ, subject, rest, err := splitMessage(v)
	if err != nil {
		return m, fmt.Errorf("webhook message %q: %w", id, err)
	}
	m.Created, m.Type, m.Subject = time.Unix(0, created).UTC(), typ, subject
	if version == messageV1 {
		m.Payload = bytes.Clone(rest)
		return m, nil
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(rest)))
	data, err := messageData(msgs, customerID, rest[8:])
	if err != nil {
		return m, fmt.Errorf("webhook message %q: %w", id, err)
	}
	m.Payload = envelopeJSON(typ, id, at, data)
	return m, nil
}

// messageData answers the data of a version 2 message's data part.
func messageData(msgs bucket, customerID string, d []byte) ([]byte, error) {
	switch {
	case len(d) >= 1 && d[0] == dataInline:
		return d[1:], nil
	case len(d) >= 2 && d[0] == dataRef:
		v := msgs.Get(compose(customerID, string(d[1:])))
		if v == nil && msgs.b != nil && msgs.b.Tx() != nil {
			if f := msgs.b.Tx().Bucket(bucketFresh); f != nil {
				v = f.Get(compose(customerID, string(d[1:])))
			}
		}
		if v == nil {
			return nil, fmt.Errorf("the message %q with its data: %w", d[1:], ErrNotFound)
		}
		version, _, _, _, rest, err := splitMessage(v)
		if err != nil || version != messageV2 || len(rest) < 9 || rest[8] != dataInline {
			return nil, fmt.Errorf("the message %q with its data: malformed", d[1:])
		}
		return rest[9:], nil
	}
	return nil, errors.New("malformed data")
}

// messageHeader reads a message value's type and subject.
func messageHeader(v []byte) (EventType, string, error) {
	_, _, typ, subject, _, err := splitMessage(v)
	return typ, subject, err
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

// now is the outbox's clock.
func (t *Tx) now() time.Time {
	if t.db != nil {
		return t.db.now()
	}
	return time.Now()
}

// EndpointRef names an endpoint.
type EndpointRef struct{ CustomerID, EndpointID string }

// outboxState is what the outbox keeps in memory: the queues of the endpoints
// (outboxqueue.go), the endpoints with deliveries made due since the readers last looked
// (due), with a signal that there are some (it holds one: a reader that was busy finds it
// when it looks), and the count of changes to endpoints. ms is the millisecond of the last
// message id made; subs whether any customer has subscriptions.
type outboxState struct {
	subs         atomic.Int32 // subsUnknown, subsNone or subsSome (webhooks.go)
	ms           atomic.Int64
	signal       chan struct{}
	endpointsGen atomic.Uint64
	mu           sync.Mutex
	due          map[EndpointRef]struct{}
	queues       map[EndpointRef]*epQueue
	// unindexed are the committed messages whose index entries are not written yet, in the
	// order of their commits (outboxindex.go); indexKick wakes the index writer, which
	// closes indexDone when it exits (nil until startOutbox).
	unindexed  []unindexed
	indexKick  chan struct{}
	indexDone  chan struct{}
	indexDelay atomic.Int64 // OutboxIndexDelay; tests change it
	// sealer seals the endpoints' secrets (webhooksecrets.go); nil: kept in the clear.
	sealer atomic.Pointer[sealerBox]
}

// txOutbox is what a transaction's commit does to the outbox's memory and tells its readers.
type txOutbox struct {
	registered bool
	ops        []queueOp
	due        []EndpointRef
	// fresh are the messages the transaction wrote; the first freshIndexed of them, and the
	// first indexedN of the outbox's unindexed ones, it indexed (outboxindex.go).
	fresh        []unindexed
	freshIndexed int
	indexedN     int
}

// dueAt has the commit of t tell the outbox's readers that the endpoint has a delivery due.
func (t *Tx) dueAt(customerID, endpointID string) {
	if t.db == nil {
		return
	}
	t.outbox.due = append(t.outbox.due, EndpointRef{customerID, endpointID})
	t.onCommitOutbox()
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
	seq, err := t.tx.Bucket(bucketFresh).NextSequence()
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

// addMessage writes a message of the customer, which has an enabled endpoint that wants
// its type, and answers its id. The payload is the envelope of data (the data's JSON) with
// the message's id and the time at; with ref set, the data is that message's, which this
// write made. Its subject entry and its deliveries are written by the next index write
// (outboxindex.go).
func (t *Tx) addMessage(customerID string, typ EventType, subject string, at time.Time, data []byte, ref string) (string, error) {
	now := t.now()
	id, err := t.newMessageID(now)
	if err != nil {
		return "", err
	}
	into := bucketMessages
	if subject != "" && t.db != nil {
		into = bucketFresh // a call's event: the index write moves it (outboxindex.go)
	}
	if err := t.appending(into).Put(compose(customerID, id), encodeMessage(now, typ, subject, at, data, ref)); err != nil {
		return "", err
	}
	m := unindexed{customerID: customerID, id: id, subject: subject, typ: typ, created: now.UnixNano()}
	if t.db == nil {
		return id, t.indexMessages([]unindexed{m})
	}
	t.outbox.fresh = append(t.outbox.fresh, m)
	t.onCommitOutbox()
	return id, nil
}

// queueDelivery makes a delivery pending, due at now (behind an earlier pending message of
// its subject), after attempts made before; a pending one is due at now.
func (t *Tx) queueDelivery(customerID, endpointID, messageID, subject string, attempts int, now time.Time) error {
	next := now.UnixNano()
	if err := t.tx.Bucket(bucketQueue).Put(deliveryKey(customerID, endpointID, messageID), encodeQueued(next, attempts, subject)); err != nil {
		return err
	}
	t.queueOp(queueOp{kind: qAdd, ref: EndpointRef{customerID, endpointID}, id: messageID, subject: subject, next: next, attempts: attempts})
	t.dueAt(customerID, endpointID)
	return nil
}

// dequeue takes a delivery out of the pending ones (the next message of its subject to its
// endpoint becomes due); it answers whether it was pending.
func (t *Tx) dequeue(customerID, endpointID, messageID string) (bool, error) {
	key := deliveryKey(customerID, endpointID, messageID)
	q := t.tx.Bucket(bucketQueue)
	if q.Get(key) == nil {
		return false, nil
	}
	if err := q.Delete(key); err != nil {
		return false, err
	}
	t.queueOp(queueOp{kind: qRemove, ref: EndpointRef{customerID, endpointID}, id: messageID})
	return true, nil
}

// splitDeliveryKey reads customer 0x00 endpoint 0x00 id.
func splitDeliveryKey(key []byte) (customerID, endpointID, messageID string, ok bool) {
	i := bytes.IndexByte(key, 0)
	if i < 0 {
		return "", "", "", false
	}
	j := bytes.IndexByte(key[i+1:], 0)
	if j < 0 {
		return "", "", "", false
	}
	return string(key[:i]), string(key[i+1 : i+1+j]), string(key[i+2+j:]), true
}

// unindexDelivery takes the delivery of a webhook_deliveries key out of the pending ones (the
// caller deletes the record).
func (t *Tx) unindexDelivery(key []byte) error {
	customerID, endpointID, messageID, ok := splitDeliveryKey(key)
	if !ok {
		return nil
	}
	_, err := t.dequeue(customerID, endpointID, messageID)
	return err
}

// delivery reads a delivery: its record if it has one, with what the queue says of it
// (pending, and when it is due); ErrNotFound if it has neither.
func (t *Tx) delivery(customerID, endpointID, messageID string) (Delivery, error) {
	key := deliveryKey(customerID, endpointID, messageID)
	return t.mergeDelivery(key, t.tx.Bucket(bucketDeliveries).Get(key), t.tx.Bucket(bucketQueue).Get(key))
}

// mergeDelivery makes a delivery of its record (rec, nil if none) and its queue value (qv,
// nil if not pending).
func (t *Tx) mergeDelivery(key, rec, qv []byte) (Delivery, error) {
	var d Delivery
	switch {
	case rec == nil && qv == nil:
		return d, ErrNotFound
	case rec != nil:
		if err := json.Unmarshal(rec, &d); err != nil {
			return d, fmt.Errorf("decode webhook delivery %q: %w", key, err)
		}
	default:
		customerID, endpointID, messageID, ok := splitDeliveryKey(key)
		if !ok {
			return d, fmt.Errorf("webhook queue key %q: malformed", key)
		}
		d = Delivery{CustomerID: customerID, EndpointID: endpointID, MessageID: messageID}
		if v := t.tx.Bucket(bucketMessages).Get(compose(customerID, messageID)); v != nil {
			typ, subject, err := messageHeader(v)
			if err != nil {
				return d, fmt.Errorf("webhook message %q: %w", messageID, err)
			}
			d.Type, d.Subject = typ, subject
		}
	}
	if qv != nil {
		next, _, _, err := decodeQueued(qv)
		if err != nil {
			return d, err
		}
		d.State, d.Next, d.FailedReason = DeliveryPending, timeOf(next), ""
		if t.db.waiting(EndpointRef{d.CustomerID, d.EndpointID}, d.MessageID) {
			d.Next = time.Time{}
		}
	}
	return d, nil
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
	if db.pg != nil {
		return db.pgDueDeliveries(customerID, endpointID, now, limit, skip)
	}
	ref := EndpointRef{customerID, endpointID}
	for {
		due, next, err := db.queueDue(ref, now.UnixNano(), limit, skip)
		if err != nil {
			return nil, time.Time{}, err
		}
		var out []DueDelivery
		var gone []string
		err = db.View(func(tx *Tx) error {
			q, msgs := tx.tx.Bucket(bucketQueue), tx.tx.Bucket(bucketMessages)
			for _, e := range due {
				v := msgs.Get(compose(customerID, e.id))
				if v == nil || q.Get(compose(customerID, endpointID, e.id)) == nil {
					gone = append(gone, e.id) // deleted meanwhile (an erasure, a purge)
					continue
				}
				m, err := decodeMessage(msgs, customerID, e.id, v)
				if err != nil {
					return err
				}
				out = append(out, DueDelivery{Message: m, EndpointID: endpointID, Scheduled: timeOf(e.next), Attempts: e.attempts})
			}
			return nil
		})
		if err != nil {
			return nil, time.Time{}, err
		}
		if len(gone) == 0 {
			var at time.Time
			if next != 0 {
				at = timeOf(next)
			}
			return out, at, nil
		}
		db.forget(ref, gone)
	}
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
	if r.Outcome == OutcomeRetry && !storable(r.Next) {
		return fmt.Errorf("webhook delivery %q: %w", r.MessageID, invalid("next", "must be a time of years 1970-2261"))
	}
	if t.pg != nil {
		return t.pgRecordDelivery(r)
	}
	key := deliveryKey(r.CustomerID, r.EndpointID, r.MessageID)
	queue := t.tx.Bucket(bucketQueue)
	qv := queue.Get(key)
	d, err := t.mergeDelivery(key, t.tx.Bucket(bucketDeliveries).Get(key), qv)
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
	ref := EndpointRef{r.CustomerID, r.EndpointID}
	if qv != nil {
		next, _, subject, err := decodeQueued(qv)
		if err != nil {
			return err
		}
		if next == r.Scheduled.UnixNano() {
			switch r.Outcome {
			case OutcomeDelivered, OutcomeFailed, OutcomeGone:
				if err := queue.Delete(key); err != nil {
					return err
				}
				t.queueOp(queueOp{kind: qRemove, ref: ref, id: r.MessageID})
				d.State, d.Next = DeliveryDelivered, time.Time{}
				if r.Outcome != OutcomeDelivered {
					d.State = DeliveryFailed
				}
			case OutcomeRetry:
				n := r.Next.UnixNano()
				if err := queue.Put(key, encodeQueued(n, d.AttemptCount, subject)); err != nil {
					return err
				}
				t.queueOp(queueOp{kind: qReschedule, ref: ref, id: r.MessageID, next: n, attempts: d.AttemptCount})
				d.Next = timeOf(n)
			}
		}
	}
	if err := t.appending(bucketDeliveries).Put(key, marshalDelivery(&d)); err != nil {
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

// marshalDelivery encodes a delivery record.
func marshalDelivery(d *Delivery) []byte {
	raw, err := json.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("encode webhook delivery: %v", err)) // plain fields: cannot fail
	}
	return raw
}

// FailPending fails every pending delivery of an endpoint with reason (its endpoint was
// disabled), in transactions of at most DefaultPurgeBatch, and answers how many.
func (db *DB) FailPending(ctx context.Context, customerID, endpointID, reason string) (int, error) {
	if db.pg != nil {
		return db.pgFailPending(ctx, customerID, endpointID, reason)
	}
	prefix := compose(customerID, endpointID, "")
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := db.Write(ctx, func(tx *Tx) error {
			n = 0
			var keys [][]byte
			c := tx.tx.Bucket(bucketQueue).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < DefaultPurgeBatch; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, key := range keys {
				d, err := tx.delivery(customerID, endpointID, string(key[len(prefix):]))
				if err != nil {
					return err
				}
				if _, err := tx.dequeue(customerID, endpointID, d.MessageID); err != nil {
					return err
				}
				d.State, d.Next, d.FailedReason = DeliveryFailed, time.Time{}, reason
				if err := tx.tx.Bucket(bucketDeliveries).Put(key, marshalDelivery(&d)); err != nil {
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
		if n == 0 {
			return total, nil
		}
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
	if t.pg != nil {
		return t.pgReplayMessage(&e, customerID, messageID)
	}
	v := t.tx.Bucket(bucketMessages).Get(compose(customerID, messageID))
	if v == nil && t.tx.Bucket(bucketFresh).Get(compose(customerID, messageID)) != nil {
		// Not indexed yet: indexed now, so that its delivery finds it where deliveries do.
		if err := t.indexOutbox(); err != nil {
			return err
		}
		v = t.tx.Bucket(bucketMessages).Get(compose(customerID, messageID))
	}
	if v == nil {
		return fmt.Errorf("webhook message %q: %w", messageID, ErrNotFound)
	}
	typ, subject, err := messageHeader(v)
	if err != nil {
		return fmt.Errorf("webhook message %q: %w", messageID, err)
	}
	if !e.Subscribes(typ) {
		return fmt.Errorf("webhook message %q: %w", messageID, invalid("message_id", "the endpoint does not subscribe to %s", typ))
	}
	attempts := 0
	switch d, err := t.delivery(customerID, endpointID, messageID); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		attempts = d.AttemptCount
	}
	// A pending one is rescheduled to now (in memory, one that waits keeps waiting).
	return t.queueDelivery(customerID, endpointID, messageID, subject, attempts, t.now())
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
	if db.pg != nil {
		return db.pgReplaySince(ctx, &e, since)
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
				typ, _, err := messageHeader(v)
				if err != nil {
					return fmt.Errorf("webhook message %q: %w", k, err)
				}
				if e.Subscribes(typ) {
					ids = append(ids, string(k[len(prefix):]))
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
// following page ("" at the end). A pending delivery not attempted yet has no record: it is
// listed from the queue.
func (t *Tx) Deliveries(customerID, endpointID, before string, limit int) (out []Delivery, next string, err error) {
	if t.pg != nil {
		return t.pgDeliveries(customerID, endpointID, before, limit)
	}
	prefix := compose(customerID, endpointID, "")
	from := append(compose(customerID, endpointID), 1) // after every key of the endpoint
	if before != "" {
		from = append(bytes.Clone(prefix), before...)
	}
	dc, qc := t.tx.Bucket(bucketDeliveries).Cursor(), t.tx.Bucket(bucketQueue).Cursor()
	dk, dv := seekBefore(dc, from)
	qk, qv := seekBefore(qc, from)
	for {
		if dk != nil && !bytes.HasPrefix(dk, prefix) {
			dk = nil
		}
		if qk != nil && !bytes.HasPrefix(qk, prefix) {
			qk = nil
		}
		if dk == nil && qk == nil {
			return out, "", nil
		}
		if len(out) == limit {
			return out, out[len(out)-1].MessageID, nil
		}
		var d Delivery
		switch c := bytes.Compare(dk, qk); {
		case c == 0:
			d, err = t.mergeDelivery(dk, dv, qv)
			dk, dv = dc.Prev()
			qk, qv = qc.Prev()
		case c > 0: // dk is the newer (a nil key sorts first)
			d, err = t.mergeDelivery(dk, dv, nil)
			dk, dv = dc.Prev()
		default:
			d, err = t.mergeDelivery(qk, nil, qv)
			qk, qv = qc.Prev()
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, d)
	}
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
	if t.pg != nil {
		return t.pgMessage(customerID, id)
	}
	v := t.tx.Bucket(bucketMessages).Get(compose(customerID, id))
	if v == nil {
		v = t.tx.Bucket(bucketFresh).Get(compose(customerID, id))
	}
	if v == nil {
		return Message{}, fmt.Errorf("webhook message %q: %w", id, ErrNotFound)
	}
	return decodeMessage(t.tx.Bucket(bucketMessages), customerID, id, v)
}

// Messages lists the customer's messages made in [from, to) (zero: open), oldest first, at
// most limit of them.
func (t *Tx) Messages(customerID string, from, to time.Time, limit int) ([]Message, error) {
	if t.pg != nil {
		return t.pgMessages(customerID, from, to, limit)
	}
	prefix := compose(customerID, "")
	lo := append(bytes.Clone(prefix), idTimePrefix(max(from.UnixMilli(), 0))...)
	var out []Message
	msgs := t.tx.Bucket(bucketMessages)
	// The messages, and the calls' events not indexed yet (webhook_fresh), in id order.
	c, fc := msgs.Cursor(), t.tx.Bucket(bucketFresh).Cursor()
	k, v := c.Seek(lo)
	fk, fv := fc.Seek(lo)
	for len(out) < limit {
		if k != nil && !bytes.HasPrefix(k, prefix) {
			k = nil
		}
		if fk != nil && !bytes.HasPrefix(fk, prefix) {
			fk = nil
		}
		var key, val []byte
		switch {
		case k == nil && fk == nil:
			return out, nil
		case fk == nil || (k != nil && bytes.Compare(k, fk) < 0):
			key, val = k, v
			k, v = c.Next()
		default:
			key, val = fk, fv
			fk, fv = fc.Next()
		}
		m, err := decodeMessage(msgs, customerID, string(key[len(prefix):]), val)
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

// OutboxStats reads the outbox's depth and age: the queue's keys, and the first pending
// delivery of every endpoint.
func (db *DB) OutboxStats() (OutboxStats, error) {
	if db.pg != nil {
		return db.pgOutboxStats()
	}
	var st OutboxStats
	err := db.View(func(tx *Tx) error {
		q := tx.tx.Bucket(bucketQueue)
		st.Pending = q.Stats().KeyN
		if st.Pending == 0 {
			return nil
		}
		oldest := int64(-1)
		qc := q.Cursor()
		return tx.tx.Bucket(bucketEndpoints).ForEach(func(k, _ []byte) error {
			prefix := append(bytes.Clone(k), 0)
			if qk, _ := qc.Seek(prefix); qk != nil && bytes.HasPrefix(qk, prefix) {
				if ms, ok := idTime(qk[len(prefix):]); ok && (oldest < 0 || ms < oldest) {
					oldest = ms
					st.Oldest = time.UnixMilli(ms).UTC()
				}
			}
			return nil
		})
	})
	return st, err
}

// deleteSubjectMessages deletes the customer's messages of a subject (a call's events) with
// their deliveries to every endpoint (a caller's erasure).
func (t *Tx) deleteSubjectMessages(customerID, subject string) error {
	// The subject's messages not indexed yet are found once they are.
	if err := t.indexOutbox(); err != nil {
		return err
	}
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
			if _, err := t.dequeue(customerID, e, id); err != nil {
				return err
			}
			if err := t.tx.Bucket(bucketDeliveries).Delete(deliveryKey(customerID, e, id)); err != nil {
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

// convertOutbox moves the pending deliveries of a file written before webhook_queue (in
// webhook_pending, keyed id 0x00 customer 0x00 endpoint, with their state in the delivery's
// record, and in the indexes webhook_due and webhook_waiting) into webhook_queue, and drops
// the three buckets; it answers how many were pending. A file without them is left as it
// is. The deliveries' records and the messages keep their layout.
func convertOutbox(tx *bolt.Tx) (int, error) {
	old := tx.Bucket(bucketPendingV1)
	n := 0
	if old != nil {
		queue, deliveries := tx.Bucket(bucketQueue), tx.Bucket(bucketDeliveries)
		err := old.ForEach(func(k, _ []byte) error {
			parts := bytes.SplitN(k, []byte{0}, 3)
			if len(parts) != 3 {
				return fmt.Errorf("webhook_pending key %q: malformed", k)
			}
			key := compose(string(parts[1]), string(parts[2]), string(parts[0]))
			raw := deliveries.Get(key)
			if raw == nil {
				return nil // its record went (a deletion cut short): nothing to deliver
			}
			var d Delivery
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decode webhook delivery %q: %w", key, err)
			}
			if d.State != DeliveryPending {
				return nil
			}
			next := d.Next
			if next.IsZero() { // it waited for its subject: due once the earlier one is settled
				if ms, ok := idTime(parts[0]); ok {
					next = time.UnixMilli(ms)
				}
			}
			n++
			return queue.Put(key, encodeQueued(next.UnixNano(), d.AttemptCount, d.Subject))
		})
		if err != nil {
			return 0, err
		}
	}
	for _, name := range [][]byte{bucketPendingV1, bucketDueV1, bucketWaitingV1} {
		if tx.Bucket(name) == nil {
			continue
		}
		if err := tx.DeleteBucket(name); err != nil {
			return 0, fmt.Errorf("drop bucket %s: %w", name, err)
		}
	}
	return n, nil
}
