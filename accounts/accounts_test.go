package accounts

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/store"
)

func TestPasswordHash(t *testing.T) {
	phc, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("PHC string %q", phc)
	}
	if ok, err := VerifyPassword(phc, "correct horse battery"); !ok || err != nil {
		t.Fatalf("the right password: %v %v", ok, err)
	}
	if ok, err := VerifyPassword(phc, "correct horse batterY"); ok || err != nil {
		t.Fatalf("a wrong password: %v %v", ok, err)
	}
	other, _ := HashPassword("correct horse battery")
	if other == phc {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaA"} {
		if _, err := VerifyPassword(bad, "x"); !errors.Is(err, ErrBadHash) {
			t.Errorf("VerifyPassword(%q): %v, want ErrBadHash", bad, err)
		}
	}
}

func TestPasswordRules(t *testing.T) {
	for pw, ok := range map[string]bool{"": false, "elevenchars": false, "twelve chars": true,
		"ëëëëëëëëëëëë": true, strings.Repeat("x", 256): true, strings.Repeat("x", 257): false} {
		if err := CheckPassword(pw); (err == nil) != ok {
			t.Errorf("CheckPassword(%d bytes): %v", len(pw), err)
		}
	}
}

func TestValidEmail(t *testing.T) {
	for e, ok := range map[string]bool{"a@b.nl": true, "demo@trackline.test": true, "a@b": false, "@b.nl": false,
		"a b@c.nl": false, "a@b.nl\r\n": false, "<a@b.nl>": false, strings.Repeat("a", 250) + "@b.nl": false} {
		if ValidEmail(e) != ok {
			t.Errorf("ValidEmail(%q) = %v", e, !ok)
		}
	}
}

// TestInvite: the user is made without a password, the invitation works once and stores
// only the token's hash, and the audit log names the inviter.
func TestInvite(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	token, u, err := Invite(ctx, db, "user:admin", store.User{Email: " Ops@Example.COM ", Role: store.RoleOperator}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "ops@example.com" || u.PasswordHash != "" || u.ID == "" {
		t.Fatalf("invited user %+v", u)
	}
	if where := storetest.RawHolds(t, db, token); len(where) > 0 {
		t.Fatalf("the invitation's token is in the store: %v", where)
	}
	if _, _, err := Invite(ctx, db, "user:admin", store.User{Email: "ops@example.com", Role: store.RoleOperator}, time.Hour, now); !errors.Is(err, store.ErrEmailTaken) {
		t.Fatalf("a second invitation to the same email: %v", err)
	}
	err = db.Write(ctx, func(tx *store.Tx) error {
		inv, err := tx.TakeInvitation(Hash(token), now.Add(time.Minute))
		if err != nil || inv.UserID != u.ID {
			t.Fatalf("take the invitation: %+v %v", inv, err)
		}
		_, err = tx.TakeInvitation(Hash(token), now.Add(time.Minute))
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("take it again: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	entries, _, _ := db.AuditLog(store.AuditFilter{})
	if len(entries) != 1 || entries[0].Actor != "user:admin" || entries[0].Action != "user.invite" {
		t.Fatalf("audit %+v", entries)
	}
}
