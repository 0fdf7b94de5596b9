package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// The calls of one caller (a data subject), found by the caller's pseudonym.
//
// calls_by_caller (customer 0x00 pseudonym 0x00 call id) indexes every call that has a
// CallerPseudonym, so that listing, exporting or erasing a caller's calls reads only them.
// The pseudonym is a keyed hash (package keyring): the index holds no number.

var (
	bucketCallsByCaller = []byte("calls_by_caller")
	// keyCallersIndexed in the meta bucket marks that every call written before the caller
	// index existed was given its pseudonym (IndexCallers).
	keyCallersIndexed = []byte("callers_indexed")
	// keyCompactionDue in the meta bucket marks that records were deleted since the last
	// compaction: their bytes may still be in freed pages (CompactionDue).
	keyCompactionDue = []byte("compaction_due")
)

func callerKey(customerID, pseudonym, callID string) []byte {
	return compose(customerID, pseudonym, callID)
}

// MaxCallerCalls bounds how many calls CallsOfCaller returns.
const MaxCallerCalls = 100_000

// CallsOfCaller lists the calls of the caller with this pseudonym at a customer, newest
// first (at most MaxCallerCalls).
func (t *Tx) CallsOfCaller(customerID, pseudonym string) ([]Call, error) {
	if customerID == "" || pseudonym == "" {
		return nil, nil
	}
	if t.pg != nil {
		return t.pg.callsOfCaller(customerID, pseudonym)
	}
	prefix := compose(customerID, pseudonym, "")
	calls := t.tx.Bucket(bucketCalls)
	c := t.tx.Bucket(bucketCallsByCaller).Cursor()
	var out []Call
	for k, _ := seekBefore(c, append(compose(customerID, pseudonym), 1)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		id := k[len(prefix):]
		raw := calls.Get(id)
		if raw == nil {
			return nil, fmt.Errorf("caller index entry of call %q: %w", id, ErrNotFound)
		}
		var call Call
		if err := json.Unmarshal(raw, &call); err != nil {
			return nil, fmt.Errorf("decode call %q: %w", id, err)
		}
		out = append(out, call)
		if len(out) == MaxCallerCalls {
			break
		}
	}
	return out, nil
}

// CallsOfCaller runs Tx.CallsOfCaller in a read-only transaction.
func (db *DB) CallsOfCaller(customerID, pseudonym string) ([]Call, error) {
	var out []Call
	err := db.View(func(tx *Tx) (err error) { out, err = tx.CallsOfCaller(customerID, pseudonym); return err })
	return out, err
}

// DeleteCall removes a call record with its index entries and its recording's record, takes
// it out of its customer's daily rollups (rollups.go), and returns them as they were (the recording's zero value if it had none); ErrNotFound if
// there is no such call. The recording's file is the caller's to remove.
func (t *Tx) DeleteCall(id string) (Call, Recording, error) {
	if t.pg != nil {
		c, rec, err := t.pg.deleteCall(id)
		if err == nil {
			err = t.pg.markCompactionDue()
		}
		return c, rec, err
	}
	c, err := t.Call(id)
	if err != nil {
		return Call{}, Recording{}, fmt.Errorf("call %q: %w", id, err)
	}
	var rec Recording
	if c.RecordingID != "" {
		rec, err = t.Recording(c.RecordingID)
		switch {
		case err == nil:
			if err := t.tx.Bucket(bucketRecordings).Delete([]byte(rec.ID)); err != nil {
				return Call{}, Recording{}, err
			}
		case !errors.Is(err, ErrNotFound):
			return Call{}, Recording{}, err
		}
	}
	if err := t.MarkCompactionDue(); err != nil {
		return Call{}, Recording{}, err
	}
	// Out of the rollups first: whether it counted as a returning caller's call is read
	// from the caller index, which still holds it.
	if err := t.unrollCall(&c); err != nil {
		return Call{}, Recording{}, err
	}
	// The webhooks' messages of the call hold its data: they go with it (outbox.go).
	if err := t.deleteSubjectMessages(c.CustomerID, c.ID); err != nil {
		return Call{}, Recording{}, err
	}
	// So does its Google Ads upload state, which may quote Google's error about its click.
	if b := t.tx.Bucket(bucketAdsUploads); b.b != nil {
		if err := b.Delete(compose(c.CustomerID, c.ID)); err != nil {
			return Call{}, Recording{}, err
		}
	}
	key := compose(c.CustomerID, c.ID)
	for _, del := range []struct{ b, k []byte }{
		{bucketCallsByCust, key},
		{bucketCallsActive, key},
		{bucketCallsByCaller, callerKey(c.CustomerID, c.CallerPseudonym, c.ID)},
		{bucketCalls, []byte(c.ID)},
	} {
		if err := t.tx.Bucket(del.b).Delete(del.k); err != nil {
			return Call{}, Recording{}, err
		}
	}
	return c, rec, nil
}

// MarkCompactionDue records that personal data was deleted in this transaction, so that the
// file is to be compacted (CompactionDue). DeleteCall and PurgeCustomer mark it; the mark
// outlives a crash, and Compact clears it.
func (t *Tx) MarkCompactionDue() error {
	if t.pg != nil {
		return t.pg.markCompactionDue()
	}
	return t.tx.Bucket(bucketMeta).Put(keyCompactionDue, []byte{1})
}

// CompactionDue tells whether records were deleted (DeleteCall, PurgeCustomer) since the
// last compaction that began after them: their bytes may still be in the file's freed pages.
func (db *DB) CompactionDue() (bool, error) {
	if db.pg != nil {
		ctx, cancel := context.WithTimeout(db.pg.ctx, pgTxTimeout)
		defer cancel()
		due, _, err := db.pg.compactionDue(ctx)
		return due, err
	}
	var due bool
	err := db.View(func(tx *Tx) error {
		due = tx.tx.Bucket(bucketMeta).Get(keyCompactionDue) != nil
		return nil
	})
	return due, err
}

// indexCaller gives a stored call its pseudonym and caller index entry.
func (t *Tx) indexCaller(id, pseudonym string) error {
	c, err := t.Call(id)
	if err != nil || c.CallerPseudonym != "" {
		return err
	}
	c.CallerPseudonym = pseudonym
	if err := t.tx.Bucket(bucketCallsByCaller).Put(callerKey(c.CustomerID, pseudonym, c.ID), nil); err != nil {
		return err
	}
	return t.put(bucketCalls, []byte(c.ID), &c)
}

// IndexCallers gives every call stored without a pseudonym (written before the caller
// index existed) its pseudonym, made by pseudonym from the customer and the stored caller,
// and its index entry. It runs once per store file: a mark in the meta bucket records that
// it did. It returns how many calls it indexed.
func (db *DB) IndexCallers(ctx context.Context, pseudonym func(customerID, caller string) (string, error)) (int, error) {
	if db.pg != nil {
		return db.pgIndexCallers(ctx, pseudonym)
	}
	var done bool
	type pending struct{ id, customer, caller string }
	var todo []pending
	err := db.View(func(tx *Tx) error {
		done = tx.tx.Bucket(bucketMeta).Get(keyCallersIndexed) != nil
		if done {
			return nil
		}
		return tx.tx.Bucket(bucketCalls).ForEach(func(k, v []byte) error {
			var c struct {
				CustomerID string `json:"customer_id"`
				Caller     string `json:"caller"`
				Pseudonym  string `json:"caller_pseudonym"`
			}
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode call %q: %w", k, err)
			}
			if c.Pseudonym == "" && c.Caller != "" {
				todo = append(todo, pending{string(k), c.CustomerID, c.Caller})
			}
			return nil
		})
	})
	if err != nil || done {
		return 0, err
	}
	n := 0
	for chunk := range slices.Chunk(todo, 1000) {
		ps := make([]string, len(chunk))
		for i, p := range chunk {
			if ps[i], err = pseudonym(p.customer, p.caller); err != nil {
				return n, fmt.Errorf("index callers: %w", err)
			}
		}
		err := db.Write(ctx, func(tx *Tx) error {
			for i, p := range chunk {
				if err := tx.indexCaller(p.id, ps[i]); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("index callers: %w", err)
		}
		n += len(chunk)
	}
	err = db.Write(ctx, func(tx *Tx) error { return tx.tx.Bucket(bucketMeta).Put(keyCallersIndexed, []byte{1}) })
	return n, err
}
