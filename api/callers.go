package api

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Data subjects: a caller can ask a customer what is held about them, for a copy, or to be
// erased. The caller is named by their number, in any form e164.Normalize reads; it is
// found through its pseudonym at the customer (a keyed hash, package keyring), so the
// lookup works the same for customers with pseudonymous callers. The number itself is never
// logged or written to the audit log: entries name the calls and recordings concerned.

// ErasureStore is what the data-subject endpoints and customer erasure need of the store;
// *store.DB is one.
type ErasureStore interface {
	// CallsOfCaller lists the calls of the caller with this pseudonym, newest first.
	CallsOfCaller(customerID, pseudonym string) ([]store.Call, error)
	// HasActiveCalls tells whether a customer has calls in progress.
	HasActiveCalls(customerID string) (bool, error)
	// Write runs fn in a durable transaction.
	Write(ctx context.Context, fn func(*store.Tx) error) error
	// Compact rewrites the store file without what was deleted.
	Compact(ctx context.Context) (store.CompactStats, error)
	// CompactionDue tells whether deleted records may still be in the file's freed pages.
	CompactionDue() (bool, error)
}

// WithErasure enables the data-subject endpoints (/v1/callers) and customer erasure on the
// store db. They need the keys of WithRecordings too; without either, they answer 503.
func WithErasure(db ErasureStore) Option { return func(a *API) { a.callers = db } }

var errUnavailable = errStatus(http.StatusServiceUnavailable, "", "erasure and caller data are not available")

// subject is the caller a data-subject request names, at one customer.
type subject struct {
	customerID string
	number     string // E.164; never logged or audited
	pseudonym  string // "" when the customer has no key: it has no calls with a pseudonym
}

// resolveCaller reads the caller and the customer of a data-subject request. A customer
// token acts for its own customer (a customer parameter naming another answers 404); the
// operator names the customer with the customer parameter.
func (a *API) resolveCaller(r *http.Request) (subject, error) {
	if a.callers == nil || a.keys == nil {
		return subject{}, errUnavailable
	}
	p := who(r)
	customer := r.URL.Query().Get("customer")
	switch {
	case len(customer) > 64:
		return subject{}, errStatus(http.StatusBadRequest, "customer", "customer: too long")
	case p.customer != "" && customer != "" && customer != p.customer:
		return subject{}, errStatus(http.StatusNotFound, "customer", "unknown customer")
	case p.customer != "":
		customer = p.customer
	case customer == "":
		return subject{}, errStatus(http.StatusBadRequest, "customer", "customer: required with the operator token")
	}
	if _, err := a.pool.Customer(customer); err != nil {
		return subject{}, errStatus(http.StatusNotFound, "customer", "unknown customer")
	}
	number, err := e164.Normalize(r.PathValue("number"), a.cfg.CountryCode)
	if err != nil {
		return subject{}, errStatus(http.StatusBadRequest, "number",
			"number: not a phone number; give it in E.164 (+31612345678) or national (0612345678) form")
	}
	s := subject{customerID: customer, number: number}
	key, err := a.keys.Lookup(customer)
	switch {
	case err == nil:
		s.pseudonym = key.Pseudonym(number)
	case !errors.Is(err, keyring.ErrNoKey):
		return subject{}, err
	}
	return s, nil
}

// callerRecording is what the data-subject endpoints show of a recording.
type callerRecording struct {
	ID              string    `json:"id"`
	CallID          string    `json:"call_id"`
	DurationSeconds float64   `json:"duration_seconds"`
	Size            int64     `json:"size"`
	SHA256          string    `json:"sha256"`
	Created         time.Time `json:"created"`
	// File is the recording's name in an export archive; Missing says why it is not there.
	File    string `json:"file,omitempty"`
	Missing string `json:"missing,omitempty"`
}

// callerData is everything held about a caller at a customer.
type callerData struct {
	CustomerID string            `json:"customer_id"`
	Calls      []store.Call      `json:"calls"`
	Recordings []callerRecording `json:"recordings"`
	// ExportedAt is set in an export.
	ExportedAt time.Time `json:"exported_at,omitzero"`
}

// collect reads the caller's calls and their recordings' records.
func (a *API) collect(s subject) (callerData, []store.Recording, error) {
	d := callerData{CustomerID: s.customerID, Calls: []store.Call{}, Recordings: []callerRecording{}}
	if s.pseudonym == "" {
		return d, nil, nil
	}
	calls, err := a.callers.CallsOfCaller(s.customerID, s.pseudonym)
	if err != nil {
		return d, nil, err
	}
	var recs []store.Recording
	for _, c := range calls {
		d.Calls = append(d.Calls, c)
		if c.RecordingID == "" || a.recordings == nil {
			continue
		}
		rec, err := a.recordings.Recording(c.RecordingID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return d, nil, err
		}
		recs = append(recs, rec)
		d.Recordings = append(d.Recordings, callerRecording{ID: rec.ID, CallID: rec.CallID,
			DurationSeconds: rec.Duration.Seconds(), Size: rec.Size, SHA256: rec.SHA256, Created: rec.Created})
	}
	return d, recs, nil
}

// ids are the ids of the calls and recordings in d, for the audit log.
func (d *callerData) ids() []string {
	var ids []string
	for _, c := range d.Calls {
		ids = append(ids, c.ID)
	}
	for _, r := range d.Recordings {
		ids = append(ids, r.ID)
	}
	return ids
}

func (a *API) getCaller(w http.ResponseWriter, r *http.Request) error {
	s, err := a.resolveCaller(r)
	if err != nil {
		return err
	}
	d, _, err := a.collect(s)
	if err != nil {
		return err
	}
	if err := a.audit(r, "caller.read", s.customerID, d.ids()...); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// exportCaller streams a zip archive: caller.json (callerData) and each recording as a plain
// WAV, recordings/<call id>.wav. Every recording is opened before the first byte is sent;
// one that then fails to read aborts the response, so a broken archive is never taken for a
// whole one.
func (a *API) exportCaller(w http.ResponseWriter, r *http.Request) error {
	s, err := a.resolveCaller(r)
	if err != nil {
		return err
	}
	d, recs, err := a.collect(s)
	if err != nil {
		return err
	}
	readers := make([]*recordings.Reader, len(recs))
	defer func() {
		for _, rd := range readers {
			if rd != nil {
				rd.Close()
			}
		}
	}()
	for i, rec := range recs {
		rd, err := a.openRecording(rec)
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusGone {
			d.Recordings[i].Missing = he.detail
			continue
		}
		if err != nil {
			return err
		}
		readers[i] = rd
		d.Recordings[i].File = "recordings/" + rec.CallID + ".wav"
	}
	d.ExportedAt = a.now().UTC()
	if err := a.audit(r, "caller.export", s.customerID, d.ids()...); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `attachment; filename="caller-`+s.customerID+`.zip"`)
	w.WriteHeader(http.StatusOK)
	if err := writeCallerArchive(w, &d, readers); err != nil {
		a.log.Error("caller export broken off", "customer", s.customerID, "err", err)
		panic(http.ErrAbortHandler) // the client sees a cut connection, not a short archive
	}
	return nil
}

// writeCallerArchive writes the zip archive of a caller export to w.
func writeCallerArchive(w io.Writer, d *callerData, readers []*recordings.Reader) error {
	zw := zip.NewWriter(w)
	f, err := zw.CreateHeader(&zip.FileHeader{Name: "caller.json", Method: zip.Deflate, Modified: d.ExportedAt})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	for i, rd := range readers {
		if rd == nil {
			continue
		}
		f, err := zw.CreateHeader(&zip.FileHeader{Name: d.Recordings[i].File, Method: zip.Store, Modified: rd.ModTime()})
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, rd); err != nil {
			return err
		}
	}
	return zw.Close()
}

// eraseCaller erases everything held about a caller at a customer, for good: the recording
// files are shredded and removed first, then the calls with their recordings' records go
// in one transaction with the audit entry, then the store file is compacted so that no
// freed page keeps them (when anything was deleted since the last compaction: the store
// marks it, crash-proof). It runs whole again when called again: a crash or an error midway
// leaves nothing that a second call, or the next start, does not remove. A call from the
// caller that is still in progress answers 409: erase once it has ended.
func (a *API) eraseCaller(w http.ResponseWriter, r *http.Request) error {
	s, err := a.resolveCaller(r)
	if err != nil {
		return err
	}
	d, recs, err := a.collect(s)
	if err != nil {
		return err
	}
	for _, c := range d.Calls {
		if c.End.IsZero() {
			return errStatus(http.StatusConflict, "", "a call from this number is in progress; erase it once the call has ended")
		}
	}
	for _, rec := range recs {
		if err := recordings.Remove(a.recordingsDir, rec.Path); err != nil {
			return err
		}
	}
	for _, c := range d.Calls {
		if err := recordings.RemoveCall(a.recordingsDir, c.CustomerID, c.ID, c.Start); err != nil {
			return err
		}
	}
	e := store.AuditEntry{Time: a.now(), Actor: who(r).actor(), Action: "caller.erase", CustomerID: s.customerID, IDs: d.ids()}
	err = a.callers.Write(r.Context(), func(tx *store.Tx) error {
		for _, c := range d.Calls {
			if _, _, err := tx.DeleteCall(c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return tx.AppendAudit(&e)
	})
	if err != nil {
		return err
	}
	// Nothing erased and nothing owed from an erasure cut short: no compaction (which reads
	// and writes the whole file) for a number that has nothing here.
	due, err := a.callers.CompactionDue()
	if err != nil {
		return err
	}
	if due {
		st, err := a.callers.Compact(context.WithoutCancel(r.Context()))
		if err != nil {
			return errors.Join(errors.New("erased, but the store was not compacted: erase again"), err)
		}
		a.log.Info("caller erased", "customer", s.customerID, "calls", len(d.Calls), "recordings", len(recs),
			"store_bytes_before", st.Before, "store_bytes_after", st.After, "compact_ms", st.Copy.Milliseconds(),
			"write_pause_ms", st.Pause.Milliseconds())
	}
	writeJSON(w, http.StatusOK, struct {
		CustomerID string   `json:"customer_id"`
		Calls      []string `json:"erased_calls"`
		Recordings []string `json:"erased_recordings"`
	}{s.customerID, idsOf(d.Calls), recIDs(recs)})
	return nil
}

func idsOf(calls []store.Call) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.ID)
	}
	return out
}

func recIDs(recs []store.Recording) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

// eraseCustomer erases a customer for good, in an order that a retry completes after a
// crash or an error: its key is destroyed first, so that its recordings, wherever copies
// are (backups), can never be decrypted and its callers' pseudonyms never linked again; then
// its recording files and every record it has are deleted (pool.Purge: its numbers are held
// in quarantine after a contract, freed after a lapsed trial), the audit entry is committed
// (ids and counts), and the store file is compacted. The customer must be out of service
// (its contract or trial ended) and have no call in progress; otherwise 409.
func (a *API) eraseCustomer(w http.ResponseWriter, r *http.Request) error {
	if a.callers == nil || a.keys == nil {
		return errUnavailable
	}
	id := r.PathValue("id")
	c, err := a.pool.Customer(id)
	if err != nil {
		return err
	}
	now := a.now()
	if pool.InService(&c, now) {
		return errStatus(http.StatusConflict, "", "the customer is in service: end its contract (or trial) first")
	}
	if busy, err := a.callers.HasActiveCalls(id); err != nil {
		return err
	} else if busy {
		return errStatus(http.StatusConflict, "", "the customer has calls in progress; erase it once they have ended")
	}
	if err := a.keys.Destroy(id); err != nil {
		return err
	}
	if err := recordings.RemoveCustomer(a.recordingsDir, id); err != nil {
		return err
	}
	res, err := a.pool.Purge(r.Context(), id, !pool.TrialLapsed(&c, now))
	if errors.Is(err, store.ErrActiveCalls) {
		return errStatus(http.StatusConflict, "", "the customer has calls in progress; erase it once they have ended")
	}
	if err != nil {
		return err
	}
	e := store.AuditEntry{Time: now, Actor: who(r).actor(), Action: "customer.erase", CustomerID: id, Counts: res.Counts()}
	if err := a.callers.Write(r.Context(), func(tx *store.Tx) error { return tx.AppendAudit(&e) }); err != nil {
		return err
	}
	st, err := a.callers.Compact(context.WithoutCancel(r.Context()))
	if err != nil {
		return errors.Join(errors.New("erased, but the store was not compacted"), err)
	}
	a.log.Info("customer erased", "customer", id, "store_bytes_before", st.Before, "store_bytes_after", st.After,
		"compact_ms", st.Copy.Milliseconds(), "write_pause_ms", st.Pause.Milliseconds())
	writeJSON(w, http.StatusOK, struct {
		CustomerID string         `json:"customer_id"`
		Erased     map[string]int `json:"erased"`
	}{id, res.Counts()})
	return nil
}
