package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/trackline/trackline/store"
)

func ExampleDB_Write() {
	dir, _ := os.MkdirTemp("", "store-example")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()

	// Write returns once the transaction, shared with concurrent writers, is on disk.
	from := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	err = db.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.PutSession(&store.Session{ID: "S1", CustomerID: "bakery", Channel: "Direct"}); err != nil {
			return err
		}
		return tx.PutAssignment(&store.Assignment{Number: "+31850000001", SessionID: "S1", From: from, Until: from.Add(30 * time.Minute)})
	})
	fmt.Println(err)

	// Reads copy values out of a short read transaction.
	db.View(func(tx *store.Tx) error {
		return tx.RecentAssignments("+31850000001", func(a store.Assignment) bool {
			s, _ := tx.Session(a.SessionID)
			fmt.Println(a.SessionID, s.Channel, a.Until.Sub(a.From))
			return true
		})
	})
	// Output:
	// <nil>
	// S1 Direct 30m0s
}
