package privacy

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// CallerRecording is what is shown of a recording of a caller.
type CallerRecording struct {
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

// CallerData is everything held about a caller at a customer: the admin API's answer and
// an export's caller.json.
type CallerData struct {
	CustomerID string            `json:"customer_id"`
	Calls      []store.Call      `json:"calls"`      // newest first; never nil
	Recordings []CallerRecording `json:"recordings"` // never nil
	// WebhookMessages are the webhook events of the calls, each with its payload as sent
	// and the endpoints it went to (docs/webhooks.md); never nil.
	WebhookMessages []store.SentMessage `json:"webhook_messages"`
	// ExportedAt is set in an export.
	ExportedAt time.Time `json:"exported_at,omitzero"`
}

// ids are the ids of the calls and recordings in d, for the audit log.
func (d *CallerData) ids() []string {
	var ids []string
	for _, c := range d.Calls {
		ids = append(ids, c.ID)
	}
	for _, r := range d.Recordings {
		ids = append(ids, r.ID)
	}
	for _, m := range d.WebhookMessages {
		ids = append(ids, m.ID)
	}
	return ids
}

// collect reads the caller's calls, their recordings' records and their webhook messages.
func (s *Service) collect(ctx context.Context, sub Subject) (CallerData, []store.Recording, error) {
	d := CallerData{CustomerID: sub.customerID, Calls: []store.Call{}, Recordings: []CallerRecording{}, WebhookMessages: []store.SentMessage{}}
	if sub.pseudonym == "" {
		return d, nil, nil
	}
	calls, err := s.db.CallsOfCaller(sub.customerID, sub.pseudonym)
	if err != nil {
		return d, nil, err
	}
	var recs []store.Recording
	for _, c := range calls {
		d.Calls = append(d.Calls, c)
		if c.RecordingID == "" {
			continue
		}
		rec, err := s.db.Recording(c.RecordingID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return d, nil, err
		}
		recs = append(recs, rec)
		d.Recordings = append(d.Recordings, CallerRecording{ID: rec.ID, CallID: rec.CallID,
			DurationSeconds: rec.Duration.Seconds(), Size: rec.Size, SHA256: rec.SHA256, Created: rec.Created})
	}
	if len(calls) > 0 {
		ids := make([]string, len(calls))
		for i, c := range calls {
			ids[i] = c.ID
		}
		if d.WebhookMessages, err = s.db.WebhookMessagesOf(ctx, sub.customerID, ids); err != nil {
			return d, nil, err
		}
	}
	return d, recs, nil
}

// audit queues the audit entry of a read for the next commit.
func (s *Service) audit(ctx context.Context, actor, action, customerID string, ids ...string) error {
	return s.db.Audit(ctx, store.AuditEntry{Time: s.now(), Actor: actor, Action: action, CustomerID: customerID, IDs: ids})
}

// Lookup reads everything held about the caller (empty lists for a number without calls),
// audited as caller.read by actor with the ids of the calls and recordings.
func (s *Service) Lookup(ctx context.Context, sub Subject, actor string) (CallerData, error) {
	d, _, err := s.collect(ctx, sub)
	if err != nil {
		return CallerData{}, err
	}
	if err := s.audit(ctx, actor, "caller.read", sub.customerID, d.ids()...); err != nil {
		return CallerData{}, err
	}
	return d, nil
}

// CallerExport is a caller's export archive, ready to be written: every recording in it is
// open, so that an error found before the first byte is written can still be answered as
// one. Close it.
type CallerExport struct {
	data    CallerData
	readers []*recordings.Reader // per data.Recordings; nil where Missing is set
}

// ExportCaller prepares the export archive of the caller (see CallerExport.WriteTo),
// audited as caller.export by actor. Every recording is opened first: one whose file is
// gone or whose key was destroyed is listed with Missing set and left out of the archive;
// any other failure fails the export (a record whose path leaves the recordings directory
// with ErrUnknownRecording, logged).
func (s *Service) ExportCaller(ctx context.Context, sub Subject, actor string) (*CallerExport, error) {
	d, recs, err := s.collect(ctx, sub)
	if err != nil {
		return nil, err
	}
	e := &CallerExport{data: d, readers: make([]*recordings.Reader, len(recs))}
	for i, rec := range recs {
		rd, err := s.files().Open(ctx, rec)
		switch {
		case errors.Is(err, recordings.ErrGone):
			e.data.Recordings[i].Missing = s.files().WhyGone(rec)
			continue
		case errors.Is(err, recordings.ErrInvalidID):
			e.Close()
			s.log.Error("recording path leaves the recordings directory", "recording", rec.ID)
			return nil, ErrUnknownRecording
		case err != nil:
			e.Close()
			return nil, err
		}
		e.readers[i] = rd
		e.data.Recordings[i].File = "recordings/" + rec.CallID + ".wav"
	}
	e.data.ExportedAt = s.now().UTC()
	if err := s.audit(ctx, actor, "caller.export", sub.customerID, e.data.ids()...); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Data is the archive's caller.json: everything held about the caller, with the time of the
// export and per recording its file in the archive or why it is missing.
func (e *CallerExport) Data() CallerData { return e.data }

// Filename is the archive's file name for a download: caller-<customer id>.zip (never the
// number).
func (e *CallerExport) Filename() string { return "caller-" + e.data.CustomerID + ".zip" }

// WriteTo writes the zip archive to w: caller.json (CallerData, indented) and each
// recording as a plain WAV, recordings/<call id>.wav. A recording that fails to read
// midway fails it with a short archive written: cut the connection rather than let it be
// taken for a whole one. Call it once.
func (e *CallerExport) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	err := e.write(cw)
	return cw.n, err
}

func (e *CallerExport) write(w io.Writer) error {
	d := &e.data
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
	for i, rd := range e.readers {
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

// Close closes the recordings; it may be called more than once.
func (e *CallerExport) Close() error {
	var errs []error
	for i, rd := range e.readers {
		if rd != nil {
			errs = append(errs, rd.Close())
			e.readers[i] = nil
		}
	}
	return errors.Join(errs...)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Erased is what a caller's erasure removed.
type Erased struct {
	CustomerID string   `json:"customer_id"`
	Calls      []string `json:"erased_calls"`      // never nil
	Recordings []string `json:"erased_recordings"` // never nil
	// WebhookMessages are the calls' webhook messages, deleted with their deliveries.
	WebhookMessages []string `json:"erased_webhook_messages"` // never nil
}

// EraseCaller erases everything held about the caller at their customer, for good: the
// recording files are shredded and removed first, then the calls with their recordings'
// records go in one transaction with the caller.erase audit entry (actor, the ids), then the
// store file is compacted so that no freed page keeps them (when anything was deleted since
// the last compaction: the store marks it, crash-proof). It runs whole again when called
// again: a crash or an error midway leaves nothing that a second call, or the next start,
// does not remove. A call from the caller that is still in progress gives
// ErrCallInProgress and erases nothing. A failed compaction gives ErrNotCompacted with what
// was erased.
func (s *Service) EraseCaller(ctx context.Context, sub Subject, actor string) (Erased, error) {
	d, recs, err := s.collect(ctx, sub)
	if err != nil {
		return Erased{}, err
	}
	for _, c := range d.Calls {
		if c.End.IsZero() {
			return Erased{}, ErrCallInProgress
		}
	}
	for _, rec := range recs {
		if err := s.files().Remove(ctx, rec.Path); err != nil {
			return Erased{}, err
		}
	}
	for _, c := range d.Calls {
		if err := s.files().RemoveCall(ctx, c.CustomerID, c.ID, c.Start); err != nil {
			return Erased{}, err
		}
	}
	e := store.AuditEntry{Time: s.now(), Actor: actor, Action: "caller.erase", CustomerID: sub.customerID, IDs: d.ids()}
	err = s.db.Write(ctx, func(tx *store.Tx) error {
		for _, c := range d.Calls {
			if _, _, err := tx.DeleteCall(c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return tx.AppendAudit(&e)
	})
	if err != nil {
		return Erased{}, err
	}
	erased := Erased{CustomerID: sub.customerID, Calls: []string{}, Recordings: []string{}, WebhookMessages: []string{}}
	for _, m := range d.WebhookMessages {
		erased.WebhookMessages = append(erased.WebhookMessages, m.ID)
	}
	for _, c := range d.Calls {
		erased.Calls = append(erased.Calls, c.ID)
	}
	for _, r := range recs {
		erased.Recordings = append(erased.Recordings, r.ID)
	}
	// Nothing erased and nothing owed from an erasure cut short: no compaction (which reads
	// and writes the whole file) for a number that has nothing here.
	due, err := s.db.CompactionDue()
	if err != nil {
		return erased, err
	}
	if due {
		st, err := s.db.Compact(context.WithoutCancel(ctx))
		if err != nil {
			return erased, errors.Join(fmt.Errorf("%w: erase again", ErrNotCompacted), err)
		}
		s.log.Info("caller erased", "customer", sub.customerID, "calls", len(d.Calls), "recordings", len(recs),
			"store_bytes_before", st.Before, "store_bytes_after", st.After, "compact_ms", st.Copy.Milliseconds(),
			"write_pause_ms", st.Pause.Milliseconds())
	}
	return erased, nil
}
