package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Assignments (schema 2). They are kept per customer in the order they began: the key is
// customer 0x00 from(8) number 0x00 session, the value the end of the lease (8 bytes); times
// are big-endian Unix nanoseconds. A new lease is an append at the end of its customer's
// range, so a batch of new sessions dirties the last page of each customer that got one,
// whatever numbers they got. The view by number that attribution needs is package pool's,
// in memory, built from the recent records at start.
//
// A record is renewed in place for at most AssignmentSpan after its From; package pool
// continues a lease renewed after that in a new record (a segment). So every record whose
// lease still ran at a moment `at` began after at - AssignmentSpan - lease: reads of a
// moment are a bounded walk of the records that began in a window before it.
//
// A lease cut short (its number taken over while it ran, or continued in a new segment) is
// not rewritten: the record that cut it names it by its From (CutFrom; the value is then
// until(8) cut-from(8)), and its lease ended at that record's From at the latest. The record
// named began within the same window before it (it ran when it was cut), so a read of a
// window sees both. ExpireSessions, which deletes a record whose session is gone, writes
// such an end into the record it names first. The name holds no session id, so nothing of
// an expired session stays in the records that outlive it.
//
// Schema 1 kept them keyed number 0x00 from(8) session in bucket "assignments": each new
// session then updated a page somewhere in the middle of that bucket (its number's range).
// Open converts such a file (migrateAssignments).

// AssignmentSpan is the longest time from an assignment record's From to its last renewal.
const AssignmentSpan = 30 * time.Minute

var bucketAssignByTime = []byte("assignments_by_time")

func assignmentKey(customerID string, from time.Time, number, sessionID string) []byte {
	k := make([]byte, 0, len(customerID)+1+8+len(number)+1+len(sessionID))
	k = append(k, customerID...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(from.UnixNano()))
	k = append(k, number...)
	k = append(k, 0)
	return append(k, sessionID...)
}

// PutAssignment writes (or, with the same customer, from, number and session, updates) an
// assignment. a.CustomerID must be set: assignments are kept per customer.
func (t *Tx) PutAssignment(a *Assignment) error {
	if a.CustomerID == "" || a.Number == "" {
		return fmt.Errorf("assignment of %q to session %q: no customer or number", a.Number, a.SessionID)
	}
	if t.pg != nil {
		return t.pg.putAssignment(a)
	}
	v := make([]byte, 0, 16)
	v = binary.BigEndian.AppendUint64(v, uint64(a.Until.UnixNano()))
	if !a.CutFrom.IsZero() {
		v = binary.BigEndian.AppendUint64(v, uint64(a.CutFrom.UnixNano()))
	}
	return t.tx.Bucket(bucketAssignByTime).Put(assignmentKey(a.CustomerID, a.From, a.Number, a.SessionID), v)
}

// decodeAssignment reads a record of the customer whose key prefix (customer 0x00) is p.
func decodeAssignment(customerID string, p, k, v []byte) (Assignment, error) {
	rest := k[len(p):]
	if len(rest) < 8+2 || len(v) != 8 && len(v) != 16 {
		return Assignment{}, fmt.Errorf("assignment %q: malformed entry", k)
	}
	number, session, ok := bytes.Cut(rest[8:], []byte{0})
	if !ok {
		return Assignment{}, fmt.Errorf("assignment %q: malformed key", k)
	}
	a := Assignment{
		CustomerID: customerID,
		Number:     string(number),
		SessionID:  string(session),
		From:       time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8]))).UTC(),
		Until:      time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
	}
	if len(v) == 16 {
		a.CutFrom = time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC()
	}
	return a, nil
}

// Assignments walks a customer's assignments that began in [from, to], oldest first, calling
// fn for each until fn returns false. A zero from or to is no bound. The records are as
// written: a record cut short by a later one keeps its Until (see CutFrom).
func (t *Tx) Assignments(customerID string, from, to time.Time, fn func(Assignment) bool) error {
	return t.assignments(customerID, "", from, to, fn)
}

// NumberAssignments is Assignments of one number of the customer.
func (t *Tx) NumberAssignments(customerID, number string, from, to time.Time, fn func(Assignment) bool) error {
	if number == "" {
		return nil
	}
	return t.assignments(customerID, number, from, to, fn)
}

// assignments walks as Assignments does, the records of number only if it is not "".
func (t *Tx) assignments(customerID, number string, from, to time.Time, fn func(Assignment) bool) error {
	if t.pg != nil {
		return t.pg.assignments(customerID, number, from, to, fn)
	}
	p := compose(customerID, "")
	end := append(compose(customerID), 1) // past every key of the customer
	if !to.IsZero() {
		end = binary.BigEndian.AppendUint64(bytes.Clone(p), uint64(to.UnixNano())+1)
	}
	start := p
	if from.After(time.Unix(0, 0)) {
		start = binary.BigEndian.AppendUint64(bytes.Clone(p), uint64(from.UnixNano()))
	}
	var want []byte // number 0x00
	if number != "" {
		want = append([]byte(number), 0)
	}
	c := t.tx.Bucket(bucketAssignByTime).Cursor()
	for k, v := c.Seek(start); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
		if want != nil && (len(k) < len(p)+8 || !bytes.HasPrefix(k[len(p)+8:], want)) {
			continue
		}
		a, err := decodeAssignment(customerID, p, k, v)
		if err != nil {
			return err
		}
		if !fn(a) {
			return nil
		}
	}
	return nil
}

// assignmentSession is the session id in an assignment key of the customer whose key
// prefix is p; nil if the key is malformed.
func assignmentSession(p, k []byte) []byte {
	if len(k) < len(p)+8 {
		return nil
	}
	_, s, ok := bytes.Cut(k[len(p)+8:], []byte{0})
	if !ok {
		return nil
	}
	return s
}

// deleteAssignment deletes the record k of the customer whose key prefix is p. If it names
// a record it cut short, that record's Until is first brought down to k's From: its end
// must not go with k.
func (t *Tx) deleteAssignment(p, k []byte) error {
	b := t.tx.Bucket(bucketAssignByTime)
	v := b.Get(k)
	if len(v) != 16 || len(k) < len(p)+8 {
		return b.Delete(k)
	}
	from := k[len(p) : len(p)+8]
	number, _, ok := bytes.Cut(k[len(p)+8:], []byte{0})
	if !ok {
		return b.Delete(k)
	}
	// The records of the number that began at the cut's From (one, unless two leases
	// began at the same nanosecond); not k itself.
	cut := append(append(append(bytes.Clone(p), v[8:16]...), number...), 0)
	c := b.Cursor()
	for ck, cv := c.Seek(cut); ck != nil && bytes.HasPrefix(ck, cut); ck, cv = c.Next() {
		if bytes.Equal(ck, k) || len(cv) < 8 || bytes.Compare(cv[:8], from) <= 0 {
			continue
		}
		cv = bytes.Clone(cv)
		copy(cv, from)
		if err := b.Put(bytes.Clone(ck), cv); err != nil {
			return err
		}
		break
	}
	return b.Delete(k)
}

// --- schema 1 -> 2

// bucketAssignV1 is schema 1's bucket of assignments, keyed number 0x00 from(8) session.
var bucketAssignV1 = []byte("assignments")

// keyMigrateAfter, in meta while Open converts a schema 1 file, is the last customer whose
// assignments are converted.
var keyMigrateAfter = []byte("migrate_assignments_after")

// migrateBatch bounds the records one conversion transaction writes.
const migrateBatch = 50_000

// migrateAssignments converts the assignments of a schema 1 file to schema 2, a customer at
// a time (each in transactions of at most migrateBatch records, written in key order so
// that they append), then drops the old bucket and writes schema version 2. A conversion
// cut short (a crash) leaves schema 1 and the last customer converted in meta, and goes on
// with the next at the next Open; a build of schema 1 still reads the file meanwhile. A
// record whose number is no longer stored, or has no customer, is dropped (no attribution
// can reach it). A lease that ran longer than AssignmentSpan is written as consecutive
// segments of at most AssignmentSpan each, as package pool writes them.
func (db *DB) migrateAssignments() (int, error) {
	b := db.cur.Load().b
	numbers := map[string][]string{} // customer -> its numbers
	var after string
	if err := b.View(func(tx *bolt.Tx) error {
		after = string(tx.Bucket(bucketMeta).Get(keyMigrateAfter))
		return tx.Bucket(bucketNumbers).ForEach(func(k, v []byte) error {
			var n struct {
				CustomerID string `json:"customer_id"`
			}
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode number %q: %w", k, err)
			}
			if n.CustomerID != "" {
				numbers[n.CustomerID] = append(numbers[n.CustomerID], string(k))
			}
			return nil
		})
	}); err != nil {
		return 0, err
	}
	total := 0
	for _, cu := range slices.Sorted(maps.Keys(numbers)) {
		if cu <= after {
			continue
		}
		n, err := db.migrateCustomer(cu, numbers[cu])
		total += n
		if err != nil {
			return total, fmt.Errorf("convert assignments of %s to schema 2: %w", cu, err)
		}
	}
	err := b.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAssignV1) != nil {
			if err := tx.DeleteBucket(bucketAssignV1); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Delete(keyMigrateAfter); err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, 2))
	})
	return total, err
}

// migrateCustomer converts the schema 1 assignments of a customer's numbers and then notes
// the customer as converted. It answers how many records it wrote.
func (db *DB) migrateCustomer(customerID string, numbers []string) (int, error) {
	b := db.cur.Load().b
	type record struct{ k, v []byte }
	var recs []record
	err := b.View(func(tx *bolt.Tx) error {
		old := tx.Bucket(bucketAssignV1)
		if old == nil {
			return nil
		}
		c := old.Cursor()
		for _, number := range numbers {
			p := append([]byte(number), 0)
			for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
				rest := k[len(p):]
				if len(rest) < 8 || len(v) != 8 {
					return fmt.Errorf("schema 1 assignment %q: malformed entry", k)
				}
				from := time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8])))
				until := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
				for {
					end := until
					if until.Sub(from) > AssignmentSpan {
						end = from.Add(AssignmentSpan)
					}
					recs = append(recs, record{assignmentKey(customerID, from, number, string(rest[8:])),
						binary.BigEndian.AppendUint64(nil, uint64(end.UnixNano()))})
					if !end.Before(until) {
						break
					}
					from = end
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	slices.SortFunc(recs, func(a, b record) int { return bytes.Compare(a.k, b.k) })
	for done := 0; done == 0 || done < len(recs); {
		chunk := recs[done:min(done+migrateBatch, len(recs))]
		err := b.Update(func(tx *bolt.Tx) error {
			dst := tx.Bucket(bucketAssignByTime)
			for _, r := range chunk {
				if err := dst.Put(r.k, r.v); err != nil {
					return err
				}
			}
			if done+len(chunk) < len(recs) {
				return nil
			}
			return tx.Bucket(bucketMeta).Put(keyMigrateAfter, []byte(customerID))
		})
		if err != nil {
			return done, err
		}
		done += max(len(chunk), 1)
	}
	return len(recs), nil
}
