package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// SeedReport says what Seed did.
type SeedReport struct {
	Created int      // customers made
	Changed []string // existing customers the config moved on (status, contract end)
	Deleted []string // customers whose data was deleted: not made again
}

// Seed creates the configured customers that the store does not have yet, with their
// channels and numbers. Customers that exist are left as the admin API made them, but for
// their lifecycle, which the config moves forward only: a later status (trial, then
// active, then ended) and a contract end the store has none of. A customer whose data was
// deleted (a lapsed trial, an ended contract past its retention) is not made again.
func Seed(ctx context.Context, c *configs.Config, p *pool.Pool) (SeedReport, error) {
	var rep SeedReport
	for _, cu := range c.Customers {
		if p.Purged(cu.ID) {
			rep.Deleted = append(rep.Deleted, cu.ID)
			continue
		}
		if cur, err := p.Customer(cu.ID); err == nil {
			changed, err := advance(ctx, p, cur, &cu)
			if err != nil {
				return rep, fmt.Errorf("customers[%s]: %w", cu.ID, err)
			}
			if changed {
				rep.Changed = append(rep.Changed, cu.ID)
			}
			continue
		} else if !errors.Is(err, pool.ErrUnknownCustomer) {
			return rep, err
		}
		rec, err := Record(&cu)
		if err != nil {
			return rep, err
		}
		if _, err := p.CreateCustomer(ctx, rec); err != nil {
			return rep, fmt.Errorf("seed customer %s: %w", cu.ID, err)
		}
		var nums []pool.NumberInput
		for i, ch := range cu.Channels {
			saved, err := p.PutChannel(ctx, cu.ID, store.Channel{Name: ch.Name, Order: i + 1, Rules: rules(ch.Rules)})
			if err != nil {
				return rep, fmt.Errorf("seed channel %s/%s: %w", cu.ID, ch.Name, err)
			}
			for _, n := range ch.Numbers {
				nums = append(nums, pool.NumberInput{Number: n, Kind: "static", Channel: saved.ID})
			}
		}
		for _, n := range cu.Pool {
			nums = append(nums, pool.NumberInput{Number: n, Kind: "pool"})
		}
		if cu.PoolRange != nil {
			ns, err := cu.PoolRange.Numbers()
			if err != nil {
				return rep, err
			}
			for _, n := range ns {
				nums = append(nums, pool.NumberInput{Number: n, Kind: "pool"})
			}
		}
		if len(nums) > 0 {
			if _, err := p.ImportNumbers(ctx, cu.ID, nums); err != nil {
				return rep, fmt.Errorf("seed numbers of %s: %w", cu.ID, err)
			}
		}
		rep.Created++
	}
	return rep, nil
}

// advance moves an existing customer on as the config says, forward only, and writes the
// change in the audit log (actor "config").
func advance(ctx context.Context, p *pool.Pool, cur store.Customer, cu *configs.Customer) (bool, error) {
	want, err := store.ParseCustomerStatus(cu.Status)
	if err != nil {
		return false, err
	}
	forward := want > cur.Status // trial < active < ended
	setEnd := !cu.ContractEnds.IsZero() && cur.ContractEnds.IsZero() && cur.Status != store.StatusEnded
	if !forward && !setEnd {
		return false, nil
	}
	if _, err := p.UpdateCustomer(ctx, cu.ID, func(c *store.Customer) {
		if forward {
			c.Status = want
		}
		if setEnd {
			c.ContractEnds = cu.ContractEnds.UTC()
		}
	}); err != nil {
		return false, err
	}
	return true, p.Audit(ctx, store.AuditEntry{Time: p.Now(), Actor: "config", Action: "customer.update", CustomerID: cu.ID})
}
