package recordings

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/trackline/trackline/store"
)

func TestRemoveCustomerAndOpener(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"gone/2026/05/01/a.wav", "gone/2026/05/02/b.wav.part", "kept/2026/05/01/c.wav"} {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("RIFF "+p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	open := Opener(dir)
	f, err := open(store.Recording{ID: "c", Path: "kept/2026/05/01/c.wav"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "RIFF kept/2026/05/01/c.wav" {
		t.Fatalf("Opener read %q", b)
	}
	if _, err := open(store.Recording{ID: "x", Path: "../etc/passwd"}); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("a path out of the tree: %v, want ErrInvalidID", err)
	}

	if err := RemoveCustomer(dir, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("gone's recordings are still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kept/2026/05/01/c.wav")); err != nil {
		t.Fatalf("kept's recording: %v", err)
	}
	if _, err := open(store.Recording{ID: "a", Path: "gone/2026/05/01/a.wav"}); !errors.Is(err, ErrGone) {
		t.Fatalf("open a removed recording: %v, want ErrGone", err)
	}
	if err := RemoveCustomer(dir, "gone"); err != nil {
		t.Fatalf("second removal: %v", err)
	}
	for _, bad := range []string{"", "..", "a/b", "."} {
		if err := RemoveCustomer(dir, bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("RemoveCustomer(%q) = %v, want ErrInvalidID", bad, err)
		}
	}
}
