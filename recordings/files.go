package recordings

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/trackline/trackline/store"
)

// ErrGone: a recording's record exists but its file does not.
var ErrGone = errors.New("recording file gone")

// OpenFunc opens the audio of a recording for reading, as it is played (a WAV).
type OpenFunc func(rec store.Recording) (io.ReadCloser, error)

// Opener is the OpenFunc of the recordings tree under dir: the one place that reads a
// recording's file back for an export. How files are kept at rest is known here; a file
// that is missing gives ErrGone, a path that would leave dir ErrInvalidID.
func Opener(dir string) OpenFunc {
	return func(rec store.Recording) (io.ReadCloser, error) {
		path, err := Path(dir, rec)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("recording %s: %w", rec.ID, ErrGone)
		}
		return f, err
	}
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

// RemoveCustomer deletes the recordings directory of a customer, <dir>/<customer>, with
// every file in it (finished or .part), and makes the removal durable. A customer without
// recordings is not an error. It is for a customer whose data is deleted; no recording of
// it may be in progress.
func RemoveCustomer(dir, customerID string) error {
	if !safeID(customerID) {
		return fmt.Errorf("remove recordings: customer id %q: %w", customerID, ErrInvalidID)
	}
	path := filepath.Join(dir, customerID)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove recordings of %s: %w", customerID, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("remove recordings of %s: %w", customerID, err)
	}
	return nil
}
