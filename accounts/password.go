package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with argon2id (RFC 9106) at OWASP's recommended cost for a login
// path (19 MiB, 2 passes, 1 lane) and kept as the usual PHC string, so that the cost can
// rise later without invalidating the hashes stored before.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// The password rules: long enough to resist guessing, bounded so that hashing stays cheap
// to refuse.
const (
	MinPassword = 12
	MaxPassword = 256
)

// ErrWeakPassword is a password outside the rules.
var ErrWeakPassword = fmt.Errorf("choose a password of %d to %d characters", MinPassword, MaxPassword)

// CheckPassword applies the password rules.
func CheckPassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPassword || len(pw) > MaxPassword {
		return ErrWeakPassword
	}
	return nil
}

// HashPassword returns pw's argon2id PHC string, with a fresh salt.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// ErrBadHash is a stored hash that is not an argon2id PHC string this package reads.
var ErrBadHash = errors.New("not an argon2id hash")

// VerifyPassword reports whether pw matches the PHC string, comparing in constant time.
func VerifyPassword(phc, pw string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrBadHash
	}
	var v int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, ErrBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false, ErrBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ErrBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return false, ErrBadHash
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Decoy is verified against when a login names no account, so that a missing account takes
// as long to refuse as a wrong password. Its zero value is ready.
type Decoy struct {
	once sync.Once
	phc  string
}

// Verify spends the time of one password check.
func (d *Decoy) Verify(pw string) {
	d.once.Do(func() { d.phc, _ = HashPassword("no account has this password") })
	VerifyPassword(d.phc, pw)
}
