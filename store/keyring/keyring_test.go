package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestGetIsDurableAndStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "acme.key"))
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != int64(plainSize) {
		t.Fatalf("key file: %v %v", st, err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("keys directory mode %v, want 0700", st.Mode().Perm())
	}
	p := a.Pseudonym("+31612345678")
	if len(p) != 32 || strings.Contains(p, "612345678") {
		t.Fatalf("pseudonym %q", p)
	}
	if a.Pseudonym("+31612345678") != p || a.Pseudonym("+31612345679") == p {
		t.Error("pseudonym not a function of the number")
	}
	b, err := k.Get("bakery")
	if err != nil {
		t.Fatal(err)
	}
	if b.Pseudonym("+31612345678") == p {
		t.Error("two customers give one caller the same pseudonym")
	}

	// Another process (a restart) reads the same secret.
	k2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := k2.Lookup("acme")
	if err != nil {
		t.Fatal(err)
	}
	if a2.Pseudonym("+31612345678") != p {
		t.Error("pseudonym changed across a reopen")
	}
	salt := bytes.Repeat([]byte{7}, 32)
	f1, _ := a.FileKey(salt, "call-1")
	f2, _ := a2.FileKey(salt, "call-1")
	f3, _ := a2.FileKey(salt, "call-2")
	if !bytes.Equal(f1, f2) || bytes.Equal(f1, f3) || len(f1) != 32 {
		t.Error("file keys: not stable across a reopen, or not bound to the call")
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestDestroy(t *testing.T) {
	dir := t.TempDir()
	k, _ := Open(dir)
	if _, err := k.Lookup("acme"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Lookup of a key never made = %v, want ErrNoKey", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Lookup made a key file")
	}
	a, _ := k.Get("acme")
	before := a.Pseudonym("+31612345678")
	if err := k.Destroy("acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("key file after Destroy: %v", err)
	}
	if _, err := k.Lookup("acme"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Lookup after Destroy = %v, want ErrNoKey (the cache must forget it too)", err)
	}
	k2, _ := Open(dir)
	if _, err := k2.Lookup("acme"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Lookup after Destroy and reopen = %v, want ErrNoKey", err)
	}
	if err := k.Destroy("acme"); err != nil {
		t.Errorf("second Destroy = %v, want nil", err)
	}
	fresh, err := k.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Pseudonym("+31612345678") == before {
		t.Error("a key made after Destroy equals the destroyed one")
	}
}

func TestMasterKey(t *testing.T) {
	dir := t.TempDir()
	master := bytes.Repeat([]byte{0x42}, MasterKeySize)
	k, err := Open(dir, WithMasterKey(master))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := k.Get("acme")
	p := a.Pseudonym("+31612345678")
	raw, _ := os.ReadFile(filepath.Join(dir, "acme.key"))
	if len(raw) != sealedSize || raw[len(magic)] != modeSealed {
		t.Fatalf("sealed key file: %d bytes, mode %d", len(raw), raw[len(magic)])
	}

	if _, err := Open(dir, WithMasterKey(master[:16])); err == nil {
		t.Error("a 16-byte master key was accepted")
	}
	noMaster, _ := Open(dir)
	if _, err := noMaster.Lookup("acme"); !errors.Is(err, ErrMasterKey) {
		t.Errorf("Lookup without the master key = %v, want ErrMasterKey", err)
	}
	if _, err := noMaster.Get("acme"); !errors.Is(err, ErrMasterKey) {
		t.Errorf("Get without the master key = %v, want ErrMasterKey (and no new key)", err)
	}
	wrong, _ := Open(dir, WithMasterKey(bytes.Repeat([]byte{0x43}, MasterKeySize)))
	if _, err := wrong.Lookup("acme"); !errors.Is(err, ErrMasterKey) {
		t.Errorf("Lookup with another master key = %v, want ErrMasterKey", err)
	}
	right, _ := Open(dir, WithMasterKey(master))
	a2, err := right.Lookup("acme")
	if err != nil || a2.Pseudonym("+31612345678") != p {
		t.Fatalf("Lookup with the master key: %v", err)
	}
	// A sealed file copied to another customer's name does not open.
	if err := os.WriteFile(filepath.Join(dir, "bakery.key"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := right.Lookup("bakery"); !errors.Is(err, ErrMasterKey) {
		t.Errorf("a sealed key moved to another customer = %v, want ErrMasterKey", err)
	}
	// Plain key files written before a master key was set still open.
	plainDir := t.TempDir()
	pk, _ := Open(plainDir)
	pa, _ := pk.Get("acme")
	withMaster, _ := Open(plainDir, WithMasterKey(master))
	if pb, err := withMaster.Lookup("acme"); err != nil || pb.Pseudonym("x") != pa.Pseudonym("x") {
		t.Errorf("plain key with a master key set: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	k, _ := Open(dir)
	for _, id := range []string{"", "..", "a/b", "a.b", strings.Repeat("a", 65), "x\x00"} {
		if _, err := k.Get(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Get(%q) = %v, want ErrInvalidID", id, err)
		}
		if _, err := k.Lookup(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Lookup(%q) = %v, want ErrInvalidID", id, err)
		}
		if err := k.Destroy(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Destroy(%q) = %v, want ErrInvalidID", id, err)
		}
	}
	for name, content := range map[string][]byte{
		"short":  []byte("TLK"),
		"magic":  append([]byte("XXXX\x00"), make([]byte, 32)...),
		"length": append([]byte("TLK1\x00"), make([]byte, 31)...),
		"mode":   append([]byte("TLK1\x07"), make([]byte, 32)...),
	} {
		if err := os.WriteFile(filepath.Join(dir, name+".key"), content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Lookup(name); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Lookup of a %s-corrupt file = %v, want ErrCorrupt", name, err)
		}
		if _, err := k.Get(name); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Get of a %s-corrupt file = %v, want ErrCorrupt (never overwrite it)", name, err)
		}
	}
}

// Concurrent first uses of one customer make one key.
func TestGetConcurrent(t *testing.T) {
	k, _ := Open(t.TempDir())
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, err := k.Get("acme")
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = key.Pseudonym("n")
		}()
	}
	wg.Wait()
	for _, p := range got[1:] {
		if p != got[0] {
			t.Fatal("concurrent Get made more than one key")
		}
	}
}

// The field key is the customer's own, stable across a reopen, and none of its other keys.
func TestFieldKey(t *testing.T) {
	dir := t.TempDir()
	k, _ := Open(dir)
	a, err := k.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Get("bakery")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.FieldKey()) != 32 || bytes.Equal(a.FieldKey(), b.FieldKey()) || bytes.Equal(a.FieldKey(), a.recording) || bytes.Equal(a.FieldKey(), a.pseudonym) {
		t.Fatal("field keys not 32 bytes of their own")
	}
	a.FieldKey()[0] ^= 1 // a copy: the key is not changed through it
	k2, _ := Open(dir)
	again, err := k2.Lookup("acme")
	if err != nil || !bytes.Equal(again.FieldKey(), a.FieldKey()) {
		t.Fatalf("field key after reopen differs: %v", err)
	}
}
