package pool

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/store"
)

// On a shared store (shared.go) another node may change a customer, its channels or its
// numbers: the store tells of each change (store.DB.CustomerChanges: PostgreSQL's
// LISTEN/NOTIFY), and follow reads that customer again, so that every node leases,
// classifies and attributes by the same records within moments of a change.

// follow reads again each customer the store says changed, until ctx ends.
func (p *Pool) follow(ctx context.Context) {
	changes := p.db.CustomerChanges(ctx)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	pending := false // a reload failed: read everything again soon
	for {
		var id string
		select {
		case <-ctx.Done():
			return
		case id = <-changes:
		case <-retry.C:
			id = ""
		}
		var err error
		if id == "" || pending {
			err = p.reloadAll()
		} else {
			err = p.reloadCustomer(id)
		}
		pending = err != nil
		if pending {
			p.log.Warn("customer changed on another node: not read again yet", "customer", id, "err", err)
			retry.Reset(time.Second)
		}
	}
}

// reloadCustomer replaces what the pool knows of customer id with the store's records: its
// record, channels, numbers and counters; a customer no longer stored is forgotten.
func (p *Pool) reloadCustomer(id string) error {
	var (
		c     store.Customer
		chs   []store.Channel
		nums  []store.Number
		stats store.CustomerStats
		found = true
	)
	err := p.db.View(func(tx *store.Tx) error {
		var err error
		if c, err = tx.Customer(id); errors.Is(err, store.ErrNotFound) {
			found = false
			return nil
		} else if err != nil {
			return err
		}
		if chs, err = tx.Channels(id); err != nil {
			return err
		}
		if stats, err = tx.Stats(id); err != nil {
			return err
		}
		return tx.Numbers(func(n store.Number) error {
			if n.CustomerID == id {
				nums = append(nums, n)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	var cu *customer
	var all []*number
	if found {
		style, err := e164.ParseStyle(c.DisplayFormat)
		if err != nil {
			style = e164.National
		}
		cu = &customer{c: c, style: style, channels: chs, rules: compileRules(chs), holders: map[string]*number{}, stats: stats}
		for _, n := range nums {
			num := &number{n: n, cust: cu, heapIdx: -1}
			all = append(all, num)
			if n.Kind == store.KindPool {
				cu.pool = append(cu.pool, num)
				if n.State == store.NumberAvailable {
					cu.heap.push(num)
				}
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.customers[id]; old != nil {
		delete(p.bySiteKey, old.c.SiteKey)
		for e, num := range p.numbers {
			if num.cust == old {
				delete(p.numbers, e)
			}
		}
		delete(p.customers, id)
	}
	if cu == nil {
		return nil
	}
	p.customers[id] = cu
	p.bySiteKey[c.SiteKey] = cu
	for _, num := range all {
		p.numbers[num.n.E164] = num
		delete(p.held, num.n.E164)
	}
	return nil
}

// reloadAll reads every customer again, forgets those no longer stored, and the numbers held
// in quarantine of no customer.
func (p *Pool) reloadAll() error {
	var ids []string
	held := map[string]*store.Number{}
	err := p.db.View(func(tx *store.Tx) error {
		cs, err := tx.Customers()
		if err != nil {
			return err
		}
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		return tx.Numbers(func(n store.Number) error {
			if n.CustomerID == "" {
				held[n.E164] = &n
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	p.mu.RLock()
	for id := range p.customers {
		if !slices.Contains(ids, id) {
			ids = append(ids, id) // reloadCustomer forgets it
		}
	}
	p.mu.RUnlock()
	for _, id := range ids {
		if err := p.reloadCustomer(id); err != nil {
			return err
		}
	}
	p.heldMu.Lock()
	p.mu.Lock()
	p.held = held
	p.mu.Unlock()
	p.heldMu.Unlock()
	return nil
}
