package store

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPostgresCopyUsers: the users, invitations, app sessions and Google Ads records of a
// bbolt store, copied into PostgreSQL by usersRecords (CopyTo's part for them), read back
// the same; a changed record, a missing one and a changed hash are found.
func TestPostgresCopyUsers(t *testing.T) {
	ctx := context.Background()
	src, err := Open(filepath.Join(t.TempDir(), "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// Times with nanoseconds: the expiries are kept exactly, the others to the microsecond.
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC)
	customers := []Customer{{ID: "acme", SiteKey: "acme-site-key", Status: StatusActive}, {ID: "bakery", SiteKey: "bakery-site-key", Status: StatusActive}}
	err = src.Write(ctx, func(tx *Tx) error {
		for i := range customers {
			if err := tx.CreateCustomer(&customers[i]); err != nil {
				return err
			}
		}
		for _, u := range []User{
			{ID: "u-op", Email: "op@switch.example", Role: RoleOperator, PasswordHash: "$argon2id$op", Created: t0},
			{ID: "u-ann", CustomerID: "acme", Email: "Ann@acme.example", Name: "Ann", Role: RoleAdmin, PasswordHash: "$argon2id$ann", TOTPSecret: []byte("totp"), Created: t0},
			{ID: "u-bob", CustomerID: "bakery", Email: "bob@bakery.example", Role: RoleMember, Created: t0},
		} {
			if err := tx.PutUser(&u); err != nil {
				return err
			}
		}
		if err := tx.PutInvitation(&Invitation{TokenHash: sha256.Sum256([]byte("inv")), UserID: "u-bob", Expires: t0.Add(time.Hour)}); err != nil {
			return err
		}
		for i, s := range []AppSession{
			{UserID: "u-op", CustomerID: "acme", CSRF: "csrf-op", Created: t0, Expires: t0.Add(time.Hour)},
			{UserID: "u-ann", CustomerID: "acme", CSRF: "csrf-ann", Created: t0, Expires: t0.Add(2 * time.Hour)},
		} {
			s.IDHash = sha256.Sum256([]byte{byte(i)})
			if err := tx.PutAppSession(&s); err != nil {
				return err
			}
		}
		for _, id := range []string{"acme", "bakery"} {
			g := adsFixture(id)
			g.Updated = t0
			if err := tx.PutGoogleAds(&g); err != nil {
				return err
			}
		}
		for _, u := range []ConversionUpload{
			{CustomerID: "acme", CallID: "c2", State: UploadPending, Error: "timeout", Attempts: 3, NextAttempt: t0, Value: 2.5, Currency: "EUR", Updated: t0},
			{CustomerID: "acme", CallID: "c1", State: UploadUploaded, Updated: t0},
			{CustomerID: "acme-2", CallID: "c1", State: UploadSkipped, Reason: SkipNoConsent, Updated: t0},
		} {
			if err := tx.PutConversionUpload(&u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want *usersRecords
	if err := src.View(func(tx *Tx) (err error) { want, err = tx.readUsersRecords(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(want.users) != 3 || len(want.invitations) != 1 || len(want.appSessions) != 2 || len(want.googleAds) != 2 || len(want.uploads) != 3 {
		t.Fatalf("read from bbolt: %d users, %d invitations, %d sessions, %d settings, %d uploads",
			len(want.users), len(want.invitations), len(want.appSessions), len(want.googleAds), len(want.uploads))
	}

	dst := openPostgresTest(t)
	var fns []func(*Tx) error
	kinds := map[string]int{}
	want.copyTo(func(kind string, fn func(*Tx) error) { kinds[kind]++; fns = append(fns, fn) })
	if kinds["users"] != 3 || kinds["invitations"] != 1 || kinds["app_sessions"] != 2 || kinds["google_ads"] != 2 || kinds["conversion_uploads"] != 3 {
		t.Fatalf("copy's writes by kind: %v", kinds)
	}
	// As CopyTo does: the customers first, then the records, in one transaction.
	err = dst.Write(ctx, func(tx *Tx) error {
		for i := range customers {
			if err := tx.CreateCustomer(&customers[i]); err != nil {
				return err
			}
		}
		for _, fn := range fns {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	readCopy := func() *usersRecords {
		t.Helper()
		var got *usersRecords
		if err := dst.View(func(tx *Tx) (err error) { got, err = tx.readUsersRecords(); return err }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if err := want.same(readCopy()); err != nil {
		t.Fatalf("the copy: %v", err)
	}
	// The copy works as the source did.
	if u, err := dst.UserByEmail("ANN@acme.example"); err != nil || string(u.TOTPSecret) != "totp" || u.PasswordHash != "$argon2id$ann" {
		t.Fatalf("UserByEmail on the copy = %+v %v", u, err)
	}

	// What the comparison finds, without quoting secrets.
	tests := []struct {
		name, sql string
		want      string
	}{
		// Each change is compared before the ones made before it.
		{"a missing upload state", `DELETE FROM googleads_uploads WHERE customer_id = 'acme-2'`, "conversion_uploads: 3 in the source, 2 in the copy"},
		{"a changed CSRF token", `UPDATE app_sessions SET csrf = 'other' WHERE user_id = 'u-ann'`, "app_sessions: "},
		{"a changed hash", `UPDATE invitations SET hash = sha256('other')`, "invitations: "},
		{"a changed password hash", `UPDATE users SET password_hash = 'x' WHERE id = 'u-op'`, "users: u-op differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := dst.Write(ctx, func(tx *Tx) error { return tx.pg.exec(nil, tt.sql) }); err != nil {
				t.Fatal(err)
			}
			err := want.same(readCopy())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("same = %v, want %q", err, tt.want)
			}
			for _, secret := range []string{"csrf-", "$argon2id", "totp", "other"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("same's error quotes %q: %v", secret, err)
				}
			}
		})
	}
}

// Every bucket of users.go and googleads.go is named for migrateKinds.
func TestMigrateUsersKindsComplete(t *testing.T) {
	for _, b := range append(append([][]byte{}, userBuckets...), bucketAdsSettings, bucketAdsUploads) {
		if _, ok := migrateUsersKinds[string(b)]; !ok {
			t.Errorf("bucket %s is not in migrateUsersKinds", b)
		}
	}
}
