package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Webhook endpoints: where a customer wants its events (outbox.go) delivered, and which.
//
// webhook_endpoints holds the endpoints, keyed customer 0x00 endpoint id (JSON, secrets
// included: the delivery workers sign with them). webhook_subscriptions holds one value per
// customer that has an enabled endpoint, keyed customer 0x00: the event types any of them
// wants, and each enabled endpoint's id with its types, so that the transaction that writes
// a call finds out with one small read whether, and for whom, an event is to be written. It
// also holds when the customer's last number.pool_exhausted event was written (outbox.go).
// Every change to an endpoint rewrites it from the customer's endpoints (at most
// MaxEndpoints).

var (
	bucketEndpoints     = []byte("webhook_endpoints")
	bucketSubscriptions = []byte("webhook_subscriptions")
)

// EventType names an event a webhook delivers.
type EventType string

// The event types (docs/webhooks.md describes their payloads).
const (
	EventCallRinging    EventType = "call.ringing"          // a call was accepted: the business line is being rung
	EventCallAnswered   EventType = "call.answered"         // the caller is connected
	EventCallCompleted  EventType = "call.completed"        // the call ended: its record with the attribution
	EventRecordingReady EventType = "recording.ready"       // the call's recording can be fetched
	EventCallUpdated    EventType = "call.updated"          // the customer's annotations of a call changed
	EventPoolExhausted  EventType = "number.pool_exhausted" // a lease was given while no pool number was free
)

// eventTypes lists every event type; an endpoint's subscription is a bit set of their
// positions.
var eventTypes = [...]EventType{EventCallRinging, EventCallAnswered, EventCallCompleted, EventRecordingReady,
	EventCallUpdated, EventPoolExhausted}

// EventTypes lists every event type, in the order docs/webhooks.md describes them.
func EventTypes() []EventType { return slices.Clone(eventTypes[:]) }

// bit is t's bit in a subscription; 0 for an unknown type.
func (t EventType) bit() uint64 {
	for i, e := range eventTypes {
		if e == t {
			return 1 << i
		}
	}
	return 0
}

// ParseEventType reads an event type's name.
func ParseEventType(v string) (EventType, error) {
	if t := EventType(v); t.bit() != 0 {
		return t, nil
	}
	return "", fmt.Errorf("unknown event type %q", v)
}

// Limits of an endpoint.
const (
	// MaxEndpoints is how many webhook endpoints one customer has at most.
	MaxEndpoints = 20
	// MaxEndpointURL bounds an endpoint's URL (bytes).
	MaxEndpointURL = 2048
	// SecretPrefix starts every endpoint secret: "whsec_" and the base64 of its bytes
	// (Standard Webhooks).
	SecretPrefix = "whsec_"
	// MinSecretBytes and MaxSecretBytes bound the bytes of a secret.
	MinSecretBytes, MaxSecretBytes = 24, 64
	maxEndpointDesc                = 200
)

// Endpoint is where a customer's webhooks go.
type Endpoint struct {
	ID          string      `json:"id"`
	CustomerID  string      `json:"customer_id"`
	URL         string      `json:"url"`
	Description string      `json:"description,omitempty"`
	EventTypes  []EventType `json:"event_types"`
	// Disabled endpoints get no new messages and none is delivered to them;
	// DisabledReason says why ("gone": the receiver answered 410; "disabled": the customer).
	Disabled       bool   `json:"disabled,omitempty"`
	DisabledReason string `json:"disabled_reason,omitempty"`
	// Secret signs every delivery; PreviousSecret, until PreviousExpires, signs them too
	// (a rotation's overlap, in which a receiver may verify with either).
	Secret          string    `json:"secret"`
	PreviousSecret  string    `json:"previous_secret,omitempty"`
	PreviousExpires time.Time `json:"previous_expires,omitzero"`
	// Deleting marks an endpoint whose deliveries DeleteEndpoint is removing.
	Deleting bool      `json:"deleting,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated,omitzero"`
}

// Secrets are the secrets that sign a delivery at now: the current one, and the previous
// one while its overlap lasts.
func (e *Endpoint) Secrets(now time.Time) []string {
	if e.PreviousSecret != "" && now.Before(e.PreviousExpires) {
		return []string{e.Secret, e.PreviousSecret}
	}
	return []string{e.Secret}
}

// Subscribes tells whether e wants events of type t.
func (e *Endpoint) Subscribes(t EventType) bool { return slices.Contains(e.EventTypes, t) }

// Enabled tells whether e gets new messages and deliveries.
func (e *Endpoint) Enabled() bool { return !e.Disabled && !e.Deleting }

func (e *Endpoint) mask() uint64 {
	var m uint64
	for _, t := range e.EventTypes {
		m |= t.bit()
	}
	return m
}

// SecretBytes decodes a secret of the form SecretPrefix + base64 of MinSecretBytes to
// MaxSecretBytes bytes, and answers its bytes: the HMAC key.
func SecretBytes(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("must start with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, errors.New("must be " + SecretPrefix + " and base64")
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("must hold %d-%d bytes, not %d", MinSecretBytes, MaxSecretBytes, len(key))
	}
	return key, nil
}

// check answers a *FieldError for an endpoint the store does not take. The URL's scheme
// and host are the caller's policy (package api); the store takes http and https.
func (e *Endpoint) check() error {
	switch {
	case e.ID == "" || len(e.ID) > 64 || strings.IndexByte(e.ID, 0) >= 0:
		return invalid("id", "must be 1-64 bytes without NUL")
	case e.CustomerID == "" || strings.IndexByte(e.CustomerID, 0) >= 0:
		return invalid("customer_id", "must be set, without NUL")
	case len(e.URL) > MaxEndpointURL:
		return invalid("url", "at most %d bytes", MaxEndpointURL)
	case len(e.Description) > maxEndpointDesc:
		return invalid("description", "at most %d bytes", maxEndpointDesc)
	}
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return invalid("url", "must be an absolute http(s) URL without credentials or fragment")
	}
	if len(e.EventTypes) == 0 {
		return invalid("event_types", "must name at least one event type")
	}
	for i, t := range e.EventTypes {
		if t.bit() == 0 {
			return invalid("event_types", "unknown event type %q", t)
		}
		if slices.Contains(e.EventTypes[:i], t) {
			return invalid("event_types", "%q is there twice", t)
		}
	}
	if _, err := SecretBytes(e.Secret); err != nil {
		return invalid("secret", "%v", err)
	}
	if e.PreviousSecret != "" {
		if _, err := SecretBytes(e.PreviousSecret); err != nil {
			return invalid("previous_secret", "%v", err)
		}
	}
	return nil
}

// PutEndpoint creates or replaces an endpoint of an existing customer (ErrNotFound
// otherwise) and keeps the customer's subscriptions in step. A customer has at most
// MaxEndpoints endpoints.
func (t *Tx) PutEndpoint(e *Endpoint) error {
	if err := e.check(); err != nil {
		return fmt.Errorf("webhook endpoint %q: %w", e.ID, err)
	}
	if t.pg != nil {
		if err := t.pgPutEndpoint(e); err != nil {
			return err
		}
	} else if err := t.boltCanPutEndpoint(e); err != nil {
		return err
	}
	stored := *e
	stored.EventTypes = slices.Clone(e.EventTypes)
	if err := t.putEndpoint(&stored); err != nil {
		return err
	}
	return t.endpointsChanged(e.CustomerID)
}

// boltCanPutEndpoint checks that the customer exists and may have the endpoint.
func (t *Tx) boltCanPutEndpoint(e *Endpoint) error {
	if t.tx.Bucket(bucketCustomers).Get([]byte(e.CustomerID)) == nil {
		return fmt.Errorf("webhook endpoint %q: customer %q: %w", e.ID, e.CustomerID, ErrNotFound)
	}
	key := compose(e.CustomerID, e.ID)
	if t.tx.Bucket(bucketEndpoints).Get(key) == nil {
		n := 0
		prefix := compose(e.CustomerID, "")
		c := t.tx.Bucket(bucketEndpoints).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			n++
		}
		if n >= MaxEndpoints {
			return fmt.Errorf("webhook endpoint %q: %w", e.ID, invalid("url", "a customer has at most %d endpoints", MaxEndpoints))
		}
	}
	return nil
}

// Endpoint reads one endpoint of a customer; ErrNotFound if there is none.
func (t *Tx) Endpoint(customerID, id string) (Endpoint, error) {
	if t.pg != nil {
		return t.pgEndpoint(customerID, id)
	}
	key := compose(customerID, id)
	raw := t.tx.Bucket(bucketEndpoints).Get(key)
	if raw == nil {
		return Endpoint{}, fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	return t.decodeEndpoint(key, raw)
}

// Endpoints lists a customer's endpoints ordered by id.
func (t *Tx) Endpoints(customerID string) ([]Endpoint, error) {
	if t.pg != nil {
		return t.pgEndpoints(customerID, false, false)
	}
	var out []Endpoint
	prefix := compose(customerID, "")
	c := t.tx.Bucket(bucketEndpoints).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		e, err := t.decodeEndpoint(k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// endpointsChanged rewrites the customer's subscriptions from its endpoints, and has the
// commit tell the delivery workers (EndpointsVersion).
func (t *Tx) endpointsChanged(customerID string) error {
	if t.pg != nil {
		return t.pgEndpointsChanged()
	}
	eps, err := t.Endpoints(customerID)
	if err != nil {
		return err
	}
	key := compose(customerID, "")
	subs := t.tx.Bucket(bucketSubscriptions)
	old := subs.Get(key)
	var exhausted uint64
	if len(old) >= subsHeader {
		exhausted = binary.BigEndian.Uint64(old[9:])
	}
	v := make([]byte, subsHeader, subsHeader+len(eps)*(9+26))
	v[0] = subsVersion
	var all uint64
	for i := range eps {
		if !eps[i].Enabled() {
			continue
		}
		m := eps[i].mask()
		all |= m
		v = binary.BigEndian.AppendUint64(v, m)
		v = append(append(v, byte(len(eps[i].ID))), eps[i].ID...)
	}
	binary.BigEndian.PutUint64(v[1:], all)
	binary.BigEndian.PutUint64(v[9:], exhausted)
	if all == 0 && exhausted == 0 {
		if old == nil {
			return t.onCommitEndpoints()
		}
		if err := subs.Delete(key); err != nil {
			return err
		}
		return t.onCommitEndpoints()
	}
	if err := subs.Put(key, v); err != nil {
		return err
	}
	return t.onCommitEndpoints()
}

// onCommitEndpoints has the commit count a change to the endpoints, and say whether a
// customer has subscriptions now.
func (t *Tx) onCommitEndpoints() error {
	if t.db != nil {
		db := t.db
		some := subsNone
		if k, _ := t.tx.Bucket(bucketSubscriptions).Cursor().First(); k != nil {
			some = subsSome
		}
		t.tx.tx.OnCommit(func() {
			db.outbox.subs.Store(some)
			db.outbox.endpointsGen.Add(1)
			db.signalOutbox()
		})
	}
	return nil
}

// What the committed file's subscriptions bucket holds (outboxState.subs).
const (
	subsUnknown int32 = iota // not read yet
	subsNone                 // no key: no customer has an enabled endpoint
	subsSome                 // some keys (or were, before a purge deleted them)
)

// anySubscriptions tells whether a customer may have an enabled endpoint: false for a
// transaction without its DB, and while the committed file has no subscriptions.
func (t *Tx) anySubscriptions() bool {
	if t.db == nil {
		return false
	}
	switch t.db.outbox.subs.Load() {
	case subsNone:
		return false
	case subsSome:
		return true
	}
	k, _ := t.tx.Bucket(bucketSubscriptions).Cursor().First()
	v := subsNone
	if k != nil {
		v = subsSome
	}
	// What this transaction reads may be rolled back: it is kept once committed.
	db := t.db
	t.tx.tx.OnCommit(func() { db.outbox.subs.CompareAndSwap(subsUnknown, v) })
	return k != nil
}

// The subscriptions value: a version byte, the event types of every enabled endpoint
// (uint64), when the last number.pool_exhausted event was written (Unix nanoseconds, 0:
// never), then per enabled endpoint its types (uint64), the length of its id (one byte) and
// the id.
const (
	subsVersion = 1
	subsHeader  = 1 + 8 + 8
)

// subscribers answers the customer's subscriptions value when an enabled endpoint of the
// customer wants some of the types in mask, nil otherwise; key is customer 0x00. Only the
// store's own transactions (Write, Enqueue) write events: a transaction without its DB (those
// Open runs to convert a file) writes none. While no customer has an endpoint it reads
// nothing (outboxState.subs).
func (t *Tx) subscribers(key []byte, mask uint64) []byte {
	if !t.anySubscriptions() {
		return nil
	}
	v := t.tx.Bucket(bucketSubscriptions).Get(key)
	if len(v) < subsHeader || v[0] != subsVersion || binary.BigEndian.Uint64(v[1:])&mask == 0 {
		return nil
	}
	return v
}

// eachSubscriber calls fn with the id of every enabled endpoint in the subscriptions value
// v that wants events of bit; the id aliases v.
func eachSubscriber(v []byte, bit uint64, fn func(id []byte) error) error {
	for rest := v[subsHeader:]; len(rest) >= 9; {
		m, n := binary.BigEndian.Uint64(rest), int(rest[8])
		if len(rest) < 9+n {
			return errors.New("webhook subscriptions: malformed")
		}
		if m&bit != 0 {
			if err := fn(rest[9 : 9+n]); err != nil {
				return err
			}
		}
		rest = rest[9+n:]
	}
	return nil
}

// SetEndpointDisabled disables an endpoint with a reason, or (disabled false) enables it
// again, and keeps the subscriptions in step; ErrNotFound if there is none. The deliveries
// a disabled endpoint still owes are failed by FailPending.
func (t *Tx) SetEndpointDisabled(customerID, id string, disabled bool, reason string, now time.Time) error {
	e, err := t.Endpoint(customerID, id)
	if err != nil {
		return err
	}
	if e.Deleting {
		return fmt.Errorf("webhook endpoint %q: being deleted: %w", id, ErrNotFound)
	}
	e.Disabled, e.DisabledReason, e.Updated = disabled, "", now
	if disabled {
		e.DisabledReason = reason
	}
	if err := t.putEndpoint(&e); err != nil {
		return err
	}
	return t.endpointsChanged(customerID)
}

// AllEndpoints lists the endpoints of every customer, for the delivery workers; one whose
// secret cannot be opened (ErrSecretSealed) is left out.
func (db *DB) AllEndpoints() ([]Endpoint, error) {
	if db.pg != nil {
		return db.pgAllEndpoints()
	}
	var out []Endpoint
	err := db.View(func(tx *Tx) error {
		return tx.tx.Bucket(bucketEndpoints).ForEach(func(k, v []byte) error {
			e, err := tx.decodeEndpoint(k, v)
			if errors.Is(err, ErrSecretSealed) {
				// Its customer's key is gone (an erasure): nothing of it is delivered.
				db.log.Warn("store skips a webhook endpoint whose secret cannot be opened", "err", err)
				return nil
			}
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// Endpoints lists a customer's endpoints in a read-only transaction.
func (db *DB) Endpoints(customerID string) ([]Endpoint, error) {
	var out []Endpoint
	err := db.View(func(tx *Tx) (err error) { out, err = tx.Endpoints(customerID); return err })
	return out, err
}

// Endpoint reads one endpoint in a read-only transaction; ErrNotFound if there is none.
func (db *DB) Endpoint(customerID, id string) (Endpoint, error) {
	var e Endpoint
	err := db.View(func(tx *Tx) (err error) { e, err = tx.Endpoint(customerID, id); return err })
	return e, err
}

// EndpointsVersion counts the committed changes to endpoints since Open: the delivery
// workers read the endpoints again when it moved.
func (db *DB) EndpointsVersion() uint64 { return db.outbox.endpointsGen.Load() }

// DeleteEndpoint deletes an endpoint with its deliveries (the messages stay: they are the
// customer's, and other endpoints may replay them); ErrNotFound if there is none. The
// endpoint is taken out of the subscriptions first and its record deleted last, in
// transactions of at most DefaultPurgeBatch deletions, so that one cut short (a crash, ctx)
// is finished by running it again.
func (db *DB) DeleteEndpoint(ctx context.Context, customerID, id string) error {
	if db.pg != nil {
		return db.pgDeleteEndpoint(ctx, customerID, id)
	}
	if err := db.markEndpointDeleting(ctx, customerID, id); err != nil {
		return err
	}
	prefix := compose(customerID, id, "")
	for _, b := range [][]byte{bucketDeliveries, bucketQueue} {
		for {
			n := 0
			err := db.Write(ctx, func(tx *Tx) (err error) {
				n, err = deletePrefix(tx.tx.Bucket(b), prefix, DefaultPurgeBatch, nil)
				return err
			})
			if err != nil {
				return fmt.Errorf("delete the deliveries of webhook endpoint %q: %w", id, err)
			}
			if n < DefaultPurgeBatch {
				break
			}
		}
	}
	return db.Write(ctx, func(tx *Tx) error {
		if err := tx.tx.Bucket(bucketEndpoints).Delete(compose(customerID, id)); err != nil {
			return err
		}
		tx.queueOp(queueOp{kind: qDrop, ref: EndpointRef{customerID, id}})
		return tx.endpointsChanged(customerID)
	})
}

// markEndpointDeleting is DeleteEndpoint's first step on both drivers: the endpoint is
// marked as being deleted (no new messages) and the nodes told that endpoints changed.
func (db *DB) markEndpointDeleting(ctx context.Context, customerID, id string) error {
	return db.Write(ctx, func(tx *Tx) error {
		e, err := tx.Endpoint(customerID, id)
		if err != nil {
			return err
		}
		if e.Deleting {
			return nil
		}
		e.Deleting = true
		if err := tx.putEndpoint(&e); err != nil {
			return err
		}
		return tx.endpointsChanged(customerID)
	})
}
