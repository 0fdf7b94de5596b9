package store_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
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
		return tx.PutAssignment(&store.Assignment{CustomerID: "bakery", Number: "+31850000001", SessionID: "S1",
			From: from, Until: from.Add(30 * time.Minute)})
	})
	fmt.Println(err)

	// Reads copy values out of a short read transaction. Assignments are walked per
	// customer in the order they began, from a moment on.
	db.View(func(tx *store.Tx) error {
		return tx.Assignments("bakery", from.Add(-time.Hour), time.Time{}, func(a store.Assignment) bool {
			s, _ := tx.Session(a.SessionID)
			fmt.Println(a.SessionID, a.Number, s.Channel, a.Until.Sub(a.From))
			return true
		})
	})
	// Output:
	// <nil>
	// S1 +31850000001 Direct 30m0s
}

func ExampleDB_PurgeCustomer() {
	dir, _ := os.MkdirTemp("", "store-example")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	db.Write(ctx, func(tx *store.Tx) error {
		tx.CreateCustomer(&store.Customer{ID: "bakery", Status: store.StatusEnded, SiteKey: "bakery-site-key"})
		tx.PutNumber(&store.Number{E164: "+31850000001", CustomerID: "bakery", Kind: store.KindPool, State: store.NumberAvailable})
		tx.PutNumber(&store.Number{E164: "+31850000002", CustomerID: "bakery", Kind: store.KindPool,
			State: store.NumberQuarantined, QuarantinedUntil: t0.AddDate(0, 6, 0)})
		tx.PutSession(&store.Session{ID: "S1", CustomerID: "bakery", Channel: "Direct"})
		return tx.PutCall(&store.Call{ID: "C1", CustomerID: "bakery", SessionID: "S1", Start: t0, End: t0.Add(time.Minute)})
	})

	// Every record goes; the quarantined number stays held, without an owner.
	res, err := db.PurgeCustomer(ctx, "bakery", store.PurgeOptions{HoldQuarantined: true})
	fmt.Println(err, res.Calls, res.Sessions, res.Numbers, res.HeldNumbers)
	db.View(func(tx *store.Tx) error {
		_, err := tx.Customer("bakery")
		n, _ := tx.Number("+31850000002")
		fmt.Println(err, n.State, n.CustomerID == "")
		return nil
	})
	fmt.Println(db.Purged("bakery"))
	// Output:
	// <nil> 1 1 1 1
	// not found quarantined true
	// true
}

func ExampleTx_TakeInvitation() {
	dir, _ := os.MkdirTemp("", "store-example")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

	// An admin of the bakery is invited: the user has no password yet, the link's token is
	// the secret and only its hash is stored.
	token := sha256.Sum256([]byte("the link's random token"))
	err = db.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateCustomer(&store.Customer{ID: "bakery", Status: store.StatusActive, SiteKey: "bakery-site-key"}); err != nil {
			return err
		}
		if err := tx.PutUser(&store.User{ID: "u1", CustomerID: "bakery", Email: "Anna@Bakery.example", Role: store.RoleAdmin, Created: now}); err != nil {
			return err
		}
		return tx.PutInvitation(&store.Invitation{TokenHash: token, UserID: "u1", Expires: now.Add(72 * time.Hour)})
	})
	fmt.Println(err)

	// Accepting takes the invitation and sets the password in one transaction. The write
	// returns nil for an expired invitation, so that its deletion commits, and the error is
	// passed on outside.
	accept := func(at time.Time) error {
		var taken error
		err := db.Write(ctx, func(tx *store.Tx) error {
			inv, err := tx.TakeInvitation(token, at)
			if taken = err; errors.Is(err, store.ErrInvitationExpired) {
				return nil
			}
			if err != nil {
				return err
			}
			u, err := tx.User(inv.UserID)
			if err != nil {
				return err
			}
			u.PasswordHash = "$argon2id$v=19$..."
			return tx.PutUser(&u)
		})
		return cmp.Or(err, taken)
	}
	fmt.Println(accept(now.Add(time.Hour)))
	fmt.Println(accept(now.Add(time.Hour))) // one time only
	u, _ := db.UserByEmail("anna@BAKERY.example")
	fmt.Println(u.ID, u.Email, u.PasswordHash != "")
	// Output:
	// <nil>
	// <nil>
	// invitation: not found
	// u1 anna@bakery.example true
}

func ExampleDB_Rollups() {
	dir, _ := os.MkdirTemp("", "store-example")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ctx := context.Background()
	day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

	// Three calls of one caller from an ad: the write that completes each counts it in the
	// bakery's rollup of the day it started.
	for i, talk := range []float64{40, 0, 200} {
		start := day.Add(time.Duration(9+i) * time.Hour)
		c := store.Call{ID: fmt.Sprintf("01JT%022d", i), CustomerID: "bakery", Channel: "Google Ads", CallerPseudonym: "5f1c",
			LandingPage: "https://bakery.example/taart?gclid=abc", Start: start}
		db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&c) }) // ringing
		c.End, c.Disposition, c.TalkSeconds = start.Add(5*time.Minute), store.DispAnswered, talk
		if talk == 0 {
			c.Disposition = store.DispNoAnswer
		}
		db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&c) }) // ended
	}

	// A report reads a few keys a day, however many calls there were.
	days, _ := db.Rollups("bakery", day, day.AddDate(0, 0, 7))
	for _, d := range days {
		ads := d.Channels["Google Ads"]
		fmt.Println(d.Day.Format(time.DateOnly), ads.Calls, ads.Answered, ads.Missed, ads.FirstTime, ads.Returning)
		fmt.Printf("median talk %.0f s of %.0f s\n", store.MedianTalk(ads.TalkHist), ads.TalkSeconds)
		fmt.Println(d.Landing)
	}
	// Output:
	// 2026-05-01 3 2 1 1 2
	// median talk 63 s of 240 s
	// map[https://bakery.example/taart:3]
}
