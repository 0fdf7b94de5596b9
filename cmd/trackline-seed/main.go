// Command trackline-seed fills a data directory with a synthetic store for start-up and load
// benchmarks: customers, pool numbers, and sessions with their assignments spread over the
// past weeks, the newest ones still leased. It also writes a config.yaml for `trackline serve`.
//
// With -calls N it also writes N completed calls over the past 365 days, through
// store.Tx.PutCall, so that the daily rollups the web app reports from are kept as the
// switch keeps them, each call to a pool number with the session it is attributed to
// (calls.go); with -users, an admin of each customer and an operator, password
// bench-password, and listen.app in the config (users.go). Either gives each customer its
// channels (two with rules, two offline ones with a static number each) and the sessions
// visits of a mix of channels. Without them the seed writes what it always did.
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

// options are the command's flags.
type options struct {
	dir                          string
	sessions, numbers, customers int
	calls                        int
	users                        bool
}

// appData tells whether the seed writes what the web app shows beyond the sessions:
// channels, static numbers, calls or users.
func (o *options) appData() bool { return o.calls > 0 || o.users }

func main() {
	var o options
	flag.StringVar(&o.dir, "data", "", "data directory to create (must not hold a store yet)")
	flag.IntVar(&o.sessions, "sessions", 1_000_000, "sessions to write")
	flag.IntVar(&o.numbers, "numbers", 10_000, "pool numbers in all")
	flag.IntVar(&o.customers, "customers", 10, "customers sharing the numbers")
	flag.IntVar(&o.calls, "calls", 0, "completed calls to write, spread over the past 365 days")
	flag.BoolVar(&o.users, "users", false, "write an admin per customer (admin@<customer>.bench) and an operator (operator@trackline.bench), password "+benchPassword)
	flag.Parse()
	if o.dir == "" || o.customers < 1 || o.numbers < o.customers || o.sessions < 0 || o.calls < 0 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "trackline-seed:", err)
		os.Exit(1)
	}
}

// customerID is the id of the c-th customer.
func customerID(c int) string { return fmt.Sprintf("bench-%02d", c) }

func run(ctx context.Context, o options) error {
	dir, sessions, numbers, customers := o.dir, o.sessions, o.numbers, o.customers
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
	perCustomer := numbers / customers
	nums := make([][]string, customers)
	statics := make([]map[string]string, customers) // channel name -> static number
	for c := range customers {
		id := customerID(c)
		cu := store.Customer{ID: id, Name: id, Status: store.StatusActive,
			SiteKey: fmt.Sprintf("bench-site-key-%04d", c), AllowedOrigins: []string{"http://127.0.0.1"}}
		if o.appData() {
			cu.BusinessLines = []string{fmt.Sprintf("sip:+3120555%02d00@127.0.0.1:5090", c)}
		}
		if _, err := p.CreateCustomer(ctx, cu); err != nil {
			return err
		}
		var in []pool.NumberInput
		for i := range perCustomer {
			n := fmt.Sprintf("+318%02d%06d", c, i)
			in = append(in, pool.NumberInput{Number: n})
			nums[c] = append(nums[c], n)
		}
		if o.appData() {
			if statics[c], err = seedChannels(ctx, p, c); err != nil {
				return err
			}
			for name, n := range statics[c] {
				in = append(in, pool.NumberInput{Number: n, Kind: "static", Channel: name})
			}
		}
		if _, err := p.ImportNumbers(ctx, id, in); err != nil {
			return err
		}
	}

	// Sessions arrive evenly over 30 days up to now; each leases the next number of its
	// customer for 30 minutes, so the newest ones are still live.
	now := time.Now().UTC()
	var g *generator
	if o.appData() {
		g = newGenerator(nums, statics)
	}
	span := 30 * 24 * time.Hour
	const chunk = 20_000
	start := time.Now()
	for done := 0; done < sessions; {
		n := min(chunk, sessions-done)
		err := db.Write(ctx, func(tx *store.Tx) error {
			for i := done; i < done+n; i++ {
				c := i % customers
				created := now.Add(-span + time.Duration(float64(span)*float64(i)/float64(sessions)))
				s := store.Session{ID: pool.NewID(created), CustomerID: customerID(c), Created: created,
					Channel: "Paid search", LandingPage: "https://shop.example/landing", UTMSource: "google", UTMMedium: "cpc", Gclid: "Cj0KCQiA"}
				if g != nil {
					s = g.windowVisit(c, created)
				}
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
		id, n := customerID(c), uint64(sessions/customers)
		if err := db.Write(ctx, func(tx *store.Tx) error { return tx.AddStats(id, n, 0, 0) }); err != nil {
			return err
		}
	}
	seeded := time.Since(start).Round(time.Millisecond)
	if o.appData() {
		fmt.Printf("seeded %d sessions, %d numbers, %d customers in %v\n", sessions, numbers, customers, seeded)
	}

	if o.calls > 0 {
		t0 := time.Now()
		visits, err := seedCalls(ctx, db, g, dir, o.calls, now)
		if err != nil {
			return err
		}
		total := uint64(0)
		for c, n := range visits {
			total += n
			if err := db.Write(ctx, func(tx *store.Tx) error { return tx.AddStats(customerID(c), n, 0, 0) }); err != nil {
				return err
			}
		}
		fmt.Printf("seeded %d calls over 365 days, with the %d sessions of those to pool numbers, in %v (%d sessions in all)\n",
			o.calls, total, time.Since(t0).Round(time.Millisecond), uint64(sessions)+total)
	}
	cfg := fmt.Sprintf("data_dir: %s\nadmin_token: bench-admin-token\npool:\n  rate_limit: 1000000\n", dir)
	if o.users {
		if err := seedUsers(ctx, db, customers, now); err != nil {
			return err
		}
		cfg += "listen:\n  app: 127.0.0.1:8082\n"
		fmt.Printf("users: admin@<customer>.bench (admin of bench-00 ... %s) and operator@trackline.bench, password %s\n",
			customerID(customers-1), benchPassword)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	size, _ := db.Size()
	if !o.appData() {
		fmt.Printf("seeded %d sessions, %d numbers, %d customers in %v; store %d MB\n", sessions, numbers, customers, seeded, size>>20)
	} else {
		fmt.Printf("seed done in %v; store %d MB\n", time.Since(start).Round(time.Millisecond), size>>20)
	}
	return nil
}
