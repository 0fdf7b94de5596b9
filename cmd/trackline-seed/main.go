// Command trackline-seed fills a data directory with a synthetic store for start-up and load
// benchmarks: customers, pool numbers, and sessions with their assignments spread over the
// past weeks, the newest ones still leased. It also writes a config.yaml for `trackline serve`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

func main() {
	dir := flag.String("data", "", "data directory to create (must not hold a store yet)")
	sessions := flag.Int("sessions", 1_000_000, "sessions to write")
	numbers := flag.Int("numbers", 10_000, "pool numbers in all")
	customers := flag.Int("customers", 10, "customers sharing the numbers")
	flag.Parse()
	if *dir == "" || *customers < 1 || *numbers < *customers || *sessions < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, *sessions, *numbers, *customers); err != nil {
		fmt.Fprintln(os.Stderr, "trackline-seed:", err)
		os.Exit(1)
	}
}

func run(dir string, sessions, numbers, customers int) error {
	path := filepath.Join(dir, "trackline.db")
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists", path)
	}
	db, err := store.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		return err
	}
	ctx := context.Background()
	perCustomer := numbers / customers
	nums := make([][]string, customers)
	for c := range customers {
		id := fmt.Sprintf("bench-%02d", c)
		if _, err := p.CreateCustomer(ctx, store.Customer{ID: id, Name: id, Status: store.StatusActive,
			SiteKey: fmt.Sprintf("bench-site-key-%04d", c), AllowedOrigins: []string{"http://127.0.0.1"}}); err != nil {
			return err
		}
		var in []pool.NumberInput
		for i := range perCustomer {
			n := fmt.Sprintf("+318%02d%06d", c, i)
			in = append(in, pool.NumberInput{Number: n})
			nums[c] = append(nums[c], n)
		}
		if _, err := p.ImportNumbers(ctx, id, in); err != nil {
			return err
		}
	}

	// Sessions arrive evenly over 30 days up to now; each leases the next number of its
	// customer for 30 minutes, so the newest ones are still live.
	now := time.Now().UTC()
	span := 30 * 24 * time.Hour
	const chunk = 20_000
	start := time.Now()
	for done := 0; done < sessions; {
		n := min(chunk, sessions-done)
		err := db.Write(ctx, func(tx *store.Tx) error {
			for i := done; i < done+n; i++ {
				c := i % customers
				created := now.Add(-span + time.Duration(float64(span)*float64(i)/float64(sessions)))
				s := store.Session{ID: pool.NewID(created), CustomerID: fmt.Sprintf("bench-%02d", c), Created: created,
					Channel: "Paid search", LandingPage: "https://shop.example/landing", UTMSource: "google", UTMMedium: "cpc", Gclid: "Cj0KCQiA"}
				if err := tx.PutSession(&s); err != nil {
					return err
				}
				a := store.Assignment{CustomerID: s.CustomerID, Number: nums[c][(i/customers)%perCustomer], SessionID: s.ID, From: created, Until: created.Add(30 * time.Minute)}
				if err := tx.PutAssignment(&a); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += n
	}
	for c := range customers {
		id, n := fmt.Sprintf("bench-%02d", c), uint64(sessions/customers)
		if err := db.Write(ctx, func(tx *store.Tx) error { return tx.AddStats(id, n, 0, 0) }); err != nil {
			return err
		}
	}
	cfg := fmt.Sprintf("data_dir: %s\nadmin_token: bench-admin-token\npool:\n  rate_limit: 1000000\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	size, _ := db.Size()
	fmt.Printf("seeded %d sessions, %d numbers, %d customers in %v; store %d MB\n", sessions, numbers, customers, time.Since(start).Round(time.Millisecond), size>>20)
	return nil
}
