package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/trackline/trackline/internal/fsutil"
)

var (
	// ErrNoKey: the customer has no key (never made, or destroyed).
	ErrNoKey = errors.New("no key for this customer")
	// ErrInvalidID: a customer id is not a safe file name ([A-Za-z0-9_-], 1 to 64 characters).
	ErrInvalidID = errors.New("invalid customer id")
	// ErrMasterKey: a key file is sealed and no master key, or another one, was given.
	ErrMasterKey = errors.New("key file needs the master key it was sealed with")
	// ErrCorrupt: a key file is not one this package wrote.
	ErrCorrupt = errors.New("key file corrupt")
)

// File format: magic (4) | mode (1) | payload. Mode 0: the 32-byte secret. Mode 1: a 12-byte
// nonce and the secret sealed with AES-256-GCM under the master key (48 bytes), with
// "trackline key <customer>" as additional data, so a sealed file cannot be moved to another
// customer.
const (
	magic      = "TLK1"
	modePlain  = 0
	modeSealed = 1
	secretSize = 32
	plainSize  = len(magic) + 1 + secretSize
	sealedSize = len(magic) + 1 + 12 + secretSize + 16
	fileSuffix = ".key"
	// MasterKeySize is the length of a master key in bytes.
	MasterKeySize = 32
)

// HKDF info strings: one per use, so that no derived key serves two purposes.
const (
	infoRecording = "trackline recordings v1"
	infoPseudonym = "trackline caller pseudonym v1"
	infoFile      = "trackline recording file v1"
	infoFields    = "trackline personal fields v1"
)

// Keyring is the keys directory. Its methods are safe for concurrent use.
type Keyring struct {
	dir    string
	master cipher.AEAD // nil: keys are stored in the clear
	shared *sharedKeys // nil: keys are files in dir (shared.go)

	mu   sync.Mutex
	keys map[string]*Key
}

// Option configures Open.
type Option func(*Keyring) error

// WithMasterKey seals the key files written from now on with master (MasterKeySize bytes)
// and opens sealed ones. Without it, sealed key files cannot be read.
func WithMasterKey(master []byte) Option {
	return func(k *Keyring) error {
		if len(master) != MasterKeySize {
			return fmt.Errorf("master key: %d bytes, want %d", len(master), MasterKeySize)
		}
		block, err := aes.NewCipher(master)
		if err != nil {
			return err
		}
		k.master, err = cipher.NewGCM(block)
		return err
	}
}

// Open opens (creating if needed, mode 0700) the keys directory.
func Open(dir string, opts ...Option) (*Keyring, error) {
	if dir == "" {
		return nil, errors.New("open keyring: no directory")
	}
	k := &Keyring{dir: dir, keys: make(map[string]*Key)}
	for _, o := range opts {
		if err := o(k); err != nil {
			return nil, fmt.Errorf("open keyring: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	if k.shared != nil {
		if err := k.openShared(); err != nil {
			return nil, fmt.Errorf("open keyring: %w", err)
		}
	}
	return k, nil
}

// Dir is the keys directory (with shared keys: where unconfirmed destructions are kept).
func (k *Keyring) Dir() string { return k.dir }

// Key is one customer's derived keys. It is immutable and safe for concurrent use.
type Key struct {
	customerID string
	recording  []byte // 32 bytes
	pseudonym  []byte // 32 bytes
	fields     []byte // 32 bytes
}

// CustomerID is the customer the key belongs to.
func (key *Key) CustomerID() string { return key.customerID }

// Pseudonym is the caller's pseudonym at this customer: the first 16 bytes of
// HMAC-SHA256(pseudonym key, caller) in hex (32 characters). The same caller always gets the
// same pseudonym here; without the customer's secret it cannot be linked to a number.
func (key *Key) Pseudonym(caller string) string {
	m := hmac.New(sha256.New, key.pseudonym)
	m.Write([]byte(caller))
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0])[:16])
}

// FileKey derives the AES-256 key of one recording file from the recording key, the file's
// random salt and its name (the call id), so that every file has a key of its own and a file
// moved to another call's name does not decrypt.
func (key *Key) FileKey(salt []byte, callID string) ([]byte, error) {
	return hkdf.Key(sha256.New, key.recording, salt, infoFile+" "+key.customerID+" "+callID, 32)
}

// FieldKey is the AES-256 key that seals the customer's personal fields in a shared store
// (package store on PostgreSQL: a caller's number, a landing page, a referrer), so that
// destroying the customer's key makes them unreadable wherever their bytes are.
func (key *Key) FieldKey() []byte { return bytes.Clone(key.fields) }

// Get returns the customer's key, making and storing a new one (durably) if it has none.
func (k *Keyring) Get(customerID string) (*Key, error) {
	if !fsutil.SafeID(customerID) {
		return nil, fmt.Errorf("key of %q: %w", customerID, ErrInvalidID)
	}
	if k.shared != nil {
		return k.getShared(customerID, true)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[customerID]; ok {
		return key, nil
	}
	secret, err := k.read(customerID)
	if errors.Is(err, ErrNoKey) {
		secret, err = k.create(customerID)
	}
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", customerID, err)
	}
	return k.remember(customerID, secret)
}

// Lookup returns the customer's key; an error wrapping ErrNoKey if it has none. It never
// makes a key.
func (k *Keyring) Lookup(customerID string) (*Key, error) {
	if !fsutil.SafeID(customerID) {
		return nil, fmt.Errorf("key of %q: %w", customerID, ErrInvalidID)
	}
	if k.shared != nil {
		return k.getShared(customerID, false)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[customerID]; ok {
		return key, nil
	}
	secret, err := k.read(customerID)
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", customerID, err)
	}
	return k.remember(customerID, secret)
}

// Destroy removes the customer's key for good: the file is overwritten with zeros and
// fsynced, then removed, and the directory fsynced. Destroying a key that does not exist is
// not an error.
func (k *Keyring) Destroy(customerID string) error {
	if !fsutil.SafeID(customerID) {
		return fmt.Errorf("destroy key of %q: %w", customerID, ErrInvalidID)
	}
	if k.shared != nil {
		return k.destroyShared(customerID)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, customerID)
	return k.destroyFile(customerID)
}

// destroyFile overwrites, removes and forgets the customer's key file, if any.
func (k *Keyring) destroyFile(customerID string) error {
	path := k.path(customerID)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destroy key of %s: %w", customerID, err)
	}
	st, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(make([]byte, st.Size()), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Remove(path)
	}
	if err == nil {
		err = fsutil.SyncDir(k.dir)
	}
	if err != nil {
		return fmt.Errorf("destroy key of %s: %w", customerID, err)
	}
	return nil
}

func (k *Keyring) path(customerID string) string {
	return filepath.Join(k.dir, customerID+fileSuffix)
}

// remember derives the customer's keys from secret and caches them; k.mu is held.
func (k *Keyring) remember(customerID string, secret []byte) (*Key, error) {
	rec, err := hkdf.Key(sha256.New, secret, nil, infoRecording, 32)
	if err != nil {
		return nil, err
	}
	ps, err := hkdf.Key(sha256.New, secret, nil, infoPseudonym, 32)
	if err != nil {
		return nil, err
	}
	fields, err := hkdf.Key(sha256.New, secret, nil, infoFields, 32)
	if err != nil {
		return nil, err
	}
	key := &Key{customerID: customerID, recording: rec, pseudonym: ps, fields: fields}
	k.keys[customerID] = key
	return key, nil
}

// read loads a customer's secret from its file; ErrNoKey if there is none.
func (k *Keyring) read(customerID string) ([]byte, error) {
	b, err := os.ReadFile(k.path(customerID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, err
	}
	return k.decode(customerID, b)
}

// decode opens what encode made (a key file, or a shared key's object).
func (k *Keyring) decode(customerID string, b []byte) ([]byte, error) {
	if len(b) < len(magic)+1 || string(b[:len(magic)]) != magic {
		return nil, ErrCorrupt
	}
	switch b[len(magic)] {
	case modePlain:
		if len(b) != plainSize {
			return nil, ErrCorrupt
		}
		return b[len(magic)+1:], nil
	case modeSealed:
		if len(b) != sealedSize {
			return nil, ErrCorrupt
		}
		if k.master == nil {
			return nil, ErrMasterKey
		}
		p := b[len(magic)+1:]
		secret, err := k.master.Open(nil, p[:12], p[12:], []byte("trackline key "+customerID))
		if err != nil {
			return nil, ErrMasterKey
		}
		return secret, nil
	}
	return nil, ErrCorrupt
}

// encode is a key file's bytes: the secret sealed with the master key if there is one.
func (k *Keyring) encode(customerID string, secret []byte) []byte {
	b := append([]byte(magic), modePlain)
	if k.master != nil {
		nonce := make([]byte, 12)
		rand.Read(nonce)
		b[len(magic)] = modeSealed
		b = append(b, nonce...)
		return k.master.Seal(b, nonce, secret, []byte("trackline key "+customerID))
	}
	return append(b, secret...)
}

// create makes a new secret and stores it durably. k.mu is held.
func (k *Keyring) create(customerID string) ([]byte, error) {
	secret := make([]byte, secretSize)
	rand.Read(secret) // never fails (crypto/rand, Go 1.24+)
	if err := writeSynced(k.path(customerID), k.encode(customerID, secret)); err != nil {
		return nil, err
	}
	return secret, nil
}

// writeSynced writes a file durably: a temporary file, fsync, rename, directory fsync.
func writeSynced(final string, b []byte) error {
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = fsutil.SyncDir(filepath.Dir(final))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
