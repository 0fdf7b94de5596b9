package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/store"
)

// Lease is what a website session gets: its number and until when it holds it.
type Lease struct {
	SessionID string
	New       bool // the session was created by this call
	Number    string
	Formatted string // as the customer displays numbers
	Until     time.Time
	Channel   string
	Campaign  string
	Replace   []string // the customer's displayed numbers that the script swaps
}

// Assign gives the visit's session a number. A session id the store knows for this customer
// keeps its session (and its number while the lease is live, renewing it; a known ad consent
// in v replaces the session's); otherwise a new session is created, its channel classified
// from the visit, once v.Admit (if set) allowed it.
func (p *Pool) Assign(ctx context.Context, customerID string, v Visit) (Lease, error) {
	cu, err := p.customerByID(customerID)
	if err != nil {
		return Lease{}, err
	}
	if v.SessionID != "" {
		s, err := p.session(customerID, v.SessionID)
		if err == nil {
			if err := p.updateConsent(ctx, &s, v.AdConsent); err != nil {
				return Lease{}, err
			}
			return p.lease(ctx, cu, &s, false)
		}
		if !errors.Is(err, ErrUnknownSession) {
			return Lease{}, err
		}
	}
	if v.Admit != nil {
		cu.mu.Lock()
		n := len(cu.pool)
		cu.mu.Unlock()
		if err := v.Admit(n); err != nil {
			return Lease{}, err
		}
	}
	s := visitSession(&v)
	s.CustomerID = customerID
	s.Created = p.now().UTC()
	s.ID = NewID(s.Created)
	cu.mu.Lock()
	s.Channel = classify(cu.rules, &s)
	cu.mu.Unlock()
	return p.lease(ctx, cu, &s, true)
}

// updateConsent records a known session's changed ad consent: a visitor who answers the
// consent banner after the session began. An unknown consent changes nothing.
func (p *Pool) updateConsent(ctx context.Context, s *store.Session, c store.Consent) error {
	if c == store.ConsentUnknown || c == s.AdConsent {
		return nil
	}
	s.AdConsent = c
	id := s.ID
	return p.db.Write(ctx, func(tx *store.Tx) error {
		stored, err := tx.Session(id)
		if err != nil {
			return err
		}
		stored.AdConsent = c
		return tx.PutSession(&stored)
	})
}

// Touch renews a session's lease (or gives it a new number if its number went to someone else).
func (p *Pool) Touch(ctx context.Context, customerID, sessionID string) (Lease, error) {
	cu, err := p.customerByID(customerID)
	if err != nil {
		return Lease{}, err
	}
	s, err := p.session(customerID, sessionID)
	if err != nil {
		return Lease{}, err
	}
	return p.lease(ctx, cu, &s, false)
}

// session reads a session of a customer from the store.
func (p *Pool) session(customerID, id string) (store.Session, error) {
	if !validID(id) {
		return store.Session{}, ErrUnknownSession
	}
	var s store.Session
	err := p.db.View(func(tx *store.Tx) (err error) { s, err = tx.Session(id); return err })
	if errors.Is(err, store.ErrNotFound) || err == nil && s.CustomerID != customerID {
		return store.Session{}, ErrUnknownSession
	}
	return s, err
}

// lease renews or makes the session's assignment, persists it and waits for the commit.
func (p *Pool) lease(ctx context.Context, cu *customer, s *store.Session, isNew bool) (Lease, error) {
	now := p.now().UTC()
	until := now.Add(p.cfg.Lease)
	var enc store.EncodedSession
	if isNew {
		var err error
		if enc, err = store.EncodeSession(s); err != nil {
			return Lease{}, err
		}
	}
	if p.db.Shared() {
		return p.leaseShared(ctx, cu, s, isNew, now, until, enc) // shared.go
	}

	cu.mu.Lock()
	if cu.gone || !InService(&cu.c, now) {
		cu.mu.Unlock()
		return Lease{}, ErrCustomerEnded
	}
	var (
		cur        store.Assignment // the record written
		exhausted  bool
		num        = cu.holders[s.ID]
		reuseOwned = num != nil && num.holder == s.ID && num.heapIdx >= 0
	)
	switch {
	case reuseOwned && !now.After(num.leaseUntil) && now.Sub(num.recent[0].From) < store.AssignmentSpan:
		// Live lease: extend it.
		num.leaseUntil = until
		num.recent[0].Until = until
		cur = num.recent[0]
	case reuseOwned && !now.After(num.leaseUntil):
		// Live lease, renewed in its record for long enough (store.AssignmentSpan): it goes
		// on in a new one, which ends the old one.
		cur = p.newAssignment(cu, num, s.ID, now, until, true)
	case reuseOwned:
		// Expired, but nobody took the number since: a new lease on the same number.
		cur = p.newAssignment(cu, num, s.ID, now, until, false)
	default:
		delete(cu.holders, s.ID)
		num = cu.heap.min()
		if num == nil {
			cu.mu.Unlock()
			return Lease{}, ErrNoNumbers
		}
		live := false
		if num.holder != "" {
			exhausted = now.Before(num.leaseUntil.Add(p.cfg.Grace))
			// Every number is live: the least recently touched lease is cut short.
			live = now.Before(num.leaseUntil)
			delete(cu.holders, num.holder)
		}
		cur = p.newAssignment(cu, num, s.ID, now, until, live)
	}
	cu.heap.fix(num.heapIdx)
	cu.holders[s.ID] = num
	if isNew {
		cu.stats.SessionsTotal++
	}
	if exhausted {
		cu.stats.Exhaustions++
	}
	l := Lease{
		SessionID: s.ID, New: isNew, Number: num.n.E164, Formatted: e164.Format(num.n.E164, cu.style),
		Until: until, Channel: s.Channel, Campaign: s.UTMCampaign, Replace: cu.c.DisplayNumbers,
	}
	customerID := cu.c.ID
	var newSessions, exhaustions uint64
	var exhaustedNumber string // the number taken while the pool was exhausted
	if isNew {
		newSessions = 1
	}
	if exhausted {
		exhaustions, exhaustedNumber = 1, num.n.E164
	}
	// Enqueue under the lock so that writes of one customer reach the disk in memory order.
	pend, err := p.db.Enqueue(ctx, func(tx *store.Tx) error {
		if isNew {
			if err := tx.PutEncodedSession(enc); err != nil {
				return err
			}
		}
		if err := tx.PutAssignment(&cur); err != nil {
			return err
		}
		if newSessions+exhaustions > 0 {
			if err := tx.AddStats(customerID, newSessions, exhaustions, 0); err != nil {
				return err
			}
		}
		if exhaustions > 0 {
			// The webhooks' number.pool_exhausted, written with the count (store: events.go).
			return tx.PoolExhausted(customerID, exhaustedNumber, now)
		}
		return nil
	})
	cu.mu.Unlock()
	if err := wait(pend, err); err != nil {
		return Lease{}, fmt.Errorf("persist lease: %w", err)
	}
	p.m.leased(customerID, isNew, exhausted)
	return l, nil
}

// newAssignment starts a lease of num to session; the caller holds cu.mu. With cut, the
// number's current lease is live and ends now: the new record names it (store.Assignment's
// CutFrom), so that it need not be rewritten.
func (p *Pool) newAssignment(cu *customer, num *number, session string, now, until time.Time, cut bool) store.Assignment {
	a := store.Assignment{CustomerID: cu.c.ID, Number: num.n.E164, SessionID: session, From: now, Until: until}
	if cut {
		num.recent[0].Until = now
		a.CutFrom = num.recent[0].From
	}
	num.holder, num.from, num.leaseUntil = session, now, until
	if len(num.recent) == recentMax {
		num.since = num.recent[recentMax-1].From.Add(1)
		num.recent = num.recent[:recentMax-1]
	}
	num.recent = append(num.recent, store.Assignment{})
	copy(num.recent[1:], num.recent)
	num.recent[0] = a
	return a
}
