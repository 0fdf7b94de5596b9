package store

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"
)

// CopyTo's part for the web app's users, invitations and sessions and the Google Ads
// records (migrate.go; `trackline migrate`). CopyTo wires it in three places:
//
//	for name, kind := range migrateUsersKinds { ... } // into migrateKinds
//	src's usersRecords, read with the rest (Tx.readUsersRecords), written after the
//	customers (usersRecords.copyTo(w.add)), and read back from the copy and compared
//	(usersRecords.same) after the flush.
//
// The records are read from either backend in one fixed order (ids and hashes by their
// bytes, as bbolt's keys), and compared as CopyTo compares the others: as JSON, times to
// the microsecond, and the hashes that name invitations and sessions (not in their JSON).

// migrateUsersKinds are the buckets of these records, as migrateKinds names them: the
// index buckets are rebuilt by the destination's writes ("").
var migrateUsersKinds = map[string]string{
	string(bucketUsers):         "users",
	string(bucketUsersByEmail):  "", // index of users
	string(bucketUsersByCust):   "", // index of users
	string(bucketInvitations):   "invitations",
	string(bucketInvitesByUser): "", // index of invitations
	string(bucketAppSessions):   "app_sessions",
	string(bucketAppSessByUser): "", // index of app sessions
	string(bucketAppSessByExp):  "", // index of app sessions
	string(bucketAdsSettings):   "google_ads",
	string(bucketAdsUploads):    "conversion_uploads",
}

// usersRecords are every user, invitation, app session, Google Ads settings and upload
// state of a store.
type usersRecords struct {
	users       []User
	invitations []Invitation
	appSessions []AppSession
	googleAds   []GoogleAds
	uploads     []ConversionUpload
}

// readUsersRecords reads them all, in the order of their keys.
func (t *Tx) readUsersRecords() (*usersRecords, error) {
	if t.pg != nil {
		return t.pg.readUsersRecords()
	}
	r := &usersRecords{}
	each := func(name []byte, fn func(k, v []byte) error) error {
		b := t.tx.Bucket(name)
		if b.b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if err := fn(k, v); err != nil {
				return fmt.Errorf("decode %s %x: %w", name, k, err)
			}
			return nil
		})
	}
	err := each(bucketUsers, func(_, v []byte) error {
		var u User
		r.users = append(r.users, u)
		return json.Unmarshal(v, &r.users[len(r.users)-1])
	})
	if err == nil {
		err = each(bucketInvitations, func(k, v []byte) error {
			r.invitations = append(r.invitations, Invitation{TokenHash: hashOf(k)})
			return json.Unmarshal(v, &r.invitations[len(r.invitations)-1])
		})
	}
	if err == nil {
		err = each(bucketAppSessions, func(k, v []byte) error {
			r.appSessions = append(r.appSessions, AppSession{IDHash: hashOf(k)})
			return json.Unmarshal(v, &r.appSessions[len(r.appSessions)-1])
		})
	}
	if err == nil {
		r.googleAds, err = t.AllGoogleAds()
	}
	if err == nil {
		err = each(bucketAdsUploads, func(_, v []byte) error {
			r.uploads = append(r.uploads, ConversionUpload{})
			return json.Unmarshal(v, &r.uploads[len(r.uploads)-1])
		})
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (t *pgTx) readUsersRecords() (*usersRecords, error) {
	r := &usersRecords{}
	err := t.query(`SELECT `+pgUserColumns+` FROM users ORDER BY id`, nil, func(row pgx.Rows) error {
		u, err := scanUser(row)
		r.users = append(r.users, u)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = t.query(`SELECT hash, user_id, expires_ns FROM invitations ORDER BY hash`, nil, func(row pgx.Rows) error {
		var (
			h   []byte
			inv Invitation
			exp int64
		)
		if err := row.Scan(&h, &inv.UserID, &exp); err != nil {
			return err
		}
		inv.TokenHash, inv.Expires = hashOf(h), time.Unix(0, exp).UTC()
		r.invitations = append(r.invitations, inv)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = t.query(`SELECT hash, user_id, customer_id, csrf, created, expires_ns FROM app_sessions ORDER BY hash`, nil, func(row pgx.Rows) error {
		var (
			h       []byte
			s       AppSession
			created *time.Time
			exp     int64
		)
		if err := row.Scan(&h, &s.UserID, &s.CustomerID, &s.CSRF, &created, &exp); err != nil {
			return err
		}
		s.IDHash, s.Created, s.Expires = hashOf(h), pgTimeOf(created), time.Unix(0, exp).UTC()
		r.appSessions = append(r.appSessions, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.googleAds, err = t.allGoogleAds(); err != nil {
		return nil, err
	}
	err = t.query(`SELECT `+pgUploadColumns+` FROM googleads_uploads ORDER BY customer_id, call_id`, nil, func(row pgx.Rows) error {
		u, err := scanUpload(row)
		r.uploads = append(r.uploads, u)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// copyTo adds the writes of the records to add (migrateWriter.add), in an order in which
// each finds what it needs: the users after their customers (CopyTo adds those first),
// their invitations and sessions after them.
func (r *usersRecords) copyTo(add func(kind string, fn func(*Tx) error)) {
	for i := range r.users {
		u := r.users[i]
		add("users", func(tx *Tx) error { return tx.PutUser(&u) })
	}
	for i := range r.invitations {
		inv := r.invitations[i]
		add("invitations", func(tx *Tx) error { return tx.PutInvitation(&inv) })
	}
	for i := range r.appSessions {
		s := r.appSessions[i]
		add("app_sessions", func(tx *Tx) error { return tx.PutAppSession(&s) })
	}
	for i := range r.googleAds {
		g := r.googleAds[i]
		add("google_ads", func(tx *Tx) error { return tx.PutGoogleAds(&g) })
	}
	for i := range r.uploads {
		u := r.uploads[i]
		add("conversion_uploads", func(tx *Tx) error { return tx.PutConversionUpload(&u) })
	}
}

// same compares the records of two stores as CopyTo compares the others
// (storeContents.same): as JSON, times to the microsecond, and the hashes that name
// invitations and sessions. A difference is named by the record's key only: users and
// sessions hold password hashes, two-factor and CSRF secrets, which stay out of the error.
func (r *usersRecords) same(o *usersRecords) error {
	for _, x := range []struct {
		kind string
		a, b any
		key  func(v any) string
	}{
		{"users", r.users, o.users, func(v any) string { return v.(User).ID }},
		{"invitations", r.invitations, o.invitations, func(v any) string { h := v.(Invitation).TokenHash; return hex.EncodeToString(h[:]) }},
		{"app_sessions", r.appSessions, o.appSessions, func(v any) string { h := v.(AppSession).IDHash; return hex.EncodeToString(h[:]) }},
		{"google_ads", r.googleAds, o.googleAds, func(v any) string { return v.(GoogleAds).CustomerID }},
		{"conversion_uploads", r.uploads, o.uploads, func(v any) string {
			u := v.(ConversionUpload)
			return u.CustomerID + "/" + u.CallID
		}},
	} {
		ra, rb := reflect.ValueOf(x.a), reflect.ValueOf(x.b)
		if ra.Len() != rb.Len() {
			return fmt.Errorf("%s: %d in the source, %d in the copy", x.kind, ra.Len(), rb.Len())
		}
		for i := range ra.Len() {
			a, b := ra.Index(i).Interface(), rb.Index(i).Interface()
			if ka, kb := x.key(a), x.key(b); ka != kb {
				return fmt.Errorf("%s: %s in the source where the copy has %s", x.kind, ka, kb)
			}
			if string(normalJSON(a)) != string(normalJSON(b)) {
				return fmt.Errorf("%s: %s differs in the copy", x.kind, x.key(a))
			}
		}
	}
	return nil
}
