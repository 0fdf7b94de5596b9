package store

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// syscallRusage is the process's CPU time (benchmarks).
type syscallRusage struct{ ru syscall.Rusage }

func getRusage(r *syscallRusage) { syscall.Getrusage(syscall.RUSAGE_SELF, &r.ru) }

func (r *syscallRusage) cpu() time.Duration {
	return time.Duration(r.ru.Utime.Nano() + r.ru.Stime.Nano())
}

// BenchmarkCallWritesCommitted measures what the switch's store does for a call, with the
// commits: each call is written when it starts and when it ends (busy, answered, no
// answer, as benchCall and complete make them), eight calls' writes queued together so that
// they share a commit (as calls at 1,000 a second do), with its fsync. It reports the
// process's CPU time (user and system, getrusage) per call besides the wall time: the
// webhooks' part is what the cases add to no_endpoint's.
func BenchmarkCallWritesCommitted(b *testing.B) {
	for _, tt := range []struct {
		name  string
		types []EventType
	}{{"no_endpoint", nil}, {"every_type", EventTypes()}, {"completed_only", []EventType{EventCallCompleted}}} {
		b.Run(tt.name, func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "b.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			err = db.Write(ctx, func(tx *Tx) error {
				if err := tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key"}); err != nil {
					return err
				}
				if tt.types == nil {
					return nil
				}
				return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/", EventTypes: tt.types, Secret: testSecret})
			})
			if err != nil {
				b.Fatal(err)
			}
			const group = 8
			t0 := time.Now()
			var ru0, ru1 syscallRusage
			getRusage(&ru0)
			pages0 := pageWrites(db)
			b.ResetTimer()
			for i := 0; i < b.N; i += group {
				var calls []Call
				for j := i; j < i+group && j < b.N; j++ {
					calls = append(calls, benchCall("acme", t0.Add(time.Duration(j)*time.Millisecond), j))
				}
				for _, phase := range []func(c Call, j int) Call{func(c Call, _ int) Call { return c }, complete} {
					var ps []Pending
					for k, c := range calls {
						c := phase(c, i+k)
						p, err := db.Enqueue(ctx, func(tx *Tx) error { return tx.PutCall(&c) })
						if err != nil {
							b.Fatal(err)
						}
						ps = append(ps, p)
					}
					for _, p := range ps {
						if err := p.Wait(); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			// The index writes of the messages still unindexed (outboxindex.go), in builds
			// that make them apart.
			if ix, ok := any(db).(interface{ IndexOutbox(context.Context) error }); ok {
				if err := ix.IndexOutbox(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			getRusage(&ru1)
			b.ReportMetric(float64(ru1.cpu()-ru0.cpu())/float64(time.Microsecond)/float64(b.N), "cpu-µs/call")
			b.ReportMetric(float64(pageWrites(db)-pages0)/float64(b.N), "pages/call")
		})
	}
}

// pageWrites counts the pages the store's commits wrote.
func pageWrites(db *DB) int64 {
	st := db.raw().Stats()
	return st.TxStats.GetWrite()
}

// BenchmarkCallWritesPaced writes calls as the switch does at 1,000 calls a second: every
// two milliseconds two calls' starts and the ends of the two started a second before, each
// its own write (Enqueue) that commits with whatever else is queued then, and the outbox's
// index writes in the background as they come. It reports the process's CPU time per call
// (user and system, getrusage, from the first write until every write and the last index
// write is committed) and the pages the commits wrote per call.
// b.N is the number of calls (-benchtime 10000x: 10 s a case).
func BenchmarkCallWritesPaced(b *testing.B) {
	for _, tt := range []struct {
		name  string
		types []EventType
	}{{"no_endpoint", nil}, {"completed_only", []EventType{EventCallCompleted}}, {"every_type", EventTypes()}} {
		b.Run(tt.name, func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "b.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			err = db.Write(ctx, func(tx *Tx) error {
				if err := tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key"}); err != nil {
					return err
				}
				if tt.types == nil {
					return nil
				}
				return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/", EventTypes: tt.types, Secret: testSecret})
			})
			if err != nil {
				b.Fatal(err)
			}
			const talk = 1000 // calls in progress: a second's worth
			waits := make(chan Pending, 4*talk)
			waited := make(chan error, 1)
			go func() {
				var first error
				for p := range waits {
					if err := p.Wait(); err != nil && first == nil {
						first = err
					}
				}
				waited <- first
			}()
			write := func(c Call) {
				p, err := db.Enqueue(ctx, func(tx *Tx) error { return tx.PutCall(&c) })
				if err != nil {
					b.Fatal(err)
				}
				waits <- p
			}
			t0 := time.Now()
			calls := make([]Call, b.N)
			var ru0, ru1 syscallRusage
			getRusage(&ru0)
			pages0 := pageWrites(db)
			b.ResetTimer()
			// Every 2 ms two calls start and two end: the switch's commits at 1,000 calls a
			// second held about four writes each (docs/benchmarks.md).
			tick := time.NewTicker(2 * time.Millisecond)
			for i := 0; i < b.N+talk; i += 2 {
				<-tick.C
				for k := i; k < i+2; k++ {
					if k < b.N {
						calls[k] = benchCall("acme", t0.Add(time.Duration(k)*time.Millisecond), k)
						write(calls[k])
					}
					if j := k - talk; j >= 0 && j < b.N {
						write(complete(calls[j], j))
					}
				}
			}
			tick.Stop()
			close(waits)
			if err := <-waited; err != nil {
				b.Fatal(err)
			}
			if ix, ok := any(db).(interface{ IndexOutbox(context.Context) error }); ok {
				if err := ix.IndexOutbox(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			getRusage(&ru1)
			b.ReportMetric(float64(ru1.cpu()-ru0.cpu())/float64(time.Microsecond)/float64(b.N), "cpu-µs/call")
			b.ReportMetric(float64(pageWrites(db)-pages0)/float64(b.N), "pages/call")
		})
	}
}

// BenchmarkCallCommitPages counts the pages a commit of one call's start and another's end
// writes, on a file that holds kept calls (and, with an endpoint, their messages) already:
// what a call's commit pays for its events grows with the trees of the buckets it touches.
// b.N is the commits measured; the index writes are made every 50 commits (about the
// switch's 100 ms at 1,000 calls a second) and their pages reported apart, per commit.
func BenchmarkCallCommitPages(b *testing.B) {
	for _, kept := range []int{30_000, 200_000} {
		for _, tt := range []struct {
			name  string
			types []EventType
		}{{"no_endpoint", nil}, {"completed_only", []EventType{EventCallCompleted}}} {
			b.Run(fmt.Sprintf("kept_%d/%s", kept, tt.name), func(b *testing.B) {
				db, write := benchStore(b)
				ctx := context.Background()
				write(func(tx *Tx) error {
					if err := tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key"}); err != nil || tt.types == nil {
						return err
					}
					return tx.PutEndpoint(&Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/", EventTypes: tt.types, Secret: testSecret})
				})
				const talk = 1000 // calls in progress
				t0 := time.Now()
				calls := make([]Call, 0, kept+b.N)
				step := func(k int) func(tx *Tx) error {
					return func(tx *Tx) error {
						calls = append(calls, benchCall("acme", t0.Add(time.Duration(k)*time.Millisecond), k))
						if err := tx.PutCall(&calls[k]); err != nil || k < talk {
							return err
						}
						c := complete(calls[k-talk], k-talk)
						return tx.PutCall(&c)
					}
				}
				for k := 0; k < kept; k += 100 {
					write(func(tx *Tx) error {
						for j := k; j < k+100; j++ {
							if err := step(j)(tx); err != nil {
								return err
							}
						}
						return nil
					})
					if err := db.IndexOutbox(ctx); err != nil {
						b.Fatal(err)
					}
				}
				var pages, index int64
				b.ResetTimer()
				for i := range b.N {
					p0 := pageWrites(db)
					write(step(kept + i))
					pages += pageWrites(db) - p0
					if i%50 == 49 {
						p0 = pageWrites(db)
						if err := db.IndexOutbox(ctx); err != nil {
							b.Fatal(err)
						}
						index += pageWrites(db) - p0
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(pages)/float64(b.N), "pages/commit")
				b.ReportMetric(float64(index)/float64(b.N), "index-pages/commit")
			})
		}
	}
}

// BenchmarkCommitBatch measures what a commit costs bbolt for the calls' writes it holds:
// k calls' starts and the ends of k others started a thousand calls before, on a file that
// holds 30,000 calls, each commit its own (Write). It reports the bytes allocated and the
// pages written per call: a commit reads every page it changes, and the paths to them, into
// nodes, whatever it holds, so the few writes of a commit share that cost (the committer's
// linger, store.go).
// b.N is the commits measured.
func BenchmarkCommitBatch(b *testing.B) {
	for _, k := range []int{1, 3, 10, 30} {
		b.Run(fmt.Sprintf("calls_%d", k), func(b *testing.B) {
			db, write := benchStore(b)
			write(func(tx *Tx) error {
				return tx.CreateCustomer(&Customer{ID: "acme", Status: StatusActive, SiteKey: "acme-key"})
			})
			const talk, kept = 1000, 30_000
			t0 := time.Now()
			calls := make([]Call, 0, kept+(b.N+1)*k)
			// calls writes the start of calls [from, to) and the end of those talk before.
			callsTo := func(from, to int) func(tx *Tx) error {
				return func(tx *Tx) error {
					for j := from; j < to; j++ {
						calls = append(calls, benchCall("acme", t0.Add(time.Duration(j)*time.Millisecond), j))
						if err := tx.PutCall(&calls[j]); err != nil {
							return err
						}
						if j >= talk {
							c := complete(calls[j-talk], j-talk)
							if err := tx.PutCall(&c); err != nil {
								return err
							}
						}
					}
					return nil
				}
			}
			for j := 0; j < kept; j += 100 {
				write(callsTo(j, j+100))
			}
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			pages0 := pageWrites(db)
			b.ResetTimer()
			for i := range b.N {
				write(callsTo(kept+i*k, kept+(i+1)*k))
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			n := float64(b.N * k)
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "B/call")
			b.ReportMetric(float64(pageWrites(db)-pages0)/n, "pages/call")
		})
	}
}

// benchStore opens a store in b's temp dir, closed when b ends, and a write that fails b.
func benchStore(b *testing.B) (*DB, func(fn func(tx *Tx) error)) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, func(fn func(tx *Tx) error) {
		if err := db.Write(context.Background(), fn); err != nil {
			b.Fatal(err)
		}
	}
}
