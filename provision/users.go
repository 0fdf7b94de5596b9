package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trackline/trackline/accounts"
	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/store"
)

// SeedUsers makes the configured web app accounts whose email the store does not know yet,
// with their passwords hashed; accounts that exist are left as they are (a changed
// password in the config does not overwrite one the user chose). It returns how many it made.
func SeedUsers(ctx context.Context, c *configs.Config, db *store.DB, now time.Time) (int, error) {
	made := 0
	for _, cu := range c.Users {
		_, err := db.UserByEmail(cu.Email)
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return made, err
		}
		phc, err := accounts.HashPassword(cu.Password)
		if err != nil {
			return made, err
		}
		u := store.User{ID: accounts.NewID(), CustomerID: cu.Customer, Email: cu.Email, Role: store.Role(cu.Role),
			PasswordHash: phc, Created: now.UTC()}
		e := store.AuditEntry{Time: now, Actor: "config", Action: "user.create", CustomerID: u.CustomerID, IDs: []string{u.ID}}
		if err := db.Write(ctx, func(tx *store.Tx) error {
			if err := tx.PutUser(&u); err != nil {
				return err
			}
			return tx.AppendAudit(&e)
		}); err != nil {
			return made, fmt.Errorf("seed user %s: %w", cu.Email, err)
		}
		made++
	}
	return made, nil
}
