package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Endpoint secrets at rest. An endpoint's secrets sign its deliveries, so the store keeps
// them, sealed with the customer's key when the store has a SecretSealer (package
// integrations makes one of the keyring: the customer's key, as for the Google Ads
// credentials): the record holds sealed_secret and sealed_previous_secret instead of the
// secrets, and Endpoint, Endpoints and AllEndpoints open them. A record written before
// (or without a sealer) holds them in the clear and is read as it is; SealEndpointSecrets
// seals those at start. Destroying the customer's key (its erasure) leaves its endpoints'
// secrets unreadable.

// SecretSealer seals and opens endpoint secrets with a customer's key.
type SecretSealer interface {
	SealSecret(customerID, secret string) ([]byte, error)
	OpenSecret(customerID string, sealed []byte) (string, error)
}

// storedEndpoint is an endpoint's record: its secrets in the clear (records written
// without a sealer) or sealed.
type storedEndpoint struct {
	Endpoint
	Secret         string `json:"secret,omitempty"`
	PreviousSecret string `json:"previous_secret,omitempty"`
	SealedSecret   []byte `json:"sealed_secret,omitempty"`
	SealedPrevious []byte `json:"sealed_previous_secret,omitempty"`
}

type sealerBox struct{ s SecretSealer }

// sealer is the store's SecretSealer; nil without one.
func (t *Tx) sealer() SecretSealer {
	if t.db == nil {
		return nil
	}
	if b := t.db.outbox.sealer.Load(); b != nil {
		return b.s
	}
	return nil
}

// putEndpoint writes an endpoint's record, its secrets sealed when the store has a sealer.
func (t *Tx) putEndpoint(e *Endpoint) error {
	s := storedEndpoint{Endpoint: *e, Secret: e.Secret, PreviousSecret: e.PreviousSecret}
	s.Endpoint.Secret, s.Endpoint.PreviousSecret = "", ""
	if sl := t.sealer(); sl != nil {
		var err error
		if s.SealedSecret, err = sl.SealSecret(e.CustomerID, e.Secret); err != nil {
			return fmt.Errorf("seal the secret of webhook endpoint %q: %w", e.ID, err)
		}
		if e.PreviousSecret != "" {
			if s.SealedPrevious, err = sl.SealSecret(e.CustomerID, e.PreviousSecret); err != nil {
				return fmt.Errorf("seal the secret of webhook endpoint %q: %w", e.ID, err)
			}
		}
		s.Secret, s.PreviousSecret = "", ""
	}
	if t.pg != nil {
		return t.pgPutEndpointRecord(e, &s)
	}
	return t.put(bucketEndpoints, compose(e.CustomerID, e.ID), &s)
}

// ErrSecretSealed: an endpoint's secret is sealed and the store has no sealer, or the
// customer's key cannot open it (destroyed).
var ErrSecretSealed = errors.New("webhook endpoint secret cannot be opened")

// decodeEndpoint reads an endpoint's record, opening its secrets.
func (t *Tx) decodeEndpoint(key, raw []byte) (Endpoint, error) {
	var s storedEndpoint
	if err := json.Unmarshal(raw, &s); err != nil {
		return Endpoint{}, fmt.Errorf("decode webhook endpoint %q: %w", key, err)
	}
	e := s.Endpoint
	e.Secret, e.PreviousSecret = s.Secret, s.PreviousSecret
	if len(s.SealedSecret) == 0 && len(s.SealedPrevious) == 0 {
		return e, nil
	}
	sl := t.sealer()
	if sl == nil {
		return Endpoint{}, fmt.Errorf("webhook endpoint %q: %w: no sealer", e.ID, ErrSecretSealed)
	}
	var err error
	if len(s.SealedSecret) > 0 {
		if e.Secret, err = sl.OpenSecret(e.CustomerID, s.SealedSecret); err != nil {
			return Endpoint{}, fmt.Errorf("webhook endpoint %q: %w: %v", e.ID, ErrSecretSealed, err)
		}
	}
	if len(s.SealedPrevious) > 0 {
		if e.PreviousSecret, err = sl.OpenSecret(e.CustomerID, s.SealedPrevious); err != nil {
			return Endpoint{}, fmt.Errorf("webhook endpoint %q: %w: %v", e.ID, ErrSecretSealed, err)
		}
	}
	return e, nil
}

// SealEndpointSecrets makes s the store's sealer and seals the secrets that endpoint
// records hold in the clear (written before, or without a sealer), in transactions of at
// most DefaultPurgeBatch; it answers how many records it sealed. The clear secrets stay in
// the file's free pages until it is compacted.
func (db *DB) SealEndpointSecrets(ctx context.Context, s SecretSealer) (int, error) {
	db.outbox.sealer.Store(&sealerBox{s})
	if db.pg != nil {
		return db.pgSealEndpointSecrets(ctx)
	}
	total := 0
	var from []byte
	for {
		n, done := 0, false
		err := db.Write(ctx, func(tx *Tx) error {
			n, done = 0, true
			c := tx.tx.Bucket(bucketEndpoints).Cursor()
			var keys [][]byte
			var recs []Endpoint
			for k, v := c.Seek(from); k != nil; k, v = c.Next() {
				if len(keys) == DefaultPurgeBatch {
					done = false
					break
				}
				if !bytes.Contains(v, []byte(`"secret":`)) && !bytes.Contains(v, []byte(`"previous_secret":`)) {
					continue
				}
				e, err := tx.decodeEndpoint(k, v)
				if err != nil {
					return err
				}
				keys, recs = append(keys, bytes.Clone(k)), append(recs, e)
			}
			for i := range recs {
				if err := tx.putEndpoint(&recs[i]); err != nil {
					return err
				}
				n++
			}
			if len(keys) > 0 {
				from = append(keys[len(keys)-1], 0)
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("seal the webhook endpoints' secrets: %w", err)
		}
		total += n
		if done {
			return total, nil
		}
	}
}
