package store

import (
	"context"
	"errors"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/rearm"
)

// openTest opens an empty store of the driver the tests run on: bbolt, or PostgreSQL with
// TRACKLINE_TEST_STORE=postgres (pg_main_test.go).
func openTest(t *testing.T) *DB {
	t.Helper()
	if testDriver(t) == "postgres" {
		return openPostgresTest(t)
	}
	db, err := Open(filepath.Join(t.TempDir(), "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestCustomerSiteKeyIndex(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	c := Customer{ID: "acme", Name: "Acme", Status: StatusActive, SiteKey: "acme-key-0001"}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.CreateCustomer(&c) }); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    Customer
		want error
	}{
		{"same id", Customer{ID: "acme", SiteKey: "other-key-0001", Status: StatusActive}, ErrExists},
		{"same site key", Customer{ID: "other", SiteKey: "acme-key-0001", Status: StatusActive}, ErrExists},
		{"new", Customer{ID: "other", SiteKey: "other-key-0001", Status: StatusTrial}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Write(ctx, func(tx *Tx) error { return tx.CreateCustomer(&tt.c) })
			if !errors.Is(err, tt.want) {
				t.Fatalf("CreateCustomer = %v, want %v", err, tt.want)
			}
		})
	}
	var got []Customer
	if err := db.View(func(tx *Tx) (err error) { got, err = tx.Customers(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "acme" || got[1].Status != StatusTrial {
		t.Fatalf("Customers = %+v", got)
	}
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Go(func() {
			errs[i] = db.Write(ctx, func(tx *Tx) error {
				if i%50 == 7 {
					return boom
				}
				return tx.PutSession(&Session{ID: fmt.Sprintf("s%04d", i), CustomerID: "c"})
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		want := error(nil)
		if i%50 == 7 {
			want = boom
		}
		if !errors.Is(err, want) {
			t.Fatalf("write %d: %v, want %v", i, err, want)
		}
		id := fmt.Sprintf("s%04d", i)
		err = db.View(func(tx *Tx) error { _, err := tx.Session(id); return err })
		if (want == nil) != (err == nil) {
			t.Fatalf("session %s after write error %v: read %v", id, want, err)
		}
	}
}

func TestSessionsOfPaging(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	for i := range 25 {
		for _, cust := range []string{"a", "ab", "b"} {
			s := Session{ID: fmt.Sprintf("%03d-%s", i, cust), CustomerID: cust}
			if err := db.Write(ctx, func(tx *Tx) error { return tx.PutSession(&s) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ids []string
	before := ""
	for page := 0; page < 10; page++ {
		var got []Session
		db.View(func(tx *Tx) (err error) { got, err = tx.SessionsOf("ab", before, 10); return err })
		if len(got) == 0 {
			break
		}
		for _, s := range got {
			if s.CustomerID != "ab" {
				t.Fatalf("page %d holds session of %q", page, s.CustomerID)
			}
			ids = append(ids, s.ID)
		}
		before = got[len(got)-1].ID
	}
	if len(ids) != 25 || ids[0] != "024-ab" || ids[24] != "000-ab" {
		t.Fatalf("paged ids = %v", ids)
	}
}

func TestReopenKeepsDataAndChecksSchema(t *testing.T) {
	skipOnPostgres(t, "the file's schema version; on PostgreSQL TestPostgresMigratesReopensAndChecksSchema")
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s := Session{ID: "x", CustomerID: "c", Channel: "Direct"}
	if err := db.Write(context.Background(), func(tx *Tx) error { return tx.PutSession(&s) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.Write(context.Background(), func(tx *Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close = %v", err)
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var got Session
	db.View(func(tx *Tx) (err error) { got, err = tx.Session("x"); return err })
	if got.Channel != "Direct" {
		t.Fatalf("after reopen: %+v", got)
	}
	db.raw().Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte{0, 0, 0, 9}) })
	db.Close()
	if _, err := Open(path); !errors.Is(err, ErrSchema) {
		t.Fatalf("open with newer schema = %v", err)
	}
}

func BenchmarkWriteParallel(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ReportAllocs()
	b.SetParallelism(64)
	var n int64
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			id := fmt.Sprintf("%016d", n)
			mu.Unlock()
			s := Session{ID: id, CustomerID: "c", Channel: "Direct", LandingPage: "https://example.com/"}
			if err := db.Write(context.Background(), func(tx *Tx) error { return tx.PutSession(&s) }); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// raw is the current bbolt file, for tests that reach under the store's API.
func (db *DB) raw() *bolt.DB { return db.cur.Load().b }

// TestLingerGathers checks the committer's linger (store.go): it takes the writes that come,
// up to lingerBatch, stops at a control request and hands it back, and returns when none
// comes within lingerGap or its deadline has passed.
func TestLingerGathers(t *testing.T) {
	db := &DB{writes: make(chan *writeReq, 64)}
	var timer rearm.Timer
	queue := func(n int) {
		for range n {
			db.writes <- &writeReq{fn: func(*Tx) error { return nil }}
		}
	}
	one := []*writeReq{{}}
	far := time.Now().Add(time.Hour)

	queue(lingerBatch + 5)
	got, ctl := db.linger(one, &timer, far)
	if len(got) != lingerBatch || ctl != nil || len(db.writes) != 6 {
		t.Fatalf("full queue: batch %d ctl %v, %d left; want %d, nil, 6", len(got), ctl, len(db.writes), lingerBatch)
	}
	for len(db.writes) > 0 {
		<-db.writes
	}

	queue(2)
	mark := &writeReq{ctl: func() error { return nil }}
	db.writes <- mark
	queue(1)
	got, ctl = db.linger([]*writeReq{{}}, &timer, far)
	if len(got) != 3 || ctl != mark || len(db.writes) != 1 {
		t.Fatalf("control request: batch %d ctl %p, %d left; want 3, %p, 1", len(got), ctl, len(db.writes), mark)
	}
	<-db.writes

	// Nothing comes: back after lingerGap, not at the far deadline.
	done := make(chan int, 1)
	go func() { got, _ := db.linger([]*writeReq{{}}, &timer, far); done <- len(got) }()
	select {
	case n := <-done:
		if n != 1 {
			t.Fatalf("empty queue: batch %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("linger waited past its gap for writes that did not come")
	}

	// The deadline passed: the queued writes wait for the next batch.
	queue(3)
	got, _ = db.linger([]*writeReq{{}}, &timer, time.Now().Add(-time.Millisecond))
	if len(got) != 1 || len(db.writes) != 3 {
		t.Fatalf("past deadline: batch %d, %d left; want 1, 3", len(got), len(db.writes))
	}
}
