package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Write transactions reach bbolt through these thin wrappers (Tx.tx), so that while a
// compaction copies the file every change a commit makes can be logged and then applied to
// the copy (compact.go). They offer what the store's code uses of bbolt's Tx, Bucket and
// Cursor, with the same names, and nothing that would change the file unlogged: there is
// no CreateBucket, no nested bucket and no Cursor.Delete. Buckets are top-level, found by
// name.

// boltTx is a bbolt transaction whose changes go to log when log is not nil.
type boltTx struct {
	tx  *bolt.Tx
	log *opLog
}

// Bucket is the top-level bucket called name; its b is nil if there is none.
func (t boltTx) Bucket(name []byte) bucket {
	if t.tx == nil {
		// A transaction of the PostgreSQL backend, in an operation it lacks (pg.go).
		panic(fmt.Sprintf("store: an operation on bucket %s is not implemented on PostgreSQL yet (store.PostgresMissing)", name))
	}
	return bucket{b: t.tx.Bucket(name), name: name, log: t.log}
}

// bucket is a top-level bbolt bucket that logs its changes.
type bucket struct {
	b    *bolt.Bucket
	name []byte
	log  *opLog
}

func (b bucket) Put(key, value []byte) error {
	if err := b.b.Put(key, value); err != nil {
		return err
	}
	b.log.add(op{kind: opPut, bucket: b.name, key: key, value: value})
	return nil
}

func (b bucket) Delete(key []byte) error {
	if err := b.b.Delete(key); err != nil {
		return err
	}
	b.log.add(op{kind: opDelete, bucket: b.name, key: key})
	return nil
}

func (b bucket) NextSequence() (uint64, error) {
	seq, err := b.b.NextSequence()
	if err == nil {
		b.log.add(op{kind: opSequence, bucket: b.name, seq: seq})
	}
	return seq, err
}

func (b bucket) SetSequence(seq uint64) error {
	if err := b.b.SetSequence(seq); err != nil {
		return err
	}
	b.log.add(op{kind: opSequence, bucket: b.name, seq: seq})
	return nil
}

func (b bucket) Get(key []byte) []byte                    { return b.b.Get(key) }
func (b bucket) Sequence() uint64                         { return b.b.Sequence() }
func (b bucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }
func (b bucket) Stats() bolt.BucketStats                  { return b.b.Stats() }
func (b bucket) Cursor() cursor                           { return cursor{b.b.Cursor()} }

// cursor walks a bucket; it cannot delete (use bucket.Delete, which is logged).
type cursor struct{ c *bolt.Cursor }

func (c cursor) First() ([]byte, []byte)           { return c.c.First() }
func (c cursor) Last() ([]byte, []byte)            { return c.c.Last() }
func (c cursor) Next() ([]byte, []byte)            { return c.c.Next() }
func (c cursor) Prev() ([]byte, []byte)            { return c.c.Prev() }
func (c cursor) Seek(seek []byte) ([]byte, []byte) { return c.c.Seek(seek) }

type opKind uint8

const (
	opPut opKind = iota + 1
	opDelete
	opSequence
)

// op is one change to a bucket.
type op struct {
	kind       opKind
	bucket     []byte
	key, value []byte
	seq        uint64
}

// opLog collects the changes of one transaction. A nil *opLog logs nothing.
type opLog struct{ ops []op }

// add keeps a copy of o: bbolt's key and value slices are only valid in the transaction.
func (l *opLog) add(o op) {
	if l == nil {
		return
	}
	o.key, o.value = bytes.Clone(o.key), bytes.Clone(o.value)
	if o.kind == opPut && o.value == nil {
		o.value = []byte{}
	}
	l.ops = append(l.ops, o)
}

// apply makes the logged changes in tx, in order.
func (l *opLog) apply(tx *bolt.Tx) error {
	for i := range l.ops {
		o := &l.ops[i]
		b := tx.Bucket(o.bucket)
		if b == nil {
			return fmt.Errorf("replay: no bucket %s", o.bucket)
		}
		var err error
		switch o.kind {
		case opPut:
			err = b.Put(o.key, o.value)
		case opDelete:
			err = b.Delete(o.key)
		case opSequence:
			err = b.SetSequence(o.seq)
		default:
			err = fmt.Errorf("replay: unknown change %d", o.kind)
		}
		if err != nil {
			return fmt.Errorf("replay %s: %w", o.bucket, err)
		}
	}
	return nil
}
