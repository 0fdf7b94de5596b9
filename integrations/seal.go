package integrations

import (
	"errors"

	"github.com/trackline/trackline/store/keyring"
)

// Endpoint secrets sealed at rest with the customer's key (store/webhooksecrets.go), as the
// Google Ads credentials are, by keyring.Key.Seal under the magic "TLWH1" and the name
// sealName, with "trackline webhook <customer>" as additional data. Destroying the
// customer's key (its erasure) leaves the secrets unreadable.
const (
	sealMagic = "TLWH1"
	sealName  = "webhook-secret"
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

// SealSecret seals a secret with the customer's key, making the key if it has none.
func (s Sealer) SealSecret(customerID, secret string) ([]byte, error) {
	key, err := s.Keys.Get(customerID)
	if err != nil {
		return nil, err
	}
	return key.Seal(sealMagic, sealName, "webhook", []byte(secret))
}

// OpenSecret opens a secret SealSecret sealed; an error wrapping keyring.ErrNoKey once the
// customer's key is destroyed.
func (s Sealer) OpenSecret(customerID string, sealed []byte) (string, error) {
	key, err := s.Keys.Lookup(customerID)
	if err != nil {
		return "", err
	}
	plain, err := key.Open(sealMagic, sealName, "webhook", sealed)
	if errors.Is(err, keyring.ErrSealed) {
		return "", errSealed
	}
	return string(plain), err
}
