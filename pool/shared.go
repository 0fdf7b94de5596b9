package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// node's since.

// leaseShared is lease on a shared store: the lease from now until until of session s
// (encoded in enc when it is new).
func (p *Pool) leaseShared(ctx context.Context, cu *customer, s *store.Session, isNew bool, now, until time.Time, enc store.EncodedSession) (Lease, error) {
	cu.mu.Lock()
	if cu.gone || !InService(&cu.c, now) {
		cu.mu.Unlock()
		return Lease{}, ErrCustomerEnded
	}
	customerID, style, replace := cu.c.ID, cu.style, cu.c.DisplayNumbers
	cu.mu.Unlock()

	req := store.LeaseRequest{CustomerID: customerID, SessionID: s.ID, Now: now, Until: until, Grace: p.cfg.Grace, New: isNew}
	var res store.LeaseResult
	// The session, the lease and the counters: statements sent with the batch's others, so
	// that many sessions share one round trip and one commit (store/pg_lease.go).
	err := p.db.Write(ctx, func(tx *store.Tx) error {
		if isNew {
			if err := tx.PutEncodedSession(enc); err != nil {
				return err
			}
		}
		return tx.LeaseNumber(req, &res)
	})
	if errors.Is(err, store.ErrNoNumbers) {
		return Lease{}, ErrNoNumbers
	}
	if err != nil {
		return Lease{}, fmt.Errorf("persist lease: %w", err)
	}
	if res.Exhausted && p.db.EventWanted(customerID, store.EventPoolExhausted) {
		// The webhooks' number.pool_exhausted: known only once the lease is decided, so in a
		// write of its own (on bbolt it shares the lease's); none when no endpoint of the
		// customer wants it, as the write would find.
		if err := p.db.Write(ctx, func(tx *store.Tx) error {
			return tx.PoolExhausted(customerID, res.Assignment.Number, now)
		}); err != nil {
			p.log.Error("pool exhausted event not written", "customer", customerID, "err", err)
		}
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
