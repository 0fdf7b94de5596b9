package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkCallEventsEnqueue measures the webhooks' part of a call's writes on each backend,
// as BenchmarkCallWritesCommitted does on bbolt: each call written when it starts and when it
// ends (busy, answered, no answer: benchCall, complete), eight calls' writes queued together
// so that they share a commit, with its fsync; without an endpoint and with one that wants
// every event type. The webhooks' cost is every_type's less no_endpoint's. It reports the
// process's CPU per call (getrusage) and, on PostgreSQL, the server's (its processes' CPU
// time from /proc, the tests' own server on this machine, fsync on) besides the wall time.
func BenchmarkCallEventsEnqueue(b *testing.B) {
	for _, driver := range []string{"bbolt", "postgres"} {
		for _, tt := range []struct {
			name  string
			types []EventType
		}{{"no_endpoint", nil}, {"every_type", EventTypes()}} {
			b.Run(driver+"/"+tt.name, func(b *testing.B) {
				var db *DB
				if driver == "postgres" {
					db = openPostgresTest(b)
				} else {
					var err error
					if db, err = Open(filepath.Join(b.TempDir(), "b.db")); err != nil {
						b.Fatal(err)
					}
					defer db.Close()
				}
				ctx := context.Background()
				err := db.Write(ctx, func(tx *Tx) error {
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
				srv0 := pgServerCPU(b, driver)
				getRusage(&ru0)
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
				if err := db.IndexOutbox(ctx); err != nil { // bbolt: the index writes still to make
					b.Fatal(err)
				}
				b.StopTimer()
				getRusage(&ru1)
				b.ReportMetric(float64(ru1.cpu()-ru0.cpu())/float64(time.Microsecond)/float64(b.N), "cpu-µs/call")
				if driver == "postgres" {
					b.ReportMetric(float64(pgServerCPU(b, driver)-srv0)/float64(time.Microsecond)/float64(b.N), "server-cpu-µs/call")
				}
			})
		}
	}
}

// pgServerCPU is the CPU time of the tests' PostgreSQL server's processes (the postmaster and
// its children, read from /proc); 0 on bbolt.
func pgServerCPU(b *testing.B, driver string) time.Duration {
	if driver != "postgres" {
		return 0
	}
	raw, err := os.ReadFile(filepath.Join(pgServer(b).Dir(), "data", "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pm, _, _ := strings.Cut(string(raw), "\n")
	procs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	hz := 100.0 // USER_HZ on Linux
	var ticks float64
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15)
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+2:]))
		if len(f) < 13 || (p.Name() != pm && f[1] != pm) {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		ticks += u + s
	}
	return time.Duration(ticks / hz * float64(time.Second))
}
