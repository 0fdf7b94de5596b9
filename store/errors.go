package store

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned when a record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when a record that must be new already exists.
	ErrExists = errors.New("already exists")
	// ErrClosed is returned for writes after Close.
	ErrClosed = errors.New("store closed")
	// ErrSchema is returned when the file has a schema this build does not know.
	ErrSchema = errors.New("unsupported schema version")
	// ErrLocked is returned when another process has the store file open (a running switch).
	ErrLocked = errors.New("store file in use by another process")
	// ErrTokenKind is returned for a token of no known kind (TokenKind).
	ErrTokenKind = errors.New("unknown token kind")
	// ErrCorrupt is returned by Verify for a file that is not a consistent store.
	ErrCorrupt = errors.New("store file corrupt")
	// ErrEmailTaken is returned by PutUser for an email address another user has.
	ErrEmailTaken = errors.New("email address taken by another user")
	// ErrInvitationExpired is returned by TakeInvitation for an invitation past its expiry
	// (which it deletes all the same).
	ErrInvitationExpired = errors.New("invitation expired")
	// ErrInvalid is returned for a record with a value the store does not take (a user
	// without an email, a call annotation out of range). A *FieldError names the field.
	ErrInvalid = errors.New("invalid value")
)

// FieldError is an ErrInvalid that names the field (as the record's JSON names it) and what
// is wrong with it, for an answer that points at the field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes a FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	if len(args) > 0 {
		format = fmt.Sprintf(format, args...)
	}
	return &FieldError{Field: field, Reason: format}
}
