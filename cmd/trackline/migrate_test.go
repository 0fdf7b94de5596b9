package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trackline/trackline/integrations"
	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// trackline migrate against a real PostgreSQL: a stopped switch's store is copied and
// verified; a second run finds the database taken; a running switch's store is refused.
func TestMigrateCommand(t *testing.T) {
	srv, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	if err := srv.CreateDatabase(ctx, "cluster", ""); err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSN("cluster")

	data := t.TempDir()
	db, err := store.Open(filepath.Join(data, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	c := store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: "acme-site-key-0001", Created: time.Now().UTC()}
	s := store.Session{ID: "s1", CustomerID: "acme", Created: time.Now().UTC(), Channel: "Organic", LandingPage: "https://acme.example/"}
	// A webhook endpoint, its secret sealed with the customer's key as trackline serve does.
	switchKeys, err := keyring.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SealEndpointSecrets(ctx, integrations.Sealer{Keys: switchKeys}); err != nil {
		t.Fatal(err)
	}
	secret := store.SecretPrefix + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
	if err := db.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateCustomer(&c); err != nil {
			return err
		}
		if err := tx.PutEndpoint(&store.Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook",
			EventTypes: store.EventTypes(), Secret: secret, Created: time.Now().UTC()}); err != nil {
			return err
		}
		return tx.PutSession(&s)
	}); err != nil {
		t.Fatal(err)
	}

	// The switch still runs (its store is open): refused.
	if code := migrate([]string{"--data", data, "--to", dsn}); code != 1 {
		t.Errorf("migrate of a running switch's store: exit %d, want 1", code)
	}
	db.Close()

	if code := migrate([]string{"--data", data, "--to", dsn}); code != 0 {
		t.Fatalf("migrate: exit %d, want 0", code)
	}
	// The personal fields were sealed with the switch's keys: they open with them only.
	keys, err := keyring.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	pg, err := store.OpenPostgres(ctx, dsn, store.WithFieldKeys(keyringFields{keys}))
	if err != nil {
		t.Fatal(err)
	}
	var got store.Session
	err = pg.View(func(tx *store.Tx) (err error) { got, err = tx.Session("s1"); return err })
	if err != nil || got.LandingPage != s.LandingPage || got.CustomerID != "acme" {
		pg.Close()
		t.Fatalf("session in PostgreSQL: %+v %v", got, err)
	}
	// The endpoint's secret, sealed in PostgreSQL, opens with the customer's key.
	if _, err := pg.SealEndpointSecrets(ctx, integrations.Sealer{Keys: keys}); err != nil {
		pg.Close()
		t.Fatal(err)
	}
	ep, err := pg.Endpoint("acme", "crm")
	pg.Close()
	if err != nil || ep.Secret != secret {
		t.Fatalf("webhook endpoint in PostgreSQL: %+v %v", ep, err)
	}
	pg, err = store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	err = pg.View(func(tx *store.Tx) (err error) { _, err = tx.Session("s1"); return err })
	pg.Close()
	if !errors.Is(err, store.ErrNoFieldKey) {
		t.Fatalf("the session read without the keys: %v, want ErrNoFieldKey (sealed)", err)
	}
	// Run again: the destination is taken.
	if code := migrate([]string{"--data", data, "--to", dsn}); code != 1 {
		t.Errorf("second migrate: exit %d, want 1", code)
	}
	// No destination at all.
	os.Unsetenv("PGHOST")
	if code := migrate([]string{"--data", data}); code != 2 {
		t.Errorf("migrate without --to or store.dsn: exit %d, want 2", code)
	}
}
