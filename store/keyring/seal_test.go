package keyring

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	kr, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	acme, err := kr.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	other, err := kr.Get("other")
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("whsec_c2VjcmV0")
	sealed, err := acme.Seal("TLXX1", "test-secret", "webhook", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) || !bytes.HasPrefix(sealed, []byte("TLXX1")) || len(sealed) != 5+32+12+len(secret)+16 {
		t.Fatalf("sealed %q", sealed)
	}
	again, _ := acme.Seal("TLXX1", "test-secret", "webhook", secret)
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: salt and nonce not fresh")
	}
	if got, err := acme.Open("TLXX1", "test-secret", "webhook", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for _, tt := range []struct {
		name                 string
		key                  *Key
		magic, kind, purpose string
		sealed               []byte
	}{
		{"another customer's key", other, "TLXX1", "test-secret", "webhook", sealed},
		{"another magic", acme, "TLYY1", "test-secret", "webhook", sealed},
		{"another name", acme, "TLXX1", "other-secret", "webhook", sealed},
		{"another purpose", acme, "TLXX1", "test-secret", "googleads", sealed},
		{"tampered", acme, "TLXX1", "test-secret", "webhook", tampered},
		{"short", acme, "TLXX1", "test-secret", "webhook", sealed[:40]},
	} {
		if _, err := tt.key.Open(tt.magic, tt.kind, tt.purpose, tt.sealed); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: %v, want ErrSealed", tt.name, err)
		}
	}
}
