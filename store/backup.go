package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the store file in the data directory.
const FileName = "trackline.db"

// Backup writes a consistent copy of the whole store to w while writes go on, and returns the
// number of bytes written. The copy is one read transaction (bbolt Tx.WriteTo): it holds
// every write committed before Backup began and none after. If size is not nil it is called
// with the copy's exact length before the first byte is written (for a Content-Length).
//
// The copy is a complete store file: restoring it is replacing the file while no process has
// it open. Caveat: the read transaction lasts as long as w takes to accept the copy; meanwhile
// bbolt cannot reuse the pages freed by later writes (the file may grow) and cannot remap a
// file that outgrows its initial mapping (256 MiB), so a write that needs that waits for the
// copy to end. Give w a fast destination (a local file, not a slow client).
//
// On PostgreSQL it writes nothing and answers ErrExternalBackup: back the database up with
// PostgreSQL's own tools (docs/cluster.md).
func (db *DB) Backup(w io.Writer, size func(int64)) (int64, error) {
	db.mu.RLock()
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	if db.pg != nil {
		return 0, ErrExternalBackup
	}
	var n int64
	err := db.view(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup store: %w", err)
	}
	return n, nil
}

// BackupFile writes a consistent copy of the store file at path to w, for when no process
// has it open (the switch is stopped). It opens the file read-only and waits at most the lock
// timeout (WithLockTimeout) for a writer's lock; while a switch runs on the file it fails
// with ErrLocked: ask the running switch for the copy instead (DB.Backup).
func BackupFile(path string, w io.Writer, opts ...Option) (int64, error) {
	b, err := openReadOnly(path, opts)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	var n int64
	err = b.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup store %s: %w", path, err)
	}
	return n, nil
}

// Verify checks that the file at path is a store this build can open: it is as long as its
// pages need, bbolt's consistency check of every page passes, every bucket exists and the schema version is this build's
// (or version 1 or 2, which Open converts). It opens the file read-only, like BackupFile.
func Verify(path string, opts ...Option) error {
	b, err := openReadOnly(path, opts)
	if err != nil {
		return err
	}
	defer b.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return b.View(func(tx *bolt.Tx) error {
		// A truncated copy still opens; its last pages are missing.
		if fi.Size() < tx.Size() {
			return fmt.Errorf("%w: %s: %d bytes, its pages need %d (truncated)", ErrCorrupt, path, fi.Size(), tx.Size())
		}
		for err := range tx.Check() {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		if tx.Bucket(bucketMeta) == nil {
			return fmt.Errorf("%w: %s: no bucket %s", ErrCorrupt, path, bucketMeta)
		}
		v := tx.Bucket(bucketMeta).Get(keySchema)
		want := slices.Concat(allBuckets, schema3Buckets)
		switch {
		case len(v) == 4 && binary.BigEndian.Uint32(v) == 1:
			// Schema 1, which Open converts: its assignments are in their old bucket.
			want = slices.Clone(allBuckets)
			want[slices.IndexFunc(want, func(b []byte) bool { return bytes.Equal(b, bucketAssignByTime) })] = bucketAssignV1
		case len(v) == 4 && binary.BigEndian.Uint32(v) == 2:
			// Schema 2, which Open converts: it has no rollups yet.
			want = allBuckets
		case len(v) == 4 && binary.BigEndian.Uint32(v) == 3:
			// Schema 3, which Open converts: the same buckets.
		case len(v) != 4 || binary.BigEndian.Uint32(v) != SchemaVersion:
			return fmt.Errorf("%w: %s has %x, this build knows %d", ErrSchema, path, v, SchemaVersion)
		}
		for _, name := range want {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: %s: no bucket %s", ErrCorrupt, path, name)
			}
		}
		return nil
	})
}

func openReadOnly(path string, opts []Option) (*bolt.DB, error) {
	o := options{timeout: 2 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: o.timeout, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s read-only: %w", path, err)
	}
	return b, nil
}
