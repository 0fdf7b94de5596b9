package integrations

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// An endpoint's secrets are sealed with the customer's key in the file: a record written
// in the clear before is sealed at start, the deliveries are signed with the secret all the
// same, and once the customer's key is destroyed the endpoint is no longer read.
func TestEndpointSecretsSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "trackline.db")
	e := newEnv(t, path, Config{Workers: 2, PerEndpoint: 2, AllowCIDRs: loopback})
	rc := newReceiver(t, nil)
	// Written without a sealer: in the clear, as a build before sealing wrote it.
	e.endpoint("crm", rc.URL+"/hook", store.EventCallRinging)
	if raw, _ := os.ReadFile(path); !bytes.Contains(raw, []byte(secretA)) {
		t.Fatal("the clear record is not in the file: the test reads the wrong file")
	}
	keys, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.db.SealEndpointSecrets(context.Background(), Sealer{Keys: keys})
	if err != nil || n != 1 {
		t.Fatalf("sealed %d: %v", n, err)
	}
	if n, err := e.db.SealEndpointSecrets(context.Background(), Sealer{Keys: keys}); err != nil || n != 0 {
		t.Fatalf("sealed again %d: %v", n, err)
	}
	// A rotation: both secrets are sealed.
	err = e.db.Write(context.Background(), func(tx *store.Tx) error {
		ep, err := tx.Endpoint("acme", "crm")
		if err != nil {
			return err
		}
		ep.PreviousSecret, ep.Secret = ep.Secret, secretB
		ep.PreviousExpires = time.Now().Add(24 * time.Hour)
		return tx.PutEndpoint(&ep)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Compact(context.Background()); err != nil { // the clear record's pages go
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secretA, secretB, secretA[len(store.SecretPrefix):], secretB[len(store.SecretPrefix):]} {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatalf("the file holds a secret in the clear: %s", s)
		}
	}
	ep, err := e.db.Endpoint("acme", "crm")
	if err != nil || ep.Secret != secretB || ep.PreviousSecret != secretA {
		t.Fatalf("endpoint read back: %q %q %v", ep.Secret, ep.PreviousSecret, err)
	}
	// Delivered and signed with both.
	e.start()
	c := e.call(false)
	waitFor(t, "the delivery", func() bool { return len(rc.requests()) == 1 })
	got := rc.requests()[0]
	for _, s := range []string{secretA, secretB} {
		if err := verify(s, got.header, got.body, got.at); err != nil {
			t.Fatalf("signature with %s...: %v", s[:10], err)
		}
	}
	if !bytes.Contains(got.body, []byte(c.ID)) {
		t.Fatalf("body %s", got.body)
	}
	// The customer's key destroyed: its endpoint cannot be read, and is not delivered to.
	if err := keys.Destroy("acme"); err != nil {
		t.Fatal(err)
	}
	keys2, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SealEndpointSecrets(context.Background(), Sealer{Keys: keys2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Endpoint("acme", "crm"); !errors.Is(err, store.ErrSecretSealed) {
		t.Fatalf("endpoint after the key's destruction: %v", err)
	}
	if eps, err := e.db.AllEndpoints(); err != nil || len(eps) != 0 {
		t.Fatalf("AllEndpoints after the key's destruction: %d %v", len(eps), err)
	}
}
