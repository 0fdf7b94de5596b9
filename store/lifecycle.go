package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The data lifecycle: usage counters, deleting a whole customer (PurgeCustomer), sessions
// that never led to a call (ExpireSessions), releasing numbers and pruning the audit log.
//
// Usage counters are kept per customer and month (UTC) in the usage bucket, keyed
// customer 0x00 "yyyy-mm", three big-endian uint64: sessions created, calls started, talk
// time in milliseconds. They are counted as the records are written, so that they outlive
// the records (sessions expire; callers may be erased) and a month's report stays what it
// was.
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

func usageKey(customerID, month string) []byte { return compose(customerID, month) }

// AddUsage adds to a customer's counters of the month of at.
func (t *Tx) AddUsage(customerID string, at time.Time, sessions, calls uint64, talk time.Duration) error {
	key := usageKey(customerID, Month(at))
	u, err := t.usage(key)
	if err != nil {
		return err
	}
	var v [24]byte
	binary.BigEndian.PutUint64(v[0:], u.Sessions+sessions)
	binary.BigEndian.PutUint64(v[8:], u.Calls+calls)
	binary.BigEndian.PutUint64(v[16:], uint64((u.TalkTime + talk).Milliseconds()))
	return t.tx.Bucket(bucketUsage).Put(key, v[:])
}

func (t *Tx) usage(key []byte) (Usage, error) {
	v := t.tx.Bucket(bucketUsage).Get(key)
	if v == nil {
		return Usage{}, nil
	}
	if len(v) != 24 {
		return Usage{}, fmt.Errorf("usage %q: malformed", key)
	}
	talk := time.Duration(binary.BigEndian.Uint64(v[16:])) * time.Millisecond
	return Usage{
		Sessions: binary.BigEndian.Uint64(v[0:]), Calls: binary.BigEndian.Uint64(v[8:]),
		TalkTime: talk, TalkSeconds: talk.Seconds(),
	}, nil
}

// Usage reads a customer's counters of one month ("yyyy-mm"); zero if nothing was counted.
func (t *Tx) Usage(customerID, month string) (Usage, error) {
	u, err := t.usage(usageKey(customerID, month))
	u.Month = month
	return u, err
}

// Usage reads a customer's counters of one month in a read-only transaction.
func (db *DB) Usage(customerID, month string) (Usage, error) {
	var u Usage
	err := db.View(func(tx *Tx) (err error) { u, err = tx.Usage(customerID, month); return err })
	return u, err
}

// backfillUsage fills the usage counters and the sessions_called marks from the sessions
// and calls of a file written before they existed.
func (t *Tx) backfillUsage() error {
	err := t.tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		var s struct {
			CustomerID string    `json:"customer_id"`
			Created    time.Time `json:"created"`
		}
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("decode session %q: %w", k, err)
		}
		return t.AddUsage(s.CustomerID, s.Created, 1, 0, 0)
	})
	if err != nil {
		return err
	}
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
		return t.AddUsage(c.CustomerID, c.Start, 0, 1, talk)
	})
}

// Purged tells whether id belonged to a customer whose data was deleted.
func (t *Tx) Purged(id string) bool { return t.tx.Bucket(bucketPurged).Get([]byte(id)) != nil }

// Purged tells, in a read-only transaction, whether id belonged to a deleted customer.
func (db *DB) Purged(id string) bool {
	var p bool
	db.View(func(tx *Tx) error { p = tx.Purged(id); return nil })
	return p
}

// DeleteNumber removes a number and its assignments: it is no longer tracked, and may be
// imported again, by any customer. It answers how many assignments went with it.
func (t *Tx) DeleteNumber(e164 string) (int, error) {
	if t.tx.Bucket(bucketNumbers).Get([]byte(e164)) == nil {
		return 0, fmt.Errorf("number %s: %w", e164, ErrNotFound)
	}
	n, err := deletePrefix(t.tx.Bucket(bucketAssignments), append([]byte(e164), 0), 0, nil)
	if err != nil {
		return n, err
	}
	return n, t.tx.Bucket(bucketNumbers).Delete([]byte(e164))
}

// deletePrefix deletes up to limit keys (0: all) of b that start with prefix, calling each
// (if not nil) with every key first; it answers how many it deleted.
func deletePrefix(b *bolt.Bucket, prefix []byte, limit int, each func(k []byte) error) (int, error) {
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
}

// Counts is r as a map for the audit log and metrics.
func (r PurgeResult) Counts() map[string]int {
	return map[string]int{"calls": r.Calls, "recordings": r.Recordings, "sessions": r.Sessions,
		"assignments": r.Assignments, "numbers": r.Numbers, "held_numbers": r.HeldNumbers,
		"channels": r.Channels, "tokens": r.Tokens}
}

// PurgeCustomer deletes every record of a customer: its calls and their recording records,
// sessions, assignments, numbers (or, with HoldQuarantined, detaches its quarantined ones),
// channels, tokens, counters, usage and finally the customer itself, whose id is then kept
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
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	prefix := compose(customerID, "")
	var numbers []Number
	err := db.View(func(tx *Tx) error {
		if _, err := tx.Customer(customerID); err != nil {
			return fmt.Errorf("customer %q: %w", customerID, err)
		}
		if k, _ := tx.tx.Bucket(bucketCallsActive).Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return ErrActiveCalls
		}
		return tx.Numbers(func(n Number) error {
			if n.CustomerID == customerID {
				numbers = append(numbers, n)
			}
			return nil
		})
	})
	if err != nil {
		return res, fmt.Errorf("purge customer: %w", err)
	}
	// steps runs step in bounded transactions until it deletes fewer than batch, and adds
	// up what each deleted (n, the records walked; m, others that went with them).
	steps := func(what string, step func(tx *Tx) (n, m int, err error)) (n, m int, err error) {
		for {
			if err := ctx.Err(); err != nil {
				return n, m, err
			}
			var dn, dm int
			if err := db.Write(ctx, func(tx *Tx) (err error) { dn, dm, err = step(tx); return err }); err != nil {
				return n, m, fmt.Errorf("purge %s of %s: %w", what, customerID, err)
			}
			n, m = n+dn, m+dm
			if dn < batch {
				return n, m, nil
			}
		}
	}
	// Calls with their recording records and indexes.
	res.Calls, res.Recordings, err = steps("calls", func(tx *Tx) (int, int, error) {
		calls, recs := tx.tx.Bucket(bucketCalls), tx.tx.Bucket(bucketRecordings)
		active := tx.tx.Bucket(bucketCallsActive)
		nrec := 0
		n, err := deletePrefix(tx.tx.Bucket(bucketCallsByCust), prefix, batch, func(k []byte) error {
			id := k[len(prefix):]
			if raw := calls.Get(id); raw != nil {
				var c struct {
					RecordingID string `json:"recording_id"`
				}
				if err := json.Unmarshal(raw, &c); err != nil {
					return fmt.Errorf("decode call %q: %w", id, err)
				}
				if c.RecordingID != "" && recs.Get([]byte(c.RecordingID)) != nil {
					if err := recs.Delete([]byte(c.RecordingID)); err != nil {
						return err
					}
					nrec++
				}
				if err := calls.Delete(id); err != nil {
					return err
				}
			}
			return active.Delete(k)
		})
		return n, nrec, err
	})
	if err != nil {
		return res, err
	}
	// Recording records not reached through a call (none are written so, but a record
	// must not outlive its customer).
	orphans, err := db.recordingsOf(customerID)
	if err != nil {
		return res, err
	}
	for len(orphans) > 0 {
		chunk := orphans[:min(batch, len(orphans))]
		orphans = orphans[len(chunk):]
		if err := db.Write(ctx, func(tx *Tx) error {
			for _, id := range chunk {
				if err := tx.tx.Bucket(bucketRecordings).Delete(id); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return res, fmt.Errorf("purge recordings of %s: %w", customerID, err)
		}
		res.Recordings += len(chunk)
	}
	// Sessions and their marks.
	res.Sessions, _, err = steps("sessions", func(tx *Tx) (int, int, error) {
		sessions := tx.tx.Bucket(bucketSessions)
		n, err := deletePrefix(tx.tx.Bucket(bucketSessByCust), prefix, batch, func(k []byte) error {
			return sessions.Delete(k[len(prefix):])
		})
		return n, 0, err
	})
	if err == nil {
		_, _, err = steps("session marks", func(tx *Tx) (int, int, error) {
			n, err := deletePrefix(tx.tx.Bucket(bucketSessCalled), prefix, batch, nil)
			return n, 0, err
		})
	}
	if err != nil {
		return res, err
	}
	// Assignments, a number at a time, then the numbers.
	for _, num := range numbers {
		n, _, err := steps("assignments", func(tx *Tx) (int, int, error) {
			n, err := deletePrefix(tx.tx.Bucket(bucketAssignments), append([]byte(num.E164), 0), batch, nil)
			return n, 0, err
		})
		res.Assignments += n
		if err != nil {
			return res, err
		}
	}
	for len(numbers) > 0 {
		chunk := numbers[:min(batch, len(numbers))]
		numbers = numbers[len(chunk):]
		var deleted, held int
		err := db.Write(ctx, func(tx *Tx) error {
			deleted, held = 0, 0
			for _, n := range chunk {
				if opts.HoldQuarantined && n.State == NumberQuarantined {
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
			return res, fmt.Errorf("purge numbers of %s: %w", customerID, err)
		}
		res.Numbers, res.HeldNumbers = res.Numbers+deleted, res.HeldNumbers+held
	}
	// Channels, tokens and usage.
	res.Channels, _, err = steps("channels", func(tx *Tx) (int, int, error) {
		n, err := deletePrefix(tx.tx.Bucket(bucketChannels), prefix, batch, nil)
		return n, 0, err
	})
	if err == nil {
		res.Tokens, _, err = steps("tokens", func(tx *Tx) (int, int, error) {
			tokens, idx := tx.tx.Bucket(bucketTokens), tx.tx.Bucket(bucketTokensByCu)
			n, err := deletePrefix(idx, prefix, batch, func(k []byte) error {
				return tokens.Delete(bytes.Clone(idx.Get(k)))
			})
			return n, 0, err
		})
	}
	if err == nil {
		_, _, err = steps("usage", func(tx *Tx) (int, int, error) {
			n, err := deletePrefix(tx.tx.Bucket(bucketUsage), prefix, batch, nil)
			return n, 0, err
		})
	}
	if err != nil {
		return res, err
	}
	// The customer and its counters last.
	err = db.Write(ctx, func(tx *Tx) error {
		c, err := tx.Customer(customerID)
		if err != nil {
			return err
		}
		if err := tx.tx.Bucket(bucketStats).Delete([]byte(customerID)); err != nil {
			return err
		}
		if owner := tx.tx.Bucket(bucketSiteKeys).Get([]byte(c.SiteKey)); string(owner) == customerID {
			if err := tx.tx.Bucket(bucketSiteKeys).Delete([]byte(c.SiteKey)); err != nil {
				return err
			}
		}
		if err := tx.tx.Bucket(bucketCustomers).Delete([]byte(customerID)); err != nil {
			return err
		}
		at := opts.At
		if at.IsZero() {
			at = time.Now()
		}
		return tx.tx.Bucket(bucketPurged).Put([]byte(customerID), binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())))
	})
	if err != nil {
		return res, fmt.Errorf("purge customer %s: %w", customerID, err)
	}
	return res, nil
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

// ExpireResult counts what ExpireSessions deleted.
type ExpireResult struct {
	Sessions    int      `json:"sessions"`
	Assignments int      `json:"assignments"`
	SessionIDs  []string `json:"-"` // the sessions deleted, for the audit log
}

// ExpireSessions deletes a customer's sessions made before `before` that never led to a
// call, and the assignments of its numbers that began before `before` and whose session is
// gone. Sessions that led to a call are kept (they are the call's attribution). It works in
// transactions of at most batch deletions (0: DefaultPurgeBatch). Session ids must be
// time-ordered (pool.NewID): the walk stops at the first id made at or after `before`.
func (db *DB) ExpireSessions(ctx context.Context, customerID string, before time.Time, batch int) (ExpireResult, error) {
	var res ExpireResult
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	prefix := compose(customerID, "")
	cut := idTimePrefix(before.UnixMilli())
	scan := 10 * batch
	var after []byte // the last index key examined
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var ids []string
		var last []byte
		done := false
		err := db.Write(ctx, func(tx *Tx) error {
			ids, last, done = ids[:0], nil, false
			idx := tx.tx.Bucket(bucketSessByCust)
			called := tx.tx.Bucket(bucketSessCalled)
			c := idx.Cursor()
			k, _ := c.Seek(prefix)
			if after != nil {
				if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, _ = c.Next()
				}
			}
			var keys [][]byte
			examined := 0
			for ; ; k, _ = c.Next() {
				if k == nil || !bytes.HasPrefix(k, prefix) || bytes.Compare(k[len(prefix):], cut) >= 0 {
					done = true
					break
				}
				if examined == scan || len(keys) == batch {
					break
				}
				examined++
				last = bytes.Clone(k)
				if called.Get(k) == nil {
					keys = append(keys, bytes.Clone(k))
				}
			}
			for _, k := range keys {
				if err := tx.tx.Bucket(bucketSessions).Delete(k[len(prefix):]); err != nil {
					return err
				}
				if err := idx.Delete(k); err != nil {
					return err
				}
				ids = append(ids, string(k[len(prefix):]))
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("expire sessions of %s: %w", customerID, err)
		}
		res.Sessions += len(ids)
		res.SessionIDs = append(res.SessionIDs, ids...)
		if last != nil {
			after = last
		}
		if done {
			break
		}
	}
	var numbers []string
	if err := db.View(func(tx *Tx) error {
		return tx.Numbers(func(n Number) error {
			if n.CustomerID == customerID && n.Kind == KindPool {
				numbers = append(numbers, n.E164)
			}
			return nil
		})
	}); err != nil {
		return res, err
	}
	floor := binary.BigEndian.AppendUint64(nil, uint64(before.UnixNano()))
	for _, num := range numbers {
		np := append([]byte(num), 0)
		var after []byte
		for {
			var n int
			var last []byte
			done := false
			err := db.Write(ctx, func(tx *Tx) error {
				n, last, done = 0, nil, false
				b := tx.tx.Bucket(bucketAssignments)
				sessions := tx.tx.Bucket(bucketSessions)
				c := b.Cursor()
				k, _ := c.Seek(np)
				if after != nil {
					if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
						k, _ = c.Next()
					}
				}
				var keys [][]byte
				examined := 0
				for ; ; k, _ = c.Next() {
					if k == nil || !bytes.HasPrefix(k, np) || len(k) < len(np)+8 || bytes.Compare(k[len(np):len(np)+8], floor) >= 0 {
						done = true
						break
					}
					if examined == scan || len(keys) == batch {
						break
					}
					examined++
					last = bytes.Clone(k)
					if sessions.Get(k[len(np)+8:]) == nil {
						keys = append(keys, bytes.Clone(k))
					}
				}
				for _, k := range keys {
					if err := b.Delete(k); err != nil {
						return err
					}
				}
				n = len(keys)
				return nil
			})
			if err != nil {
				return res, fmt.Errorf("expire assignments of %s: %w", num, err)
			}
			res.Assignments += n
			if last != nil {
				after = last
			}
			if done {
				break
			}
		}
	}
	return res, nil
}

// PruneAudit deletes the audit entries older than before, oldest first, in transactions of
// at most batch deletions (0: DefaultPurgeBatch). It is the audit log's retention, the only
// deletion of entries there is.
func (db *DB) PruneAudit(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = DefaultPurgeBatch
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
