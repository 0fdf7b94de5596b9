package pool

import (
	"context"
	"errors"
	"fmt"

	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/store"
)

// Shared mode: several nodes on one store (PostgreSQL, store.DB.Shared). A node's memory
// does not see the leases the other nodes make, so the store decides each lease
// (store.Tx.LeaseNumber: the session's own number, or the least recently leased one that no
// other transaction holds) and attribution reads the assignments from the store, whichever
// node made them. The in-memory heap and recent assignments of the numbers are not used.
//
// Customers, channels and numbers changed on another node reach this one through the
// store's notifications (follow.go). Not shared yet (issue 22, next steps): the counters
// the admin API shows per customer are the store's at the customer's last reload plus this
// node's since; a pool exhausted on PostgreSQL needs the webhooks' PoolExhausted there.

// leaseShared is lease on a shared store.
func (p *Pool) leaseShared(ctx context.Context, cu *customer, s *store.Session, isNew bool) (Lease, error) {
	now := p.now().UTC()
	until := now.Add(p.cfg.Lease)
	var enc store.EncodedSession
	if isNew {
		var err error
		if enc, err = store.EncodeSession(s); err != nil {
			return Lease{}, err
		}
	}
	cu.mu.Lock()
	if cu.gone || !InService(&cu.c, now) {
		cu.mu.Unlock()
		return Lease{}, ErrCustomerEnded
	}
	customerID, style, replace := cu.c.ID, cu.style, cu.c.DisplayNumbers
	cu.mu.Unlock()

	req := store.LeaseRequest{CustomerID: customerID, SessionID: s.ID, Now: now, Until: until, Grace: p.cfg.Grace, New: isNew}
	var res store.LeaseResult
	err := p.db.Write(ctx, func(tx *store.Tx) error {
		if isNew {
			if err := tx.PutEncodedSession(enc); err != nil {
				return err
			}
		}
		r, err := tx.LeaseNumber(req)
		if err != nil {
			return err
		}
		var sessions, exhaustions uint64
		if isNew {
			sessions = 1
		}
		if r.Exhausted {
			exhaustions = 1
		}
		if sessions+exhaustions > 0 {
			if err := tx.AddStats(customerID, sessions, exhaustions, 0); err != nil {
				return err
			}
		}
		if r.Exhausted {
			if err := tx.PoolExhausted(customerID, r.Assignment.Number, now); err != nil {
				return err
			}
		}
		res = r
		return nil
	})
	if errors.Is(err, store.ErrNoNumbers) {
		return Lease{}, ErrNoNumbers
	}
	if err != nil {
		return Lease{}, fmt.Errorf("persist lease: %w", err)
	}
	cu.mu.Lock()
	if isNew {
		cu.stats.SessionsTotal++
	}
	if res.Exhausted {
		cu.stats.Exhaustions++
	}
	cu.mu.Unlock()
	p.m.leased(customerID, isNew, res.Exhausted)
	return Lease{
		SessionID: s.ID, New: isNew, Number: res.Assignment.Number, Formatted: e164.Format(res.Assignment.Number, style),
		Until: until, Channel: s.Channel, Campaign: s.UTMCampaign, Replace: replace,
	}, nil
}
