package fsutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs the directory dir, which makes a rename or a create in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// SafeID reports whether s is 1 to 64 of [A-Za-z0-9_-], so that it is one path component
// (a file or directory name) and never "." or "..".
func SafeID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// OutOfDescriptors reports whether err says that the process (EMFILE) or the system (ENFILE)
// has no file descriptor left.
func OutOfDescriptors(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}
