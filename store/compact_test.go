package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const needle = "+31699887766" // the caller whose calls are deleted

// fillCalls writes n calls of customer acme, every tenth from the needle caller, with a
// landing page long enough to spread them over many pages.
func fillCalls(t *testing.T, db *DB, n int) (needleIDs, otherIDs []string) {
	t.Helper()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var calls []Call
	for i := range n {
		c := Call{ID: testCallID(t0.Add(time.Duration(i)*time.Second), i), CustomerID: "acme", Dialled: "+31850000001",
			Caller: "+31612000000", CallerPseudonym: "p-other", Start: t0, End: t0.Add(time.Minute), Disposition: "answered",
			LandingPage: "https://shop.example/" + string(bytes.Repeat([]byte("x"), 300))}
		if i%10 == 0 {
			c.Caller, c.CallerPseudonym = needle, "p-needle"
			needleIDs = append(needleIDs, c.ID)
		} else {
			otherIDs = append(otherIDs, c.ID)
		}
		calls = append(calls, c)
	}
	putCalls(t, db, calls...)
	return needleIDs, otherIDs
}

func deleteCalls(t *testing.T, db *DB, ids []string) {
	t.Helper()
	err := db.Write(context.Background(), func(tx *Tx) error {
		for _, id := range ids {
			if _, _, err := tx.DeleteCall(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileHas(t *testing.T, path, s string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(s))
}

// TestCompactRemovesDeletedBytes: deleted records stay in the file's freed pages until a
// compaction, and are gone after it; live records are kept, and the file opens again.
func TestCompactRemovesDeletedBytes(t *testing.T) {
	skipOnPostgres(t, "the copy of the file without the freed pages; PostgreSQL's Compact is VACUUM, TestPostgresFileOperations and TestPostgresErasureLeavesNothingReadable")
	db := openTest(t)
	needles, others := fillCalls(t, db, 2000)
	deleteCalls(t, db, needles)
	if calls, _ := db.CallsOfCaller("acme", "p-needle"); len(calls) != 0 {
		t.Fatalf("%d calls of the caller after deletion", len(calls))
	}
	if !fileHas(t, db.Path(), needle) {
		t.Fatal("the deleted number is not in the file before compaction: the test proves nothing")
	}
	if due, err := db.CompactionDue(); !due || err != nil {
		t.Fatalf("CompactionDue after a deletion = %v, %v", due, err)
	}
	st, err := db.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if due, err := db.CompactionDue(); due || err != nil {
		t.Errorf("CompactionDue after the compaction = %v, %v", due, err)
	}
	if fileHas(t, db.Path(), needle) {
		t.Error("the deleted number is still in the file after compaction")
	}
	if _, err := os.Stat(db.Path() + compactSuffix); !os.IsNotExist(err) {
		t.Errorf("the compaction copy is left: %v", err)
	}
	if st.After >= st.Before || st.Replayed != 0 {
		t.Errorf("stats %+v: want a smaller file and nothing replayed", st)
	}
	for _, id := range others {
		if _, err := db.Call(id); err != nil {
			t.Fatalf("call %s after compaction: %v", id, err)
		}
	}
	if calls, _ := db.CallsOfCaller("acme", "p-other"); len(calls) != len(others) {
		t.Errorf("%d calls of the other caller, want %d", len(calls), len(others))
	}
	// Writes go to the new file, and it is the store after a restart.
	putCalls(t, db, Call{ID: testCallID(time.Now(), 1), CustomerID: "acme", Start: time.Now()})
	path := db.Path()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Verify(path); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	calls, _, err := db2.Calls(CallFilter{CustomerID: "acme", Limit: 5000})
	if err != nil || len(calls) != len(others)+1 {
		t.Errorf("after reopen: %d calls, %v; want %d", len(calls), err, len(others)+1)
	}
}

// TestCompactKeepsWritesDuringCopy: writes committed while the copy runs (calls, deletions,
// audit entries with their sequence) are all in the compacted file, readers keep reading
// across the swap, and a reader that began on the old file finishes on it.
func TestCompactKeepsWritesDuringCopy(t *testing.T) {
	skipOnPostgres(t, "the writes replayed onto the file's copy; PostgreSQL's Compact is VACUUM, TestPostgresFileOperations")
	db := openTest(t)
	needles, others := fillCalls(t, db, 500)
	ctx := context.Background()
	audit := func(n int) {
		for i := range n {
			if err := db.Write(ctx, func(tx *Tx) error {
				return tx.AppendAudit(&AuditEntry{Time: time.Now(), Actor: "operator", Action: fmt.Sprintf("test.%d", i), CustomerID: "acme"})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	audit(3)

	// A reader holds the old file across the swap.
	inView, leave := make(chan struct{}), make(chan struct{})
	viewDone := make(chan error, 1)
	go func() {
		viewDone <- db.View(func(tx *Tx) error {
			close(inView)
			<-leave
			_, err := tx.Call(others[0])
			return err
		})
	}()
	<-inView

	// Readers run all along.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readErrs := make(chan error, 4)
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Call(others[1]); err != nil {
					readErrs <- err
					return
				}
			}
		}()
	}

	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	var during []string
	db.afterSnapshot = func() {
		// Committed after the snapshot: these exist only in the log until the swap.
		for i := range 20 {
			c := Call{ID: testCallID(t0.Add(time.Duration(i)*time.Second), 9000+i), CustomerID: "acme", Caller: "+31611111111",
				CallerPseudonym: "p-during", Start: t0}
			putCalls(t, db, c)
			during = append(during, c.ID)
		}
		deleteCalls(t, db, needles)
		deleteCalls(t, db, during[:5])
		audit(4)
		if err := db.Audit(ctx, AuditEntry{Time: time.Now(), Actor: "operator", Action: "test.detached"}); err != nil {
			t.Error(err)
		}
	}
	st, err := db.Compact(ctx)
	db.afterSnapshot = nil
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	readers.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Errorf("reader during compaction: %v", err)
	}
	close(leave)
	if err := <-viewDone; err != nil {
		t.Errorf("the reader that began before the swap: %v", err)
	}
	if st.Replayed == 0 {
		t.Fatalf("stats %+v: nothing replayed", st)
	}

	check := func(db *DB, auditEntries int) {
		t.Helper()
		for _, id := range append(others, during[5:]...) {
			if _, err := db.Call(id); err != nil {
				t.Errorf("call %s: %v", id, err)
			}
		}
		for _, id := range append(needles, during[:5]...) {
			if _, err := db.Call(id); err == nil {
				t.Errorf("deleted call %s is back", id)
			}
		}
		if calls, _ := db.CallsOfCaller("acme", "p-during"); len(calls) != 15 {
			t.Errorf("%d calls of p-during, want 15", len(calls))
		}
		if calls, _ := db.CallsOfCaller("acme", "p-needle"); len(calls) != 0 {
			t.Errorf("%d calls of p-needle, want 0", len(calls))
		}
		entries, _, _ := db.AuditLog(AuditFilter{Limit: 100})
		if len(entries) != auditEntries {
			t.Errorf("%d audit entries, want %d", len(entries), auditEntries)
		}
	}
	check(db, 8)
	// The audit sequence went on from the replayed one: one more entry sorts last.
	audit(1)
	entries, _, _ := db.AuditLog(AuditFilter{Limit: 1})
	if len(entries) != 1 || entries[0].Action != "test.0" {
		t.Errorf("newest audit entry %+v", entries)
	}
	// A deletion made during the copy is made in the copy too, so its bytes are in the
	// copy's freed pages: a compaction is still due, and the next one removes them.
	if due, _ := db.CompactionDue(); !due {
		t.Error("no compaction due after deletions during the copy")
	}
	if _, err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.CompactionDue(); due {
		t.Error("a compaction still due after the second")
	}
	if fileHas(t, db.Path(), needle) {
		t.Error("a number deleted before the second compaction is in the file")
	}

	path := db.Path()
	db.Close()
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	check(db2, 9)
}

func TestOpenRemovesUnfinishedCompaction(t *testing.T) {
	skipOnPostgres(t, "a compaction's leftover copy next to the file; PostgreSQL's VACUUM leaves none")
	path := filepath.Join(t.TempDir(), "trackline.db")
	if err := os.WriteFile(path+compactSuffix, []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
		t.Errorf("unfinished compaction copy after Open: %v", err)
	}
}

func TestCompactAfterClose(t *testing.T) {
	db := openTest(t)
	db.Close()
	if _, err := db.Compact(context.Background()); err == nil {
		t.Error("Compact after Close: no error")
	}
}

// BenchmarkCompact compacts a store while a writer commits a call record every millisecond,
// as call setup does, and reports the copy time, the write pause of the swap, the slowest
// write during the compaction, the writes replayed and the file sizes. TRACKLINE_BENCH_STORE
// names a store file to compact a copy of (scripts/bench-compact.sh seeds one with a million
// sessions); without it the store is 20,000 synthetic calls.
func BenchmarkCompact(b *testing.B) {
	src := os.Getenv("TRACKLINE_BENCH_STORE")
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "trackline.db")
		if src != "" {
			in, err := os.ReadFile(src)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(path, in, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		db, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if src == "" {
			t0 := time.Now()
			for chunk := 0; chunk < 20; chunk++ {
				err := db.Write(context.Background(), func(tx *Tx) error {
					for i := range 1000 {
						n := chunk*1000 + i
						c := Call{ID: testCallID(t0.Add(time.Duration(n)*time.Second), n), CustomerID: "acme", Caller: "+31612345678",
							Start: t0, End: t0.Add(time.Minute), LandingPage: "https://shop.example/landing/page"}
						if err := tx.PutCall(&c); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		stop, done := make(chan struct{}), make(chan time.Duration)
		go func() {
			var slowest time.Duration
			t0 := time.Now()
			for n := 0; ; n++ {
				select {
				case <-stop:
					done <- slowest
					return
				case <-time.After(time.Millisecond):
				}
				c := Call{ID: testCallID(t0.Add(time.Duration(n)*time.Millisecond), 1_000_000+n), CustomerID: "bench", Caller: "+31600000000", Start: t0}
				start := time.Now()
				if err := db.Write(context.Background(), func(tx *Tx) error { return tx.PutCall(&c) }); err != nil {
					b.Error(err)
				}
				slowest = max(slowest, time.Since(start))
			}
		}()
		time.Sleep(50 * time.Millisecond)
		b.StartTimer()
		st, err := db.Compact(context.Background())
		b.StopTimer()
		close(stop)
		slowest := <-done
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Copy.Milliseconds()), "copy-ms")
		b.ReportMetric(float64(st.Pause.Microseconds())/1000, "pause-ms")
		b.ReportMetric(float64(slowest.Microseconds())/1000, "slowest-write-ms")
		b.ReportMetric(float64(st.Replayed), "replayed")
		b.ReportMetric(float64(st.Before>>20), "before-MiB")
		b.ReportMetric(float64(st.After>>20), "after-MiB")
		db.Close()
		b.StartTimer()
	}
}

// A deletion that a crash kept from its compaction is still owed at the next start.
func TestCompactionDueSurvivesRestart(t *testing.T) {
	skipOnPostgres(t, "the compaction flag kept in the file; PostgreSQL vacuums on its own (autovacuum)")
	path := filepath.Join(t.TempDir(), "trackline.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	needles, _ := fillCalls(t, db, 20)
	if due, _ := db.CompactionDue(); due {
		t.Fatal("compaction due before anything was deleted")
	}
	deleteCalls(t, db, needles[:1])
	db.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if due, _ := db.CompactionDue(); !due {
		t.Error("the owed compaction was forgotten across a restart")
	}
}
