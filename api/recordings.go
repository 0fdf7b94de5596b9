package api

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/trackline/trackline/store"
)

// RecordingReader reads recording metadata; *store.DB is one.
type RecordingReader interface {
	// Recording reads one recording; an error wrapping store.ErrNotFound if there is none.
	Recording(id string) (store.Recording, error)
}

// WithRecordings serves the recordings under dir, as r describes them, on the admin API.
// Without it, /v1/recordings answers 503.
func WithRecordings(r RecordingReader, dir string) Option {
	return func(a *API) { a.recordings, a.recordingsDir = r, dir }
}

// getRecording streams a recording's WAV file. Range requests are served (browsers seek in
// audio this way); the ETag is the file's sha256 from the record.
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
	rel := filepath.FromSlash(rec.Path)
	if !filepath.IsLocal(rel) {
		a.log.Error("recording path leaves the recordings directory", "recording", rec.ID)
		return errStatus(http.StatusNotFound, "", "unknown recording")
	}
	f, err := os.Open(filepath.Join(a.recordingsDir, rel))
	if errors.Is(err, os.ErrNotExist) {
		return errStatus(http.StatusGone, "", "the recording's file is gone")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
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
	http.ServeContent(w, r, "", st.ModTime(), f)
	return nil
}
