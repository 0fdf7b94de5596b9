package main

import (
	"context"
	"fmt"
	"time"

	"github.com/trackline/trackline/accounts"
	"github.com/trackline/trackline/store"
)

// benchPassword is the password of every user -users writes. A benchmark store's, on
// loopback: not a secret.
const benchPassword = "bench-password"

// operatorEmail is the operator -users writes.
const operatorEmail = "operator@trackline.bench"

// adminEmail is the admin -users writes for a customer.
func adminEmail(customerID string) string { return "admin@" + customerID + ".bench" }

// seedUsers writes an admin of each customer and one operator, all with benchPassword, as
// the config's users are made at start (provision.SeedUsers): an argon2id hash and an audit
// entry each.
func seedUsers(ctx context.Context, db *store.DB, customers int, now time.Time) error {
	users := []store.User{{Email: operatorEmail, Name: "Bench operator", Role: store.RoleOperator}}
	for c := range customers {
		id := customerID(c)
		users = append(users, store.User{CustomerID: id, Email: adminEmail(id), Name: "Admin of " + id, Role: store.RoleAdmin})
	}
	for _, u := range users {
		phc, err := accounts.HashPassword(benchPassword)
		if err != nil {
			return err
		}
		u.ID, u.PasswordHash, u.Created = accounts.NewID(), phc, now
		e := store.AuditEntry{Time: now, Actor: "seed", Action: "user.create", CustomerID: u.CustomerID, IDs: []string{u.ID}}
		err = db.Write(ctx, func(tx *store.Tx) error {
			if err := tx.PutUser(&u); err != nil {
				return err
			}
			return tx.AppendAudit(&e)
		})
		if err != nil {
			return fmt.Errorf("user %s: %w", u.Email, err)
		}
	}
	return nil
}
