package store

import (
	"context"
	"path/filepath"
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
