package googleads

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/trackline/trackline/store/keyring"
)

// Secrets are a customer's OAuth2 secrets.
type Secrets struct {
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
}

// Sealed secrets: the secrets' JSON sealed by keyring.Key.Seal under the magic "TLGA1" and the
// name sealName, with "trackline googleads <customer>" as additional data. Destroying the
// customer's key (crypto-shredding) makes the secrets unreadable too.
const (
	sealMagic = "TLGA1"
	sealName  = "googleads-oauth"
)

// Seal seals s with the customer's key.
func Seal(key *keyring.Key, s Secrets) ([]byte, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return key.Seal(sealMagic, sealName, "googleads", plain)
}

// Unseal opens secrets Seal sealed with the customer's key.
func Unseal(key *keyring.Key, sealed []byte) (Secrets, error) {
	var s Secrets
	plain, err := key.Open(sealMagic, sealName, "googleads", sealed)
	if errors.Is(err, keyring.ErrSealed) {
		return s, ErrSealed
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrSealed, err)
	}
	return s, nil
}
