package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

// usersFixture writes the customers acme and bakery.
func usersFixture(t *testing.T) *DB {
	t.Helper()
	db := openTest(t)
	err := db.Write(context.Background(), func(tx *Tx) error {
		for _, id := range []string{"acme", "bakery"} {
			if err := tx.CreateCustomer(&Customer{ID: id, Status: StatusActive, SiteKey: id + "-site-key"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func putUser(db *DB, u User) error {
	return db.Write(context.Background(), func(tx *Tx) error { return tx.PutUser(&u) })
}

func TestPutUser(t *testing.T) {
	db := usersFixture(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	// Cases run in order: each sees the users the ones before it wrote.
	tests := []struct {
		name  string
		u     User
		want  error
		field string // of a *FieldError
	}{
		{"operator", User{ID: "u-op", Email: "Op@Switch.example", Role: RoleOperator, Created: t0}, nil, ""},
		{"admin", User{ID: "u-ann", CustomerID: "acme", Email: "ann@acme.example", Name: "Ann", Role: RoleAdmin, Created: t0}, nil, ""},
		{"member", User{ID: "u-bob", CustomerID: "acme", Email: "bob@acme.example", Role: RoleMember, Created: t0}, nil, ""},
		{"same email, other case", User{ID: "u-x", CustomerID: "bakery", Email: "ANN@acme.example", Role: RoleMember}, ErrEmailTaken, ""},
		{"operator's email", User{ID: "u-x", CustomerID: "bakery", Email: "op@switch.example", Role: RoleAdmin}, ErrEmailTaken, ""},
		{"unknown customer", User{ID: "u-x", CustomerID: "nobody", Email: "x@nobody.example", Role: RoleAdmin}, ErrNotFound, ""},
		{"operator of a customer", User{ID: "u-x", CustomerID: "acme", Email: "x@acme.example", Role: RoleOperator}, ErrInvalid, "role"},
		{"member of no customer", User{ID: "u-x", Email: "x@acme.example", Role: RoleMember}, ErrInvalid, "role"},
		{"unknown role", User{ID: "u-x", CustomerID: "acme", Email: "x@acme.example", Role: "owner"}, ErrInvalid, "role"},
		{"no email", User{ID: "u-x", CustomerID: "acme", Role: RoleMember}, ErrInvalid, "email"},
		{"no id", User{CustomerID: "acme", Email: "x@acme.example", Role: RoleMember}, ErrInvalid, "id"},
		{"NUL in the id", User{ID: "u\x00x", CustomerID: "acme", Email: "x@acme.example", Role: RoleMember}, ErrInvalid, "id"},
		// Bob changes his address: the old one is free again, and Carol takes it.
		{"new email", User{ID: "u-bob", CustomerID: "acme", Email: "Robert@Acme.example", Role: RoleMember, Created: t0}, nil, ""},
		{"a freed email", User{ID: "u-carol", CustomerID: "bakery", Email: "bob@acme.example", Role: RoleAdmin, Created: t0}, nil, ""},
		// Carol moves to acme: she leaves bakery's list.
		{"new customer", User{ID: "u-carol", CustomerID: "acme", Email: "bob@acme.example", Role: RoleMember, Created: t0}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := putUser(db, tt.u)
			if !errors.Is(err, tt.want) {
				t.Fatalf("PutUser = %v, want %v", err, tt.want)
			}
			var fe *FieldError
			if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Fatalf("PutUser = %v, want a FieldError of %q", err, tt.field)
			}
		})
	}
	byEmail := []struct{ email, id string }{
		{"OP@switch.EXAMPLE", "u-op"}, {"ann@acme.example", "u-ann"}, {"robert@acme.example", "u-bob"},
		{"bob@acme.example", "u-carol"}, {"x@acme.example", ""}, {"", ""},
	}
	for _, tt := range byEmail {
		u, err := db.UserByEmail(tt.email)
		if tt.id == "" && !errors.Is(err, ErrNotFound) || tt.id != "" && (err != nil || u.ID != tt.id) {
			t.Errorf("UserByEmail(%q) = %q %v, want %q", tt.email, u.ID, err, tt.id)
		}
	}
	if u, err := db.User("u-bob"); err != nil || u.Email != "robert@acme.example" || !u.Created.Equal(t0) {
		t.Fatalf("User(u-bob) = %+v %v: the email is stored lower-cased", u, err)
	}
	if _, err := db.User("u-x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("User of a refused write = %v, want ErrNotFound", err)
	}
	lists := []struct {
		customer string
		want     []string
	}{
		{"", []string{"u-op"}},
		{"acme", []string{"u-ann", "u-carol", "u-bob"}}, // by email: ann@, bob@, robert@
		{"bakery", nil},
		{"acm", nil},
	}
	for _, tt := range lists {
		users, err := db.Users(tt.customer)
		var got []string
		for _, u := range users {
			got = append(got, u.ID)
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Users(%q) = %v %v, want %v", tt.customer, got, err, tt.want)
		}
	}
}

func TestInvitations(t *testing.T) {
	db := usersFixture(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if err := putUser(db, User{ID: "u-ann", CustomerID: "acme", Email: "ann@acme.example", Role: RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	hash := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	for _, inv := range []Invitation{
		{TokenHash: hash("first"), UserID: "u-ann", Expires: t0.Add(time.Hour)},
		{TokenHash: hash("second"), UserID: "u-ann", Expires: t0.Add(time.Hour)}, // replaces the first
	} {
		if err := db.Write(ctx, func(tx *Tx) error { return tx.PutInvitation(&inv) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.PutInvitation(&Invitation{TokenHash: hash("x"), UserID: "nobody", Expires: t0})
	}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("invitation of no user: %v, want ErrNotFound", err)
	}
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.PutInvitation(&Invitation{TokenHash: hash("x"), UserID: "u-ann"})
	}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invitation without expiry: %v, want ErrInvalid", err)
	}
	if inv, err := db.Invitation(hash("second")); err != nil || inv.UserID != "u-ann" || !inv.Expires.Equal(t0.Add(time.Hour)) || inv.TokenHash != hash("second") {
		t.Fatalf("Invitation = %+v %v", inv, err)
	}
	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"replaced", "first", t0, ErrNotFound},
		{"never made", "other", t0, ErrNotFound},
		{"taken", "second", t0.Add(time.Hour - time.Nanosecond), nil},
		{"taken before", "second", t0, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Invitation
			err := db.Write(ctx, func(tx *Tx) (err error) { got, err = tx.TakeInvitation(hash(tt.token), tt.at); return err })
			if !errors.Is(err, tt.want) || err == nil && got.UserID != "u-ann" {
				t.Fatalf("TakeInvitation = %+v %v, want %v", got, err, tt.want)
			}
		})
	}
	// An expired invitation answers so, and is gone once the write that took it commits.
	exp := Invitation{TokenHash: hash("late"), UserID: "u-ann", Expires: t0}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.PutInvitation(&exp) }); err != nil {
		t.Fatal(err)
	}
	var takeErr error
	if err := db.Write(ctx, func(tx *Tx) error { _, takeErr = tx.TakeInvitation(exp.TokenHash, t0); return nil }); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(takeErr, ErrInvitationExpired) {
		t.Fatalf("TakeInvitation at its expiry = %v, want ErrInvitationExpired", takeErr)
	}
	if _, err := db.Invitation(exp.TokenHash); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the expired invitation after it was taken: %v", err)
	}
	if n := kept(t, db, "invitations", bucketInvitations, bucketInvitesByUser); n != 0 {
		t.Errorf("%d invitations kept, want none", n)
	}
}

// keysIn counts the keys of a bucket.
func keysIn(t *testing.T, db *DB, name []byte) int {
	t.Helper()
	n := 0
	db.raw().View(func(tx *bolt.Tx) error { n = tx.Bucket(name).Stats().KeyN; return nil })
	return n
}

// kept counts the records a store keeps: on PostgreSQL the rows of table, on bbolt the keys
// of each of buckets (which must agree).
func kept(t *testing.T, db *DB, table string, buckets ...[]byte) int {
	t.Helper()
	if db.pg != nil {
		var n int
		if err := db.View(func(tx *Tx) error {
			return tx.pg.row(`SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize(), nil, &n)
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := keysIn(t, db, buckets[0])
	for _, b := range buckets[1:] {
		if m := keysIn(t, db, b); m != n {
			t.Fatalf("bucket %s holds %d keys, %s %d", buckets[0], n, b, m)
		}
	}
	return n
}

func TestAppSessions(t *testing.T) {
	db := usersFixture(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if err := putUser(db, User{ID: "u-op", Email: "op@switch.example", Role: RoleOperator}); err != nil {
		t.Fatal(err)
	}
	h := func(i int) [32]byte { return sha256.Sum256([]byte{byte(i)}) }
	write := func(fn func(tx *Tx) error) {
		t.Helper()
		if err := db.Write(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		s := AppSession{IDHash: h(i), UserID: "u-op", CSRF: "csrf", Created: t0, Expires: t0.Add(time.Duration(i+1) * time.Hour)}
		write(func(tx *Tx) error { return tx.PutAppSession(&s) })
	}
	// Session 0 is renewed for a day and switched to acme: its old expiry no longer prunes it.
	s0 := AppSession{IDHash: h(0), UserID: "u-op", CustomerID: "acme", CSRF: "csrf", Created: t0, Expires: t0.Add(24 * time.Hour)}
	write(func(tx *Tx) error { return tx.PutAppSession(&s0) })
	if got, err := db.AppSession(h(0)); err != nil || got != s0 {
		t.Fatalf("AppSession = %+v %v, want %+v", got, err, s0)
	}
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.PutAppSession(&AppSession{IDHash: h(9), UserID: "nobody", Expires: t0})
	}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session of no user: %v, want ErrNotFound", err)
	}
	write(func(tx *Tx) error { return tx.DeleteAppSession(h(3)) })
	write(func(tx *Tx) error { return tx.DeleteAppSession(h(3)) }) // again: no error
	tests := []struct {
		name string
		now  time.Time
		want int
		left []int
	}{
		{"the renewed one's old expiry", t0.Add(time.Hour), 0, []int{0, 1, 2}},
		{"just before an expiry", t0.Add(2*time.Hour - time.Nanosecond), 0, []int{0, 1, 2}},
		{"at the expiry", t0.Add(2 * time.Hour), 1, []int{0, 2}},
		{"later", t0.Add(5 * time.Hour), 1, []int{0}},
		{"the renewed one", t0.Add(24 * time.Hour), 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n int
			write(func(tx *Tx) (err error) { n, err = tx.PruneAppSessions(tt.now); return err })
			var left []int
			for i := range 4 {
				if _, err := db.AppSession(h(i)); err == nil {
					left = append(left, i)
				}
			}
			if n != tt.want || !slices.Equal(left, tt.left) {
				t.Fatalf("PruneAppSessions = %d, left %v; want %d, %v", n, left, tt.want, tt.left)
			}
		})
	}
	if n := kept(t, db, "app_sessions", bucketAppSessions, bucketAppSessByUser, bucketAppSessByExp); n != 0 {
		t.Errorf("%d app sessions kept, want none", n)
	}
}

// TestDeleteUser: a deleted user leaves no key or value that names it, and frees its email.
func TestDeleteUser(t *testing.T) {
	db := usersFixture(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, u := range []User{
		{ID: "u-ann", CustomerID: "acme", Email: "ann@acme.example", Role: RoleAdmin, PasswordHash: "$argon2id$x", TOTPSecret: []byte("s")},
		{ID: "u-bob", CustomerID: "acme", Email: "bob@acme.example", Role: RoleMember},
	} {
		if err := putUser(db, u); err != nil {
			t.Fatal(err)
		}
		err := db.Write(ctx, func(tx *Tx) error {
			for i := range 3 {
				s := AppSession{IDHash: sha256.Sum256([]byte(u.ID + string(rune('0'+i)))), UserID: u.ID, CustomerID: "acme", Expires: t0.Add(time.Hour)}
				if err := tx.PutAppSession(&s); err != nil {
					return err
				}
			}
			return tx.PutInvitation(&Invitation{TokenHash: sha256.Sum256([]byte("inv-" + u.ID)), UserID: u.ID, Expires: t0})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteUser("u-ann") }); err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteUser("u-ann") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteUser = %v, want ErrNotFound", err)
	}
	ann := sha256.Sum256([]byte("u-ann0"))
	if db.pg != nil {
		// Every table, in text and in hex: the email, the id, the session's hash.
		for _, needle := range []string{"ann", hex.EncodeToString(ann[:])} {
			for _, w := range rawHolds(t, db, needle) {
				t.Errorf("%s still names the deleted user", w)
			}
		}
	} else {
		err := db.raw().View(func(tx *bolt.Tx) error {
			for _, name := range userBuckets {
				tx.Bucket(name).ForEach(func(k, v []byte) error {
					if bytes.Contains(k, []byte("ann")) || bytes.Contains(v, []byte("ann")) || bytes.Contains(k, ann[:]) {
						t.Errorf("bucket %s still names the deleted user: %q", name, k)
					}
					return nil
				})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// bbolt's freed pages and PostgreSQL's dead rows keep the email until a compaction.
	if due, err := db.CompactionDue(); err != nil || !due {
		t.Fatalf("CompactionDue after a deleted user = %v %v", due, err)
	}
	if n := kept(t, db, "app_sessions", bucketAppSessions, bucketAppSessByUser, bucketAppSessByExp); n != 3 {
		t.Fatalf("%d sessions left, want bob's 3", n)
	}
	if n := kept(t, db, "invitations", bucketInvitations, bucketInvitesByUser); n != 1 {
		t.Fatalf("%d invitations left, want bob's", n)
	}
	if err := putUser(db, User{ID: "u-new", CustomerID: "acme", Email: "ann@acme.example", Role: RoleMember}); err != nil {
		t.Fatalf("the deleted user's email: %v", err)
	}
}
