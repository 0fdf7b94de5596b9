package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/trackline/trackline/internal/fsutil"
	bolt "go.etcd.io/bbolt"
)

// Compaction. bbolt never overwrites a freed page until it reuses it, so a record that was
// deleted stays readable in the file (and in every backup of it) for an unknown time.
// Compact rewrites the file with its live records only, and replaces it, while the switch
// serves:
//
//  1. Between two commits the committer takes a read snapshot of the file and starts
//     logging every change later commits make (oplog.go): each commit is in the snapshot
//     or in the log, never in both.
//  2. The snapshot is copied into <file>.compact, without fsyncs, then fsynced once. Writes
//     and reads go on meanwhile, on the old file.
//  3. Between two commits again, the committer makes the logged changes in the copy (one
//     fsynced transaction), renames the copy over the file, fsyncs the directory, and makes
//     the copy the current file. Only this step holds writes back. Readers that started on
//     the old file finish on it; it is closed after the last one.
//
// A crash before the rename leaves the old file, complete, and a .compact copy that Open
// removes; after it, the new file, complete. The bytes of the old file are freed by the
// filesystem, not overwritten: on the disk's blocks they survive until reused (use
// encrypted storage if that matters).

// compactSuffix names the copy a compaction writes beside the file.
const compactSuffix = ".compact"

// compactTxBytes bounds the keys and values the copy writes in one transaction.
const compactTxBytes = 64 << 20

// handle is one open bbolt file and the count of readers using it.
type handle struct {
	b       *bolt.DB
	mu      sync.Mutex
	readers int
	retired bool
	idle    chan struct{} // closed once retired and without readers
}

func newHandle(b *bolt.DB) *handle { return &handle{b: b, idle: make(chan struct{})} }

// acquire returns the current file, counted as in use until release.
func (db *DB) acquire() *handle {
	for {
		h := db.cur.Load()
		h.mu.Lock()
		if !h.retired {
			h.readers++
			h.mu.Unlock()
			return h
		}
		h.mu.Unlock() // replaced a moment ago: the new one is already current
	}
}

func (h *handle) release() {
	h.mu.Lock()
	h.readers--
	if h.retired && h.readers == 0 {
		close(h.idle)
	}
	h.mu.Unlock()
}

// retire closes h, which is no longer current, once its last reader released it.
func (db *DB) retire(h *handle) {
	h.mu.Lock()
	h.retired = true
	if h.readers == 0 {
		close(h.idle)
	}
	h.mu.Unlock()
	db.retired.Add(1)
	go func() {
		defer db.retired.Done()
		<-h.idle
		if err := h.b.Close(); err != nil {
			db.log.Error("close the store file replaced by compaction", "err", err)
		}
	}()
}

// CompactStats describe one compaction.
type CompactStats struct {
	Before, After int64         // file size in bytes
	Copy          time.Duration // copying the live records, while writes went on
	Pause         time.Duration // writes held: the changes made during the copy, and the swap
	Replayed      int           // changes made during the copy
}

// Compact rewrites the store file with its live records only and puts the copy in the
// file's place (see the comment above): afterwards nothing deleted before Compact was
// called is left in the file. (A deletion made while it copies is made in the copy too, and
// leaves its bytes in the copy's freed pages until the next compaction: erase, then
// compact.)
// Writes are held only while the changes committed during the copy are made in it and the
// files are swapped (Stats.Pause); reads are never held. One compaction runs at a time. ctx
// bounds the wait to start; once copying, it runs to the end.
//
// On PostgreSQL it is a VACUUM of the store's tables (pg_lifecycle.go): Before and After are
// the database's size, Copy the VACUUM's time, and nothing is held.
func (db *DB) Compact(ctx context.Context) (CompactStats, error) {
	if db.pg != nil {
		return db.pg.compact(ctx)
	}
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
	var st CompactStats
	tmp := db.path + compactSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("compact store: %w", err)
	}
	opts := boltOptions(time.Second)
	opts.NoSync = true // one fsync at the end of the copy
	dst, err := bolt.Open(tmp, 0o600, opts)
	if err != nil {
		return st, fmt.Errorf("compact store: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			dst.Close()
			os.Remove(tmp)
		}
	}()

	var snap *bolt.Tx
	var src *handle
	err = db.inCommitter(ctx, func() error {
		src = db.acquire()
		tx, err := src.b.Begin(false)
		if err != nil {
			src.release()
			return err
		}
		snap, db.replay = tx, &opLog{}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("compact store: %w", err)
	}
	st.Before = snap.Size()
	if db.afterSnapshot != nil {
		db.afterSnapshot()
	}
	start := time.Now()
	err = copyLive(dst, snap)
	snap.Rollback()
	src.release()
	if err == nil {
		err = dst.Sync()
	}
	st.Copy = time.Since(start)
	if err != nil {
		db.inCommitter(context.Background(), func() error { db.replay = nil; return nil })
		return st, fmt.Errorf("compact store: %w", err)
	}

	err = db.inCommitter(context.Background(), func() error {
		start := time.Now()
		log := db.replay
		db.replay = nil
		st.Replayed = len(log.ops)
		dst.NoSync = false
		// The copy holds nothing deleted before the snapshot: it owes no compaction but for
		// deletions made during the copy, whose logged mark the replay sets again.
		err := dst.Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Delete(keyCompactionDue); err != nil {
				return err
			}
			return log.apply(tx)
		})
		if err != nil {
			return err
		}
		if err := os.Rename(tmp, db.path); err != nil {
			return err
		}
		// From here the path names the copy: it is the store, whatever happens next.
		swapped = true
		old := db.cur.Load()
		db.cur.Store(newHandle(dst))
		db.retire(old)
		err = fsutil.SyncDir(filepath.Dir(db.path))
		st.Pause = time.Since(start)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("compact store: %w", err)
	}
	st.After, err = db.Size()
	return st, err
}

// inCommitter runs fn in the committer goroutine between two commits and returns its error.
func (db *DB) inCommitter(ctx context.Context, fn func() error) error {
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	r := &writeReq{ctl: fn, done: make(chan error, 1)}
	select {
	case db.writes <- r:
	case <-ctx.Done():
		db.mu.RUnlock()
		return ctx.Err()
	}
	db.mu.RUnlock()
	return <-r.done
}

// copyLive writes every bucket of src, with its sequence, keys and values, into the empty
// file dst, in transactions of about compactTxBytes, filling pages to the brim.
func copyLive(dst *bolt.DB, src *bolt.Tx) error {
	tx, err := dst.Begin(true)
	if err != nil {
		return err
	}
	defer func() { tx.Rollback() }() // a no-op once committed
	size := 0
	err = src.ForEach(func(name []byte, sb *bolt.Bucket) error {
		b, err := tx.CreateBucket(name)
		if err != nil {
			return err
		}
		if err := b.SetSequence(sb.Sequence()); err != nil {
			return err
		}
		b.FillPercent = 1.0
		c := sb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil && sb.Bucket(k) != nil {
				return fmt.Errorf("bucket %s: nested bucket %q", name, k)
			}
			if size += len(k) + len(v); size > compactTxBytes {
				if err := tx.Commit(); err != nil {
					return err
				}
				if tx, err = dst.Begin(true); err != nil {
					return err
				}
				b, size = tx.Bucket(name), len(k)+len(v)
				b.FillPercent = 1.0
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Commit()
}
