package recordings

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trackline/trackline/internal/fsutil"
	"golang.org/x/sys/unix"
)

// Remove erases one recording for good. rel is the path under dir that Info.Rel gave (a
// .wav.enc file). The file's header, which holds the salt its key is derived from, is
// overwritten with zeros and fsynced before the file is removed, so that the audio cannot
// be decrypted even from blocks the filesystem leaves behind (on filesystems that write in
// place), although the customer's key lives on. A .part of the same recording goes too,
// and a .tmp of MigratePlain, then the directory is fsynced. rel may also name a plain .wav
// of a build before encryption at rest that MigratePlain left (its record still names
// it): that file, its .part and .shred are overwritten with zeros whole. A recording whose
// files are already gone is not an error.
func Remove(dir, rel string) error {
	local := filepath.FromSlash(rel)
	var names []string
	switch {
	case !filepath.IsLocal(local):
	case strings.HasSuffix(local, encSuffix):
		names = []string{"", partSuffix, tmpSuffix}
	case strings.HasSuffix(local, wavSuffix):
		names = []string{"", partSuffix, shredSuffix}
	}
	if names == nil {
		return fmt.Errorf("remove recording %q: not a recording path", rel)
	}
	final := filepath.Join(dir, local)
	var errs []error
	removed := false
	for _, suffix := range names {
		path := final + suffix
		err := shred(path)
		if err == nil {
			removed = true
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if removed {
		errs = append(errs, fsutil.SyncDir(filepath.Dir(final)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove recording %s: %w", filepath.Base(final), err)
	}
	return nil
}

// RemoveCall erases a call's recording files wherever the layout puts them: under the UTC
// date of the call's start and of the day after (a call bridged after midnight), finished
// or .part, encrypted or plain (of a build before encryption at rest), whether or not a
// record links them. For erasure, next to Remove of the recording a record names.
func RemoveCall(dir, customerID, callID string, start time.Time) error {
	if !fsutil.SafeID(customerID) || !fsutil.SafeID(callID) {
		return fmt.Errorf("remove recording of %q/%q: %w", customerID, callID, ErrInvalidID)
	}
	var errs []error
	for _, day := range []time.Time{start.UTC(), start.UTC().AddDate(0, 0, 1)} {
		for _, suffix := range []string{encSuffix, wavSuffix} {
			rel := filepath.Join(customerID, day.Format("2006"), day.Format("01"), day.Format("02"), callID+suffix)
			errs = append(errs, Remove(dir, filepath.ToSlash(rel)))
		}
	}
	return errors.Join(errs...)
}

// plainName tells whether a file of the recordings tree holds audio in the clear: a
// recording of a build before encryption at rest (.wav, .wav.part), or one that MigratePlain
// is shredding (.wav.shred).
func plainName(name string) bool {
	for _, suffix := range []string{wavSuffix, wavSuffix + partSuffix, wavSuffix + shredSuffix} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// shred overwrites the file at path with zeros, fsyncs it and removes it: the header of an
// encrypted file (its salt), every byte of a plain one.
func shred(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if plainName(filepath.Base(path)) {
		err = zeroAll(f)
	} else {
		err = zeroHeader(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Remove(path)
}

// zeroHeader overwrites the first encHeaderSize bytes of f (fewer if it is shorter) with
// zeros, without syncing.
func zeroHeader(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = f.WriteAt(make([]byte, min(st.Size(), encHeaderSize)), 0)
	return err
}

// zeroAll overwrites the whole of f with zeros, without syncing.
func zeroAll(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, min(st.Size(), 1<<20))
	for off := int64(0); off < st.Size(); off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(st.Size()-off, int64(len(zeros)))], off); err != nil {
			return err
		}
	}
	return nil
}

// RemoveCustomer erases a customer's whole recordings tree under dir: every file's header
// (every byte of a plain file, see plainName) is overwritten with zeros, the filesystem is
// synced once, and the tree is removed and its parent fsynced. Combined with destroying the customer's key (package keyring) this leaves
// nothing of its recordings that can be read, here or in backups. A customer without
// recordings is not an error. Call it only when no recording of the customer is open.
func RemoveCustomer(dir, customerID string) error {
	if !fsutil.SafeID(customerID) {
		return fmt.Errorf("remove recordings of %q: %w", customerID, ErrInvalidID)
	}
	root := filepath.Join(dir, customerID)
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var errs []error
	walkErr := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if d.Type().IsRegular() {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err == nil && plainName(d.Name()) {
				err = zeroAll(f)
			} else if err == nil {
				err = zeroHeader(f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			errs = append(errs, err)
		}
		return nil
	})
	errs = append(errs, walkErr, syncFS(dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove recordings of %s: %w", customerID, err)
	}
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("remove recordings of %s: %w", customerID, err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("remove recordings of %s: %w", customerID, err)
	}
	return nil
}

// syncFS flushes the filesystem that holds dir (syncfs(2)): one flush for many files.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
