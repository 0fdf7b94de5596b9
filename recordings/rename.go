package recordings

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames a finished recording's .part to its final name, refusing to replace
// a file of that name (ErrExists) in the same system call: renameat2(2) with
// RENAME_NOREPLACE. Besides that guarantee it saves a system call a recording: os.Rename
// first looks the new name up (an Lstat, so as not to rename over a directory), and at a
// thousand recorded calls a second each lookup walks the recording's whole path. A file
// system without RENAME_NOREPLACE (EINVAL) gets os.Rename.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("rename %s: %w", newpath, ErrExists)
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		return os.Rename(oldpath, newpath)
	}
	return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
}
