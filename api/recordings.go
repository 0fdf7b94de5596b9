package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// RecordingReader reads recording metadata; *store.DB is one.
type RecordingReader interface {
	// Recording reads one recording; an error wrapping store.ErrNotFound if there is none.
	Recording(id string) (store.Recording, error)
}

// WithRecordings serves the recordings under dir, as r describes them, on the admin API,
// decrypting them with the customers' keys. Without it, /v1/recordings answers 503.
func WithRecordings(r RecordingReader, dir string, keys *keyring.Keyring) Option {
	return func(a *API) { a.recordings, a.recordingsDir, a.keys = r, dir, keys }
}

// WithRecordingObjects serves the recordings that are no longer on this node's disk from
// the object store o (uploaded, or made on another node).
func WithRecordingObjects(o *recordings.Objects) Option {
	return func(a *API) { a.objects = o }
}

// openRecording opens the plain WAV of a recording, from the local file or else its object,
// checking that it is the one its record names. A recording that is gone, or whose key was
// destroyed, answers 410.
func (a *API) openRecording(r *http.Request, rec store.Recording) (*recordings.Reader, error) {
	files := recordings.Files{Dir: a.recordingsDir, Keys: a.keys, Objects: a.objects}
	rd, err := files.Open(r.Context(), rec)
	switch {
	case errors.Is(err, recordings.ErrInvalidID):
		a.log.Error("recording path leaves the recordings directory", "recording", rec.ID)
		return nil, errStatus(http.StatusNotFound, "", "unknown recording")
	case errors.Is(err, recordings.ErrGone):
		return nil, errStatus(http.StatusGone, "", files.WhyGone(rec))
	case errors.Is(err, recordings.ErrUnavailable):
		a.log.Error("read a recording from the object store", "recording", rec.ID, "err", err)
		return nil, errStatus(http.StatusServiceUnavailable, "", "the object store holding the recording is unavailable; try again later")
	case errors.Is(err, recordings.ErrCorrupt):
		return nil, errors.New("recording " + rec.ID + ": the file belongs to another call or is damaged")
	case err != nil:
		return nil, err
	}
	return rd, nil
}

// getRecording streams a recording's plain WAV, decrypting it as it goes. Range requests
// are served (browsers seek in audio this way), from the object store too: a Range reads
// only the chunks it covers; the ETag is the plain WAV's sha256 from the record.
func (a *API) getRecording(w http.ResponseWriter, r *http.Request) error {
	if a.recordings == nil {
		return errStatus(http.StatusServiceUnavailable, "", "recordings are not available")
	}
	id := r.PathValue("id")
	if len(id) > 64 || strings.ContainsAny(id, `/\.`) {
		return errStatus(http.StatusNotFound, "", "unknown recording")
	}
	rec, err := a.recordings.Recording(id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !who(r).sees(rec.CustomerID) {
		return errStatus(http.StatusNotFound, "", "unknown recording")
	}
	if err != nil {
		return err
	}
	rd, err := a.openRecording(r, rec)
	if err != nil {
		return err
	}
	defer rd.Close()
	if err := a.audit(r, "recording.read", rec.CustomerID, rec.ID, rec.CallID); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "audio/wav")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `inline; filename="`+rec.CallID+`.wav"`)
	if rec.SHA256 != "" {
		h.Set("ETag", `"`+rec.SHA256+`"`)
	}
	http.ServeContent(w, r, "", rd.ModTime(), rd)
	return nil
}
