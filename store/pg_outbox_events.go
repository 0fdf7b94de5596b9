package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The webhooks' events on PostgreSQL: what events.go writes on bbolt, with the same
// payloads, written by the same operations (PutCall, AnnotateCall, PoolExhausted) in their
// transaction. A message is one statement that inserts the message and its deliveries to
// the customer's enabled endpoints that want its type, if there is one at that moment (the
// cache of pgSubscribers only spares the writes of customers without endpoints the work of
// making a payload); it is sent with the other statements of the transaction, without a
// round trip of its own. The events of one write of a call share its data, as on bbolt: the
// first message holds it (sealed: it may hold the caller's number), the others name it
// (ref).

// pgMessage is a message to write.
type pgMessage struct {
	customerID string
	typ        EventType
	subject    string
	at         time.Time
	data       []byte // the payload's data; nil with ref
	// pseudo, if set, is the data without the caller's number: the statement takes it
	// instead of data when the customer has pseudonymous callers (no read of the customer)
	pseudo []byte
	ref    string // the id of the message of this write that holds the data
}

// pgMessageSQL inserts a message ($1 customer, $2 id, $3 type, $4 subject, $5 created,
// $6 at, $7 data, $8 ref, $9 the type's bit, $10 the data for a customer with pseudonymous
// callers or NULL: $7 then) and a pending delivery of it to every enabled endpoint that
// wants its type, due at once; nothing when there is none, or when the message it refers to
// is not there (not written for want of an endpoint). A missing customer is taken to have
// pseudonymous callers, as on bbolt.
const pgMessageSQL = `WITH m AS (
		INSERT INTO webhook_messages (customer_id, id, type, subject, created, at, data, ref)
		SELECT $1, $2, $3, $4, $5, $6, CASE WHEN $10::bytea IS NULL THEN $7::bytea
			WHEN coalesce((SELECT coalesce((settings ->> 'pseudonymous_callers')::boolean, false) FROM customers WHERE id = $1), true)
			THEN $10
			ELSE $7 END, $8
		WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE customer_id = $1 AND enabled AND types & $9 <> 0)
			AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM webhook_messages WHERE customer_id = $1 AND id = $8))
		RETURNING customer_id, id, seq, subject, created)
	INSERT INTO webhook_deliveries (customer_id, endpoint_id, message_id, msg_seq, subject, state, next_at)
	SELECT m.customer_id, e.id, m.id, m.seq, m.subject, 1, m.created
	FROM m JOIN webhook_endpoints e ON e.customer_id = m.customer_id AND e.enabled AND e.types & $9 <> 0`

// pgAddMessage queues the write of a message to the subscribers subs (the cache's: the
// statement finds the endpoints itself) and answers its id.
func (t *Tx) pgAddMessage(m *pgMessage, subs []pgSub) (string, error) {
	now := t.now()
	id := t.db.pgNewMessageID(now)
	var data, pseudo, ref any
	if m.ref != "" {
		ref = m.ref
	} else {
		var err error
		if data, err = t.pgSealData(m.customerID, id, m.data); err != nil {
			return "", err
		}
		if m.pseudo != nil {
			if pseudo, err = t.pgSealData(m.customerID, id, m.pseudo); err != nil {
				return "", err
			}
		}
	}
	if err := t.pg.exec(nil, pgMessageSQL, m.customerID, id, string(m.typ), m.subject, now.UnixNano(), m.at.UnixNano(),
		data, ref, int64(m.typ.bit()), pseudo); err != nil {
		return "", err
	}
	var eps []string
	for _, s := range subs {
		if s.mask&m.typ.bit() != 0 {
			eps = append(eps, s.id)
		}
	}
	t.pgDueAfterCommit(m.customerID, eps...)
	return id, nil
}

// pgSealData seals a message's data ("" data is not NULL, which means "see ref").
func (t *Tx) pgSealData(customerID, id string, data []byte) ([]byte, error) {
	sealed, err := t.pg.seal("webhook_messages.data", customerID, id, string(data))
	if sealed == nil && err == nil {
		sealed = []byte{sealPlain}
	}
	return sealed, err
}

// pgCallData sets m's data to the call's payload data, and its pseudo to the data without
// the caller's number when the call has one: the statement picks by the customer's setting.
func pgCallData(m *pgMessage, c *Call) error {
	var err error
	if m.data, err = json.Marshal(newCallPayload(c, false)); err != nil {
		return fmt.Errorf("encode %s event: %w", m.typ, err)
	}
	if c.Caller != "" {
		if m.pseudo, err = json.Marshal(newCallPayload(c, true)); err != nil {
			return fmt.Errorf("encode %s event: %w", m.typ, err)
		}
	}
	return nil
}

// pgCallEvents writes the events of a write of c (PutCall on PostgreSQL: pg_calls.go's
// putCall), as callEvents does on bbolt.
func (t *Tx) pgCallEvents(c *Call, tr callTransition) error {
	if t.db == nil {
		return nil
	}
	subs, err := t.pgSubscribers(c.CustomerID, callEventsMask)
	if err != nil || subs == nil {
		return err
	}
	var wanted uint64
	for _, s := range subs {
		wanted |= s.mask
	}
	var callMsg string // the message of this write that holds the call's data
	for _, typ := range callEventTypes(c, tr) {
		if wanted&typ.bit() == 0 {
			continue
		}
		m := pgMessage{customerID: c.CustomerID, typ: typ, subject: c.ID}
		switch typ {
		case EventCallRinging:
			m.at = c.Start
		case EventCallAnswered:
			m.at = c.Answer
		case EventCallCompleted:
			m.at = c.End
		case EventRecordingReady:
			r := recordingPayload{CallID: c.ID, RecordingID: c.RecordingID, Path: "/v1/recordings/" + c.RecordingID}
			switch rec, err := t.Recording(c.RecordingID); {
			case err == nil:
				r.DurationSeconds, r.Bytes, r.SHA256, m.at = rec.Duration.Seconds(), rec.Size, rec.SHA256, rec.Created
			case !errors.Is(err, ErrNotFound):
				return err
			}
			if m.at.IsZero() {
				m.at = c.End
			}
			if m.data, err = json.Marshal(r); err != nil {
				return fmt.Errorf("encode %s event: %w", typ, err)
			}
			if _, err := t.pgAddMessage(&m, subs); err != nil {
				return err
			}
			continue
		}
		if callMsg != "" {
			m.ref = callMsg
			if _, err := t.pgAddMessage(&m, subs); err != nil {
				return err
			}
			continue
		}
		if err := pgCallData(&m, c); err != nil {
			return err
		}
		if callMsg, err = t.pgAddMessage(&m, subs); err != nil {
			return err
		}
	}
	return nil
}

// callEventTypes are the events a write of c makes, in order (events.go: callEvents).
func callEventTypes(c *Call, tr callTransition) []EventType {
	var evs []EventType
	if tr.isNew {
		evs = append(evs, EventCallRinging)
	}
	if !c.Answer.IsZero() && (tr.isNew || !tr.hadAnswer) {
		evs = append(evs, EventCallAnswered)
	}
	completed := !c.End.IsZero() && (tr.isNew || tr.open)
	if completed {
		evs = append(evs, EventCallCompleted)
	}
	if !c.End.IsZero() && c.RecordingID != "" && (completed || !tr.hadRecording) {
		evs = append(evs, EventRecordingReady)
	}
	return evs
}

// pgCallUpdated writes call.updated for c, whose annotations AnnotateCall changed.
func (t *Tx) pgCallUpdated(c *Call) error {
	if t.db == nil {
		return nil
	}
	subs, err := t.pgSubscribers(c.CustomerID, EventCallUpdated.bit())
	if err != nil || subs == nil {
		return err
	}
	m := pgMessage{customerID: c.CustomerID, typ: EventCallUpdated, subject: c.ID, at: c.Updated}
	if m.at.IsZero() {
		m.at = t.now()
	}
	if err := pgCallData(&m, c); err != nil {
		return err
	}
	_, err = t.pgAddMessage(&m, subs)
	return err
}

// pgPoolExhausted is PoolExhausted on PostgreSQL: the time of the customer's last event is
// its row of webhook_pool_exhausted, read locked; the write of the new time is guarded
// again in SQL, so that two nodes that read the same old time write one event.
func (t *Tx) pgPoolExhausted(customerID, number string, at time.Time) error {
	if t.db == nil {
		return nil
	}
	subs, err := t.pgSubscribers(customerID, EventPoolExhausted.bit())
	if err != nil || subs == nil {
		return err
	}
	var last int64
	switch err := t.pg.row(`SELECT at FROM webhook_pool_exhausted WHERE customer_id = $1 FOR UPDATE`, []any{customerID}, &last); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		if d := at.Sub(time.Unix(0, last)); d >= 0 && d < PoolExhaustedEvery {
			return nil
		}
	}
	st, err := t.Stats(customerID)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(exhaustedPayload{CustomerID: customerID, Number: number, Exhaustions: st.Exhaustions})
	if err != nil {
		return fmt.Errorf("encode %s event: %w", EventPoolExhausted, err)
	}
	bit := int64(EventPoolExhausted.bit())
	if err := t.pg.exec(nil, `INSERT INTO webhook_pool_exhausted AS p (customer_id, at)
		SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE customer_id = $1 AND enabled AND types & $3 <> 0)
		ON CONFLICT (customer_id) DO UPDATE SET at = excluded.at
			WHERE NOT (excluded.at - p.at >= 0 AND excluded.at - p.at < $4)`,
		customerID, at.UnixNano(), bit, int64(PoolExhaustedEvery)); err != nil {
		return err
	}
	// The message only if the time just written is this one's (the guard above let it).
	now := t.now()
	id := t.db.pgNewMessageID(now)
	sealed, err := t.pg.seal("webhook_messages.data", customerID, id, string(raw))
	if err != nil {
		return err
	}
	if err := t.pg.exec(nil, `WITH m AS (
			INSERT INTO webhook_messages (customer_id, id, type, subject, created, at, data)
			SELECT $1, $2, $3, '', $4, $5, $6
			WHERE EXISTS (SELECT 1 FROM webhook_pool_exhausted WHERE customer_id = $1 AND at = $5)
			RETURNING customer_id, id, seq, created)
		INSERT INTO webhook_deliveries (customer_id, endpoint_id, message_id, msg_seq, subject, state, next_at)
		SELECT m.customer_id, e.id, m.id, m.seq, '', 1, m.created
		FROM m JOIN webhook_endpoints e ON e.customer_id = m.customer_id AND e.enabled AND e.types & $7 <> 0`,
		customerID, id, string(EventPoolExhausted), now.UnixNano(), at.UnixNano(), sealed, bit); err != nil {
		return err
	}
	var eps []string
	for _, s := range subs {
		eps = append(eps, s.id)
	}
	t.pgDueAfterCommit(customerID, eps...)
	return nil
}
