package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/store/keyring"
)

// keyringFields gives the store the keyring's field keys, as cmd does.
type keyringFields struct{ k *keyring.Keyring }

func (f keyringFields) FieldKey(customerID string, create bool) ([]byte, error) {
	get := f.k.Lookup
	if create {
		get = f.k.Get
	}
	key, err := get(customerID)
	if errors.Is(err, keyring.ErrNoKey) {
		return nil, fmt.Errorf("%w: %v", ErrNoFieldKey, err)
	}
	if err != nil {
		return nil, err
	}
	return key.FieldKey(), nil
}

// With the customers' keys, personal fields are nowhere in the database in a readable form,
// read back as written, do not open in another row, and are gone with the key.
func TestPostgresPersonalFieldsSealedWithTheCustomersKey(t *testing.T) {
	keys, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	db, err := OpenPostgres(ctx, dsn, WithFieldKeys(keyringFields{keys}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	s := Session{ID: "s1", CustomerID: "acme", Channel: "Google Ads", LandingPage: "https://shop.example/sealed-offer", ReferrerHost: "sealed-referrer.example"}
	calls := []Call{
		{ID: testCallID(t0, 1), CustomerID: "acme", Dialled: "+31850000001", Caller: "+31611122233", LandingPage: s.LandingPage,
			ReferrerHost: s.ReferrerHost, SessionID: "s1", Start: t0, End: t0.Add(time.Minute), Disposition: DispNoAnswer},
		{ID: testCallID(t0, 2), CustomerID: "acme", Dialled: "+31850000001", Caller: "+31644455566", Start: t0},
	}
	if err := db.Write(ctx, func(tx *Tx) error {
		if err := tx.PutSession(&s); err != nil {
			return err
		}
		for i := range calls {
			if err := tx.PutCall(&calls[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var gotS Session
	var gotC Call
	if err := db.View(func(tx *Tx) (err error) {
		if gotS, err = tx.Session("s1"); err != nil {
			return err
		}
		gotC, err = tx.Call(calls[0].ID)
		return err
	}); err != nil || gotS != s || gotC.Caller != calls[0].Caller || gotC.LandingPage != s.LandingPage || gotC.ReferrerHost != s.ReferrerHost {
		t.Fatalf("read back: %+v %+v %v", gotS, gotC, err)
	}
	// The day's rollups count the landing page, sealed too (pg_rollupnames.go).
	days, err := db.Rollups("acme", t0, t0.Add(time.Hour))
	if err != nil || len(days) != 1 || days[0].Landing[s.LandingPage] != 1 {
		t.Fatalf("rollups: %+v %v", days, err)
	}
	for _, personal := range []string{"+31611122233", "611122233", "sealed-referrer", "sealed-offer"} {
		holds := pgRawHolds(t, db, personal)
		if len(holds) > 0 {
			t.Fatalf("%q readable in %v", personal, holds)
		}
	}
	// A sealed value copied into another row does not open there.
	conn := pgConn(t, dsn)
	if _, err := conn.Exec(ctx, `UPDATE calls SET caller = (SELECT caller FROM calls WHERE id = $1) WHERE id = $2`, calls[0].ID, calls[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Call(calls[1].ID); err == nil || !strings.Contains(err.Error(), "calls.caller") {
		t.Fatalf("a caller moved to another call: %v", err)
	}
	// The customer's key destroyed: its personal fields are unreadable.
	if err := keys.Destroy("acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Call(calls[0].ID); !errors.Is(err, ErrNoFieldKey) {
		t.Fatalf("call after the key's destruction: %v", err)
	}
	if err := db.View(func(tx *Tx) error { _, err := tx.Session("s1"); return err }); !errors.Is(err, ErrNoFieldKey) {
		t.Fatalf("session after the key's destruction: %v", err)
	}
	if _, err := db.Rollups("acme", t0, t0.Add(time.Hour)); !errors.Is(err, ErrNoFieldKey) {
		t.Fatalf("rollups after the key's destruction: %v", err)
	}
}
