package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The people who log in to the web app (package app): users, their invitations and their
// sessions.
//
// users (user id) holds each User; users_by_email (lower-cased email) names the user that has
// an address, so that an address is one user's; users_by_customer (customer 0x00 user id)
// lists a customer's users, and with the customer "" the operators.
//
// An invitation and a session are found by the SHA-256 of a random secret that only the
// person holds (the link's token, the cookie's id), as tokens are (access.go): 256 random bits
// need no keyed hash. invitations (hash) and app_sessions (hash) hold them;
// invitations_by_user and app_sessions_by_user (user id 0x00 hash) list a user's, so that
// they go with the user; app_sessions_by_expiry (expiry as big-endian Unix nanoseconds, then
// the hash) lets PruneAppSessions take the expired ones from the front.
//
// A customer's users are the customer's personal data: PurgeCustomer deletes them with
// their sessions and invitations, and the customer's export lists them (without their
// password hashes and two-factor secrets).

var (
	bucketUsers         = []byte("users")
	bucketUsersByEmail  = []byte("users_by_email")
	bucketUsersByCust   = []byte("users_by_customer")
	bucketInvitations   = []byte("invitations")
	bucketInvitesByUser = []byte("invitations_by_user")
	bucketAppSessions   = []byte("app_sessions")
	bucketAppSessByUser = []byte("app_sessions_by_user")
	bucketAppSessByExp  = []byte("app_sessions_by_expiry")

	userBuckets = [][]byte{bucketUsers, bucketUsersByEmail, bucketUsersByCust, bucketInvitations, bucketInvitesByUser,
		bucketAppSessions, bucketAppSessByUser, bucketAppSessByExp}
)

// Role is what a user may do in the web app.
type Role string

// The roles. An operator sees every customer; an admin and a member belong to one customer.
const (
	RoleOperator Role = "operator" // the switch's operator: every customer, no CustomerID
	RoleAdmin    Role = "admin"    // a customer's settings, users and privacy actions
	RoleMember   Role = "member"   // reads, listens and annotates a customer's calls
)

// ParseRole reads "operator", "admin" or "member".
func ParseRole(v string) (Role, error) {
	switch r := Role(v); r {
	case RoleOperator, RoleAdmin, RoleMember:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want operator, admin or member)", v)
}

// User is a person who logs in to the web app: an operator (CustomerID "") or a user of one
// customer.
type User struct {
	ID         string `json:"id"`                    // random, from the caller
	CustomerID string `json:"customer_id,omitempty"` // "" for operators
	Email      string `json:"email"`                 // stored lower-cased, unique across all users
	Name       string `json:"name,omitempty"`
	Role       Role   `json:"role"`
	// PasswordHash is the argon2id PHC string package app made; "" until the invitation is
	// accepted.
	PasswordHash string `json:"password_hash,omitempty"`
	// TOTPSecret is the two-factor secret; nil: no two-factor login.
	TOTPSecret []byte    `json:"totp_secret,omitempty"`
	Created    time.Time `json:"created"`
}

// Invitation is a one-time link that lets a user choose a password.
type Invitation struct {
	TokenHash [32]byte  `json:"-"` // SHA-256 of the one-time token; the token itself is never stored
	UserID    string    `json:"user_id"`
	Expires   time.Time `json:"expires"`
}

// AppSession is a logged-in browser of the web app.
type AppSession struct {
	IDHash [32]byte `json:"-"` // SHA-256 of the cookie's random id; the id itself is never stored
	UserID string   `json:"user_id"`
	// CustomerID is the customer an operator is looking at ("" for none); for a customer's
	// user, theirs.
	CustomerID string    `json:"customer_id,omitempty"`
	CSRF       string    `json:"csrf"` // random, per session
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
}

// maxIDLen bounds user ids and emails, which are keys.
const maxIDLen = 320

// check answers a *FieldError for a user the store does not take.
func (u *User) check() error {
	switch {
	case u.ID == "" || len(u.ID) > maxIDLen || !pgKey(u.ID):
		return invalid("id", "must be 1-%d bytes of UTF-8 without NUL", maxIDLen)
	case u.Email == "" || len(u.Email) > maxIDLen || !pgKey(u.Email):
		return invalid("email", "must be 1-%d bytes of UTF-8 without NUL", maxIDLen)
	case !pgKey(u.CustomerID):
		return invalid("customer_id", "must be UTF-8 without NUL")
	}
	if _, err := ParseRole(string(u.Role)); err != nil {
		return invalid("role", "%v", err)
	}
	if (u.Role == RoleOperator) != (u.CustomerID == "") {
		return invalid("role", "an operator has no customer, and only an operator")
	}
	return nil
}

// storable tells whether t can be kept as big-endian Unix nanoseconds in a key.
func storable(t time.Time) bool { return t.Year() >= 1970 && t.Year() < 2262 }

func userKey(customerID, id string) []byte { return compose(customerID, id) }

// User reads one user; ErrNotFound if there is none.
func (t *Tx) User(id string) (User, error) {
	if t.pg != nil {
		return t.pg.user(id)
	}
	var u User
	if err := t.get(bucketUsers, []byte(id), &u); err != nil {
		return User{}, fmt.Errorf("user %q: %w", id, err)
	}
	return u, nil
}

// UserByEmail reads the user with this email address, whatever its case; ErrNotFound if
// there is none.
func (t *Tx) UserByEmail(email string) (User, error) {
	if t.pg != nil {
		return t.pg.userByEmail(email)
	}
	id := t.tx.Bucket(bucketUsersByEmail).Get([]byte(strings.ToLower(email)))
	if id == nil {
		return User{}, fmt.Errorf("user by email: %w", ErrNotFound)
	}
	return t.User(string(id))
}

// Users lists the users of a customer, or with customerID "" the operators, ordered by
// email.
func (t *Tx) Users(customerID string) ([]User, error) {
	if t.pg != nil {
		return t.pg.users(customerID)
	}
	prefix := compose(customerID, "")
	c := t.tx.Bucket(bucketUsersByCust).Cursor()
	var out []User
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		u, err := t.User(string(k[len(prefix):]))
		if err != nil {
			return nil, fmt.Errorf("user index %q: %w", k, err)
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Email, b.Email) })
	return out, nil
}

// PutUser creates or replaces a user. The email is stored lower-cased and must be no other
// user's (ErrEmailTaken); a changed email or customer moves the user's index entries. A
// customer's user needs the customer (ErrNotFound); an operator has no customer, and a
// user without one is an operator (ErrInvalid).
func (t *Tx) PutUser(u *User) error {
	if err := u.check(); err != nil {
		return fmt.Errorf("user %q: %w", u.ID, err)
	}
	if t.pg != nil {
		return t.pg.putUser(u)
	}
	if u.CustomerID != "" && t.tx.Bucket(bucketCustomers).Get([]byte(u.CustomerID)) == nil {
		return fmt.Errorf("user %q: customer %q: %w", u.ID, u.CustomerID, ErrNotFound)
	}
	stored := *u
	stored.Email = strings.ToLower(u.Email)
	byEmail := t.tx.Bucket(bucketUsersByEmail)
	if owner := byEmail.Get([]byte(stored.Email)); owner != nil && string(owner) != u.ID {
		return fmt.Errorf("user %q: %w", u.ID, ErrEmailTaken)
	}
	old, err := t.User(u.ID)
	switch {
	case err == nil:
		if old.Email != stored.Email && string(byEmail.Get([]byte(old.Email))) == u.ID {
			if err := byEmail.Delete([]byte(old.Email)); err != nil {
				return err
			}
		}
		if old.CustomerID != stored.CustomerID {
			if err := t.tx.Bucket(bucketUsersByCust).Delete(userKey(old.CustomerID, u.ID)); err != nil {
				return err
			}
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if err := byEmail.Put([]byte(stored.Email), []byte(u.ID)); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketUsersByCust).Put(userKey(stored.CustomerID, u.ID), nil); err != nil {
		return err
	}
	return t.put(bucketUsers, []byte(u.ID), &stored)
}

// DeleteUser deletes a user with its sessions and invitations; ErrNotFound if there is no
// such user. It marks the store for compaction (MarkCompactionDue): the user's email is
// personal data, left in bbolt's freed pages, or PostgreSQL's dead rows until a VACUUM.
func (t *Tx) DeleteUser(id string) error {
	if t.pg != nil {
		if err := t.pg.deleteUser(id); err != nil {
			return err
		}
		return t.MarkCompactionDue()
	}
	u, err := t.User(id)
	if err != nil {
		return err
	}
	if err := t.deleteUser(&u); err != nil {
		return err
	}
	return t.MarkCompactionDue()
}

// deleteUser deletes u's record, index entries, sessions and invitations.
func (t *Tx) deleteUser(u *User) error {
	byEmail := t.tx.Bucket(bucketUsersByEmail)
	if string(byEmail.Get([]byte(u.Email))) == u.ID {
		if err := byEmail.Delete([]byte(u.Email)); err != nil {
			return err
		}
	}
	prefix := compose(u.ID, "")
	if _, err := deletePrefix(t.tx.Bucket(bucketAppSessByUser), prefix, 0, func(k []byte) error {
		return t.deleteAppSession(hashOf(k[len(prefix):]))
	}); err != nil {
		return err
	}
	if _, err := deletePrefix(t.tx.Bucket(bucketInvitesByUser), prefix, 0, func(k []byte) error {
		return t.tx.Bucket(bucketInvitations).Delete(k[len(prefix):])
	}); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketUsersByCust).Delete(userKey(u.CustomerID, u.ID)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketUsers).Delete([]byte(u.ID))
}

// hashOf is the [32]byte of a hash read from a key (zero if it is not 32 bytes long).
func hashOf(b []byte) [32]byte {
	var h [32]byte
	if len(b) == len(h) {
		copy(h[:], b)
	}
	return h
}

// --- invitations

// PutInvitation stores an invitation of an existing user (ErrNotFound otherwise). It
// replaces the user's earlier invitations: only the newest link works.
func (t *Tx) PutInvitation(inv *Invitation) error {
	if !storable(inv.Expires) {
		return fmt.Errorf("invitation: %w", invalid("expires", "must be a time of years 1970-2261"))
	}
	if t.pg != nil {
		return t.pg.putInvitation(inv)
	}
	if _, err := t.User(inv.UserID); err != nil {
		return fmt.Errorf("invitation: %w", err)
	}
	prefix := compose(inv.UserID, "")
	if _, err := deletePrefix(t.tx.Bucket(bucketInvitesByUser), prefix, 0, func(k []byte) error {
		return t.tx.Bucket(bucketInvitations).Delete(k[len(prefix):])
	}); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketInvitesByUser).Put(append(prefix, inv.TokenHash[:]...), nil); err != nil {
		return err
	}
	return t.put(bucketInvitations, inv.TokenHash[:], inv)
}

// Invitation reads an invitation without taking it (it may have expired: see Expires);
// ErrNotFound if there is none.
func (t *Tx) Invitation(hash [32]byte) (Invitation, error) {
	if t.pg != nil {
		return t.pg.invitation(hash)
	}
	inv := Invitation{TokenHash: hash}
	if err := t.get(bucketInvitations, hash[:], &inv); err != nil {
		return Invitation{}, fmt.Errorf("invitation: %w", err)
	}
	return inv, nil
}

// TakeInvitation returns and deletes the invitation whose token hashes to hash: it is good
// once. One that expired by now is deleted too, and answers ErrInvitationExpired; none
// answers ErrNotFound.
//
// The deletion is part of the transaction: a write function that returns the
// ErrInvitationExpired rolls it back (and the expired invitation stays until its user is
// deleted or invited again). To delete it, return nil and pass the error on outside the write.
func (t *Tx) TakeInvitation(hash [32]byte, now time.Time) (Invitation, error) {
	if t.pg != nil {
		return t.pg.takeInvitation(hash, now)
	}
	inv, err := t.Invitation(hash)
	if err != nil {
		return Invitation{}, err
	}
	if err := t.tx.Bucket(bucketInvitations).Delete(hash[:]); err != nil {
		return Invitation{}, err
	}
	if err := t.tx.Bucket(bucketInvitesByUser).Delete(append(compose(inv.UserID, ""), hash[:]...)); err != nil {
		return Invitation{}, err
	}
	if !now.Before(inv.Expires) {
		return Invitation{}, fmt.Errorf("invitation of user %q: %w", inv.UserID, ErrInvitationExpired)
	}
	return inv, nil
}

// --- sessions

func sessionExpiryKey(expires time.Time, hash [32]byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 40), uint64(expires.UnixNano())), hash[:]...)
}

// PutAppSession creates or replaces (renews) a session of an existing user (ErrNotFound
// otherwise).
func (t *Tx) PutAppSession(s *AppSession) error {
	if !storable(s.Expires) {
		return fmt.Errorf("app session: %w", invalid("expires", "must be a time of years 1970-2261"))
	}
	if t.pg != nil {
		return t.pg.putAppSession(s)
	}
	if _, err := t.User(s.UserID); err != nil {
		return fmt.Errorf("app session: %w", err)
	}
	// A renewal may change the expiry: the old index entries go first.
	if err := t.deleteAppSession(s.IDHash); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketAppSessByUser).Put(append(compose(s.UserID, ""), s.IDHash[:]...), nil); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketAppSessByExp).Put(sessionExpiryKey(s.Expires, s.IDHash), nil); err != nil {
		return err
	}
	return t.put(bucketAppSessions, s.IDHash[:], s)
}

// AppSession reads a session (it may have expired: see Expires); ErrNotFound if there is
// none.
func (t *Tx) AppSession(hash [32]byte) (AppSession, error) {
	if t.pg != nil {
		return t.pg.appSession(hash)
	}
	s := AppSession{IDHash: hash}
	if err := t.get(bucketAppSessions, hash[:], &s); err != nil {
		return AppSession{}, fmt.Errorf("app session: %w", err)
	}
	return s, nil
}

// DeleteAppSession deletes a session (a logout). Deleting one that is not there is no error.
func (t *Tx) DeleteAppSession(hash [32]byte) error {
	if t.pg != nil {
		return t.pg.deleteAppSession(hash)
	}
	return t.deleteAppSession(hash)
}

func (t *Tx) deleteAppSession(hash [32]byte) error {
	s, err := t.AppSession(hash)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, del := range []struct{ b, k []byte }{
		{bucketAppSessByUser, append(compose(s.UserID, ""), hash[:]...)},
		{bucketAppSessByExp, sessionExpiryKey(s.Expires, hash)},
		{bucketAppSessions, hash[:]},
	} {
		if err := t.tx.Bucket(del.b).Delete(del.k); err != nil {
			return err
		}
	}
	return nil
}

// PruneAppSessions deletes the sessions that expired by now (Expires not after now) and
// answers how many.
func (t *Tx) PruneAppSessions(now time.Time) (int, error) {
	if t.pg != nil {
		return t.pg.pruneAppSessions(now)
	}
	var doomed [][32]byte
	c := t.tx.Bucket(bucketAppSessByExp).Cursor()
	for k, _ := c.First(); len(k) == 40 && int64(binary.BigEndian.Uint64(k)) <= now.UnixNano(); k, _ = c.Next() {
		doomed = append(doomed, hashOf(k[8:]))
	}
	for _, h := range doomed {
		if err := t.deleteAppSession(h); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}

// --- reads in their own transaction

// User reads one user in a read-only transaction; ErrNotFound if there is none.
func (db *DB) User(id string) (User, error) {
	var u User
	err := db.View(func(tx *Tx) (err error) { u, err = tx.User(id); return err })
	return u, err
}

// UserByEmail reads the user with an email address (any case) in a read-only transaction;
// ErrNotFound if there is none.
func (db *DB) UserByEmail(email string) (User, error) {
	var u User
	err := db.View(func(tx *Tx) (err error) { u, err = tx.UserByEmail(email); return err })
	return u, err
}

// Users lists a customer's users (customerID "": the operators) in a read-only transaction,
// ordered by email.
func (db *DB) Users(customerID string) ([]User, error) {
	var out []User
	err := db.View(func(tx *Tx) (err error) { out, err = tx.Users(customerID); return err })
	return out, err
}

// Invitation reads an invitation in a read-only transaction, without taking it.
func (db *DB) Invitation(hash [32]byte) (Invitation, error) {
	var inv Invitation
	err := db.View(func(tx *Tx) (err error) { inv, err = tx.Invitation(hash); return err })
	return inv, err
}

// AppSession reads a session in a read-only transaction; ErrNotFound if there is none. It
// may have expired: compare Expires with the time.
func (db *DB) AppSession(hash [32]byte) (AppSession, error) {
	var s AppSession
	err := db.View(func(tx *Tx) (err error) { s, err = tx.AppSession(hash); return err })
	return s, err
}
