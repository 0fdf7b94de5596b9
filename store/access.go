package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Access records: the tokens customers and their agents use, and the audit log.
//
// A token's record is keyed by the SHA-256 of the token (32 bytes); the token itself is
// never stored. A token is 256 random bits, so a plain hash is enough: nobody can search that
// space for a preimage, keyed or not. A token is of one kind (TokenKind), and each kind has
// its own pair of buckets: the records by hash, and an index by customer 0x00 token id that
// holds the hash, so that a customer's tokens can be listed and one revoked by its id. The
// buckets are all that tells the kind (the record does not), so a token of one kind is never
// found as one of another; they are the buckets, and the records the JSON, that API tokens
// and agent tokens had before they shared one type, so files of earlier builds read as they
// are (TestTokensOfEarlierBuild).
//
// The audit log is append-only: the store has no call that changes an entry, and the only
// one that deletes entries is the log's retention, PruneAudit, oldest first. Keys
// are 16 bytes, the entry's time in big-endian Unix nanoseconds and then the audit bucket's
// sequence number, so a reverse walk is a walk from the newest entry back and two entries of
// the same nanosecond keep their order. audit_by_customer (customer 0x00 key) indexes the
// entries that name a customer.

// TokenKind is what a token opens. The zero value is unknown: the store takes no token of it.
type TokenKind uint8

// Token kinds.
const (
	TokenUnknown TokenKind = iota
	// TokenAPI is a customer's API token: the admin API, for that customer's records only.
	// Its buckets are tokens and tokens_by_customer.
	TokenAPI
	// TokenAgent is a browser agent's login (package agents): the agent page's signalling
	// only, never the admin API. Its buckets are agent_tokens and agent_tokens_by_customer.
	TokenAgent
)

// tokenKindTable holds each kind's name and buckets, indexed by the kind.
var tokenKindTable = [...]struct {
	name               string
	byHash, byCustomer []byte
}{
	TokenUnknown: {name: "unknown"},
	TokenAPI:     {"token", bucketTokens, bucketTokensByCu},
	TokenAgent:   {"agent token", bucketAgentTokens, bucketAgentByCu},
}

// tokenKinds lists every kind of token.
var tokenKinds = [...]TokenKind{TokenAPI, TokenAgent}

// String names the kind as the store's errors do: "token" (an API token), "agent token".
func (k TokenKind) String() string {
	if int(k) < len(tokenKindTable) {
		return tokenKindTable[k].name
	}
	return "token kind " + strconv.Itoa(int(k))
}

// buckets answers the names of k's buckets: the records by hash and the index by customer;
// ErrTokenKind for a kind that has none.
func (k TokenKind) buckets() (byHash, byCustomer []byte, err error) {
	if k == TokenUnknown || int(k) >= len(tokenKindTable) {
		return nil, nil, fmt.Errorf("%v: %w", k, ErrTokenKind)
	}
	return tokenKindTable[k].byHash, tokenKindTable[k].byCustomer, nil
}

// Token is a token as stored: everything but the secret.
type Token struct {
	// Kind is set on every token read; PutToken files the token under it. It is not part
	// of the stored record (the bucket is) nor of the token as the API shows it.
	Kind       TokenKind `json:"-"`
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	// Label names the token in lists; for an agent token it also names the agent on its
	// page (e.g. a first name or a desk).
	Label string `json:"label"`
	// Groups are the agent groups an agent token answers: the <group> of business lines
	// "webrtc:<group>". API tokens have none.
	Groups  []string  `json:"groups,omitempty"`
	Created time.Time `json:"created"`
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

// PutToken stores a new token of kind tok.Kind under the hash of its secret; ErrExists if
// the hash or the customer's token id is taken in that kind.
func (t *Tx) PutToken(hash [32]byte, tok *Token) error {
	if t.pg != nil {
		return t.pg.putToken(hash, tok)
	}
	byHash, byCustomer, err := tok.Kind.buckets()
	if err != nil {
		return err
	}
	idx := compose(tok.CustomerID, tok.ID)
	if t.tx.Bucket(byHash).Get(hash[:]) != nil || t.tx.Bucket(byCustomer).Get(idx) != nil {
		return fmt.Errorf("%v: %w", tok.Kind, ErrExists)
	}
	if err := t.tx.Bucket(byCustomer).Put(idx, hash[:]); err != nil {
		return err
	}
	return t.put(byHash, hash[:], tok)
}

// TokenByHash reads the token of kind k whose secret hashes to hash; ErrNotFound if none
// (revoked, never made, or of another kind).
func (t *Tx) TokenByHash(k TokenKind, hash [32]byte) (Token, error) {
	if t.pg != nil {
		return t.pg.tokenByHash(k, hash)
	}
	tok := Token{Kind: k}
	byHash, _, err := k.buckets()
	if err == nil {
		err = t.get(byHash, hash[:], &tok)
	}
	return tok, err
}

// TokensOf lists a customer's tokens of kind k ordered by id.
func (t *Tx) TokensOf(k TokenKind, customerID string) ([]Token, error) {
	if t.pg != nil {
		return t.pg.tokensOf(k, customerID)
	}
	byHash, byCustomer, err := k.buckets()
	if err != nil {
		return nil, err
	}
	prefix := compose(customerID, "")
	c := t.tx.Bucket(byCustomer).Cursor()
	var out []Token
	for key, v := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, v = c.Next() {
		tok := Token{Kind: k}
		if err := t.get(byHash, v, &tok); err != nil {
			return nil, fmt.Errorf("%v index %q: %w", k, key, err)
		}
		out = append(out, tok)
	}
	return out, nil
}

// DeleteToken revokes a customer's token of kind k; ErrNotFound if the customer has no
// token of that kind with id.
func (t *Tx) DeleteToken(k TokenKind, customerID, id string) error {
	if t.pg != nil {
		return t.pg.deleteToken(k, customerID, id)
	}
	byHash, byCustomer, err := k.buckets()
	if err != nil {
		return err
	}
	idx := compose(customerID, id)
	hash := t.tx.Bucket(byCustomer).Get(idx)
	if hash == nil {
		return fmt.Errorf("%v %q: %w", k, id, ErrNotFound)
	}
	if err := t.tx.Bucket(byHash).Delete(bytes.Clone(hash)); err != nil {
		return err
	}
	return t.tx.Bucket(byCustomer).Delete(idx)
}

// TokenByHash reads a token in a read-only transaction.
func (db *DB) TokenByHash(k TokenKind, hash [32]byte) (Token, error) {
	var tok Token
	err := db.View(func(tx *Tx) (err error) { tok, err = tx.TokenByHash(k, hash); return err })
	return tok, err
}

// Tokens lists a customer's tokens of kind k in a read-only transaction.
func (db *DB) Tokens(k TokenKind, customerID string) ([]Token, error) {
	var out []Token
	err := db.View(func(tx *Tx) (err error) { out, err = tx.TokensOf(k, customerID); return err })
	return out, err
}

// --- audit log

// AppendAudit appends e to the audit log. e.ID is ignored: the key is made here.
func (t *Tx) AppendAudit(e *AuditEntry) error {
	if t.pg != nil {
		return t.pg.appendAudit(e)
	}
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
	if t.pg != nil {
		return t.pg.auditLog(f)
	}
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

// AuditLog runs Tx.AuditLog in a read-only transaction, after the entries queued before the
// call are committed: entries of reads (Audit) are queued without a waiter, and a reader of
// the log must see the ones of the requests answered before it asked. An empty write waits
// for them, since writes commit in the order they were queued.
func (db *DB) AuditLog(f AuditFilter) ([]AuditEntry, string, error) {
	if err := db.Write(context.Background(), func(*Tx) error { return nil }); err != nil {
		return nil, "", err
	}
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
