package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupWhileWriting takes a backup while writers keep committing calls and checks that
// the copy opens as a store holding every call committed before the backup began.
func TestBackupWhileWriting(t *testing.T) {
	skipOnPostgres(t, "its online copy of the file; on PostgreSQL Backup answers ErrExternalBackup (pg_dump, pg_basebackup), TestPostgresFileOperations")
	db := openTest(t)
	ctx := context.Background()
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

	var (
		committed sync.Map // call id -> struct{}, once its Write returned
		written   atomic.Int64
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := Call{ID: fmt.Sprintf("C%d-%06d", w, i), CustomerID: "acme", Dialled: "+31850000001",
					Start: start, End: start.Add(time.Minute), Disposition: "answered"}
				if err := db.Write(ctx, func(tx *Tx) error { return tx.PutCall(&c) }); err != nil {
					t.Errorf("write %s: %v", c.ID, err)
					return
				}
				committed.Store(c.ID, struct{}{})
				written.Add(1)
			}
		})
	}
	for written.Load() < 200 {
		time.Sleep(time.Millisecond)
	}
	var before []string
	committed.Range(func(k, _ any) bool { before = append(before, k.(string)); return true })

	var buf bytes.Buffer
	announced := int64(-1)
	n, err := db.Backup(&buf, func(size int64) { announced = size })
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != int64(buf.Len()) || announced != n {
		t.Fatalf("Backup wrote %d bytes, buffer holds %d, size announced %d: want all equal", n, buf.Len(), announced)
	}
	after := written.Load()

	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Verify(path); err != nil {
		t.Fatalf("Verify(backup): %v", err)
	}
	restored, err := Open(path)
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer restored.Close()
	var total int
	err = restored.View(func(tx *Tx) error {
		for _, id := range before {
			if _, err := tx.Call(id); err != nil {
				return fmt.Errorf("call %s committed before the backup: %w", id, err)
			}
		}
		return tx.tx.Bucket(bucketCalls).ForEach(func(k, v []byte) error { total++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if total < len(before) || int64(total) > after {
		t.Errorf("backup holds %d calls, want between %d (committed before) and %d (committed in all)", total, len(before), after)
	}
	t.Logf("%d calls committed before the backup, %d in it, %d in all; %d bytes", len(before), total, after, n)
}

func TestBackupFileAndVerify(t *testing.T) {
	skipOnPostgres(t, "a backup file and its verification; on PostgreSQL backups are pg_dump's, TestPostgresFileOperations")
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	c := Customer{ID: "acme", Name: "Acme", Status: StatusActive, SiteKey: "acme-key-0001"}
	if err := db.Write(context.Background(), func(tx *Tx) error { return tx.CreateCustomer(&c) }); err != nil {
		t.Fatal(err)
	}

	// While a process holds the store, an offline copy is refused, not taken half-way.
	if _, err := BackupFile(path, &bytes.Buffer{}, WithLockTimeout(50*time.Millisecond)); !errors.Is(err, ErrLocked) {
		t.Errorf("BackupFile of an open store = %v, want ErrLocked", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Backup(&bytes.Buffer{}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Backup after Close = %v, want ErrClosed", err)
	}

	var buf bytes.Buffer
	n, err := BackupFile(path, &buf)
	if err != nil || n == 0 || int64(buf.Len()) != n {
		t.Fatalf("BackupFile = %d, %v (buffer %d bytes)", n, err, buf.Len())
	}
	good := filepath.Join(dir, "good.db")
	if err := os.WriteFile(good, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		data []byte // nil: the good copy
		want error  // nil: Verify passes
	}{
		{name: "good copy"},
		{name: "truncated", data: buf.Bytes()[:buf.Len()/2], want: errAny},
		{name: "not a store", data: bytes.Repeat([]byte("trackline"), 4096), want: errAny},
		{name: "empty", data: []byte{}, want: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			if tt.data != nil {
				p = filepath.Join(t.TempDir(), "bad.db")
				if err := os.WriteFile(p, tt.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := Verify(p)
			if (err != nil) != (tt.want != nil) {
				t.Fatalf("Verify = %v, want error: %v", err, tt.want != nil)
			}
		})
	}

	restored, err := Open(good)
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer restored.Close()
	if err := restored.View(func(tx *Tx) error { _, err := tx.Customer("acme"); return err }); err != nil {
		t.Errorf("customer in the copy: %v", err)
	}
}

var errAny = errors.New("any error")
