package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Tx is a store transaction with typed accessors. It is valid only inside the function it
// was passed to; values it returns are copies.
type Tx struct {
	tx boltTx
	// db is the store the transaction is of: nil in the transactions Open runs itself.
	db *DB
	// outbox is what a commit of the transaction tells the outbox's readers (outbox.go).
	outbox txOutbox
	// pg is the transaction of a store on PostgreSQL (pg.go); then tx is unused.
	pg *pgTx
}

func (t *Tx) get(bucket, key []byte, v any) error {
	raw := t.tx.Bucket(bucket).Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%q: %w", bucket, key, err)
	}
	return nil
}

func (t *Tx) put(bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%q: %w", bucket, key, err)
	}
	return t.tx.Bucket(bucket).Put(key, raw)
}

func compose(parts ...string) []byte {
	var b []byte
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// --- customers

// Customer reads one customer.
func (t *Tx) Customer(id string) (Customer, error) {
	if t.pg != nil {
		return t.pg.customer(id)
	}
	var c Customer
	err := t.get(bucketCustomers, []byte(id), &c)
	return c, err
}

// CreateCustomer stores a new customer; ErrExists if the id or the site key is taken, or the
// id was a deleted customer's.
func (t *Tx) CreateCustomer(c *Customer) error {
	if t.pg != nil {
		return t.pg.createCustomer(c)
	}
	if t.tx.Bucket(bucketCustomers).Get([]byte(c.ID)) != nil {
		return fmt.Errorf("customer %q: %w", c.ID, ErrExists)
	}
	if t.Purged(c.ID) {
		return fmt.Errorf("customer %q: the id of a deleted customer: %w", c.ID, ErrExists)
	}
	if t.tx.Bucket(bucketSiteKeys).Get([]byte(c.SiteKey)) != nil {
		return fmt.Errorf("site key: %w", ErrExists)
	}
	return t.PutCustomer(c)
}

// PutCustomer writes a customer and keeps the site key index in step.
func (t *Tx) PutCustomer(c *Customer) error {
	if t.pg != nil {
		return t.pg.putCustomer(c)
	}
	if old, err := t.Customer(c.ID); err == nil && old.SiteKey != c.SiteKey {
		if owner := t.tx.Bucket(bucketSiteKeys).Get([]byte(c.SiteKey)); owner != nil && string(owner) != c.ID {
			return fmt.Errorf("site key: %w", ErrExists)
		}
		if err := t.tx.Bucket(bucketSiteKeys).Delete([]byte(old.SiteKey)); err != nil {
			return err
		}
	}
	if err := t.tx.Bucket(bucketSiteKeys).Put([]byte(c.SiteKey), []byte(c.ID)); err != nil {
		return err
	}
	return t.put(bucketCustomers, []byte(c.ID), c)
}

// Customers lists all customers ordered by id.
func (t *Tx) Customers() ([]Customer, error) {
	if t.pg != nil {
		return t.pg.customers()
	}
	var out []Customer
	err := t.tx.Bucket(bucketCustomers).ForEach(func(k, v []byte) error {
		var c Customer
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("decode customer %q: %w", k, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// --- channels

// PutChannel writes a channel.
func (t *Tx) PutChannel(ch *Channel) error {
	if t.pg != nil {
		return t.pg.putChannel(ch)
	}
	return t.put(bucketChannels, compose(ch.CustomerID, ch.ID), ch)
}

// Channels lists a customer's channels ordered by Order, then id.
func (t *Tx) Channels(customerID string) ([]Channel, error) {
	if t.pg != nil {
		return t.pg.channels(customerID)
	}
	var out []Channel
	prefix := compose(customerID, "")
	c := t.tx.Bucket(bucketChannels).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var ch Channel
		if err := json.Unmarshal(v, &ch); err != nil {
			return nil, fmt.Errorf("decode channel %q: %w", k, err)
		}
		out = append(out, ch)
	}
	sortChannels(out)
	return out, nil
}

// --- numbers

// Number reads one number.
func (t *Tx) Number(e164 string) (Number, error) {
	if t.pg != nil {
		return t.pg.number(e164)
	}
	var n Number
	err := t.get(bucketNumbers, []byte(e164), &n)
	return n, err
}

// HasNumber tells whether a number exists.
func (t *Tx) HasNumber(e164 string) bool {
	if t.pg != nil {
		ok, _ := t.pg.hasNumber(e164) // a failed read failed the transaction: its commit tells
		return ok
	}
	return t.tx.Bucket(bucketNumbers).Get([]byte(e164)) != nil
}

// PutNumber writes a number.
func (t *Tx) PutNumber(n *Number) error {
	if t.pg != nil {
		return t.pg.putNumber(n)
	}
	return t.put(bucketNumbers, []byte(n.E164), n)
}

// Numbers calls fn for every number, ordered by E.164.
func (t *Tx) Numbers(fn func(Number) error) error {
	if t.pg != nil {
		return t.pg.numbers(fn)
	}
	return t.tx.Bucket(bucketNumbers).ForEach(func(k, v []byte) error {
		var n Number
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("decode number %q: %w", k, err)
		}
		return fn(n)
	})
}

// --- sessions

// Session reads one session.
func (t *Tx) Session(id string) (Session, error) {
	if t.pg != nil {
		return t.pg.session(id)
	}
	var s Session
	err := t.get(bucketSessions, []byte(id), &s)
	return s, err
}

// PutSession writes a session and its customer index entry.
func (t *Tx) PutSession(s *Session) error {
	if t.pg != nil {
		return t.pg.putSession(s)
	}
	enc, err := EncodeSession(s)
	if err != nil {
		return err
	}
	return t.PutEncodedSession(enc)
}

// EncodedSession is a session encoded outside the transaction, so that the encoding work of
// many writers is not serialised in the committer.
type EncodedSession struct {
	id, customerID string
	raw            []byte
	s              Session // for PostgreSQL, which writes the fields as columns
}

// EncodeSession encodes a session for PutEncodedSession.
func EncodeSession(s *Session) (EncodedSession, error) {
	raw, err := marshalSession(s)
	if err != nil {
		return EncodedSession{}, fmt.Errorf("encode session %s: %w", s.ID, err)
	}
	return EncodedSession{id: s.ID, customerID: s.CustomerID, raw: raw, s: *s}, nil
}

// PutEncodedSession writes an encoded session and its customer index entry.
func (t *Tx) PutEncodedSession(e EncodedSession) error {
	if t.pg != nil {
		return t.pg.putSession(&e.s)
	}
	if err := t.tx.Bucket(bucketSessByCust).Put(compose(e.customerID, e.id), nil); err != nil {
		return err
	}
	return t.tx.Bucket(bucketSessions).Put([]byte(e.id), e.raw)
}

// SessionsOf lists a customer's sessions newest first, starting below the session id
// `before` (exclusive; "" for the newest), at most limit of them.
func (t *Tx) SessionsOf(customerID, before string, limit int) ([]Session, error) {
	if t.pg != nil {
		return t.pg.sessionsOf(customerID, before, limit)
	}
	prefix := compose(customerID, "")
	c := t.tx.Bucket(bucketSessByCust).Cursor()
	// Without a cursor, start past the prefix: the id followed by 0x01 sorts after every entry.
	from := append(compose(customerID), 1)
	if before != "" {
		from = compose(customerID, before)
	}
	k, _ := seekBefore(c, from)
	var out []Session
	for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
		s, err := t.Session(string(k[len(prefix):]))
		if err != nil {
			return nil, fmt.Errorf("session index %q: %w", k, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// --- assignments: assignments.go

// seekBefore positions c on the last key below key.
func seekBefore(c cursor, key []byte) ([]byte, []byte) {
	if k, _ := c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// --- counters

// Stats reads a customer's counters (zero if none yet). They are stored as three
// big-endian uint64: sessions, exhaustions, peak assigned.
func (t *Tx) Stats(customerID string) (CustomerStats, error) {
	if t.pg != nil {
		return t.pg.stats(customerID)
	}
	v := t.tx.Bucket(bucketStats).Get([]byte(customerID))
	if v == nil {
		return CustomerStats{}, nil
	}
	if len(v) != 24 {
		return CustomerStats{}, fmt.Errorf("counters of %s: malformed", customerID)
	}
	return CustomerStats{
		SessionsTotal: binary.BigEndian.Uint64(v[0:]),
		Exhaustions:   binary.BigEndian.Uint64(v[8:]),
		PeakAssigned:  int(binary.BigEndian.Uint64(v[16:])),
	}, nil
}

// AddStats adds to a customer's counters; peak is raised to assigned if that is higher.
func (t *Tx) AddStats(customerID string, sessions, exhaustions uint64, assigned int) error {
	if t.pg != nil {
		return t.pg.addStats(customerID, sessions, exhaustions, assigned)
	}
	s, err := t.Stats(customerID)
	if err != nil {
		return err
	}
	var v [24]byte
	binary.BigEndian.PutUint64(v[0:], s.SessionsTotal+sessions)
	binary.BigEndian.PutUint64(v[8:], s.Exhaustions+exhaustions)
	binary.BigEndian.PutUint64(v[16:], uint64(max(s.PeakAssigned, assigned)))
	return t.tx.Bucket(bucketStats).Put([]byte(customerID), v[:])
}

// --- calls and recordings

// PutCall writes a call record and keeps its index entries in step: the customer index, the
// caller index (by CallerPseudonym), and the index of active calls, which holds the call
// while its End is zero. A call's CustomerID and CallerPseudonym must not change between
// writes. The write that completes a call (End set on a call in progress, or on a new
// record) counts it in its customer's daily rollups (rollups.go), once. A call already
// stored keeps its annotations (LeadStatus, Tags, Value, Note, Updated), whatever c holds:
// they are AnnotateCall's to change. The write writes the webhooks' events of the call's
// change too (events.go: call.ringing, call.answered, call.completed, recording.ready).
func (t *Tx) PutCall(c *Call) error {
	if t.pg != nil {
		return t.pg.putCall(c)
	}
	key := compose(c.CustomerID, c.ID)
	active := t.tx.Bucket(bucketCallsActive)
	open := active.Get(key) != nil
	// Index entries are written only when they change: a write dirties its page even when
	// the key is already there, and every call is written twice (start and end).
	stored := t.tx.Bucket(bucketCalls).Get([]byte(c.ID))
	isNew := stored == nil
	// Whether the stored record names a recording or an answer: both are omitted when empty.
	hadRecording := bytes.Contains(stored, []byte(`"recording_id":`))
	hadAnswer := bytes.Contains(stored, []byte(`"answer":`))
	if !isNew {
		a, err := storedAnnotation(stored)
		if err != nil {
			return fmt.Errorf("decode call %q: %w", c.ID, err)
		}
		if !a.of(c) {
			kept := *c
			a.to(&kept)
			c = &kept
		}
	}
	if isNew {
		if err := t.tx.Bucket(bucketCallsByCust).Put(key, nil); err != nil {
			return err
		}
		if c.CallerPseudonym != "" {
			if err := t.tx.Bucket(bucketCallsByCaller).Put(callerKey(c.CustomerID, c.CallerPseudonym, c.ID), nil); err != nil {
				return err
			}
		}
		if c.SessionID != "" {
			if err := t.tx.Bucket(bucketSessCalled).Put(compose(c.CustomerID, c.SessionID), nil); err != nil {
				return err
			}
		}
	}
	// The usage counters count a call once, in the month it started, and add its talk time
	// when it ends.
	var calls uint64
	var talk time.Duration
	if isNew {
		calls = 1
	}
	if !c.End.IsZero() && (isNew || open) {
		talk = time.Duration(c.TalkSeconds * float64(time.Second))
	}
	if calls > 0 || talk > 0 {
		if err := t.addCallUsage(c.CustomerID, c.Start, calls, talk); err != nil {
			return err
		}
	}
	// The daily rollups count a call once, when it completes (rollups.go), and a recording
	// linked to it later then.
	switch {
	case !c.End.IsZero() && (isNew || open):
		if err := t.rollupCall(c); err != nil {
			return err
		}
	case !c.End.IsZero() && c.RecordingID != "" && !hadRecording:
		if err := t.rollupRecorded(c); err != nil {
			return err
		}
	}
	switch {
	case c.End.IsZero() && !open:
		if err := active.Put(key, nil); err != nil {
			return err
		}
	case !c.End.IsZero() && open:
		if err := active.Delete(key); err != nil {
			return err
		}
	}
	if err := t.put(bucketCalls, []byte(c.ID), c); err != nil {
		return err
	}
	// The webhooks' events of the call's change (events.go); key starts with customer 0x00.
	return t.callEvents(key[:len(c.CustomerID)+1], c, callTransition{isNew: isNew, open: open, hadAnswer: hadAnswer, hadRecording: hadRecording})
}

// Call reads one call record.
func (t *Tx) Call(id string) (Call, error) {
	if t.pg != nil {
		return t.pg.call(id)
	}
	var c Call
	err := t.get(bucketCalls, []byte(id), &c)
	return c, err
}

// PutRecording writes a recording's metadata.
func (t *Tx) PutRecording(r *Recording) error {
	if t.pg != nil {
		return t.pg.putRecording(r)
	}
	return t.put(bucketRecordings, []byte(r.ID), r)
}

// Recording reads a recording's metadata.
func (t *Tx) Recording(id string) (Recording, error) {
	if t.pg != nil {
		return t.pg.recording(id)
	}
	var r Recording
	err := t.get(bucketRecordings, []byte(id), &r)
	return r, err
}
