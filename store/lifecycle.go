package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The data lifecycle: usage counters, deleting a whole customer (PurgeCustomer), sessions
// that never led to a call (ExpireSessions), releasing numbers and pruning the audit log.
//
// Usage per customer and month (UTC). Calls and talk time are counted as calls are written
// (PutCall), so that the counts outlive the records (callers may be erased). Sessions are
// counted from the session index (their ids are time-ordered), which costs the session path
// nothing; once a month is over the sweeper freezes its count (FreezeSessionCounts), before
// any of its sessions expire. The usage bucket is keyed customer 0x00 "yyyy-mm"; values are
// four big-endian uint64: the frozen session count, calls started, talk time in
// milliseconds, flags (1: the session count is frozen).
//
// sessions_called (customer 0x00 session id) marks the sessions that led to a call: the
// session expiry keeps those.
//
// customers_purged holds the ids of deleted customers, each with the time it was deleted
// (8 bytes, Unix nanoseconds) and nothing else: such an id is not given to a new customer,
// so that the audit entries of the old one never appear under a new one, and a config that
// still names it does not create it again.

// DefaultPurgeBatch is how many records one transaction of PurgeCustomer, ExpireSessions
// and PruneAudit deletes at most when the caller sets no batch size.
const DefaultPurgeBatch = 1000

// ErrActiveCalls is returned by PurgeCustomer while the customer has calls in progress.
var ErrActiveCalls = errors.New("customer has calls in progress")

// Usage is what a customer used in one month (UTC).
type Usage struct {
	Month       string        `json:"month"` // yyyy-mm
	Sessions    uint64        `json:"sessions"`
	Calls       uint64        `json:"calls"`
	TalkTime    time.Duration `json:"-"`
	TalkSeconds float64       `json:"talk_seconds"`
}

// Month is the usage month of t: its UTC year and month, "yyyy-mm".
func Month(t time.Time) string { return t.UTC().Format("2006-01") }

// ParseMonth reads "yyyy-mm" and answers the first moment of that month (UTC).
func ParseMonth(month string) (time.Time, error) {
	t, err := time.Parse("2006-01", month)
	if err != nil || t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("month %q: want yyyy-mm", month)
	}
	return t, nil
}

func usageKey(customerID, month string) []byte { return compose(customerID, month) }

// The usage value: sessions (once frozen), calls, talk time in milliseconds, flags.
const (
	usageLen      = 32
	usageFrozen   = 1 // the sessions count is frozen
	usageSessions = 0
	usageCalls    = 8
	usageTalk     = 16
	usageFlags    = 24
)

func (t *Tx) usageValue(key []byte) ([usageLen]byte, error) {
	var v [usageLen]byte
	cur := t.tx.Bucket(bucketUsage).Get(key)
	if cur != nil && len(cur) != usageLen {
		return v, fmt.Errorf("usage %q: malformed", key)
	}
	copy(v[:], cur)
	return v, nil
}

// addCallUsage counts calls started and talk time in the month of at.
func (t *Tx) addCallUsage(customerID string, at time.Time, calls uint64, talk time.Duration) error {
	key := usageKey(customerID, Month(at))
	v, err := t.usageValue(key)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint64(v[usageCalls:], binary.BigEndian.Uint64(v[usageCalls:])+calls)
	binary.BigEndian.PutUint64(v[usageTalk:], binary.BigEndian.Uint64(v[usageTalk:])+uint64(talk.Milliseconds()))
	return t.tx.Bucket(bucketUsage).Put(key, v[:])
}

// countSessions counts a customer's sessions made in [from, to) by their time-ordered ids.
func (t *Tx) countSessions(customerID string, from, to time.Time) uint64 {
	prefix := compose(customerID, "")
	lo := append(bytes.Clone(prefix), idTimePrefix(from.UnixMilli())...)
	hi := append(bytes.Clone(prefix), idTimePrefix(to.UnixMilli())...)
	var n uint64
	c := t.tx.Bucket(bucketSessByCust).Cursor()
	for k, _ := c.Seek(lo); k != nil && bytes.Compare(k, hi) < 0; k, _ = c.Next() {
		n++
	}
	return n
}

// Usage reads a customer's usage of one month ("yyyy-mm"): the sessions made in it, the
// calls that started in it and their talk time. Sessions are counted from the session
// index until the month is frozen (FreezeSessionCounts), so that expired sessions still
// count; calls are counted as they are written, so that erased calls still count.
func (t *Tx) Usage(customerID, month string) (Usage, error) {
	if t.pg != nil {
		return t.pg.usage(customerID, month)
	}
	from, err := ParseMonth(month)
	if err != nil {
		return Usage{}, err
	}
	v, err := t.usageValue(usageKey(customerID, month))
	if err != nil {
		return Usage{}, err
	}
	talk := time.Duration(binary.BigEndian.Uint64(v[usageTalk:])) * time.Millisecond
	u := Usage{Month: month, Calls: binary.BigEndian.Uint64(v[usageCalls:]), TalkTime: talk, TalkSeconds: talk.Seconds()}
	if binary.BigEndian.Uint64(v[usageFlags:])&usageFrozen != 0 {
		u.Sessions = binary.BigEndian.Uint64(v[usageSessions:])
	} else {
		u.Sessions = t.countSessions(customerID, from, from.AddDate(0, 1, 0))
	}
	return u, nil
}

// Usage reads a customer's usage of one month in a read-only transaction.
func (db *DB) Usage(customerID, month string) (Usage, error) {
	var u Usage
	err := db.View(func(tx *Tx) (err error) { u, err = tx.Usage(customerID, month); return err })
	return u, err
}

// FreezeSessionCounts stores the session count of each month of the customer that ended by
// before and is not frozen yet, from the month of its oldest session on: from then on the
// month's count no longer follows the sessions (which expire). Run it before sessions are
// deleted.
func (db *DB) FreezeSessionCounts(ctx context.Context, customerID string, before time.Time) (int, error) {
	if db.pg != nil {
		return db.pgFreezeSessionCounts(ctx, customerID, before)
	}
	prefix := compose(customerID, "")
	var oldest time.Time
	err := db.View(func(tx *Tx) error {
		k, _ := tx.tx.Bucket(bucketSessByCust).Cursor().Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) {
			return nil
		}
		if ms, ok := idTime(k[len(prefix):]); ok {
			oldest = time.UnixMilli(ms).UTC()
		}
		return nil
	})
	if err != nil || oldest.IsZero() {
		return 0, err
	}
	// Which months are over and not frozen yet: usually none, or last month.
	var todo []time.Time
	month, _ := ParseMonth(Month(oldest))
	err = db.View(func(tx *Tx) error {
		for ; !month.AddDate(0, 1, 0).After(before); month = month.AddDate(0, 1, 0) {
			v, err := tx.usageValue(usageKey(customerID, Month(month)))
			if err != nil {
				return err
			}
			if binary.BigEndian.Uint64(v[usageFlags:])&usageFrozen == 0 {
				todo = append(todo, month)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	frozen := 0
	for _, from := range todo {
		if err := ctx.Err(); err != nil {
			return frozen, err
		}
		key := usageKey(customerID, Month(from))
		err := db.Write(ctx, func(tx *Tx) error {
			v, err := tx.usageValue(key)
			if err != nil || binary.BigEndian.Uint64(v[usageFlags:])&usageFrozen != 0 {
				return err
			}
			binary.BigEndian.PutUint64(v[usageSessions:], tx.countSessions(customerID, from, from.AddDate(0, 1, 0)))
			binary.BigEndian.PutUint64(v[usageFlags:], binary.BigEndian.Uint64(v[usageFlags:])|usageFrozen)
			return tx.tx.Bucket(bucketUsage).Put(key, v[:])
		})
		if err != nil {
			return frozen, fmt.Errorf("freeze session count of %s %s: %w", customerID, Month(from), err)
		}
		frozen++
	}
	return frozen, nil
}

// idTime reads the milliseconds in the first ten characters of a time-ordered id.
func idTime(id []byte) (int64, bool) {
	if len(id) < 10 {
		return 0, false
	}
	var ms int64
	for _, c := range id[:10] {
		i := bytes.IndexByte([]byte(crockford), c)
		if i < 0 {
			return 0, false
		}
		ms = ms<<5 | int64(i)
	}
	return ms, true
}

// backfillUsage fills the calls' usage counters and the sessions_called marks from the
// calls of a file written before they existed (sessions are counted from their index).
func (t *Tx) backfillUsage() error {
	return t.tx.Bucket(bucketCalls).ForEach(func(k, v []byte) error {
		var c Call
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("decode call %q: %w", k, err)
		}
		if c.SessionID != "" {
			if err := t.tx.Bucket(bucketSessCalled).Put(compose(c.CustomerID, c.SessionID), nil); err != nil {
				return err
			}
		}
		var talk time.Duration
		if !c.End.IsZero() {
			talk = time.Duration(c.TalkSeconds * float64(time.Second))
		}
		return t.addCallUsage(c.CustomerID, c.Start, 1, talk)
	})
}

// Purged tells whether id belonged to a customer whose data was deleted.
func (t *Tx) Purged(id string) bool {
	if t.pg != nil {
		yes, _ := t.pg.purged(id) // a failed read failed the transaction: its commit tells
		return yes
	}
	return t.tx.Bucket(bucketPurged).Get([]byte(id)) != nil
}

// Purged tells, in a read-only transaction, whether id belonged to a deleted customer.
func (db *DB) Purged(id string) bool {
	var p bool
	db.View(func(tx *Tx) error { p = tx.Purged(id); return nil })
	return p
}

// DeleteNumber removes a number: it is no longer tracked, and may be imported again, by any
// customer. Its assignments stay with the customer that had them (its attribution history,
// read only through that customer) until they expire with their sessions or the customer is
// purged.
func (t *Tx) DeleteNumber(e164 string) error {
	if t.pg != nil {
		return t.pg.deleteNumber(e164)
	}
	if t.tx.Bucket(bucketNumbers).Get([]byte(e164)) == nil {
		return fmt.Errorf("number %s: %w", e164, ErrNotFound)
	}
	return t.tx.Bucket(bucketNumbers).Delete([]byte(e164))
}

// deletePrefix deletes up to limit keys (0: all) of b that start with prefix, calling each
// (if not nil) with every key first; it answers how many it deleted.
func deletePrefix(b bucket, prefix []byte, limit int, each func(k []byte) error) (int, error) {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && (limit <= 0 || len(keys) < limit); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if each != nil {
			if err := each(k); err != nil {
				return 0, err
			}
		}
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// PurgeOptions tune PurgeCustomer.
type PurgeOptions struct {
	// HoldQuarantined keeps the customer's quarantined numbers, without an owner
	// (CustomerID ""), until their quarantine ends: the numbers of an ended contract.
	// Without it every number is deleted and may be imported again at once (a trial that
	// ends without a contract).
	HoldQuarantined bool
	// Batch is the most records one transaction deletes (0: DefaultPurgeBatch).
	Batch int
	// At is the time of the purge, kept with the purged id (zero: now).
	At time.Time
}

// PurgeResult counts what PurgeCustomer deleted.
type PurgeResult struct {
	Calls       int `json:"calls"`
	Recordings  int `json:"recordings"` // recording records; the files are the caller's
	Sessions    int `json:"sessions"`
	Assignments int `json:"assignments"`
	Numbers     int `json:"numbers"`      // deleted
	HeldNumbers int `json:"held_numbers"` // kept in quarantine without an owner
	Channels    int `json:"channels"`
	Tokens      int `json:"tokens"`
	Users       int `json:"users"` // the web app's users, with their sessions and invitations
	// Webhook endpoints, and the messages of the outbox (with their deliveries).
	WebhookEndpoints int `json:"webhook_endpoints"`
	WebhookMessages  int `json:"webhook_messages"`
}

// Counts is r as a map for the audit log and metrics.
func (r PurgeResult) Counts() map[string]int {
	return map[string]int{"calls": r.Calls, "recordings": r.Recordings, "sessions": r.Sessions,
		"assignments": r.Assignments, "numbers": r.Numbers, "held_numbers": r.HeldNumbers,
		"channels": r.Channels, "tokens": r.Tokens, "users": r.Users, "webhook_endpoints": r.WebhookEndpoints,
		"webhook_messages": r.WebhookMessages}
}

// PurgeCustomer deletes every record of a customer: its calls and their recording records,
// sessions, assignments, numbers (or, with HoldQuarantined, detaches its quarantined ones),
// channels, tokens, the web app's users with their sessions and invitations (and the
// operators' sessions that look at the customer forget it), counters, usage, daily rollups,
// the webhook endpoints with the outbox's messages and deliveries, and finally the customer
// itself, whose id is then kept
// as purged (and nothing else of it). The audit log is not touched: it holds ids only and
// has its own retention (PruneAudit). The recording files are not the store's: delete them
// too (recordings.RemoveCustomer).
//
// It runs in transactions of at most opts.Batch deletions each, so that it neither holds
// the write lock long nor builds a huge transaction; the customer record goes last, so a
// purge cut short (a crash, ctx) leaves the customer in place and can simply be run again.
// The caller must have taken the customer out of service first (no new sessions or
// calls); PurgeCustomer answers ErrActiveCalls while calls of the customer are in progress.
// bbolt keeps freed pages as they were: the file does not shrink and deleted bytes stay in
// it until the pages are reused or the file is compacted.
func (db *DB) PurgeCustomer(ctx context.Context, customerID string, opts PurgeOptions) (PurgeResult, error) {
	var res PurgeResult
	if customerID == "" {
		return res, fmt.Errorf("purge customer: %w", ErrNotFound)
	}
	if db.pg != nil {
		return db.pgPurge(ctx, customerID, opts)
	}
	p := purge{db: db, ctx: ctx, customerID: customerID, prefix: compose(customerID, ""), batch: opts.Batch}
	if p.batch <= 0 {
		p.batch = DefaultPurgeBatch
	}
	numbers, err := p.check()
	if err != nil {
		return res, fmt.Errorf("purge customer: %w", err)
	}
	for _, st := range p.plan(&res, numbers, opts.HoldQuarantined) {
		if err := p.run(st); err != nil {
			return res, err
		}
	}
	if err := p.customer(opts.At); err != nil {
		return res, fmt.Errorf("purge customer %s: %w", customerID, err)
	}
	return res, nil
}

// purge is one run of PurgeCustomer.
type purge struct {
	db         *DB
	ctx        context.Context
	customerID string
	prefix     []byte // customer 0x00: the start of every key of the customer's in the buckets it owns
	batch      int
}

// purgeStep is one step of a purge. Most delete the keys of one bucket that start with the
// customer's prefix (bucket), each with what goes with it (with, if set, answers how many
// other records went); n and m, if set, count the keys and those others. A step that deletes
// records no prefix finds has run instead.
type purgeStep struct {
	what   string
	bucket []byte
	with   func(tx *Tx, key []byte) (int, error)
	n, m   *int
	run    func() error
}

// plan is the steps of the purge, in order, counting into res: the calls and what hangs off
// them first, the numbers after their assignments, the tokens and usage last.
func (p *purge) plan(res *PurgeResult, numbers []Number, hold bool) []purgeStep {
	steps := []purgeStep{
		// No event of the customer's is written from here on (outbox.go).
		{what: "webhook subscriptions", bucket: bucketSubscriptions},
		// The calls' events not indexed yet (outboxindex.go), before their calls go.
		{what: "webhook messages not indexed", bucket: bucketFresh, n: &res.WebhookMessages},
		// Calls with their recording records and indexes.
		{what: "calls", bucket: bucketCallsByCust, with: p.deleteCall, n: &res.Calls, m: &res.Recordings},
		// The caller index (calls_by_caller), whose entries went with the calls' records.
		{what: "caller index", bucket: bucketCallsByCaller},
		// Recording records not reached through a call (none are written so, but a record
		// must not outlive its customer).
		{what: "recordings", run: func() error { return p.orphanRecordings(&res.Recordings) }},
		// Sessions and their marks.
		{what: "sessions", bucket: bucketSessByCust, with: p.deleteNamed(bucketSessions), n: &res.Sessions},
		{what: "session marks", bucket: bucketSessCalled},
		// Assignments, then the numbers.
		{what: "assignments", bucket: bucketAssignByTime, n: &res.Assignments},
		{what: "numbers", run: func() error { return p.numbers(numbers, hold, res) }},
		{what: "channels", bucket: bucketChannels, n: &res.Channels},
	}
	for _, kind := range tokenKinds {
		byHash, byCustomer, _ := kind.buckets()
		steps = append(steps, purgeStep{what: kind.String() + "s", bucket: byCustomer, with: p.deleteIndexed(byCustomer, byHash), n: &res.Tokens})
	}
	return append(steps,
		// The web app's users, each with its sessions and invitations; then the operators'
		// sessions that looked at the customer.
		purgeStep{what: "users", bucket: bucketUsersByCust, with: p.deleteUser, n: &res.Users},
		purgeStep{what: "operator sessions", run: p.operatorSessions},
		purgeStep{what: "usage", bucket: bucketUsage},
		purgeStep{what: "rollups", bucket: bucketRollups},
		// The webhooks' outbox: deliveries, the pending ones, the messages, the endpoints
		// (outbox.go).
		purgeStep{what: "webhook deliveries", bucket: bucketDeliveries, with: p.deleteDelivery},
		purgeStep{what: "webhook queue", bucket: bucketQueue, with: p.deleteQueued},
		purgeStep{what: "webhook messages", bucket: bucketMessages, n: &res.WebhookMessages},
		purgeStep{what: "webhook subjects", bucket: bucketMsgSubject},
		purgeStep{what: "webhook endpoints", bucket: bucketEndpoints, n: &res.WebhookEndpoints},
		// Google Ads settings (with the sealed credentials) and upload states (googleads.go).
		purgeStep{what: "google ads", run: p.purgeGoogleAds})
}

// check answers the customer's numbers, if the customer exists and has no call in progress.
func (p *purge) check() ([]Number, error) {
	var numbers []Number
	err := p.db.View(func(tx *Tx) error {
		if _, err := tx.Customer(p.customerID); err != nil {
			return fmt.Errorf("customer %q: %w", p.customerID, err)
		}
		if k, _ := tx.tx.Bucket(bucketCallsActive).Cursor().Seek(p.prefix); k != nil && bytes.HasPrefix(k, p.prefix) {
			return ErrActiveCalls
		}
		return tx.Numbers(func(n Number) error {
			if n.CustomerID == p.customerID {
				numbers = append(numbers, n)
			}
			return nil
		})
	})
	return numbers, err
}

// run runs a step: a prefix step in bounded transactions until one deletes fewer than a
// batch, adding up what each deleted.
func (p *purge) run(st purgeStep) error {
	if st.run != nil {
		return st.run()
	}
	for {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		var n, m int
		err := p.db.Write(p.ctx, func(tx *Tx) error {
			m = 0
			var with func(k []byte) error
			if st.with != nil {
				with = func(k []byte) error {
					dm, err := st.with(tx, k)
					m += dm
					return err
				}
			}
			var err error
			n, err = deletePrefix(tx.tx.Bucket(st.bucket), p.prefix, p.batch, with)
			return err
		})
		if err != nil {
			return fmt.Errorf("purge %s of %s: %w", st.what, p.customerID, err)
		}
		if st.n != nil {
			*st.n += n
		}
		if st.m != nil {
			*st.m += m
		}
		if n < p.batch {
			return nil
		}
	}
}

// deleteCall deletes the call an entry of calls_by_customer names, its recording record and
// its entry in calls_active; it answers how many recording records went.
func (p *purge) deleteCall(tx *Tx, key []byte) (int, error) {
	calls, recs := tx.tx.Bucket(bucketCalls), tx.tx.Bucket(bucketRecordings)
	id, nrec := key[len(p.prefix):], 0
	if raw := calls.Get(id); raw != nil {
		var c struct {
			RecordingID string `json:"recording_id"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return 0, fmt.Errorf("decode call %q: %w", id, err)
		}
		if c.RecordingID != "" && recs.Get([]byte(c.RecordingID)) != nil {
			if err := recs.Delete([]byte(c.RecordingID)); err != nil {
				return 0, err
			}
			nrec++
		}
		if err := calls.Delete(id); err != nil {
			return 0, err
		}
	}
	return nrec, tx.tx.Bucket(bucketCallsActive).Delete(key)
}

// deleteDelivery takes the webhook delivery of a webhook_deliveries key out of the pending
// ones; deleteQueued has the outbox's memory forget a pending one (outboxqueue.go).
func (p *purge) deleteDelivery(tx *Tx, key []byte) (int, error) { return 0, tx.unindexDelivery(key) }
func (p *purge) deleteQueued(tx *Tx, key []byte) (int, error)   { return 0, tx.forgetQueued(key) }

// deleteUser deletes the user an entry of users_by_customer names, with its sessions and
// invitations.
func (p *purge) deleteUser(tx *Tx, key []byte) (int, error) {
	u, err := tx.User(string(key[len(p.prefix):]))
	if errors.Is(err, ErrNotFound) {
		return 0, nil // the entry goes all the same
	}
	if err != nil {
		return 0, err
	}
	return 0, tx.deleteUser(&u)
}

// operatorSessions makes the operators' sessions that look at the customer look at none.
// Sessions are few (one per logged-in browser): one read finds them all.
func (p *purge) operatorSessions() error {
	var hashes [][32]byte
	err := p.db.View(func(tx *Tx) error {
		return tx.tx.Bucket(bucketAppSessions).ForEach(func(k, v []byte) error {
			var s struct {
				CustomerID string `json:"customer_id"`
			}
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("decode app session %x: %w", k, err)
			}
			if s.CustomerID == p.customerID {
				hashes = append(hashes, hashOf(k))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("purge operator sessions of %s: %w", p.customerID, err)
	}
	for len(hashes) > 0 {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		chunk := hashes[:min(p.batch, len(hashes))]
		hashes = hashes[len(chunk):]
		if err := p.db.Write(p.ctx, func(tx *Tx) error {
			for _, h := range chunk {
				s, err := tx.AppSession(h)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if s.CustomerID != p.customerID {
					continue
				}
				s.CustomerID = ""
				if err := tx.PutAppSession(&s); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("purge operator sessions of %s: %w", p.customerID, err)
		}
	}
	return nil
}

// deleteNamed deletes the record of bucket whose key is what follows the prefix in an index
// key (customer 0x00 id).
func (p *purge) deleteNamed(bucket []byte) func(tx *Tx, key []byte) (int, error) {
	return func(tx *Tx, key []byte) (int, error) {
		return 0, tx.tx.Bucket(bucket).Delete(key[len(p.prefix):])
	}
}

// deleteIndexed deletes the record of bucket whose key is the value of an index entry.
func (p *purge) deleteIndexed(index, bucket []byte) func(tx *Tx, key []byte) (int, error) {
	return func(tx *Tx, key []byte) (int, error) {
		return 0, tx.tx.Bucket(bucket).Delete(bytes.Clone(tx.tx.Bucket(index).Get(key)))
	}
}

// orphanRecordings deletes the customer's recording records that no call named, adding
// their number to n.
func (p *purge) orphanRecordings(n *int) error {
	orphans, err := p.db.recordingsOf(p.customerID)
	if err != nil {
		return err
	}
	for len(orphans) > 0 {
		chunk := orphans[:min(p.batch, len(orphans))]
		orphans = orphans[len(chunk):]
		if err := p.db.Write(p.ctx, func(tx *Tx) error {
			for _, id := range chunk {
				if err := tx.tx.Bucket(bucketRecordings).Delete(id); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("purge recordings of %s: %w", p.customerID, err)
		}
		*n += len(chunk)
	}
	return nil
}

// numbers deletes the customer's numbers, or with hold keeps its quarantined ones without
// an owner.
func (p *purge) numbers(numbers []Number, hold bool, res *PurgeResult) error {
	for len(numbers) > 0 {
		chunk := numbers[:min(p.batch, len(numbers))]
		numbers = numbers[len(chunk):]
		var deleted, held int
		err := p.db.Write(p.ctx, func(tx *Tx) error {
			deleted, held = 0, 0
			for _, n := range chunk {
				if hold && n.State == NumberQuarantined {
					n.CustomerID, n.ChannelID = "", ""
					if err := tx.PutNumber(&n); err != nil {
						return err
					}
					held++
					continue
				}
				if err := tx.tx.Bucket(bucketNumbers).Delete([]byte(n.E164)); err != nil {
					return err
				}
				deleted++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("purge numbers of %s: %w", p.customerID, err)
		}
		res.Numbers, res.HeldNumbers = res.Numbers+deleted, res.HeldNumbers+held
	}
	return nil
}

// customer deletes the customer and its counters, and keeps its id as purged at at (zero:
// now).
func (p *purge) customer(at time.Time) error {
	return p.db.Write(p.ctx, func(tx *Tx) error {
		c, err := tx.Customer(p.customerID)
		if err != nil {
			return err
		}
		if err := tx.tx.Bucket(bucketStats).Delete([]byte(p.customerID)); err != nil {
			return err
		}
		if owner := tx.tx.Bucket(bucketSiteKeys).Get([]byte(c.SiteKey)); string(owner) == p.customerID {
			if err := tx.tx.Bucket(bucketSiteKeys).Delete([]byte(c.SiteKey)); err != nil {
				return err
			}
		}
		if err := tx.tx.Bucket(bucketCustomers).Delete([]byte(p.customerID)); err != nil {
			return err
		}
		if err := tx.MarkCompactionDue(); err != nil {
			return err
		}
		if at.IsZero() {
			at = time.Now()
		}
		return tx.tx.Bucket(bucketPurged).Put([]byte(p.customerID), binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())))
	})
}

// recordingsOf lists the ids of a customer's recording records, reading the bucket in
// short read transactions.
func (db *DB) recordingsOf(customerID string) ([][]byte, error) {
	const scan = 10_000
	var out [][]byte
	var after []byte
	for {
		var last []byte
		n := 0
		err := db.View(func(tx *Tx) error {
			c := tx.tx.Bucket(bucketRecordings).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < scan; k, v = c.Next() {
				n++
				last = bytes.Clone(k)
				var r struct {
					CustomerID string `json:"customer_id"`
				}
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("decode recording %q: %w", k, err)
				}
				if r.CustomerID == customerID {
					out = append(out, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil || n < scan {
			return out, err
		}
		after = last
	}
}

// HasActiveCalls tells whether a customer has calls in progress.
func (db *DB) HasActiveCalls(customerID string) (bool, error) {
	if db.pg != nil {
		var busy bool
		err := db.View(func(tx *Tx) (err error) { busy, err = tx.pg.hasActiveCalls(customerID); return err })
		return busy, err
	}
	prefix := compose(customerID, "")
	var busy bool
	err := db.View(func(tx *Tx) error {
		k, _ := tx.tx.Bucket(bucketCallsActive).Cursor().Seek(prefix)
		busy = k != nil && bytes.HasPrefix(k, prefix)
		return nil
	})
	return busy, err
}

// ExpireResult counts what ExpireSessions deleted.
type ExpireResult struct {
	Sessions    int      `json:"sessions"`
	Assignments int      `json:"assignments"`
	SessionIDs  []string `json:"-"` // the sessions deleted, for the audit log
}

// ExpireSessions deletes a customer's sessions made before `before` that never led to a
// call, and its assignments that began before `before` and whose session is gone. Sessions that led to a call are kept (they are the call's attribution). The walk is
// done in short read transactions; only what is deleted is written, in transactions of at
// most batch deletions (0: DefaultPurgeBatch). Session ids must be time-ordered
// (pool.NewID): the walk stops at the first id made at or after `before`.
func (db *DB) ExpireSessions(ctx context.Context, customerID string, before time.Time, batch int) (ExpireResult, error) {
	var res ExpireResult
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	if db.pg != nil {
		return db.pgExpireSessions(ctx, customerID, before, batch)
	}
	prefix := compose(customerID, "")
	cut := idTimePrefix(before.UnixMilli())
	// Sessions: index keys customer 0x00 id, oldest first.
	err := db.sweepKeys(ctx, bucketSessByCust, prefix, batch,
		func(k []byte) bool { return bytes.Compare(k[len(prefix):], cut) < 0 },
		func(tx *Tx, k []byte) bool { return tx.tx.Bucket(bucketSessCalled).Get(k) == nil },
		func(tx *Tx, k []byte) error {
			if err := tx.tx.Bucket(bucketSessions).Delete(k[len(prefix):]); err != nil {
				return err
			}
			return tx.tx.Bucket(bucketSessByCust).Delete(k)
		},
		func(keys [][]byte) {
			for _, k := range keys {
				res.SessionIDs = append(res.SessionIDs, string(k[len(prefix):]))
			}
		})
	res.Sessions = len(res.SessionIDs)
	if err != nil {
		return res, fmt.Errorf("expire sessions of %s: %w", customerID, err)
	}
	// Assignments: keys customer 0x00 from(8) number 0x00 session, oldest first.
	floor := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(before.UnixNano()))
	err = db.sweepKeys(ctx, bucketAssignByTime, prefix, batch,
		func(k []byte) bool { return bytes.Compare(k, floor) < 0 },
		func(tx *Tx, k []byte) bool {
			s := assignmentSession(prefix, k)
			return s != nil && tx.tx.Bucket(bucketSessions).Get(s) == nil
		},
		func(tx *Tx, k []byte) error { return tx.deleteAssignment(prefix, k) },
		func(keys [][]byte) { res.Assignments += len(keys) })
	if err != nil {
		return res, fmt.Errorf("expire assignments of %s: %w", customerID, err)
	}
	return res, nil
}

// sweepKeys walks the keys of bucket that start with prefix, in order, while in(key) holds,
// in read transactions of a bounded length. The keys for which doomed holds are deleted by
// del in write transactions of at most batch keys, which check doomed again (the record may
// have changed since the read); gone is told the keys deleted once their write committed.
// del must only write through tx: a write function may run twice.
func (db *DB) sweepKeys(ctx context.Context, bucket, prefix []byte, batch int, in func(k []byte) bool,
	doomed func(tx *Tx, k []byte) bool, del func(tx *Tx, k []byte) error, gone func(keys [][]byte)) error {
	scan := 10 * batch
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var keys [][]byte
		done := false
		err := db.View(func(tx *Tx) error {
			c := tx.tx.Bucket(bucket).Cursor()
			k, _ := c.Seek(prefix)
			if after != nil {
				if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, _ = c.Next()
				}
			}
			for examined := 0; ; k, _ = c.Next() {
				if k == nil || !bytes.HasPrefix(k, prefix) || !in(k) {
					done = true
					return nil
				}
				if examined == scan || len(keys) == batch {
					return nil
				}
				examined++
				after = bytes.Clone(k)
				if doomed(tx, k) {
					keys = append(keys, bytes.Clone(k))
				}
			}
		})
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			var deleted [][]byte
			err := db.Write(ctx, func(tx *Tx) error {
				deleted = deleted[:0]
				for _, k := range keys {
					if tx.tx.Bucket(bucket).Get(k) == nil || !doomed(tx, k) {
						continue // gone, or changed since the read
					}
					if err := del(tx, k); err != nil {
						return err
					}
					deleted = append(deleted, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
			gone(deleted)
		}
		if done {
			return nil
		}
	}
}

// PruneAudit deletes the audit entries older than before, oldest first, in transactions of
// at most batch deletions (0: DefaultPurgeBatch). It is the audit log's retention, the only
// deletion of entries there is.
func (db *DB) PruneAudit(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	if db.pg != nil {
		return db.pgPruneAudit(ctx, before, batch)
	}
	floor := binary.BigEndian.AppendUint64(nil, uint64(before.UnixNano()))
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := db.Write(ctx, func(tx *Tx) error {
			n = 0
			log := tx.tx.Bucket(bucketAudit)
			var keys, custs [][]byte
			c := log.Cursor()
			for k, v := c.First(); k != nil && len(keys) < batch && bytes.Compare(k[:min(8, len(k))], floor) < 0; k, v = c.Next() {
				var e struct {
					CustomerID string `json:"customer_id"`
				}
				if err := json.Unmarshal(v, &e); err != nil {
					return fmt.Errorf("decode audit entry %x: %w", k, err)
				}
				keys = append(keys, bytes.Clone(k))
				custs = append(custs, []byte(e.CustomerID))
			}
			for i, k := range keys {
				if len(custs[i]) > 0 {
					if err := tx.tx.Bucket(bucketAuditByCust).Delete(append(compose(string(custs[i]), ""), k...)); err != nil {
						return err
					}
				}
				if err := log.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune audit log: %w", err)
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}
