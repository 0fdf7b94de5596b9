package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// What bbolt's file operations do on PostgreSQL: Backup refuses (PostgreSQL's own tools back
// it up), a deletion of personal data marks a compaction due, Compact (VACUUM) clears the
// mark unless a deletion marked it again meanwhile, Path hides the password, Size is the
// database's.
func TestPostgresFileOperations(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	db, err := OpenPostgres(context.Background(), strings.Replace(dsn, "postgres@", "postgres:hunter2-secret@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	var buf bytes.Buffer
	if n, err := db.Backup(&buf, func(int64) { t.Error("Backup announced a size") }); !errors.Is(err, ErrExternalBackup) || n != 0 || buf.Len() != 0 {
		t.Fatalf("Backup = %d, %v, %d bytes; want ErrExternalBackup and nothing written", n, err, buf.Len())
	}
	if p := db.Path(); strings.Contains(p, "hunter2") || !strings.HasPrefix(p, "postgres://") || !strings.Contains(p, "/test_") {
		t.Fatalf("Path = %q: want the database's address without its password", p)
	}
	size, err := db.Size()
	if err != nil || size < 1<<20 {
		t.Fatalf("Size = %d, %v: want the database's size", size, err)
	}

	if due, err := db.CompactionDue(); err != nil || due {
		t.Fatalf("CompactionDue on a new database = %v, %v", due, err)
	}
	needles, _ := fillCalls(t, db, 20)
	deleteCalls(t, db, needles[:2])
	if due, err := db.CompactionDue(); err != nil || !due {
		t.Fatalf("CompactionDue after DeleteCall = %v, %v; want true", due, err)
	}
	// The dead row versions of the deleted calls are there until VACUUM.
	dead := func() int64 {
		var n int64
		err := db.View(func(tx *Tx) error {
			return tx.pg.row(`SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables WHERE relname = 'calls'`, nil, &n)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	st, err := db.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Before <= 0 || st.After <= 0 {
		t.Fatalf("Compact = %+v: want the database's size before and after", st)
	}
	if due, err := db.CompactionDue(); err != nil || due {
		t.Fatalf("CompactionDue after Compact = %v, %v; want false", due, err)
	}
	// The statistics are sent when a transaction ends, and read from a snapshot: wait a
	// little for VACUUM's.
	deadline := time.Now().Add(5 * time.Second)
	for dead() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := dead(); n != 0 {
		t.Errorf("calls has %d dead row versions after Compact", n)
	}
	// A mark made after Compact read the marks is not cleared by it: the next one owes it.
	if err := db.Write(ctx, func(tx *Tx) error { return tx.MarkCompactionDue() }); err != nil {
		t.Fatal(err)
	}
	_, marks, err := db.pg.compactionDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.MarkCompactionDue() }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pg.pool.Exec(ctx, `DELETE FROM store_state WHERE key = $1 AND n = $2`, pgStateCompactionDue, marks); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.CompactionDue(); !due {
		t.Fatal("a mark made after a compaction read the marks was cleared")
	}
}
