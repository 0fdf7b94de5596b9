package integrations

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"

	"github.com/trackline/trackline/store/keyring"
)

// Endpoint secrets sealed at rest with the customer's key (store/webhooksecrets.go), as the
// Google Ads credentials are: magic "TLWH1" | salt (32) | nonce (12) | AES-256-GCM of the
// secret, with "trackline webhook <customer>" as additional data. The key is the customer's
// recording-key derivation (keyring.Key.FileKey) with the salt and the name sealName, a
// name no call id can take (call ids are 26 base32 characters), so it serves no other file.
// Destroying the customer's key (its erasure) leaves the secrets unreadable.
const (
	sealMagic = "TLWH1"
	sealName  = "webhook-secret"
	sealSalt  = 32
)

// errSealed: a sealed secret is malformed, or the key does not open it.
var errSealed = errors.New("sealed webhook secret: malformed or another key")

// SecretKeys gives a customer's key: Get makes one if it has none, Lookup never does;
// *keyring.Keyring is one.
type SecretKeys interface {
	Get(customerID string) (*keyring.Key, error)
	Lookup(customerID string) (*keyring.Key, error)
}

// Sealer seals endpoint secrets with the customer's key (store.SecretSealer).
type Sealer struct{ Keys SecretKeys }

func sealAEAD(key *keyring.Key, salt []byte) (cipher.AEAD, error) {
	k, err := key.FileKey(salt, sealName)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SealSecret seals a secret with the customer's key, making the key if it has none.
func (s Sealer) SealSecret(customerID, secret string) ([]byte, error) {
	key, err := s.Keys.Get(customerID)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(sealMagic)+sealSalt+12, len(sealMagic)+sealSalt+12+len(secret)+16)
	copy(out, sealMagic)
	salt, nonce := out[len(sealMagic):len(sealMagic)+sealSalt], out[len(sealMagic)+sealSalt:]
	rand.Read(salt) // never fails (crypto/rand, Go 1.24+)
	rand.Read(nonce)
	aead, err := sealAEAD(key, salt)
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, []byte(secret), []byte("trackline webhook "+customerID)), nil
}

// OpenSecret opens a secret SealSecret sealed; an error wrapping keyring.ErrNoKey once the
// customer's key is destroyed.
func (s Sealer) OpenSecret(customerID string, sealed []byte) (string, error) {
	key, err := s.Keys.Lookup(customerID)
	if err != nil {
		return "", err
	}
	head := len(sealMagic) + sealSalt + 12
	if len(sealed) < head+16 || string(sealed[:len(sealMagic)]) != sealMagic {
		return "", errSealed
	}
	aead, err := sealAEAD(key, sealed[len(sealMagic):len(sealMagic)+sealSalt])
	if err != nil {
		return "", err
	}
	plain, err := aead.Open(nil, sealed[len(sealMagic)+sealSalt:head], sealed[head:], []byte("trackline webhook "+customerID))
	if err != nil {
		return "", errSealed
	}
	return string(plain), nil
}
