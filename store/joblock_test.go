package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestExclusiveOnBoltAlwaysRuns(t *testing.T) {
	skipOnPostgres(t, "one process holds the file; on PostgreSQL Exclusive takes an advisory lock, TestRunOncePerCluster")
	db, err := Open(t.TempDir() + "/trackline.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	boom := errors.New("boom")
	ran, err := db.Exclusive(context.Background(), "sweep", func(context.Context) error { return boom })
	if !ran || !errors.Is(err, boom) {
		t.Fatalf("ran %v err %v, want true and the job's error", ran, err)
	}
}

// Two nodes on one database: while one runs a job the other skips it, then runs it; a job of
// another name is not held up; a node whose connection dies releases the job.
func TestPostgresExclusive(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	open := func() *DB {
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()

	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ran, err := a.Exclusive(ctx, "sweep", func(context.Context) error {
			close(started)
			<-release
			return nil
		})
		if err == nil && !ran {
			err = errors.New("node A did not run the job nobody held")
		}
		done <- err
	}()
	<-started
	ran, err := b.Exclusive(ctx, "sweep", func(context.Context) error { return nil })
	if err != nil || ran {
		t.Fatalf("node B while A runs the job: ran %v err %v, want skipped", ran, err)
	}
	ran, err = b.Exclusive(ctx, "export", func(context.Context) error { return nil })
	if err != nil || !ran {
		t.Fatalf("another job on node B: ran %v err %v, want run", ran, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ran, err = b.Exclusive(ctx, "sweep", func(context.Context) error { return nil })
	if err != nil || !ran {
		t.Fatalf("node B after A's job ended: ran %v err %v, want run", ran, err)
	}

	// Node A's session ends in the middle of the job (the node died, or its connection):
	// the server releases the lock, and B runs the job.
	srv := pgServer(t)
	killed := make(chan struct{})
	go func() {
		_, err := a.Exclusive(ctx, "sweep", func(ctx context.Context) error {
			err := srv.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1953262178")
			close(killed)
			return err
		})
		done <- err
	}()
	<-killed
	deadline := time.Now().Add(5 * time.Second)
	for {
		ran, err = b.Exclusive(ctx, "sweep", func(context.Context) error { return nil })
		if err == nil && ran {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B after A's session ended: ran %v err %v, want run", ran, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-done
}
