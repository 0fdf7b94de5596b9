package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Access records: the customers' API tokens and the audit log.
//
// Tokens are keyed by the SHA-256 of the token (32 bytes) in the tokens bucket; the token
// itself is never stored. tokens_by_customer (customer 0x00 token id) holds that hash, so a
// customer's tokens can be listed and one revoked by its id. A token is 256 random bits, so a
// plain hash is enough: nobody can search that space for a preimage, keyed or not.
//
// The audit log is append-only: the store has no call that changes an entry, and the only
// one that deletes entries is the log's retention, PruneAudit, oldest first. Keys
// are 16 bytes, the entry's time in big-endian Unix nanoseconds and then the audit bucket's
// sequence number, so a reverse walk is a walk from the newest entry back and two entries of
// the same nanosecond keep their order. audit_by_customer (customer 0x00 key) indexes the
// entries that name a customer.

// Token is a customer's API token as stored: everything but the secret.
type Token struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	Label      string    `json:"label"`
	Created    time.Time `json:"created"`
	// Hint is the token's last four characters, so that people can tell their tokens apart.
	Hint string `json:"hint"`
}

// AuditEntry is one action on personal data: who did what, when, to which records. It holds
// ids only, never the data itself (no caller numbers, no landing pages).
type AuditEntry struct {
	// ID is the entry's key in hex (set when read); it is also the cursor of the next page.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Actor is "operator", "token:" and the token's id (never the token), "sweeper" (the
	// retention job) or "config" (a change the config file made at start).
	Actor string `json:"actor"`
	// Action names what was done, e.g. call.read, calls.list, token.create.
	Action     string `json:"action"`
	CustomerID string `json:"customer_id,omitempty"`
	// IDs are the records read or changed: call, session, recording or token ids.
	IDs []string `json:"ids,omitempty"`
	// Counts are how many records of each kind an action concerned (a sweep, a purge).
	Counts map[string]int `json:"counts,omitempty"`
}

// AuditFilter selects audit entries. The zero value selects every entry, newest first.
type AuditFilter struct {
	CustomerID string    // "" for every customer
	From, To   time.Time // bound Time to [From, To); a zero time leaves that side open
	Before     string    // cursor: only entries with an id below this one ("" for the newest)
	Limit      int       // page size; 0 means DefaultAuditLimit
}

// DefaultAuditLimit is the page size of AuditLog when the filter sets none.
const DefaultAuditLimit = 100

// --- tokens

// PutToken stores a new token under the hash of its secret; ErrExists if the hash or the
// customer's token id is taken.
func (t *Tx) PutToken(hash [32]byte, tok *Token) error {
	idx := compose(tok.CustomerID, tok.ID)
	if t.tx.Bucket(bucketTokens).Get(hash[:]) != nil || t.tx.Bucket(bucketTokensByCu).Get(idx) != nil {
		return fmt.Errorf("token: %w", ErrExists)
	}
	if err := t.tx.Bucket(bucketTokensByCu).Put(idx, hash[:]); err != nil {
		return err
	}
	return t.put(bucketTokens, hash[:], tok)
}

// TokenByHash reads the token whose secret hashes to hash; ErrNotFound if none (revoked or
// never made).
func (t *Tx) TokenByHash(hash [32]byte) (Token, error) {
	var tok Token
	err := t.get(bucketTokens, hash[:], &tok)
	return tok, err
}

// TokensOf lists a customer's tokens ordered by id.
func (t *Tx) TokensOf(customerID string) ([]Token, error) {
	prefix := compose(customerID, "")
	c := t.tx.Bucket(bucketTokensByCu).Cursor()
	var out []Token
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var tok Token
		if err := t.get(bucketTokens, v, &tok); err != nil {
			return nil, fmt.Errorf("token index %q: %w", k, err)
		}
		out = append(out, tok)
	}
	return out, nil
}

// DeleteToken revokes a customer's token; ErrNotFound if the customer has no token with id.
func (t *Tx) DeleteToken(customerID, id string) error {
	idx := compose(customerID, id)
	hash := t.tx.Bucket(bucketTokensByCu).Get(idx)
	if hash == nil {
		return fmt.Errorf("token %q: %w", id, ErrNotFound)
	}
	if err := t.tx.Bucket(bucketTokens).Delete(bytes.Clone(hash)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketTokensByCu).Delete(idx)
}

// TokenByHash reads a token in a read-only transaction.
func (db *DB) TokenByHash(hash [32]byte) (Token, error) {
	var tok Token
	err := db.View(func(tx *Tx) (err error) { tok, err = tx.TokenByHash(hash); return err })
	return tok, err
}

// Tokens lists a customer's tokens in a read-only transaction.
func (db *DB) Tokens(customerID string) ([]Token, error) {
	var out []Token
	err := db.View(func(tx *Tx) (err error) { out, err = tx.TokensOf(customerID); return err })
	return out, err
}

// --- audit log

// AppendAudit appends e to the audit log. e.ID is ignored: the key is made here.
func (t *Tx) AppendAudit(e *AuditEntry) error {
	b := t.tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	key := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(e.Time.UnixNano()))
	key = binary.BigEndian.AppendUint64(key, seq)
	stored := *e
	stored.ID = ""
	raw, err := json.Marshal(&stored)
	if err != nil {
		return fmt.Errorf("encode audit entry: %w", err)
	}
	if e.CustomerID != "" {
		if err := t.tx.Bucket(bucketAuditByCust).Put(append(compose(e.CustomerID, ""), key...), nil); err != nil {
			return err
		}
	}
	return b.Put(key, raw)
}

// AuditLog lists the entries f selects, newest first, and the cursor of the next page ("" at
// the end).
func (t *Tx) AuditLog(f AuditFilter) ([]AuditEntry, string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	var upper []byte // exclusive
	if f.Before != "" {
		b, err := hex.DecodeString(f.Before)
		if err != nil || len(b) != 16 {
			return nil, "", fmt.Errorf("malformed audit cursor %q", f.Before)
		}
		upper = b
	}
	if !f.To.IsZero() {
		to := binary.BigEndian.AppendUint64(nil, uint64(f.To.UnixNano()))
		if upper == nil || bytes.Compare(to, upper) < 0 {
			upper = to
		}
	}
	var floor []byte
	if !f.From.IsZero() {
		floor = binary.BigEndian.AppendUint64(nil, uint64(f.From.UnixNano()))
	}
	log := t.tx.Bucket(bucketAudit)
	c := log.Cursor()
	var prefix []byte
	if f.CustomerID != "" {
		prefix = compose(f.CustomerID, "")
		c = t.tx.Bucket(bucketAuditByCust).Cursor()
	}
	var k []byte
	switch {
	case upper != nil:
		k, _ = seekBefore(c, append(bytes.Clone(prefix), upper...))
	case prefix != nil:
		k, _ = seekBefore(c, append(compose(f.CustomerID), 1)) // after every key of the customer
	default:
		k, _ = c.Last()
	}
	var out []AuditEntry
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		key := k[len(prefix):]
		if floor != nil && bytes.Compare(key, floor) < 0 {
			return out, "", nil
		}
		raw := log.Get(key)
		if raw == nil {
			return nil, "", fmt.Errorf("audit index %x: %w", k, ErrNotFound)
		}
		var e AuditEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, "", fmt.Errorf("decode audit entry %x: %w", key, err)
		}
		e.ID = hex.EncodeToString(key)
		out = append(out, e)
		if len(out) == limit {
			return out, e.ID, nil
		}
	}
	return out, "", nil
}

// AuditLog runs Tx.AuditLog in a read-only transaction.
func (db *DB) AuditLog(f AuditFilter) ([]AuditEntry, string, error) {
	var out []AuditEntry
	var next string
	err := db.View(func(tx *Tx) (err error) { out, next, err = tx.AuditLog(f); return err })
	return out, next, err
}

// Audit queues e for the next commit and returns without waiting for it: a read that is
// audited this way adds no fsync of its own, its entry shares the commit of whatever is
// written next (at once when nothing else is queued). The entry is durable once that commit
// lands; a commit that fails is logged. It fails only when the store is closed or ctx ends
// before the entry is queued.
func (db *DB) Audit(ctx context.Context, e AuditEntry) error {
	return db.enqueueDetached(ctx, "audit "+e.Action, func(tx *Tx) error { return tx.AppendAudit(&e) })
}

// AuditRaw calls fn with every stored key and value of the audit log as they are on disk, for
// checks that it holds no personal data.
func (db *DB) AuditRaw(fn func(key, value []byte) error) error {
	return db.View(func(tx *Tx) error {
		for _, name := range [][]byte{bucketAudit, bucketAuditByCust} {
			if err := tx.tx.Bucket(name).ForEach(fn); err != nil {
				return err
			}
		}
		return nil
	})
}
