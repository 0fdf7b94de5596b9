package recordings

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Files is where recordings are read from and removed: the tree under Dir and, when an
// object store is configured, its bucket. A recording is read from the local file while
// there is one (not yet uploaded, or made before the object store was configured), else
// from its object. Removal takes both.
type Files struct {
	Dir     string
	Keys    *keyring.Keyring
	Objects *Objects // nil: recordings are local only
}

// Open opens the plain WAV of a recording for reading and seeking: the local file, else
// its object. Errors as OpenRecording's: ErrGone when there is neither or the customer's key
// was destroyed, ErrInvalidID for a path that would leave the tree, ErrCorrupt for a file
// that is not the record's.
func (f Files) Open(ctx context.Context, rec store.Recording) (*Reader, error) {
	r, err := OpenRecording(f.Dir, f.Keys, rec)
	if f.Objects == nil || !errors.Is(err, ErrGone) {
		return r, err
	}
	if _, kerr := f.Keys.Lookup(rec.CustomerID); errors.Is(kerr, keyring.ErrNoKey) {
		return nil, err
	}
	return f.Objects.Open(ctx, rec)
}

// Opener is the OpenFunc exports read recordings through.
func (f Files) Opener() OpenFunc {
	return func(rec store.Recording) (io.ReadCloser, error) {
		r, err := f.Open(context.Background(), rec)
		if err != nil {
			return nil, err // not a nil *Reader in a non-nil interface
		}
		return r, nil
	}
}

// WhyGone says why a recording that Open found gone cannot be read: its key was destroyed,
// or else its file (and object) is gone.
func (f Files) WhyGone(rec store.Recording) string {
	if _, err := f.Keys.Lookup(rec.CustomerID); errors.Is(err, keyring.ErrNoKey) {
		return "the recording's key was destroyed"
	}
	if path, err := Path(f.Dir, rec); err == nil {
		if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return "the recording's key was destroyed"
		}
	}
	return "the recording's file is gone"
}

// Remove erases one recording: the local file (Remove) and its object. An object store that
// fails keeps the deletion and retries it (Objects.Remove); the error still says so.
func (f Files) Remove(ctx context.Context, rel string) error {
	if err := Remove(f.Dir, rel); err != nil {
		return err
	}
	return f.Objects.Remove(ctx, rel)
}

// RemoveCall erases a call's recording files wherever the layout puts them (RemoveCall),
// and their objects.
func (f Files) RemoveCall(ctx context.Context, customerID, callID string, start time.Time) error {
	if err := RemoveCall(f.Dir, customerID, callID, start); err != nil {
		return err
	}
	if f.Objects == nil {
		return nil
	}
	var errs []error
	for _, day := range []time.Time{start.UTC(), start.UTC().AddDate(0, 0, 1)} {
		rel := fmt.Sprintf("%s/%s/%s", customerID, day.Format("2006/01/02"), callID+encSuffix)
		errs = append(errs, f.Objects.Remove(ctx, rel))
	}
	return errors.Join(errs...)
}

// RemoveCustomer erases a customer's recordings: its tree (RemoveCustomer) and its objects.
func (f Files) RemoveCustomer(ctx context.Context, customerID string) error {
	if err := RemoveCustomer(f.Dir, customerID); err != nil {
		return err
	}
	return f.Objects.RemoveCustomer(ctx, customerID)
}
