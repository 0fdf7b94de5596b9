package recordings

import "errors"

var (
	// ErrInvalidID: a customer or call id is not a safe single path component
	// ([A-Za-z0-9_-], 1 to 64 characters).
	ErrInvalidID = errors.New("invalid id")
	// ErrExists: a recording (finished or in progress) already exists for that call.
	ErrExists = errors.New("recording exists")
	// ErrClosed: the Recorder was closed.
	ErrClosed = errors.New("recorder closed")
	// ErrDone: the recording was already finished or aborted.
	ErrDone = errors.New("recording already finished or aborted")
	// ErrPrompt: a prompt file is not a usable WAV; the error text says what is wrong.
	ErrPrompt = errors.New("unusable prompt")
	// ErrCorrupt: a recording file is not one this package wrote, or was changed, cut
	// short or damaged since (a chunk fails authentication).
	ErrCorrupt = errors.New("recording file corrupt")
	// ErrUnavailable: the object store that holds a recording could not be reached or
	// answered with an error; trying again later may work.
	ErrUnavailable = errors.New("object store unavailable")
)

// promptError is a prompt format problem; errors.Is(err, ErrPrompt) holds for it.
type promptError string

func (e promptError) Error() string { return string(e) }

// Unwrap makes errors.Is(err, ErrPrompt) true.
func (e promptError) Unwrap() error { return ErrPrompt }
