package configs

import (
	"context"
	"errors"
	"fmt"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// Seed creates the configured customers that the store does not have yet, with their
// channels and numbers. Customers that exist are left as the admin API made them.
func (c *Config) Seed(ctx context.Context, p *pool.Pool) (created int, err error) {
	for _, cu := range c.Customers {
		if _, err := p.Customer(cu.ID); err == nil {
			continue
		} else if !errors.Is(err, pool.ErrUnknownCustomer) {
			return created, err
		}
		rec, err := cu.Record()
		if err != nil {
			return created, err
		}
		if _, err := p.CreateCustomer(ctx, rec); err != nil {
			return created, fmt.Errorf("seed customer %s: %w", cu.ID, err)
		}
		var nums []pool.NumberInput
		for i, ch := range cu.Channels {
			saved, err := p.PutChannel(ctx, cu.ID, store.Channel{Name: ch.Name, Order: i + 1, Rules: ch.Rules})
			if err != nil {
				return created, fmt.Errorf("seed channel %s/%s: %w", cu.ID, ch.Name, err)
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
				return created, err
			}
			for _, n := range ns {
				nums = append(nums, pool.NumberInput{Number: n, Kind: "pool"})
			}
		}
		if len(nums) > 0 {
			if _, err := p.ImportNumbers(ctx, cu.ID, nums); err != nil {
				return created, fmt.Errorf("seed numbers of %s: %w", cu.ID, err)
			}
		}
		created++
	}
	return created, nil
}
