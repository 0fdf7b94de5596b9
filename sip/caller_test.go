package sip

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/store/keyring"
)

func testKeys(t *testing.T) *keyring.Keyring {
	t.Helper()
	keys, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestPseudonymousCaller: the business line gets the caller's number, the record keeps only
// its pseudonym and last three digits, the store file holds no trace of the number, and a
// repeat caller gets the same pseudonym.
func TestPseudonymousCaller(t *testing.T) {
	keys := testKeys(t)
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, keys: keys, pseudonymous: true})
	var pseudonyms []string
	for range 2 {
		d, err := e.call("+31850000101")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		hangup(t, d)
		rec := e.record()
		if rec.Caller != "" || rec.CallerLastDigits != "678" || len(rec.CallerPseudonym) != 32 {
			t.Fatalf("record caller %q last digits %q pseudonym %q", rec.Caller, rec.CallerLastDigits, rec.CallerPseudonym)
		}
		pseudonyms = append(pseudonyms, rec.CallerPseudonym)
	}
	if pseudonyms[0] != pseudonyms[1] {
		t.Errorf("a repeat caller got pseudonyms %q and %q", pseudonyms[0], pseudonyms[1])
	}
	key, _ := keys.Lookup("acme")
	if pseudonyms[0] != key.Pseudonym("+31612345678") {
		t.Error("the pseudonym is not the customer key's HMAC of the number")
	}
	if got := line.history(); !strings.Contains(got, "from=+31612345678") {
		t.Errorf("business line saw %q: the caller's number must still be sent onwards", got)
	}
	if calls, _ := e.db.CallsOfCaller("acme", pseudonyms[0]); len(calls) != 2 {
		t.Errorf("%d calls under the pseudonym, want 2", len(calls))
	}
	b, err := os.ReadFile(e.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("612345678")) {
		t.Error("the store file holds the caller's number")
	}
}

// TestCallerWithPseudonym: a customer without pseudonymous callers keeps the number, and its
// calls are indexed by the pseudonym too.
func TestCallerWithPseudonym(t *testing.T) {
	keys := testKeys(t)
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, keys: keys})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}
	hangup(t, d)
	rec := e.record()
	key, _ := keys.Lookup("acme")
	if rec.Caller != "+31612345678" || rec.CallerLastDigits != "" || rec.CallerPseudonym != key.Pseudonym("+31612345678") {
		t.Fatalf("record caller %q last digits %q pseudonym %q", rec.Caller, rec.CallerLastDigits, rec.CallerPseudonym)
	}
	if calls, _ := e.db.CallsOfCaller("acme", rec.CallerPseudonym); len(calls) != 1 {
		t.Errorf("%d calls under the pseudonym, want 1", len(calls))
	}
}
