package recordings

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/trackline/trackline/store"
)

func TestRemoveCustomerAndOpener(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	dir := r.Dir()
	gone := recordTone(t, r, "gone", "a", 1, SamplesPerChunk)
	crashed(t, r, "b", 1) // a .part of customer cust, left by a crash
	kept := recordTone(t, r, "kept", "c", 2, 100)
	record := func(in Info) store.Recording {
		return store.Recording{ID: in.CallID, CustomerID: in.CustomerID, CallID: in.CallID, Path: in.Rel}
	}
	open := Opener(dir, r.Keys())
	f, err := open(record(kept))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(b, plainWAV(t, r.Keys(), kept.Path)) || string(b[:4]) != "RIFF" {
		t.Fatalf("Opener read %d bytes, not the plain WAV", len(b))
	}
	if _, err := open(store.Recording{ID: "x", Path: "../etc/passwd"}); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("a path out of the tree: %v, want ErrInvalidID", err)
	}
	wrong := record(kept)
	wrong.CallID = "other"
	if _, err := open(wrong); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a record naming another call's file: %v, want ErrCorrupt", err)
	}

	if err := RemoveCustomer(dir, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("gone's recordings are still there: %v", err)
	}
	if _, err := os.Stat(kept.Path); err != nil {
		t.Fatalf("kept's recording: %v", err)
	}
	if _, err := open(record(gone)); !errors.Is(err, ErrGone) {
		t.Fatalf("open a removed recording: %v, want ErrGone", err)
	}
	if err := RemoveCustomer(dir, "cust"); err != nil {
		t.Fatalf("a customer with only a .part: %v", err)
	}
	if err := RemoveCustomer(dir, "gone"); err != nil {
		t.Fatalf("second removal: %v", err)
	}
	for _, bad := range []string{"", "..", "a/b", "."} {
		if err := RemoveCustomer(dir, bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("RemoveCustomer(%q) = %v, want ErrInvalidID", bad, err)
		}
	}
	// A destroyed key: the file is there but gone for good.
	if err := r.Keys().Destroy("kept"); err != nil {
		t.Fatal(err)
	}
	if _, err := open(record(kept)); !errors.Is(err, ErrGone) {
		t.Fatalf("open with a destroyed key: %v, want ErrGone", err)
	}
}
