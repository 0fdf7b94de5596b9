package integrations

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// BenchmarkDrainBacklogPostgres is BenchmarkDrainBacklog on PostgreSQL (the tests' own
// server, package pgtest, fsync on, on this machine): 100,000 call.ringing messages of one
// customer to one endpoint on loopback that answers 204, drained by the default workers of
// one node, or (nodes=2) of two nodes, each with its own store handle on the database.
func BenchmarkDrainBacklogPostgres(b *testing.B) {
	const backlog = 100_000
	srv, err := pgtest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	var received atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rc.Close()
	// The backlog is written once, through the store, into a database every run copies.
	ctx := context.Background()
	if err := srv.CreateDatabase(ctx, "backlog", ""); err != nil {
		b.Fatal(err)
	}
	db, err := store.OpenPostgres(ctx, srv.DSN("backlog"))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	err = db.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateCustomer(&store.Customer{ID: "acme", Status: store.StatusActive, SiteKey: "acme-key"}); err != nil {
			return err
		}
		return tx.PutEndpoint(&store.Endpoint{ID: "crm", CustomerID: "acme", URL: rc.URL, EventTypes: []store.EventType{store.EventCallRinging}, Secret: secretA})
	})
	if err != nil {
		b.Fatal(err)
	}
	for chunk := 0; chunk < backlog/1000; chunk++ {
		err := db.Write(ctx, func(tx *store.Tx) error {
			for i := range 1000 {
				at := t0.Add(time.Duration(chunk*1000+i) * time.Millisecond)
				c := store.Call{ID: pool.NewID(at), CustomerID: "acme", Dialled: "+31850000001", Caller: "+31612345678",
					Channel: "Google Ads", LandingPage: "https://acme.example/offer", Start: at}
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
	db.Close()
	run := 0
	for _, nodes := range []int{1, 2} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				run++
				name := fmt.Sprintf("drain_%d", run)
				if err := srv.CreateDatabase(ctx, name, "backlog"); err != nil {
					b.Fatal(err)
				}
				received.Store(0)
				dbs := make([]*store.DB, nodes)
				ws := make([]*Webhooks, nodes)
				for i := range dbs {
					if dbs[i], err = store.OpenPostgres(ctx, srv.DSN(name)); err != nil {
						b.Fatal(err)
					}
					if ws[i], err = New(dbs[i], Config{AllowCIDRs: loopback}); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				start := time.Now()
				ran := make(chan error, nodes)
				for _, w := range ws {
					go func() { ran <- w.Run(ctx) }()
				}
				for {
					st, err := dbs[0].OutboxStats()
					if err != nil {
						b.Fatal(err)
					}
					if st.Pending == 0 {
						break
					}
					time.Sleep(500 * time.Millisecond) // OutboxStats counts the pending rows: not too often
				}
				elapsed := time.Since(start)
				b.StopTimer()
				for _, w := range ws {
					w.Close()
					<-ran
				}
				for _, db := range dbs {
					db.Close()
				}
				if n := received.Load(); n < backlog {
					b.Fatalf("the receiver got %d of %d", n, backlog)
				}
				b.ReportMetric(backlog/elapsed.Seconds(), "deliveries/s")
				b.ReportMetric(float64(received.Load()-backlog), "extra-sends")
				b.StartTimer()
			}
		})
	}
}
