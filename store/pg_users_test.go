package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// twoNodes opens two stores on one fresh PostgreSQL database, as two nodes of a cluster,
// with the customer acme.
func twoNodes(t *testing.T) [2]*DB {
	t.Helper()
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	var nodes [2]*DB
	for i := range nodes {
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		nodes[i] = db
	}
	if err := nodes[0].Write(ctx, func(tx *Tx) error {
		return tx.CreateCustomer(&Customer{ID: "acme", SiteKey: "acme-site-key", Status: StatusActive})
	}); err != nil {
		t.Fatal(err)
	}
	return nodes
}

// An address another node gives between a write's check and its commit fails the write at
// the commit with ErrEmailTaken, as the check would have.
func TestPostgresEmailTakenByAnotherNode(t *testing.T) {
	nodes := twoNodes(t)
	ctx := context.Background()
	var other error
	err := nodes[0].Write(ctx, func(tx *Tx) error {
		if err := tx.PutUser(&User{ID: "u-a", CustomerID: "acme", Email: "Same@acme.example", Role: RoleMember}); err != nil {
			return err
		}
		// The check found the address free; node B takes it and commits before this write.
		other = putUser(nodes[1], User{ID: "u-b", CustomerID: "acme", Email: "same@ACME.example", Role: RoleAdmin})
		return nil
	})
	if other != nil {
		t.Fatalf("node B's write: %v", other)
	}
	if !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("node A's write = %v, want ErrEmailTaken", err)
	}
	if u, err := nodes[0].UserByEmail("SAME@acme.example"); err != nil || u.ID != "u-b" {
		t.Fatalf("UserByEmail = %+v %v, want u-b", u, err)
	}
	if _, err := nodes[1].User("u-a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused user: %v", err)
	}
}

// A user deleted on one node while another node logs it in (sessions) or invites it leaves
// no session or invitation behind: the writes that lost the race find no user.
func TestPostgresDeleteUserRacesItsSessions(t *testing.T) {
	nodes := twoNodes(t)
	ctx := context.Background()
	exp := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for round := range 15 {
		id := fmt.Sprintf("u-%d", round)
		if err := putUser(nodes[0], User{ID: id, CustomerID: "acme", Email: id + "@acme.example", Role: RoleMember}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 12)
		for i := range 10 {
			wg.Go(func() {
				h := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", id, i)))
				errs <- nodes[0].Write(ctx, func(tx *Tx) error {
					if i == 9 {
						return tx.PutInvitation(&Invitation{TokenHash: h, UserID: id, Expires: exp})
					}
					return tx.PutAppSession(&AppSession{IDHash: h, UserID: id, CustomerID: "acme", Expires: exp})
				})
			})
			if i == 4 {
				wg.Go(func() { errs <- nodes[1].Write(ctx, func(tx *Tx) error { return tx.DeleteUser(id) }) })
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
		}
		var n int
		err := nodes[1].View(func(tx *Tx) error {
			return tx.pg.row(`SELECT (SELECT count(*) FROM app_sessions WHERE user_id = $1) +
				(SELECT count(*) FROM invitations WHERE user_id = $1) + (SELECT count(*) FROM users WHERE id = $1)`, []any{id}, &n)
		})
		if err != nil || n != 0 {
			t.Fatalf("round %d: %d rows of the deleted user left (%v)", round, n, err)
		}
	}
}

// Lookups with bytes PostgreSQL's text cannot hold find nothing, on either driver, without
// failing the transaction; ids and emails with them are refused, names mended as JSON does.
func TestUsersOddBytes(t *testing.T) {
	db := usersFixture(t)
	ctx := context.Background()
	if err := putUser(db, User{ID: "u-ann", CustomerID: "acme", Email: "ann@acme.example", Name: "Ann \xff\xfe", Role: RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if u, err := db.User("u-ann"); err != nil || u.Name != "Ann \uFFFD\uFFFD" {
		t.Fatalf("User = %+v %v, want the name with U+FFFD for each bad byte", u, err)
	}
	for _, u := range []User{
		{ID: "u-\xff", CustomerID: "acme", Email: "x@acme.example", Role: RoleMember},
		{ID: "u-x", CustomerID: "acme", Email: "x\xff@acme.example", Role: RoleMember},
		{ID: "u-x", CustomerID: "ac\xffme", Email: "x@acme.example", Role: RoleMember},
	} {
		if err := putUser(db, u); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutUser(%q, %q, %q) = %v, want ErrInvalid", u.ID, u.Email, u.CustomerID, err)
		}
	}
	err := db.View(func(tx *Tx) error {
		for _, odd := range []string{"\xff", "a\x00b"} {
			if _, err := tx.User(odd); !errors.Is(err, ErrNotFound) {
				t.Errorf("User(%q) = %v", odd, err)
			}
			if _, err := tx.UserByEmail(odd); !errors.Is(err, ErrNotFound) {
				t.Errorf("UserByEmail(%q) = %v", odd, err)
			}
			if us, err := tx.Users(odd); err != nil || len(us) != 0 {
				t.Errorf("Users(%q) = %v %v", odd, us, err)
			}
			if _, err := tx.GoogleAds(odd); !errors.Is(err, ErrNotFound) {
				t.Errorf("GoogleAds(%q) = %v", odd, err)
			}
			if _, err := tx.ConversionUpload("acme", odd); !errors.Is(err, ErrNotFound) {
				t.Errorf("ConversionUpload(%q) = %v", odd, err)
			}
		}
		// The transaction is still good.
		u, err := tx.UserByEmail("ANN@acme.example")
		if err != nil || u.ID != "u-ann" {
			t.Errorf("UserByEmail after the odd ones = %+v %v", u, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A session's CSRF token and customer are free text: mended, as bbolt's JSON does.
	h := sha256.Sum256([]byte("s"))
	s := AppSession{IDHash: h, UserID: "u-ann", CustomerID: "acme\xff", CSRF: "c\xff", Expires: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.PutAppSession(&s) }); err != nil {
		t.Fatal(err)
	}
	if got, err := db.AppSession(h); err != nil || got.CustomerID != "acme\uFFFD" || !strings.HasPrefix(got.CSRF, "c\uFFFD") {
		t.Fatalf("AppSession = %+v %v", got, err)
	}
}
