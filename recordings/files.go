package recordings

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// ErrGone: a recording's record exists but its file does not.
var ErrGone = errors.New("recording file gone")

// OpenFunc opens the audio of a recording for reading, as it is played (a WAV).
type OpenFunc func(rec store.Recording) (io.ReadCloser, error)

// Opener is the OpenFunc of the recordings tree under dir, decrypting with the customers'
// keys: what exports read recordings through (see OpenRecording).
func Opener(dir string, keys *keyring.Keyring) OpenFunc {
	return func(rec store.Recording) (io.ReadCloser, error) {
		r, err := OpenRecording(dir, keys, rec)
		if err != nil {
			return nil, err // not a nil *Reader in a non-nil interface
		}
		return r, nil
	}
}

// OpenRecording opens the plain WAV of a recording under dir, decrypting with the customers'
// keys, for reading and seeking. A file that is missing, or whose key was destroyed (the
// customer was erased), gives ErrGone; a path that would leave dir ErrInvalidID; a file
// that is not the one the record names ErrCorrupt.
func OpenRecording(dir string, keys *keyring.Keyring, rec store.Recording) (*Reader, error) {
	path, err := Path(dir, rec)
	if err != nil {
		return nil, err
	}
	r, err := Open(keys, path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, keyring.ErrNoKey):
		return nil, fmt.Errorf("recording %s: %w", rec.ID, ErrGone)
	case err != nil:
		return nil, err
	}
	if r.CustomerID() != rec.CustomerID || r.CallID() != rec.CallID {
		r.Close()
		return nil, fmt.Errorf("recording %s: the file is another call's: %w", rec.ID, ErrCorrupt)
	}
	return r, nil
}

// Path is the file of a recording under dir, refusing a stored path that is not local
// (absolute, or reaching out with "..").
func Path(dir string, rec store.Recording) (string, error) {
	rel := filepath.FromSlash(rec.Path)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("recording %s: path %q: %w", rec.ID, rec.Path, ErrInvalidID)
	}
	return filepath.Join(dir, rel), nil
}
