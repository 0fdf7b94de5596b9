package pool

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/store"
)

// Config holds the pool's timing.
type Config struct {
	Lease       time.Duration // a lease runs this long after the last touch (default 30m)
	Grace       time.Duration // attribution window after a lease ended (default 30m)
	CountryCode string        // for reading national numbers (default "31")
	// TrialDays is how long a new trial runs (default 14).
	TrialDays int
	// QuarantineMonths is how long the numbers of an ended contract are quarantined
	// before they return to the stock (default 6).
	QuarantineMonths int
}

func (c *Config) defaults() {
	if c.Lease <= 0 {
		c.Lease = 30 * time.Minute
	}
	if c.Grace <= 0 {
		c.Grace = 30 * time.Minute
	}
	if c.CountryCode == "" {
		c.CountryCode = "31"
	}
	if c.TrialDays <= 0 {
		c.TrialDays = 14
	}
	if c.QuarantineMonths <= 0 {
		c.QuarantineMonths = 6
	}
}

// recentMax is how many assignments per number attribution keeps in memory.
const recentMax = 8

// Pool is the number pool of every customer.
type Pool struct {
	db  *store.DB
	cfg Config
	log *slog.Logger
	now func() time.Time
	m   *metrics

	// Lock order: a customer's mu before mu. heldMu serialises the writes of held numbers.
	mu        sync.RWMutex // guards the maps below (not the customers' insides)
	customers map[string]*customer
	bySiteKey map[string]*customer
	numbers   map[string]*number
	held      map[string]*store.Number // quarantined numbers whose customer was deleted
	heldMu    sync.Mutex
}

type customer struct {
	mu       sync.Mutex
	c        store.Customer
	style    e164.Style
	channels []store.Channel
	rules    []rule
	heap     numberHeap         // pool numbers that can be leased
	pool     []*number          // every pool number, for status
	holders  map[string]*number // session id -> the number it holds
	stats    store.CustomerStats
	gone     bool // being deleted (Purge): hands out nothing, changes nothing
}

type number struct {
	n    store.Number
	cust *customer
	// Pool numbers: the newest assignment (holder, from, until) and a few before it.
	holder     string
	from       time.Time
	leaseUntil time.Time
	heapIdx    int // -1 when not in the heap (quarantined)
	recent     []store.Assignment
	// since: recent holds every assignment of the number that began at or after it (zero:
	// not known). Memory answers the moments from since + the window on (Pool.window).
	since time.Time
}

// Option configures New.
type Option func(*Pool)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(p *Pool) { p.log = l } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(p *Pool) { p.now = now } }

// WithRegisterer registers the pool's metrics.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(p *Pool) { p.m.reg = r }
}

// New loads every customer, channel, number and recent assignment from db.
func New(db *store.DB, cfg Config, opts ...Option) (*Pool, error) {
	cfg.defaults()
	p := &Pool{
		db: db, cfg: cfg, log: slog.New(slog.DiscardHandler), now: time.Now, m: newMetrics(),
		customers: map[string]*customer{}, bySiteKey: map[string]*customer{}, numbers: map[string]*number{},
		held: map[string]*store.Number{},
	}
	for _, o := range opts {
		o(p)
	}
	if err := p.m.register(p); err != nil {
		return nil, err
	}
	if err := p.load(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.fillLifecycle(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pool) load() error {
	since := p.now().Add(-p.window())
	return p.db.View(func(tx *store.Tx) error {
		cs, err := tx.Customers()
		if err != nil {
			return err
		}
		for _, c := range cs {
			chs, err := tx.Channels(c.ID)
			if err != nil {
				return err
			}
			stats, err := tx.Stats(c.ID)
			if err != nil {
				return err
			}
			cu := p.newCustomer(c, chs)
			cu.stats = stats
		}
		err = tx.Numbers(func(n store.Number) error {
			if n.CustomerID == "" {
				p.held[n.E164] = &n
				return nil
			}
			cu := p.customers[n.CustomerID]
			if cu == nil {
				p.log.Warn("number of unknown customer ignored", "number", n.E164, "customer", n.CustomerID)
				return nil
			}
			p.addNumber(cu, n)
			return nil
		})
		if err != nil {
			return err
		}
		for _, cu := range p.customers {
			if err := p.loadRecent(tx, cu, cu.pool, since); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadRecent reads the assignments of nums, pool numbers of cu, that began at or after
// since: each number keeps its newest recentMax, and its newest is its current lease (if
// still live). The caller holds cu.mu or owns cu exclusively.
func (p *Pool) loadRecent(tx *store.Tx, cu *customer, nums []*number, since time.Time) error {
	of := make(map[string]*number, len(nums))
	for _, num := range nums {
		of[num.n.E164] = num
		num.since = since
	}
	// The records of the window, oldest first.
	err := tx.Assignments(cu.c.ID, since, time.Time{}, func(a store.Assignment) bool {
		num := of[a.Number]
		if num == nil {
			return true // a number since deleted, or not one of nums
		}
		if len(num.recent) == recentMax {
			num.since = num.recent[0].From.Add(1)
			num.recent = append(num.recent[:0], num.recent[1:]...)
		}
		num.recent = append(num.recent, a)
		return true
	})
	if err != nil {
		return err
	}
	for _, num := range nums {
		if len(num.recent) == 0 {
			continue
		}
		applyCuts(num.recent) // a record cut short by one dropped here is dropped too
		slices.Reverse(num.recent)
		a := num.recent[0]
		num.holder, num.from, num.leaseUntil = a.SessionID, a.From, a.Until
		cu.holders[a.SessionID] = num
		if num.heapIdx >= 0 {
			cu.heap.fix(num.heapIdx)
		}
	}
	return nil
}

// window is how far before a moment the assignments that may cover it began: a record is
// renewed for at most store.AssignmentSpan, its lease runs Lease after the last renewal,
// and attribution looks Grace past its end.
func (p *Pool) window() time.Duration {
	return store.AssignmentSpan + p.cfg.Lease + p.cfg.Grace
}

func (p *Pool) newCustomer(c store.Customer, chs []store.Channel) *customer {
	style, err := e164.ParseStyle(c.DisplayFormat)
	if err != nil {
		style = e164.National
	}
	cu := &customer{c: c, style: style, channels: chs, rules: compileRules(chs), holders: map[string]*number{}}
	p.mu.Lock()
	p.customers[c.ID] = cu
	p.bySiteKey[c.SiteKey] = cu
	p.mu.Unlock()
	return cu
}

// addNumber indexes a number; the caller holds cu.mu or owns cu exclusively.
func (p *Pool) addNumber(cu *customer, n store.Number) *number {
	num := &number{n: n, cust: cu, heapIdx: -1}
	p.mu.Lock()
	p.numbers[n.E164] = num
	p.mu.Unlock()
	if n.Kind == store.KindPool {
		cu.pool = append(cu.pool, num)
		if n.State == store.NumberAvailable {
			cu.heap.push(num)
		}
	}
	return num
}

func (p *Pool) customerByID(id string) (*customer, error) {
	p.mu.RLock()
	cu := p.customers[id]
	p.mu.RUnlock()
	if cu == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownCustomer, id)
	}
	return cu, nil
}

// CustomerBySiteKey returns the customer that owns a site key.
func (p *Pool) CustomerBySiteKey(key string) (store.Customer, error) {
	p.mu.RLock()
	cu := p.bySiteKey[key]
	p.mu.RUnlock()
	if cu == nil {
		return store.Customer{}, ErrUnknownCustomer
	}
	cu.mu.Lock()
	defer cu.mu.Unlock()
	return cu.c, nil
}

// Customer returns a customer by id.
func (p *Pool) Customer(id string) (store.Customer, error) {
	cu, err := p.customerByID(id)
	if err != nil {
		return store.Customer{}, err
	}
	cu.mu.Lock()
	defer cu.mu.Unlock()
	return cu.c, nil
}

// Customers lists every customer, ordered by id.
func (p *Pool) Customers() []store.Customer {
	p.mu.RLock()
	cus := make([]*customer, 0, len(p.customers))
	for _, cu := range p.customers {
		cus = append(cus, cu)
	}
	p.mu.RUnlock()
	out := make([]store.Customer, 0, len(cus))
	for _, cu := range cus {
		cu.mu.Lock()
		out = append(out, cu.c)
		cu.mu.Unlock()
	}
	sortCustomers(out)
	return out
}

// wait waits for a queued write; ctx is not consulted: a queued write always completes.
func wait(p store.Pending, err error) error {
	if err != nil {
		return err
	}
	return p.Wait()
}

// Run samples pool utilisation for metrics and peak tracking until ctx ends.
func (p *Pool) Run(ctx context.Context) error {
	if p.db.Shared() {
		go p.follow(ctx) // follow.go
	}
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		p.sample(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
