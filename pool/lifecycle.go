package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/store"
)

// The contract lifecycle of a customer.
//
//	trial ──► active ──► ended (contract)      numbers quarantined, data kept for the retention
//	  │                                        period, then deleted or exported and deleted
//	  └─────────────────► ended (no contract)  all data deleted at once, numbers free at once
//
// A trial runs until TrialEnds (Config.TrialDays after it was made); a trial still running
// then has ended without a contract. An active contract ends at ContractEnds, if set, or
// when the operator ends it. A customer that is not in service (InService) gets no numbers
// and its calls are refused, from that moment on, whether or not the sweeper has run.
// Transitions go one way: an ended customer does not come back (a new contract is a new
// customer), and a contract does not return to trial.

// InService tells whether a customer hands out numbers and takes calls at the moment at:
// a trial before its end, an active contract before its end.
func InService(c *store.Customer, at time.Time) bool {
	switch c.Status {
	case store.StatusTrial:
		return c.TrialEnds.IsZero() || at.Before(c.TrialEnds)
	case store.StatusActive:
		return c.ContractEnds.IsZero() || at.Before(c.ContractEnds)
	}
	return false
}

// TrialLapsed tells whether a customer is a trial that ended without a contract by at: its
// data is to be deleted at once and its numbers freed without quarantine.
func TrialLapsed(c *store.Customer, at time.Time) bool {
	switch c.Status {
	case store.StatusTrial:
		return !c.TrialEnds.IsZero() && !at.Before(c.TrialEnds)
	case store.StatusEnded:
		return c.ActiveSince.IsZero()
	}
	return false
}

// lifecycleDefaults fills the dates of a new customer.
func (p *Pool) lifecycleDefaults(c *store.Customer) {
	switch c.Status {
	case store.StatusTrial:
		if c.TrialEnds.IsZero() {
			c.TrialEnds = c.Created.AddDate(0, 0, p.cfg.TrialDays)
		}
	case store.StatusActive:
		if c.ActiveSince.IsZero() {
			c.ActiveSince = c.Created
		}
	case store.StatusEnded:
		// Made ended: a contract that ended when it was made.
		if c.ActiveSince.IsZero() {
			c.ActiveSince = c.Created
		}
		if c.EndedAt.IsZero() {
			c.EndedAt = c.Created
		}
	}
}

// transition checks a change of status from old to c at the moment at and sets its dates.
// It answers whether the customer's numbers go into quarantine (a contract ended).
func transition(old, c *store.Customer, at time.Time) (quarantine bool, err error) {
	if old.Status == c.Status {
		return false, nil
	}
	switch {
	case old.Status == store.StatusEnded:
		return false, fmt.Errorf("%w: status: an ended customer does not come back; make a new customer", ErrConflict)
	case old.Status == store.StatusActive && c.Status == store.StatusTrial:
		return false, fmt.Errorf("%w: status: a contract does not return to trial", ErrConflict)
	case c.Status == store.StatusActive:
		c.ActiveSince = at
	case c.Status == store.StatusEnded:
		c.EndedAt = at
		return old.Status == store.StatusActive, nil
	}
	return false, nil
}

// quarantineUntil is when the quarantine of a number whose contract ended at at is over.
func (p *Pool) quarantineUntil(at time.Time) time.Time {
	return at.AddDate(0, p.cfg.QuarantineMonths, 0).UTC()
}

// numbersOf lists a customer's numbers (pool and static), ordered by E.164. The caller may
// hold cu.mu; the numbers' records are guarded by it.
func (p *Pool) numbersOf(cu *customer) []*number {
	var out []*number
	p.mu.RLock()
	for _, num := range p.numbers {
		if num.cust == cu {
			out = append(out, num)
		}
	}
	p.mu.RUnlock()
	slices.SortFunc(out, func(a, b *number) int { return cmp.Compare(a.n.E164, b.n.E164) })
	return out
}

// EndContract ends an active customer's contract at the moment at (trial customers: their
// trial ends without a contract). It is what the sweeper does when ContractEnds passed.
func (p *Pool) EndContract(ctx context.Context, id string, at time.Time) (store.Customer, error) {
	cu, err := p.customerByID(id)
	if err != nil {
		return store.Customer{}, err
	}
	return p.update(ctx, cu, func(c *store.Customer) { c.Status = store.StatusEnded }, at)
}

// update applies change at the moment at, with the status transition's effects, and stores
// the customer and (for a contract that ends) its quarantined numbers in one transaction.
func (p *Pool) update(ctx context.Context, cu *customer, change func(*store.Customer), at time.Time) (store.Customer, error) {
	cu.mu.Lock()
	defer cu.mu.Unlock()
	if cu.gone {
		return cu.c, ErrUnknownCustomer
	}
	c := cu.c
	c.AllowedOrigins = slices.Clone(c.AllowedOrigins)
	c.BusinessLines = slices.Clone(c.BusinessLines)
	c.DisplayNumbers = slices.Clone(c.DisplayNumbers)
	change(&c)
	c.ID = cu.c.ID
	if err := CheckCustomer(&c); err != nil {
		return cu.c, err
	}
	quarantine, err := transition(&cu.c, &c, at.UTC())
	if err != nil {
		return cu.c, err
	}
	var nums []*number
	var recs []store.Number
	if quarantine {
		until := p.quarantineUntil(at)
		for _, num := range p.numbersOf(cu) {
			rec := num.n
			if rec.State == store.NumberQuarantined && rec.QuarantinedUntil.After(until) {
				continue
			}
			rec.State, rec.QuarantinedUntil = store.NumberQuarantined, until
			nums, recs = append(nums, num), append(recs, rec)
		}
	}
	err = p.db.Write(ctx, func(tx *store.Tx) error {
		if err := tx.PutCustomer(&c); err != nil {
			return err
		}
		for i := range recs {
			if err := tx.PutNumber(&recs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrExists) {
		return cu.c, fmt.Errorf("%w: %v", ErrConflict, err)
	}
	if err != nil {
		return cu.c, err
	}
	p.mu.Lock()
	if cu.c.SiteKey != c.SiteKey {
		delete(p.bySiteKey, cu.c.SiteKey)
		p.bySiteKey[c.SiteKey] = cu
	}
	p.mu.Unlock()
	cu.c = c
	if s, err := e164.ParseStyle(c.DisplayFormat); err == nil {
		cu.style = s
	}
	for i, num := range nums {
		p.quarantined(cu, num, recs[i])
	}
	return c, nil
}

// quarantined applies a quarantined record to num in memory; the caller holds cu.mu.
func (p *Pool) quarantined(cu *customer, num *number, rec store.Number) {
	num.n = rec
	if num.heapIdx >= 0 {
		cu.heap.remove(num.heapIdx)
	}
	if num.holder != "" {
		delete(cu.holders, num.holder)
	}
}

// SetPorting marks a number (of a customer, or held after its customer was deleted) as
// being ported to another provider, or clears the mark. A number marked for porting is not
// released when its quarantine is over.
func (p *Pool) SetPorting(ctx context.Context, e164 string, porting bool) (store.Number, error) {
	p.mu.RLock()
	num, held := p.numbers[e164], p.held[e164]
	p.mu.RUnlock()
	switch {
	case num != nil:
		cu := num.cust
		cu.mu.Lock()
		defer cu.mu.Unlock()
		rec := num.n
		rec.Porting = porting
		if err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.PutNumber(&rec) }); err != nil {
			return num.n, err
		}
		num.n = rec
		return rec, nil
	case held != nil:
		p.heldMu.Lock()
		defer p.heldMu.Unlock()
		p.mu.RLock()
		held = p.held[e164]
		p.mu.RUnlock()
		if held == nil {
			return store.Number{}, ErrUnknownNumber
		}
		rec := *held
		rec.Porting = porting
		if err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.PutNumber(&rec) }); err != nil {
			return *held, err
		}
		p.mu.Lock()
		p.held[e164] = &rec
		p.mu.Unlock()
		return rec, nil
	}
	return store.Number{}, ErrUnknownNumber
}

// HeldNumbers lists the numbers held in quarantine after their customer was deleted,
// ordered by E.164.
func (p *Pool) HeldNumbers() []store.Number {
	p.mu.RLock()
	out := make([]store.Number, 0, len(p.held))
	for _, n := range p.held {
		out = append(out, *n)
	}
	p.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Number) int { return cmp.Compare(a.E164, b.E164) })
	return out
}

// Release is what happened to a number whose quarantine was over.
type Release struct {
	Number     string
	CustomerID string // the owner, "" for a held number
	// Returned: the number went back to its customer's available pool (the customer is in
	// service). Otherwise it was deleted: it is no longer tracked and returns to the stock.
	Returned bool
}

// ReleaseDue releases the numbers whose quarantine is over at at and that are not marked
// for porting: back to the pool of a customer in service, else out of the store (the
// available stock, from where any customer may import them again).
func (p *Pool) ReleaseDue(ctx context.Context, at time.Time) ([]Release, error) {
	var due []string
	p.mu.RLock()
	for e := range p.numbers {
		due = append(due, e)
	}
	for e := range p.held {
		due = append(due, e)
	}
	p.mu.RUnlock()
	slices.Sort(due)
	var out []Release
	var errs []error
	for _, e := range due {
		r, ok, err := p.releaseIfDue(ctx, e, at, false)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

// ReleaseHeld releases a held number now, whatever its quarantine or porting mark (the
// port is done, or the operator frees it early).
func (p *Pool) ReleaseHeld(ctx context.Context, e164 string) error {
	p.mu.RLock()
	_, ok := p.held[e164]
	p.mu.RUnlock()
	if !ok {
		return ErrUnknownNumber
	}
	_, _, err := p.releaseIfDue(ctx, e164, time.Time{}, true)
	return err
}

// releaseIfDue releases one number if its quarantine is over at at (or force).
func (p *Pool) releaseIfDue(ctx context.Context, e164 string, at time.Time, force bool) (Release, bool, error) {
	due := func(n *store.Number) bool {
		return force || n.State == store.NumberQuarantined && !n.Porting && !at.Before(n.QuarantinedUntil)
	}
	p.mu.RLock()
	num, held := p.numbers[e164], p.held[e164]
	p.mu.RUnlock()
	if held != nil {
		p.heldMu.Lock()
		defer p.heldMu.Unlock()
		p.mu.RLock()
		held = p.held[e164] // as SetPorting may have left it
		p.mu.RUnlock()
		if held == nil || !due(held) {
			return Release{}, false, nil
		}
		if err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.DeleteNumber(e164) }); err != nil && !errors.Is(err, store.ErrNotFound) {
			return Release{}, false, fmt.Errorf("release %s: %w", e164, err)
		}
		p.mu.Lock()
		delete(p.held, e164)
		p.mu.Unlock()
		return Release{Number: e164}, true, nil
	}
	if num == nil {
		return Release{}, false, nil
	}
	cu := num.cust
	cu.mu.Lock()
	defer cu.mu.Unlock()
	if cu.gone || !due(&num.n) {
		return Release{}, false, nil
	}
	r := Release{Number: e164, CustomerID: cu.c.ID, Returned: InService(&cu.c, at)}
	if r.Returned {
		rec := num.n
		rec.State, rec.QuarantinedUntil = store.NumberAvailable, time.Time{}
		if err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.PutNumber(&rec) }); err != nil {
			return r, false, fmt.Errorf("return %s: %w", e164, err)
		}
		num.n = rec
		if rec.Kind == store.KindPool && num.heapIdx < 0 {
			cu.heap.push(num)
		}
		return r, true, nil
	}
	if err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.DeleteNumber(e164) }); err != nil {
		return r, false, fmt.Errorf("release %s: %w", e164, err)
	}
	p.mu.Lock()
	delete(p.numbers, e164)
	p.mu.Unlock()
	cu.pool = slices.DeleteFunc(cu.pool, func(n *number) bool { return n == num })
	if num.holder != "" && cu.holders[num.holder] == num {
		delete(cu.holders, num.holder)
	}
	return r, true, nil
}

// Purge deletes every record of a customer that is out of service: its store records
// (store.DB.PurgeCustomer) and its place in memory. With hold, its quarantined numbers stay
// held (an ended contract); without, every number is freed at once (a lapsed trial). The
// caller removes the recording files first. A customer in service answers ErrConflict; one
// with calls in progress store.ErrActiveCalls (try again later).
func (p *Pool) Purge(ctx context.Context, id string, hold bool) (store.PurgeResult, error) {
	cu, err := p.customerByID(id)
	if err != nil {
		return store.PurgeResult{}, err
	}
	at := p.now()
	cu.mu.Lock()
	if InService(&cu.c, at) {
		cu.mu.Unlock()
		return store.PurgeResult{}, fmt.Errorf("%w: customer %s is in service", ErrConflict, id)
	}
	cu.gone = true // from here on it hands out nothing and changes nothing
	nums := p.numbersOf(cu)
	cu.mu.Unlock()
	res, err := p.db.PurgeCustomer(ctx, id, store.PurgeOptions{HoldQuarantined: hold, At: at})
	if err != nil {
		if errors.Is(err, store.ErrActiveCalls) {
			cu.mu.Lock()
			cu.gone = false
			cu.mu.Unlock()
		}
		return res, err
	}
	cu.mu.Lock()
	defer cu.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.customers, id)
	if p.bySiteKey[cu.c.SiteKey] == cu {
		delete(p.bySiteKey, cu.c.SiteKey)
	}
	for _, num := range nums {
		delete(p.numbers, num.n.E164)
		if hold && num.n.State == store.NumberQuarantined {
			rec := num.n
			rec.CustomerID, rec.ChannelID = "", ""
			p.held[rec.E164] = &rec
		}
	}
	cu.holders, cu.pool, cu.heap = map[string]*number{}, nil, nil
	return res, nil
}

// Now is the pool's clock.
func (p *Pool) Now() time.Time { return p.now() }

// Purged tells whether id was a customer whose data was deleted (its id is not given again).
func (p *Pool) Purged(id string) bool { return p.db.Purged(id) }

// Audit commits an entry to the audit log (for changes made outside the admin API, such
// as the config's).
func (p *Pool) Audit(ctx context.Context, e store.AuditEntry) error {
	return p.db.Write(ctx, func(tx *store.Tx) error { return tx.AppendAudit(&e) })
}

// fillLifecycle gives the customers of a store written before the lifecycle existed their
// dates, once: an active contract started when the customer was made; a trial runs
// TrialDays from now; an ended customer is a contract that ended now, whose numbers are
// quarantined from now. Nothing is deleted sooner than a new customer's data would be.
func (p *Pool) fillLifecycle(ctx context.Context) error {
	now := p.now().UTC()
	for _, c := range p.Customers() {
		cu, err := p.customerByID(c.ID)
		if err != nil {
			return err
		}
		switch {
		case c.Status == store.StatusTrial && c.TrialEnds.IsZero():
			_, err = p.update(ctx, cu, func(c *store.Customer) { c.TrialEnds = now.AddDate(0, 0, p.cfg.TrialDays) }, now)
		case c.Status == store.StatusActive && c.ActiveSince.IsZero():
			_, err = p.update(ctx, cu, func(c *store.Customer) { c.ActiveSince = c.Created }, now)
		case c.Status == store.StatusEnded && c.EndedAt.IsZero():
			// Reopened in memory for a moment, so that the transition to ended applies.
			cu.mu.Lock()
			cu.c.Status = store.StatusActive
			if cu.c.ActiveSince.IsZero() {
				cu.c.ActiveSince = cu.c.Created
			}
			cu.mu.Unlock()
			_, err = p.update(ctx, cu, func(c *store.Customer) { c.Status = store.StatusEnded }, now)
		}
		if err != nil {
			return fmt.Errorf("lifecycle dates of %s: %w", c.ID, err)
		}
	}
	return nil
}
