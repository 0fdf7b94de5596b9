package pool_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// openDemo opens a throw-away store with one customer and two pool numbers.
func openDemo(now func() time.Time) (*pool.Pool, func()) {
	dir, _ := os.MkdirTemp("", "pool-example")
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		panic(err)
	}
	p, err := pool.New(db, pool.Config{Lease: 30 * time.Minute, Grace: 30 * time.Minute}, pool.WithClock(now))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	p.CreateCustomer(ctx, store.Customer{ID: "bakery", Name: "Bakker BV", Status: store.StatusActive, SiteKey: "bakery-site-key"})
	p.ImportNumbers(ctx, "bakery", []pool.NumberInput{{Number: "+31850000001"}, {Number: "+31850000002"}})
	return p, func() { db.Close(); os.RemoveAll(dir) }
}

func ExamplePool_Assign() {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	p, done := openDemo(func() time.Time { return now })
	defer done()

	l, _ := p.Assign(context.Background(), "bakery", pool.Visit{
		LandingURL: "https://bakker.example/taarten?gclid=Cj0KCQ",
	})
	fmt.Println(l.Number, l.Formatted, l.Channel, l.Until.Format(time.TimeOnly))

	// The same session keeps its number and renews its lease.
	now = now.Add(10 * time.Minute)
	l, _ = p.Assign(context.Background(), "bakery", pool.Visit{SessionID: l.SessionID})
	fmt.Println(l.Number, l.New, l.Until.Format(time.TimeOnly))
	// Output:
	// +31850000001 085 000 0001 Paid search 10:30:00
	// +31850000001 false 10:40:00
}

func ExamplePool_Attribute() {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	p, done := openDemo(func() time.Time { return now })
	defer done()

	p.Assign(context.Background(), "bakery", pool.Visit{Referrer: "https://www.google.nl/"})

	// A call 45 minutes later: the lease ended at 10:30, but within the grace window.
	a, _ := p.Attribute("+31850000001", now.Add(45*time.Minute))
	fmt.Println(a.Channel, a.Candidates, a.Session.ReferrerHost)

	// Two hours later nobody is behind the number any more.
	a, _ = p.Attribute("+31850000001", now.Add(2*time.Hour))
	fmt.Println(a.Channel, a.Candidates, a.Session == nil)
	// Output:
	// Organic search 1 www.google.nl
	// Unattributed 0 true
}

func ExamplePool_EndContract() {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	p, done := openDemo(func() time.Time { return now })
	defer done()
	ctx := context.Background()

	// The contract ends: no more numbers, and the numbers go into quarantine for 6 months.
	c, _ := p.EndContract(ctx, "bakery", now)
	fmt.Println(c.Status, pool.InService(&c, now))
	_, err := p.Assign(ctx, "bakery", pool.Visit{})
	fmt.Println(err)
	ns, _ := p.Numbers("bakery")
	fmt.Println(ns[0].State, ns[0].QuarantinedUntil.Format(time.DateOnly))
	// Output:
	// ended false
	// customer ended
	// quarantined 2026-11-01
}
