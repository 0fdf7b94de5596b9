package store

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// The outbox's queue: which deliveries are pending, and which of them are due.
//
// On disk a pending delivery is one key of webhook_queue, customer 0x00 endpoint 0x00
// message id, whose value (encodeQueued) says when it is due and how many attempts it had;
// the message's write makes it (next: the message's time), a retry rewrites it and the
// delivery's settling deletes it. Which pending deliveries are due now, and which wait for an
// earlier message of their subject, is kept in memory per endpoint (epQueue) and rebuilt
// from webhook_queue: the messages of a subject reach an endpoint in id order because a
// delivery whose subject has an earlier pending delivery to that endpoint is held back
// until that one is settled. The message's own write touches only the rightmost leaf of
// webhook_queue (ids grow), and nothing else of the queue.
//
// Memory holds at most queueWindow pending deliveries of an endpoint: every pending one up
// to an id (loadedTo), or all of them (complete). Commits add the deliveries they make to
// the memory of an endpoint only within that range; the others are read from webhook_queue
// when the endpoint's memory runs low (refill), in the committer between two commits, so
// that no commit falls between the read and the range it covers. A subject's earlier
// pending deliveries have lower ids, so they are always in memory before a later one.
// Besides that window memory may hold deliveries after it that were due when read and had
// no earlier pending delivery of their subject on disk (scanTail): a later one of their
// subject is not taken until they are settled.

// queueWindow is how many pending deliveries of an endpoint memory holds at most (about 150
// bytes each) in its window; refillChunk how many one refill reads (in the committer: about
// a millisecond). Tests make them small.
var (
	queueWindow = 20000
	refillChunk = 2000
)

// A window full of deliveries that wait for their retries (an endpoint down for hours) would
// hold back the newer ones on disk until it shrinks. So when nothing in memory is due, at
// most every tailEvery, the pending deliveries after the window are read (scanTail) and those
// due now whose call has no earlier pending delivery to the endpoint (they are next in their
// call's order) are taken into memory besides the window, up to queueWindow more.
var tailEvery = time.Second

var bucketQueue = []byte("webhook_queue")

// The queue value: a version byte, when it is due (big-endian Unix nanoseconds; an attempt's
// result names this time, DeliveryResult.Scheduled), the attempts made (uint32), the subject.
const queuedV1 = 1

func encodeQueued(next int64, attempts int, subject string) []byte {
	v := make([]byte, 0, 13+len(subject))
	v = append(v, queuedV1)
	v = binary.BigEndian.AppendUint64(v, uint64(next))
	v = binary.BigEndian.AppendUint32(v, uint32(attempts))
	return append(v, subject...)
}

func decodeQueued(v []byte) (next int64, attempts int, subject string, err error) {
	if len(v) < 13 || v[0] != queuedV1 {
		return 0, 0, "", fmt.Errorf("webhook queue value %q: malformed", v)
	}
	return int64(binary.BigEndian.Uint64(v[1:])), int(binary.BigEndian.Uint32(v[9:])), string(v[13:]), nil
}

// queued is a pending delivery in memory.
type queued struct {
	id, subject string
	next        int64 // as on disk: the attempt is due then, unless it waits
	due         int64 // when it is due in memory; 0 while it waits for its subject
	attempts    int
	hi          int // its index in the due heap; -1 when not in it
}

// dueHeap orders the deliveries that do not wait by due time, then id.
type dueHeap []*queued

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].id < h[j].id
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].hi = i; h[j].hi = j }
func (h *dueHeap) Push(x any)   { e := x.(*queued); e.hi = len(*h); *h = append(*h, e) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.hi = -1
	return e
}

// epQueue is what memory holds of an endpoint's pending deliveries.
type epQueue struct {
	byID     map[string]*queued
	due      dueHeap
	subjects map[string][]*queued // a subject's pending deliveries in id order; the first does not wait
	loadedTo string               // every pending delivery with an id up to it is here
	maxID    string
	complete bool  // every pending delivery is here
	tailRead int64 // when the deliveries after the window were last read (scanTail)
}

// dueBy tells whether a delivery in memory is due at now.
func (q *epQueue) dueBy(now int64) bool { return q.due.Len() > 0 && q.due[0].due <= now }

func newEpQueue() *epQueue {
	return &epQueue{byID: map[string]*queued{}, subjects: map[string][]*queued{}}
}

// holds tells whether memory is to hold a pending delivery with this id.
func (q *epQueue) holds(id string) bool { return q.complete || id <= q.loadedTo }

// insert adds a pending delivery that is not in memory; it waits when its subject has an
// earlier pending delivery.
func (q *epQueue) insert(e *queued) {
	q.byID[e.id] = e
	q.maxID = max(q.maxID, e.id)
	e.hi, e.due = -1, e.next
	if e.subject != "" {
		list := q.subjects[e.subject]
		i, _ := slices.BinarySearchFunc(list, e.id, func(x *queued, id string) int { return cmpString(x.id, id) })
		q.subjects[e.subject] = slices.Insert(list, i, e)
		if i > 0 {
			e.due = 0
			return
		}
	}
	heap.Push(&q.due, e)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// remove takes a delivery out of memory; the next delivery of its subject is due at now. It
// answers whether one became due.
func (q *epQueue) remove(id string, now int64) bool {
	e := q.byID[id]
	if e == nil {
		return false
	}
	delete(q.byID, id)
	if e.hi >= 0 {
		heap.Remove(&q.due, e.hi)
	}
	if e.subject == "" {
		return false
	}
	list := q.subjects[e.subject]
	if i := slices.Index(list, e); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(q.subjects, e.subject)
		return false
	}
	q.subjects[e.subject] = list
	if head := list[0]; head.hi < 0 {
		head.due = max(now, 1)
		heap.Push(&q.due, head)
		return true
	}
	return false
}

// reschedule sets when a delivery in memory is due (a retry, a replay); one that waits for
// its subject keeps waiting.
func (q *epQueue) reschedule(id string, next int64, attempts int) {
	e := q.byID[id]
	if e == nil {
		return
	}
	e.next, e.attempts = next, attempts
	if e.hi >= 0 {
		e.due = next
		heap.Fix(&q.due, e.hi)
	}
}

// The changes a transaction makes to the queue, applied to memory when it commits.
type queueOpKind uint8

const (
	qAdd        queueOpKind = iota + 1 // a delivery became pending
	qReschedule                        // a pending delivery's time changed
	qRemove                            // a pending delivery was settled or deleted
	qDrop                              // every pending delivery of the endpoint was deleted
)

type queueOp struct {
	kind     queueOpKind
	ref      EndpointRef
	id       string
	subject  string
	next     int64
	attempts int
}

// queueOp has the commit of t apply op to the memory of the queue.
func (t *Tx) queueOp(op queueOp) {
	if t.db == nil {
		return
	}
	t.outbox.ops = append(t.outbox.ops, op)
	t.onCommitOutbox()
}

// onCommitOutbox has the commit of t apply its queue changes and tell the outbox's readers.
func (t *Tx) onCommitOutbox() {
	if t.outbox.registered {
		return
	}
	t.outbox.registered = true
	db := t.db
	t.tx.tx.OnCommit(func() {
		now := db.now().UnixNano()
		db.outbox.mu.Lock()
		if n := t.outbox.indexedN; n > 0 {
			db.outbox.unindexed = db.outbox.unindexed[:copy(db.outbox.unindexed, db.outbox.unindexed[n:])]
		}
		fresh := t.outbox.fresh[t.outbox.freshIndexed:]
		db.outbox.unindexed = append(db.outbox.unindexed, fresh...)
		for _, op := range t.outbox.ops {
			if db.outbox.apply(&op, now) {
				t.outbox.due = append(t.outbox.due, op.ref)
			}
		}
		for _, r := range t.outbox.due {
			db.outbox.due[r] = struct{}{}
		}
		db.outbox.mu.Unlock()
		if len(fresh) > 0 {
			db.kickIndexer()
		}
		if len(t.outbox.ops) > 0 || len(t.outbox.due) > 0 {
			db.signalOutbox()
		}
	})
}

// apply makes a change to memory (outbox.mu held); it answers whether a delivery of op's
// endpoint became due.
func (s *outboxState) apply(op *queueOp, now int64) bool {
	q := s.queues[op.ref]
	switch op.kind {
	case qAdd:
		if q == nil {
			return true // read from disk when the endpoint is first looked at
		}
		if e := q.byID[op.id]; e != nil {
			q.reschedule(op.id, op.next, op.attempts)
			return true
		}
		if !q.holds(op.id) {
			return true
		}
		if q.complete && len(q.byID) >= queueWindow && op.id > q.maxID {
			q.complete, q.loadedTo = false, q.maxID // the rest stays on disk until there is room
			return true
		}
		q.insert(&queued{id: op.id, subject: op.subject, next: op.next, attempts: op.attempts})
		return true
	case qReschedule:
		if q != nil {
			q.reschedule(op.id, op.next, op.attempts)
		}
		return true
	case qRemove:
		return q != nil && q.remove(op.id, now)
	case qDrop:
		delete(s.queues, op.ref)
	}
	return false
}

// refill reads an endpoint's pending deliveries from disk into memory, at most refillChunk,
// in the committer; it answers the endpoint's memory.
func (db *DB) refill(ref EndpointRef) error {
	return db.inCommitter(context.Background(), func() error {
		return db.View(func(tx *Tx) error {
			db.outbox.mu.Lock()
			defer db.outbox.mu.Unlock()
			q := db.outbox.queues[ref]
			if q == nil {
				q = newEpQueue()
				db.outbox.queues[ref] = q
			}
			if q.complete {
				return nil
			}
			prefix := compose(ref.CustomerID, ref.EndpointID, "")
			from := append(bytes.Clone(prefix), q.loadedTo...)
			if q.loadedTo != "" {
				from = append(from, 0) // after it
			}
			n := 0
			c := tx.tx.Bucket(bucketQueue).Cursor()
			for k, v := c.Seek(from); ; k, v = c.Next() {
				if k == nil || !bytes.HasPrefix(k, prefix) {
					q.complete = true
					return nil
				}
				if n == refillChunk || len(q.byID) >= queueWindow {
					return nil
				}
				next, attempts, subject, err := decodeQueued(v)
				if err != nil {
					return err
				}
				id := string(k[len(prefix):])
				if q.byID[id] == nil {
					q.insert(&queued{id: id, subject: subject, next: next, attempts: attempts})
				}
				q.loadedTo = id
				n++
			}
		})
	})
}

// scanTail reads an endpoint's pending deliveries after its window and takes into memory
// those due at now that are next in their call's order (no earlier message of the call is
// pending to the endpoint), at most refillChunk, while memory holds under twice
// queueWindow; in the committer, as refill.
func (db *DB) scanTail(ref EndpointRef, now int64) error {
	return db.inCommitter(context.Background(), func() error {
		return db.View(func(tx *Tx) error {
			db.outbox.mu.Lock()
			defer db.outbox.mu.Unlock()
			q := db.outbox.queues[ref]
			if q == nil || q.complete {
				return nil
			}
			prefix := compose(ref.CustomerID, ref.EndpointID, "")
			from := append(append(bytes.Clone(prefix), q.loadedTo...), 0)
			queue, subjects := tx.tx.Bucket(bucketQueue), tx.tx.Bucket(bucketMsgSubject)
			n := 0
			c := queue.Cursor()
			for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, prefix) && n < refillChunk && len(q.byID) < 2*queueWindow; k, v = c.Next() {
				id := string(k[len(prefix):])
				if q.byID[id] != nil {
					continue
				}
				next, attempts, subject, err := decodeQueued(v)
				if err != nil {
					return err
				}
				if next > now || subject != "" && earlierPending(queue, subjects, ref, subject, id) {
					continue
				}
				q.insert(&queued{id: id, subject: subject, next: next, attempts: attempts})
				n++
			}
			if n == refillChunk {
				q.tailRead = 0 // there may be more: the next look reads on
			}
			return nil
		})
	})
}

// earlierPending tells whether a message of the subject made before the message id has a
// delivery pending to the endpoint.
func earlierPending(queue, subjects bucket, ref EndpointRef, subject, id string) bool {
	sp := compose(ref.CustomerID, subject, "")
	c := subjects.Cursor()
	for k, _ := c.Seek(sp); k != nil && bytes.HasPrefix(k, sp); k, _ = c.Next() {
		eid := string(k[len(sp):])
		if eid >= id {
			return false
		}
		if queue.Get(compose(ref.CustomerID, ref.EndpointID, eid)) != nil {
			return true
		}
	}
	return false
}

// queueDue answers at most limit of an endpoint's deliveries due at now, the earliest first,
// leaving out those skip holds, and when the first one not answered is due (0: none).
func (db *DB) queueDue(ref EndpointRef, now int64, limit int, skip func(string) bool) ([]queued, int64, error) {
	db.outbox.mu.Lock()
	q := db.outbox.queues[ref]
	low := q == nil || !q.complete && len(q.byID) < queueWindow/2
	stalled := !low && !q.complete && !q.dueBy(now) && now-q.tailRead >= int64(tailEvery)
	if stalled {
		q.tailRead = now
	}
	db.outbox.mu.Unlock()
	if low {
		if err := db.refill(ref); err != nil {
			return nil, 0, fmt.Errorf("read the webhook queue of %q: %w", ref.EndpointID, err)
		}
	}
	if stalled {
		if err := db.scanTail(ref, now); err != nil {
			return nil, 0, fmt.Errorf("read the webhook queue of %q: %w", ref.EndpointID, err)
		}
	}
	db.outbox.mu.Lock()
	defer db.outbox.mu.Unlock()
	q = db.outbox.queues[ref]
	if q == nil {
		return nil, 0, nil
	}
	var out []queued
	var next int64
	var popped []*queued
	for q.due.Len() > 0 {
		e := heap.Pop(&q.due).(*queued)
		popped = append(popped, e)
		if skip(e.id) {
			continue
		}
		if e.due > now || len(out) == limit {
			next = e.due
			break
		}
		out = append(out, *e)
	}
	for _, e := range popped {
		heap.Push(&q.due, e)
	}
	return out, next, nil
}

// forget takes deliveries that are no longer on disk out of memory.
func (db *DB) forget(ref EndpointRef, ids []string) {
	now := db.now().UnixNano()
	db.outbox.mu.Lock()
	q := db.outbox.queues[ref]
	some := false
	for _, id := range ids {
		if q != nil && q.remove(id, now) {
			some = true
		}
	}
	if some {
		db.outbox.due[ref] = struct{}{}
	}
	db.outbox.mu.Unlock()
	if some {
		db.signalOutbox()
	}
}

// waiting tells whether memory holds a pending delivery that waits for its subject.
func (db *DB) waiting(ref EndpointRef, id string) bool {
	if db == nil {
		return false
	}
	db.outbox.mu.Lock()
	defer db.outbox.mu.Unlock()
	if q := db.outbox.queues[ref]; q != nil {
		if e := q.byID[id]; e != nil {
			return e.hi < 0
		}
	}
	return false
}

// timeOf is a queue time as a time (UTC).
func timeOf(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// forgetQueued has the commit of t take the pending delivery of a webhook_queue key, which
// the caller deletes, out of memory.
func (t *Tx) forgetQueued(key []byte) error {
	if customerID, endpointID, messageID, ok := splitDeliveryKey(key); ok {
		t.queueOp(queueOp{kind: qRemove, ref: EndpointRef{customerID, endpointID}, id: messageID})
	}
	return nil
}
