package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Personal fields on PostgreSQL (issue 22's privacy section): a caller's number, a landing
// page, a referrer are stored sealed with a key of their customer, so that destroying the
// customer's key (package keyring: Destroy) makes them unreadable wherever their bytes
// still are: dead row versions, the WAL, replicas, backups.
//
// A sealed value is a format byte and what follows:
//
//	0  the value in plain text: a store opened without FieldKeys (tests of other things,
//	   and rows written before keys were configured)
//	1  nonce (12 bytes) and AES-256-GCM ciphertext with its tag, under the customer's field
//	   key; the additional data is the column, the customer and the row's id, so a value
//	   copied to another row, customer or column does not open
//
// The store makes no keys and keeps none: FieldKeys gives them (the keyring's FieldKey),
// read each time, so a destroyed key is gone for the store at once.
//
// Caveat, for the cluster: the keyring is a directory of each node. Nodes sharing one
// database must share the customers' keys too (one keys directory on shared storage, or a
// key service); a key made by one node and not known to another makes that node's reads of
// the customer's personal fields fail (ErrNoFieldKey). That sharing is still to be built.

// FieldKeys gives the 32-byte key that seals a customer's personal fields. With create, a
// customer without a key gets one (a write); without, the answer for a customer without a
// key (never made, or destroyed) wraps ErrNoFieldKey.
type FieldKeys interface {
	FieldKey(customerID string, create bool) ([]byte, error)
}

// ErrNoFieldKey is the error of a read of a personal field whose customer has no key: its
// key was destroyed (the customer's erasure), or this node does not know it.
var ErrNoFieldKey = errors.New("store: no key for the customer's personal fields")

// WithFieldKeys seals the personal fields of a store on PostgreSQL with the customers' keys
// (pg_seal.go). Without it they are stored in plain text (format 0).
func WithFieldKeys(k FieldKeys) Option { return func(o *options) { o.fieldKeys = k } }

const (
	sealPlain = 0
	sealGCM   = 1
)

// aead is the customer's field cipher.
func (s *pgStore) aead(customerID string, create bool) (cipher.AEAD, error) {
	key, err := s.keys.FieldKey(customerID, create)
	if err != nil {
		return nil, fmt.Errorf("personal fields of %s: %w", customerID, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("personal fields of %s: %w", customerID, err)
	}
	return cipher.NewGCM(block)
}

func sealAAD(column, customerID, rowID string) []byte {
	return []byte(column + "\x00" + customerID + "\x00" + rowID)
}

// seal is the stored form of the personal field column of row rowID of a customer: NULL
// for "".
func (t *pgTx) seal(column, customerID, rowID, v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	if t.s == nil || t.s.keys == nil {
		return append([]byte{sealPlain}, v...), nil
	}
	aead, err := t.s.aead(customerID, true)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(v)+aead.Overhead())
	out[0] = sealGCM
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:], []byte(v), sealAAD(column, customerID, rowID)), nil
}

// open reads a stored personal field.
func (t *pgTx) open(column, customerID, rowID string, b []byte) (string, error) {
	switch {
	case len(b) == 0:
		return "", nil
	case b[0] == sealPlain:
		return string(b[1:]), nil
	case b[0] != sealGCM:
		return "", fmt.Errorf("%s: sealed in format %d, unknown to this build", column, b[0])
	case t.s == nil || t.s.keys == nil:
		return "", fmt.Errorf("%s: sealed, and the store has no keys: %w", column, ErrNoFieldKey)
	}
	aead, err := t.s.aead(customerID, false)
	if err != nil {
		return "", fmt.Errorf("%s: %w", column, err)
	}
	if len(b) < 1+aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%s: sealed value too short", column)
	}
	plain, err := aead.Open(nil, b[1:1+aead.NonceSize()], b[1+aead.NonceSize():], sealAAD(column, customerID, rowID))
	if err != nil {
		return "", fmt.Errorf("%s of %s: %w", column, rowID, err)
	}
	return string(plain), nil
}
