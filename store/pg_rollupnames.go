package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// The landing pages of the daily rollups on PostgreSQL (rollup_names rows of kind 'l'),
// sealed as the calls' are (pg_seal.go): a landing page can name a person (a path with a
// name or an order in it), and a row's bytes outlive its deletion in dead row versions and
// the WAL. A row is named by the page's identity, a keyed hash under a key derived from the
// customer's field key, so that the same page counts on the same row (and the day's cap on
// names counts pages) while the row holds no page in plain text; the page itself is in the
// row's sealed column. Once the customer's key is destroyed, neither opens nor links.
//
// A store without field keys keeps the page as the row's name, in plain text, as bbolt does;
// so do rows written before migration 00008 (their sealed column is NULL). Keywords (kind
// 'k') are the customer's campaign terms, not a visitor's: in plain text.

// pgRollupIDPrefix starts a landing page's identity: no page (a URL, or a path) starts so.
const pgRollupIDPrefix = "#"

// rollupNameRow is the row name and the sealed column of a landing page or keyword of a
// customer's rollups. With create, a customer without a field key gets one (a write).
func (t *pgTx) rollupNameRow(customerID string, kind byte, name string, create bool) (string, []byte, error) {
	if kind != 'l' || t.s == nil || t.s.keys == nil || name == RollupOther {
		return name, nil, nil
	}
	key, err := t.s.keys.FieldKey(customerID, create)
	if err != nil {
		return "", nil, err
	}
	// A key of its own for the identities, derived from the field key (HMAC as a PRF), so
	// that the field key is used for one thing: AES-GCM.
	m := hmac.New(sha256.New, key)
	m.Write([]byte("trackline rollup landing page identity"))
	m = hmac.New(sha256.New, m.Sum(nil))
	m.Write([]byte(name))
	id := pgRollupIDPrefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
	sealed, err := t.seal("rollup_names.name", customerID, id, name)
	return id, sealed, err
}

// rollupNameOf is the landing page or keyword of a row read back: its sealed column opened,
// or its name.
func (t *pgTx) rollupNameOf(customerID, name string, sealed []byte) (string, error) {
	if sealed == nil {
		return name, nil
	}
	return t.open("rollup_names.name", customerID, name, sealed)
}
