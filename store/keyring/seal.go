package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
)

// Small secrets sealed at rest with a customer's key (a webhook endpoint's secret, the
// Google Ads credentials): magic | salt (32) | nonce (12) | AES-256-GCM of the value, with
// "trackline <purpose> <customer>" as additional data. The AES key is the customer's file-key
// derivation (FileKey) with the salt and name, a name no call id can take (call ids are 26
// base32 characters), so that it serves no other file. Destroying the customer's key makes
// the value unreadable.

// sealSalt is the length of a sealed value's salt.
const sealSalt = 32

// ErrSealed is Open's answer for a value that is malformed, of another kind or sealed with
// another key.
var ErrSealed = errors.New("keyring: sealed value malformed or of another key")

// Seal seals plain for purpose (its additional data), under magic and name (see above).
func (key *Key) Seal(magic, name, purpose string, plain []byte) ([]byte, error) {
	head := len(magic) + sealSalt + 12
	out := make([]byte, head, head+len(plain)+16)
	copy(out, magic)
	salt, nonce := out[len(magic):len(magic)+sealSalt], out[len(magic)+sealSalt:]
	rand.Read(salt) // never fails (crypto/rand, Go 1.24+)
	rand.Read(nonce)
	aead, err := key.sealAEAD(salt, name)
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plain, key.sealData(purpose)), nil
}

// Open opens a value Seal sealed with the same magic, name and purpose.
func (key *Key) Open(magic, name, purpose string, sealed []byte) ([]byte, error) {
	head := len(magic) + sealSalt + 12
	if len(sealed) < head+16 || string(sealed[:len(magic)]) != magic {
		return nil, ErrSealed
	}
	aead, err := key.sealAEAD(sealed[len(magic):len(magic)+sealSalt], name)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, sealed[len(magic)+sealSalt:head], sealed[head:], key.sealData(purpose))
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

func (key *Key) sealData(purpose string) []byte {
	return []byte("trackline " + purpose + " " + key.customerID)
}

func (key *Key) sealAEAD(salt []byte, name string) (cipher.AEAD, error) {
	k, err := key.FileKey(salt, name)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
