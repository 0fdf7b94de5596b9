package store

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// The web app's users, invitations and sessions on PostgreSQL (tables users, invitations,
// app_sessions: migrations/00006_users_googleads.sql), with users.go's semantics.
//
// What users.go keeps of a secret it keeps here: an invitation's and a session's SHA-256
// (never the token or cookie id), a password's argon2id hash. A write that reads a user it
// depends on takes the row's key-share lock, so that another node cannot delete the user
// meanwhile, and deletions take the row lock (FOR UPDATE).
//
// PostgreSQL's text holds neither NUL nor invalid UTF-8. A user's id, email and customer
// with them are refused on both backends (User.check); a lookup with one finds nothing
// without asking the server; free text (a name, a session's CSRF token and customer) is
// stored as bbolt's JSON stores it, invalid UTF-8 as U+FFFD, and NUL as U+FFFD too.

// pgKey tells whether s can be a text value in PostgreSQL: valid UTF-8 without NUL.
func pgKey(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// pgClean is free text as PostgreSQL's text can hold it: each byte of invalid UTF-8 as
// U+FFFD, as encoding/json writes it (bbolt's values), and NUL as U+FFFD too.
func pgClean(s string) string {
	if pgKey(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == 0 {
			return utf8.RuneError
		}
		return r // strings.Map gives each invalid byte as utf8.RuneError
	}, s)
}

const pgUserColumns = `id, customer_id, email, name, role, password_hash, totp_secret, created`

func scanUser(r pgx.Row) (User, error) {
	var (
		u       User
		role    string
		created *time.Time
	)
	if err := r.Scan(&u.ID, &u.CustomerID, &u.Email, &u.Name, &role, &u.PasswordHash, &u.TOTPSecret, &created); err != nil {
		return User{}, err
	}
	u.Role, u.Created = Role(role), pgTimeOf(created)
	if len(u.TOTPSecret) == 0 {
		u.TOTPSecret = nil
	}
	return u, nil
}

// user reads a user, with its row lock in a write (the caller may change or delete it).
func (t *pgTx) user(id string) (User, error) {
	if !pgKey(id) {
		return User{}, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	var u User
	err := t.rowFn(`SELECT `+pgUserColumns+` FROM users WHERE id = $1`+t.forUpdate(), []any{id},
		func(r pgx.Row) (err error) { u, err = scanUser(r); return err })
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", id, err)
	}
	return u, nil
}

// userExists is a write's check that a user is there: the row's key-share lock keeps
// another node from deleting it before the write commits.
func (t *pgTx) userExists(id string) error {
	var one int
	if !pgKey(id) {
		return fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	if err := t.row(`SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE`, []any{id}, &one); err != nil {
		return fmt.Errorf("user %q: %w", id, err)
	}
	return nil
}

// customerExists is userExists for a customer.
func (t *pgTx) customerExists(id string) error {
	var one int
	if !pgKey(id) {
		return fmt.Errorf("customer %q: %w", id, ErrNotFound)
	}
	if err := t.row(`SELECT 1 FROM customers WHERE id = $1 FOR KEY SHARE`, []any{id}, &one); err != nil {
		return fmt.Errorf("customer %q: %w", id, err)
	}
	return nil
}

func (t *pgTx) userByEmail(email string) (User, error) {
	email = strings.ToLower(email)
	if !pgKey(email) {
		return User{}, fmt.Errorf("user by email: %w", ErrNotFound)
	}
	var u User
	err := t.rowFn(`SELECT `+pgUserColumns+` FROM users WHERE email = $1`+t.forUpdate(), []any{email},
		func(r pgx.Row) (err error) { u, err = scanUser(r); return err })
	if err != nil {
		return User{}, fmt.Errorf("user by email: %w", err)
	}
	return u, nil
}

func (t *pgTx) users(customerID string) ([]User, error) {
	if !pgKey(customerID) {
		return nil, nil
	}
	var out []User
	err := t.query(`SELECT `+pgUserColumns+` FROM users WHERE customer_id = $1 ORDER BY email`, []any{customerID},
		func(r pgx.Rows) error {
			u, err := scanUser(r)
			out = append(out, u)
			return err
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// putUser writes a user (users.go's PutUser has checked it). The unique email is checked at
// once, as on bbolt; another node that takes the address before the commit fails the write
// at its commit with ErrEmailTaken (users_email_key: pgError).
func (t *pgTx) putUser(u *User) error {
	if u.CustomerID != "" {
		if err := t.customerExists(u.CustomerID); err != nil {
			return fmt.Errorf("user %q: %w", u.ID, err)
		}
	}
	email := strings.ToLower(u.Email)
	var owner string
	switch err := t.row(`SELECT id FROM users WHERE email = $1`, []any{email}, &owner); {
	case err == nil && owner != u.ID:
		return fmt.Errorf("user %q: %w", u.ID, ErrEmailTaken)
	case err != nil && err != ErrNotFound:
		return err
	}
	var totp []byte
	if len(u.TOTPSecret) > 0 {
		totp = u.TOTPSecret
	}
	return t.exec(nil, `INSERT INTO users (`+pgUserColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, email = excluded.email,
			name = excluded.name, role = excluded.role, password_hash = excluded.password_hash,
			totp_secret = excluded.totp_secret, created = excluded.created`,
		u.ID, u.CustomerID, email, pgClean(u.Name), string(u.Role), pgClean(u.PasswordHash), totp, pgTime(u.Created))
}

// deleteUser deletes a user with its sessions and invitations; ErrNotFound if there is none.
func (t *pgTx) deleteUser(id string) error {
	if _, err := t.user(id); err != nil {
		return err
	}
	return t.deleteUserRows(id)
}

// deleteUserRows queues the deletion of a user's rows: its sessions, its invitation, itself.
func (t *pgTx) deleteUserRows(id string) error {
	for _, sql := range []string{
		`DELETE FROM app_sessions WHERE user_id = $1`,
		`DELETE FROM invitations WHERE user_id = $1`,
		`DELETE FROM users WHERE id = $1`,
	} {
		if err := t.exec(nil, sql, id); err != nil {
			return err
		}
	}
	return nil
}

// --- invitations

// putInvitation stores an invitation of an existing user, in place of the user's earlier
// one (users.go's PutInvitation has checked the expiry).
func (t *pgTx) putInvitation(inv *Invitation) error {
	if err := t.userExists(inv.UserID); err != nil {
		return fmt.Errorf("invitation: %w", err)
	}
	// Another user's invitation under the same hash (256 random bits: never) goes, as on
	// bbolt, where the new one overwrites it.
	if err := t.exec(nil, `DELETE FROM invitations WHERE hash = $1 AND user_id <> $2`, inv.TokenHash[:], inv.UserID); err != nil {
		return err
	}
	return t.exec(nil, `INSERT INTO invitations (hash, user_id, expires_ns) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, expires_ns = excluded.expires_ns`,
		inv.TokenHash[:], inv.UserID, inv.Expires.UnixNano())
}

// invitation reads an invitation, with its row lock in a write.
func (t *pgTx) invitation(hash [32]byte) (Invitation, error) {
	inv := Invitation{TokenHash: hash}
	var expires int64
	if err := t.row(`SELECT user_id, expires_ns FROM invitations WHERE hash = $1`+t.forUpdate(), []any{hash[:]},
		&inv.UserID, &expires); err != nil {
		return Invitation{}, fmt.Errorf("invitation: %w", err)
	}
	inv.Expires = time.Unix(0, expires).UTC()
	return inv, nil
}

// takeInvitation is users.go's TakeInvitation: the deletion is one of the write's
// statements, sent only if the write function returns nil.
func (t *pgTx) takeInvitation(hash [32]byte, now time.Time) (Invitation, error) {
	inv, err := t.invitation(hash)
	if err != nil {
		return Invitation{}, err
	}
	if err := t.exec(nil, `DELETE FROM invitations WHERE hash = $1`, hash[:]); err != nil {
		return Invitation{}, err
	}
	if !now.Before(inv.Expires) {
		return Invitation{}, fmt.Errorf("invitation of user %q: %w", inv.UserID, ErrInvitationExpired)
	}
	return inv, nil
}

// --- sessions

// putAppSession creates or renews a session of an existing user (users.go's PutAppSession
// has checked the expiry).
func (t *pgTx) putAppSession(s *AppSession) error {
	if err := t.userExists(s.UserID); err != nil {
		return fmt.Errorf("app session: %w", err)
	}
	return t.exec(nil, `INSERT INTO app_sessions (hash, user_id, customer_id, csrf, created, expires_ns)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, customer_id = excluded.customer_id,
			csrf = excluded.csrf, created = excluded.created, expires_ns = excluded.expires_ns`,
		s.IDHash[:], s.UserID, pgClean(s.CustomerID), pgClean(s.CSRF), pgTime(s.Created), s.Expires.UnixNano())
}

func (t *pgTx) appSession(hash [32]byte) (AppSession, error) {
	s := AppSession{IDHash: hash}
	var (
		created *time.Time
		expires int64
	)
	if err := t.row(`SELECT user_id, customer_id, csrf, created, expires_ns FROM app_sessions WHERE hash = $1`, []any{hash[:]},
		&s.UserID, &s.CustomerID, &s.CSRF, &created, &expires); err != nil {
		return AppSession{}, fmt.Errorf("app session: %w", err)
	}
	s.Created, s.Expires = pgTimeOf(created), time.Unix(0, expires).UTC()
	return s, nil
}

func (t *pgTx) deleteAppSession(hash [32]byte) error {
	return t.exec(nil, `DELETE FROM app_sessions WHERE hash = $1`, hash[:])
}

// pruneAppSessions deletes the sessions that expired by now and answers how many: it reads
// them with their row locks first, so that the count is what its statement deletes.
func (t *pgTx) pruneAppSessions(now time.Time) (int, error) {
	var doomed [][]byte
	err := t.query(`SELECT hash FROM app_sessions WHERE expires_ns <= $1 ORDER BY expires_ns, hash FOR UPDATE`,
		[]any{now.UnixNano()}, func(r pgx.Rows) error {
			var h []byte
			if err := r.Scan(&h); err != nil {
				return err
			}
			doomed = append(doomed, h)
			return nil
		})
	if err != nil || len(doomed) == 0 {
		return 0, err
	}
	return len(doomed), t.exec(nil, `DELETE FROM app_sessions WHERE hash = ANY($1)`, doomed)
}
