package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbox's index writes. The transaction that writes a call's event puts its message
// in webhook_fresh and nothing else of the outbox: the index write, a write of its own for
// every message written since the one before, at most OutboxIndexDelay after the message's
// commit, moves it into webhook_messages and puts its subject entry (webhook_subjects) and
// a queue entry per endpoint that wants it (webhook_queue). A commit of bbolt rewrites the
// pages it touched in every bucket it touched, the leaf and every branch above it: one
// bucket instead of three in the call's commit is what the index write saves, and a small
// one instead of webhook_messages, whose tree grows with the messages kept (a leaf and two
// branch pages a commit with thirty thousand messages, three with half a million), is
// what webhook_fresh saves: it holds about a hundred milliseconds of messages, a leaf and
// its one branch. The index write puts the entries of about a hundred messages with the
// pages of a few.
//
// Which messages are not indexed yet is kept in memory (outboxState.unindexed) and on disk
// by a cursor (meta: webhook_indexed_to), the greatest message id of an index write: every
// message with an id up to it is indexed. Message ids grow in the order of the commits
// (newMessageID: the committer makes them one at a time, and Open sets the clock of the ids
// past the cursor), so the messages a crash left unindexed are those in webhook_fresh and
// those after the cursor in webhook_messages, and Open indexes them before anything reads
// the queue (recoverOutboxIndex). An index write leaves out a message that is gone (a
// caller's erasure, a purge; a staged event whose call is gone is dropped: a purge deletes
// the staged ones first, PurgeCustomer) and a delivery that is
// pending or has a record already (a replay got there first, or the write is made twice):
// indexing is idempotent. The endpoints a message goes to are those subscribed to its type
// when it is indexed: an endpoint made or changed within those milliseconds gets what it
// wants from then on.
//
// Until it is indexed a message is not delivered, listed among the deliveries, or counted
// in the queue's depth: delivery starts up to OutboxIndexDelay later. A caller's erasure
// (deleteSubjectMessages) indexes first, so that it finds every message of the call.

// OutboxIndexDelay is how long after the first unindexed message's commit the index write
// is made (tests change it: outboxState.indexDelay).
const OutboxIndexDelay = 100 * time.Millisecond

var keyOutboxIndexed = []byte("webhook_indexed_to")

// unindexed is a message whose index entries are not written yet.
type unindexed struct {
	customerID, id, subject string
	typ                     EventType
	created                 int64 // Unix nanoseconds: a new delivery is due then
}

// indexOutbox writes the index entries of every committed message not indexed yet and of
// those this transaction wrote so far, and moves the cursor; the commit takes them out of
// the outbox's memory.
func (t *Tx) indexOutbox() error {
	if t.db == nil {
		return nil
	}
	db := t.db
	db.outbox.mu.Lock()
	list := slices.Clone(db.outbox.unindexed)
	db.outbox.mu.Unlock()
	fresh := t.outbox.fresh
	if len(list) == 0 && len(fresh) == 0 {
		return nil
	}
	if err := t.indexMessages(list); err != nil {
		return err
	}
	if err := t.indexMessages(fresh); err != nil {
		return err
	}
	t.outbox.indexedN = max(t.outbox.indexedN, len(list))
	t.outbox.freshIndexed = len(fresh)
	t.onCommitOutbox()
	return nil
}

// indexMessages writes the index entries of messages and moves the cursor to the greatest
// of their ids.
func (t *Tx) indexMessages(list []unindexed) error {
	if len(list) == 0 {
		return nil
	}
	msgs, subs, fresh, calls := t.appending(bucketMessages), t.tx.Bucket(bucketSubscriptions), t.tx.Bucket(bucketFresh), t.tx.Bucket(bucketCalls)
	subjects, queue, deliveries := t.appending(bucketMsgSubject), t.appending(bucketQueue), t.tx.Bucket(bucketDeliveries)
	var last string
	for i := range list {
		m := &list[i]
		last = max(last, m.id)
		key := compose(m.customerID, m.id)
		if v := fresh.Get(key); v != nil {
			// A call's event, staged by its write, joins the messages; unless its call is
			// gone meanwhile (a purge deletes the calls before the messages: what it left
			// staged is dropped here).
			gone := calls.Get([]byte(m.subject)) == nil
			if !gone {
				if err := msgs.Put(key, bytes.Clone(v)); err != nil {
					return err
				}
			}
			if err := fresh.Delete(key); err != nil {
				return err
			}
			if gone {
				continue
			}
		} else if msgs.Get(key) == nil {
			continue // deleted before it was indexed
		}
		if m.subject != "" {
			if err := subjects.Put(compose(m.customerID, m.subject, m.id), nil); err != nil {
				return err
			}
		}
		v := subs.Get(compose(m.customerID, ""))
		if len(v) < subsHeader || v[0] != subsVersion {
			continue
		}
		err := eachSubscriber(v, m.typ.bit(), func(ep []byte) error {
			key := compose(m.customerID, string(ep), m.id)
			if queue.Get(key) != nil || deliveries.Get(key) != nil {
				return nil
			}
			if err := queue.Put(key, encodeQueued(m.created, 0, m.subject)); err != nil {
				return err
			}
			t.queueOp(queueOp{kind: qAdd, ref: EndpointRef{m.customerID, string(ep)}, id: m.id, subject: m.subject, next: m.created})
			t.dueAt(m.customerID, string(ep))
			return nil
		})
		if err != nil {
			return err
		}
	}
	meta := t.tx.Bucket(bucketMeta)
	if cur := meta.Get(keyOutboxIndexed); cur != nil && string(cur) >= last {
		return nil
	}
	return meta.Put(keyOutboxIndexed, []byte(last))
}

// IndexOutbox writes now the index entries of the messages not indexed yet (the outbox's
// own writer does so OutboxIndexDelay after their commit): once it returns, every message
// committed before it is in the queue.
func (db *DB) IndexOutbox(ctx context.Context) error {
	if db.pg != nil {
		return nil // PostgreSQL indexes a message's rows as it inserts them (pg_outbox.go)
	}
	db.outbox.mu.Lock()
	n := len(db.outbox.unindexed)
	db.outbox.mu.Unlock()
	if n == 0 {
		return nil
	}
	return db.Write(ctx, func(t *Tx) error { return t.indexOutbox() })
}

// kickIndexer tells the index writer that there are messages to index.
func (db *DB) kickIndexer() {
	select {
	case db.outbox.indexKick <- struct{}{}:
	default:
	}
}

// startOutbox indexes the messages a crash left unindexed and starts the index writer; Open
// calls it before the committer starts.
func (db *DB) startOutbox() error {
	err := db.cur.Load().b.Update(func(tx *bolt.Tx) error {
		// Message ids take their sequence from webhook_fresh, which files written before it
		// took from webhook_messages: it goes on from there.
		if f, m := tx.Bucket(bucketFresh), tx.Bucket(bucketMessages); f != nil && m != nil && f.Sequence() < m.Sequence() {
			if err := f.SetSequence(m.Sequence()); err != nil {
				return err
			}
		}
		n, ms, err := recoverOutboxIndex(tx)
		if n > 0 {
			db.log.Info("store indexed the webhook messages written before a stop", "messages", n)
		}
		db.outbox.ms.Store(ms)
		return err
	})
	if err != nil {
		return fmt.Errorf("index the webhook outbox: %w", err)
	}
	db.outbox.indexKick, db.outbox.indexDone = make(chan struct{}, 1), make(chan struct{})
	db.outbox.indexDelay.Store(int64(OutboxIndexDelay))
	go db.runOutboxIndexer()
	return nil
}

// stopOutbox writes the index entries still to write, before Close stops the committer.
func (db *DB) stopOutbox() {
	if err := db.IndexOutbox(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
		db.log.Error("store could not index the webhook outbox", "err", err)
	}
}

// runOutboxIndexer makes the index writes: OutboxIndexDelay after a commit of messages, one
// write for every message committed until then. It exits when the store closes.
func (db *DB) runOutboxIndexer() {
	defer close(db.outbox.indexDone)
	for {
		select {
		case <-db.outbox.indexKick:
		case <-db.stop:
			return
		}
		if delay := time.Duration(db.outbox.indexDelay.Load()); delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-db.stop:
				t.Stop()
				return
			}
		}
		if err := db.IndexOutbox(context.Background()); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			db.log.Error("store could not index the webhook outbox", "err", err)
			db.kickIndexer() // again after the delay
		}
	}
}

// recoverOutboxIndex indexes the messages after the cursor, which a crash left unindexed,
// in a transaction of Open (before the queue is read); it answers how many, and the
// milliseconds of the greatest message id it knows of (the cursor's or one after it), that
// the ids made from now on follow.
func recoverOutboxIndex(tx *bolt.Tx) (int, int64, error) {
	var list []unindexed
	// The calls' events staged in webhook_fresh are all unindexed.
	fc := tx.Bucket(bucketFresh).Cursor()
	var freshMS int64
	for k, v := fc.First(); k != nil; k, v = fc.Next() {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			continue
		}
		_, created, typ, subject, _, err := splitMessage(v)
		if err != nil {
			return 0, 0, fmt.Errorf("webhook message %q: %w", k, err)
		}
		list = append(list, unindexed{customerID: string(k[:i]), id: string(k[i+1:]), subject: subject, typ: typ, created: created})
		if ms, ok := idTime(k[i+1:]); ok {
			freshMS = max(freshMS, ms)
		}
	}
	cur := tx.Bucket(bucketMeta).Get(keyOutboxIndexed)
	if cur == nil && len(list) == 0 {
		// A file written before index writes, or without any: every message is indexed.
		return 0, 0, nil
	}
	cur = bytes.Clone(cur)
	c := tx.Bucket(bucketMessages).Cursor()
	for k, _ := c.First(); k != nil; {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			k, _ = c.Next()
			continue
		}
		customer := string(k[:i])
		prefix := bytes.Clone(k[:i+1])
		for mk, v := c.Seek(append(bytes.Clone(prefix), cur...)); mk != nil && bytes.HasPrefix(mk, prefix); mk, v = c.Next() {
			id := string(mk[len(prefix):])
			if id <= string(cur) {
				continue
			}
			_, created, typ, subject, _, err := splitMessage(v)
			if err != nil {
				return 0, 0, fmt.Errorf("webhook message %q: %w", mk, err)
			}
			list = append(list, unindexed{customerID: customer, id: id, subject: subject, typ: typ, created: created})
		}
		k, _ = c.Seek(append([]byte(customer), 1)) // the next customer's first
	}
	slices.SortFunc(list, func(a, b unindexed) int { return cmpString(a.id, b.id) })
	t := &Tx{tx: boltTx{tx: tx}}
	if err := t.indexMessages(list); err != nil {
		return 0, 0, err
	}
	ms, _ := idTime(cur)
	ms = max(ms, freshMS)
	if len(list) > 0 {
		if m, ok := idTime([]byte(list[len(list)-1].id)); ok {
			ms = max(ms, m)
		}
	}
	return len(list), ms, nil
}
