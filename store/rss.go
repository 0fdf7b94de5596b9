package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// The file's pages in the process's memory. bbolt reads the file through a shared memory
// mapping, so every page a transaction has looked at stays mapped into the process and is
// counted in its resident set (RSS), as file pages, until the kernel reclaims them. A switch
// that writes calls all day walks its way across the whole file, and its RSS grows with the
// file (measured at 1,000 recorded calls a second: 40 MB of the file's pages mapped after 22
// s, the file pages 109-154 MB after 60 s; docs/benchmarks.md, issue 21), though those pages
// are the page cache's, not the switch's own memory, and cost nothing to drop: the kernel
// keeps them cached and maps them back on the next read (a minor fault, no I/O).
//
// So every releaseEvery the store tells the kernel it does not need the mapping's pages now
// (madvise MADV_DONTNEED over the file's length, in a read transaction, which holds bbolt's
// mapping in place: bbolt remaps only under its write lock of the mapping, which a read
// transaction's read lock excludes). bbolt writes with pwrite, never through the mapping, so
// no dirty page is lost. bbolt offers no call for this (its Info gives the mapping's
// address; the length is the transaction's view of the file size), hence the system call here.

const releaseEvery = 5 * time.Second

// releaseLoop drops the mapping's pages every releaseEvery until the store stops.
func (db *DB) releaseLoop() {
	t := time.NewTicker(releaseEvery)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			db.releasePages()
		}
	}
}

// releasePages advises the kernel that the current file's mapped pages are not needed.
func (db *DB) releasePages() error {
	return db.view(func(tx *bolt.Tx) error {
		info := tx.DB().Info()
		if info == nil || info.Data == 0 || tx.Size() <= 0 {
			return nil
		}
		// The raw system call takes the mapping's address as bbolt gives it (a uintptr),
		// without making a Go pointer of it.
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, info.Data, uintptr(tx.Size()), unix.MADV_DONTNEED)
		if errno != 0 {
			return errno
		}
		return nil
	})
}
