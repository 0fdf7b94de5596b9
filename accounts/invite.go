package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/trackline/trackline/store"
)

// Token is 32 random bytes, base64url: a session id, an invitation, a CSRF token.
func Token() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash is what the store keeps of a token.
func Hash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// NewID is a user's id: 16 random bytes, base64url.
func NewID() string { return Token()[:22] }

// InvitePath is where an invitation's token is used, on the web app.
func InvitePath(token string) string { return "/invite/" + token }

// Writer runs a durable transaction; *store.DB is one.
type Writer interface {
	Write(ctx context.Context, fn func(*store.Tx) error) error
}

// Invite makes u (a new user without a password; its id, lower-cased email and creation
// time are set here) and an invitation for it that works once, until now+ttl, with an
// audit entry naming actor, in one transaction. It returns the invitation's token (only its
// hash is stored) and the user. A taken email is store.ErrEmailTaken.
func Invite(ctx context.Context, db Writer, actor string, u store.User, ttl time.Duration, now time.Time) (string, store.User, error) {
	token := Token()
	u.ID, u.Email, u.Created, u.PasswordHash = NewID(), strings.ToLower(strings.TrimSpace(u.Email)), now.UTC(), ""
	inv := store.Invitation{TokenHash: Hash(token), UserID: u.ID, Expires: now.Add(ttl)}
	e := store.AuditEntry{Time: now, Actor: actor, Action: "user.invite", CustomerID: u.CustomerID, IDs: []string{u.ID}}
	err := db.Write(ctx, func(tx *store.Tx) error {
		if err := tx.PutUser(&u); err != nil {
			return err
		}
		if err := tx.PutInvitation(&inv); err != nil {
			return err
		}
		return tx.AppendAudit(&e)
	})
	if err != nil {
		return "", store.User{}, err
	}
	return token, u, nil
}

// ValidEmail is a plausibility check of an email address: something@host.tld, with no
// spaces, control characters or angle brackets.
func ValidEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return len(s) <= 254 && at > 0 && at < len(s)-3 && strings.Contains(s[at:], ".") &&
		!strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '<' || r == '>' })
}
