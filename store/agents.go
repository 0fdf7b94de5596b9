package store

import (
	"bytes"
	"fmt"
	"time"
)

// Agent tokens: what a browser agent logs in with (package agents). They are kept like the
// customers' API tokens (access.go): keyed by the SHA-256 of the secret in agent_tokens, the
// secret itself never stored, and agent_tokens_by_customer (customer 0x00 id) holding that
// hash so a customer's agent tokens can be listed and one revoked by id. An agent token opens
// the agent page's signalling only, never the admin API.

// AgentToken is a browser agent's login as stored: everything but the secret.
type AgentToken struct {
	ID         string `json:"id"`
	CustomerID string `json:"customer_id"`
	// Label names the agent on the page and in lists (e.g. a first name or a desk).
	Label string `json:"label"`
	// Groups are the agent groups it answers: the <group> of business lines "webrtc:<group>".
	Groups  []string  `json:"groups"`
	Created time.Time `json:"created"`
	// Hint is the token's last four characters.
	Hint string `json:"hint"`
}

// PutAgentToken stores a new agent token under the hash of its secret; ErrExists if the hash
// or the customer's token id is taken.
func (t *Tx) PutAgentToken(hash [32]byte, tok *AgentToken) error {
	idx := compose(tok.CustomerID, tok.ID)
	if t.tx.Bucket(bucketAgentTokens).Get(hash[:]) != nil || t.tx.Bucket(bucketAgentByCu).Get(idx) != nil {
		return fmt.Errorf("agent token: %w", ErrExists)
	}
	if err := t.tx.Bucket(bucketAgentByCu).Put(idx, hash[:]); err != nil {
		return err
	}
	return t.put(bucketAgentTokens, hash[:], tok)
}

// AgentTokenByHash reads the agent token whose secret hashes to hash; ErrNotFound if none.
func (t *Tx) AgentTokenByHash(hash [32]byte) (AgentToken, error) {
	var tok AgentToken
	err := t.get(bucketAgentTokens, hash[:], &tok)
	return tok, err
}

// AgentTokensOf lists a customer's agent tokens ordered by id.
func (t *Tx) AgentTokensOf(customerID string) ([]AgentToken, error) {
	prefix := compose(customerID, "")
	c := t.tx.Bucket(bucketAgentByCu).Cursor()
	var out []AgentToken
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var tok AgentToken
		if err := t.get(bucketAgentTokens, v, &tok); err != nil {
			return nil, fmt.Errorf("agent token index %q: %w", k, err)
		}
		out = append(out, tok)
	}
	return out, nil
}

// DeleteAgentToken revokes a customer's agent token; ErrNotFound if it has none with id.
func (t *Tx) DeleteAgentToken(customerID, id string) error {
	idx := compose(customerID, id)
	hash := t.tx.Bucket(bucketAgentByCu).Get(idx)
	if hash == nil {
		return fmt.Errorf("agent token %q: %w", id, ErrNotFound)
	}
	if err := t.tx.Bucket(bucketAgentTokens).Delete(bytes.Clone(hash)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketAgentByCu).Delete(idx)
}

// AgentTokenByHash reads an agent token in a read-only transaction.
func (db *DB) AgentTokenByHash(hash [32]byte) (AgentToken, error) {
	var tok AgentToken
	err := db.View(func(tx *Tx) (err error) { tok, err = tx.AgentTokenByHash(hash); return err })
	return tok, err
}

// AgentTokens lists a customer's agent tokens in a read-only transaction.
func (db *DB) AgentTokens(customerID string) ([]AgentToken, error) {
	var out []AgentToken
	err := db.View(func(tx *Tx) (err error) { out, err = tx.AgentTokensOf(customerID); return err })
	return out, err
}
