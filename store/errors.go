package store

import "errors"

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
)
