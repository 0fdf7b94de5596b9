package storetest

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/trackline/trackline/store"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// RawHolds finds what the store keeps, on the driver TRACKLINE_TEST_STORE names, and not
// what it does not.
func TestRawHolds(t *testing.T) {
	db := Open(t)
	if got := db.Driver(); got != Driver(t) {
		t.Fatalf("Open gave a %s store, want %s", got, Driver(t))
	}
	if err := db.Write(context.Background(), func(tx *store.Tx) error {
		return tx.CreateCustomer(&store.Customer{ID: "acme", Name: "needle-7391", SiteKey: "acme-site-key", Status: store.StatusActive})
	}); err != nil {
		t.Fatal(err)
	}
	where := RawHolds(t, db, "needle-7391")
	switch {
	case Driver(t) == "bbolt" && !slices.Equal(where, []string{"file"}):
		t.Fatalf("RawHolds = %v, want the file", where)
	case Driver(t) == "postgres" && (len(where) != 1 || !strings.HasPrefix(where[0], "customers: ")):
		t.Fatalf("RawHolds = %v, want the customers row", where)
	}
	if where := RawHolds(t, db, "absent-7391"); len(where) != 0 {
		t.Fatalf("RawHolds of what is not there = %v", where)
	}
}
