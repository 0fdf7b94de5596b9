package googleads

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"

	"github.com/trackline/trackline/store/keyring"
)

// Secrets are a customer's OAuth2 secrets.
type Secrets struct {
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
}

// Sealed secrets: magic "TLGA1" | salt (32) | nonce (12) | AES-256-GCM of the secrets' JSON,
// with "trackline googleads <customer>" as additional data. The key is the customer's
// recording-key derivation (keyring.Key.FileKey) with the salt and the name sealName: the
// keyring's own primitive, under a name no call id can take (call ids are 26 base32
// characters), so it serves no other file. Destroying the customer's key (crypto-shredding)
// makes the secrets unreadable too.
const (
	sealMagic = "TLGA1"
	sealName  = "googleads-oauth"
	sealSalt  = 32
)

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

// Seal seals s with the customer's key.
func Seal(key *keyring.Key, s Secrets) ([]byte, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(sealMagic)+sealSalt+12, len(sealMagic)+sealSalt+12+len(plain)+16)
	copy(out, sealMagic)
	salt, nonce := out[len(sealMagic):len(sealMagic)+sealSalt], out[len(sealMagic)+sealSalt:]
	rand.Read(salt) // never fails (crypto/rand, Go 1.24+)
	rand.Read(nonce)
	aead, err := sealAEAD(key, salt)
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plain, []byte("trackline googleads "+key.CustomerID())), nil
}

// Unseal opens secrets Seal sealed with the customer's key.
func Unseal(key *keyring.Key, sealed []byte) (Secrets, error) {
	var s Secrets
	head := len(sealMagic) + sealSalt + 12
	if len(sealed) < head+16 || string(sealed[:len(sealMagic)]) != sealMagic {
		return s, ErrSealed
	}
	aead, err := sealAEAD(key, sealed[len(sealMagic):len(sealMagic)+sealSalt])
	if err != nil {
		return s, err
	}
	plain, err := aead.Open(nil, sealed[len(sealMagic)+sealSalt:head], sealed[head:], []byte("trackline googleads "+key.CustomerID()))
	if err != nil {
		return s, ErrSealed
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrSealed, err)
	}
	return s, nil
}
