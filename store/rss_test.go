package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// mappedKB is the resident size of this process's mappings of path, from /proc/self/smaps.
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			n, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatal(err)
			}
			kb += n
		}
	}
	return kb
}

// The store drops the file's mapped pages from the process's resident set (rss.go), and
// what it read before reads the same after.
func TestReleasePagesDropsTheFilesPages(t *testing.T) {
	skipOnPostgres(t, "the pages of bbolt's mapped file (PostgreSQL's are its own processes')")
	path := filepath.Join(t.TempDir(), "trackline.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	val := bytes.Repeat([]byte{'x'}, 3000)
	for i := 0; i < 8; i++ {
		err := db.cur.Load().b.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("rss-test"))
			if err != nil {
				return err
			}
			for j := 0; j < 1000; j++ {
				if err := b.Put(fmt.Appendf(nil, "k%d-%04d", i, j), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	readAll := func() int {
		n := 0
		db.view(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("rss-test")).ForEach(func(k, v []byte) error {
				if !bytes.Equal(v, val) {
					t.Fatalf("value of %s changed", k)
				}
				n++
				return nil
			})
		})
		return n
	}
	if n := readAll(); n != 8000 {
		t.Fatalf("read %d values, want 8000", n)
	}
	before := mappedKB(t, path)
	if before < 16<<10 {
		t.Fatalf("%d KiB of the file mapped after reading 24 MB of it, want at least 16 MiB", before)
	}
	if err := db.releasePages(); err != nil {
		t.Fatal(err)
	}
	after := mappedKB(t, path)
	if after > before/8 {
		t.Errorf("%d KiB of the file mapped after the release, %d before", after, before)
	}
	if n := readAll(); n != 8000 {
		t.Fatalf("read %d values after the release, want 8000", n)
	}
}
