package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSessionCreate is the store's part of a new web session (package pool's lease):
// the session, its assignment and the counters in one write, from 64 concurrent requests
// (SetParallelism(64) per GOMAXPROCS), on each backend. On PostgreSQL the tests' own server
// (internal/pgtest, fsync on) on the same machine.
func BenchmarkSessionCreate(b *testing.B) {
	for _, driver := range []string{"bbolt", "postgres"} {
		b.Run(driver, func(b *testing.B) {
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
			t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					s := Session{ID: fmt.Sprintf("%016d", i), CustomerID: "c", Created: t0, Channel: "Google Ads",
						LandingPage: "https://example.com/offer", UTMSource: "google", UTMMedium: "cpc", Gclid: "abc"}
					enc, err := EncodeSession(&s)
					if err != nil {
						b.Fatal(err)
					}
					from := t0.Add(time.Duration(i) * time.Millisecond)
					a := Assignment{CustomerID: "c", Number: fmt.Sprintf("+3185%07d", i%200), SessionID: s.ID, From: from, Until: from.Add(30 * time.Minute)}
					if err := db.Write(ctx, func(tx *Tx) error {
						if err := tx.PutEncodedSession(enc); err != nil {
							return err
						}
						if err := tx.PutAssignment(&a); err != nil {
							return err
						}
						return tx.AddStats("c", 1, 0, 0)
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
