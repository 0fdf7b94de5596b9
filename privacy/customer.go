package privacy

import (
	"context"
	"errors"
	"fmt"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// EraseCustomer erases a customer for good and returns how many records of each kind went,
// in an order that a retry completes after a crash or an error: its key is destroyed first,
// so that its recordings, wherever copies are (backups), can never be decrypted and its
// callers' pseudonyms never linked again; then its recording files and every record it has
// are deleted (pool.Purge: its numbers are held in quarantine after a contract, freed after
// a lapsed trial), the customer.erase audit entry is committed (actor, the counts), and the
// store file is compacted. The customer must be out of service (its contract or trial
// ended: else ErrInService) and have no call in progress (else ErrActiveCalls); a customer
// that does not exist gives an error wrapping pool.ErrUnknownCustomer. A failed compaction
// gives ErrNotCompacted with the counts.
func (s *Service) EraseCustomer(ctx context.Context, customerID, actor string) (map[string]int, error) {
	c, err := s.pool.Customer(customerID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if pool.InService(&c, now) {
		return nil, ErrInService
	}
	if busy, err := s.db.HasActiveCalls(customerID); err != nil {
		return nil, err
	} else if busy {
		return nil, ErrActiveCalls
	}
	if err := s.keys.Destroy(customerID); err != nil {
		return nil, err
	}
	if err := s.files().RemoveCustomer(ctx, customerID); err != nil {
		return nil, err
	}
	res, err := s.pool.Purge(ctx, customerID, !pool.TrialLapsed(&c, now))
	if errors.Is(err, store.ErrActiveCalls) {
		return nil, fmt.Errorf("%w: %w", ErrActiveCalls, err)
	}
	if err != nil {
		return nil, err
	}
	counts := res.Counts()
	e := store.AuditEntry{Time: now, Actor: actor, Action: "customer.erase", CustomerID: customerID, Counts: res.Counts()}
	if err := s.db.Write(ctx, func(tx *store.Tx) error { return tx.AppendAudit(&e) }); err != nil {
		return nil, err
	}
	st, err := s.db.Compact(context.WithoutCancel(ctx))
	if err != nil {
		return counts, errors.Join(ErrNotCompacted, err)
	}
	s.log.Info("customer erased", "customer", customerID, "store_bytes_before", st.Before, "store_bytes_after", st.After,
		"compact_ms", st.Copy.Milliseconds(), "write_pause_ms", st.Pause.Milliseconds())
	return counts, nil
}
