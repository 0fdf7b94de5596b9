package api

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/trackline/trackline/recordings"
)

// The retention archives of export_then_delete, while their handover window lasts
// (lifecycle.archive_handover): the operator lists them, downloads them for the former
// customer and may delete one at once when it is handed over; the retention sweeper deletes
// them when the window is over. Operator only; each download and deletion is in the audit
// log, committed before the answer.

// archiveView is an archive as the admin API shows it.
type archiveView struct {
	recordings.ArchiveFile
	Expires time.Time `json:"expires"` // the end of its handover window: the sweeper deletes it after
}

func (a *API) archivesAvailable() error {
	if a.cfg.ArchiveDir == "" {
		return errStatus(http.StatusServiceUnavailable, "", "retention archives are not available")
	}
	return nil
}

func (a *API) listArchives(w http.ResponseWriter, r *http.Request) error {
	if err := a.archivesAvailable(); err != nil {
		return err
	}
	files, err := recordings.Archives(a.cfg.ArchiveDir)
	if err != nil {
		return err
	}
	out := make([]archiveView, 0, len(files))
	for _, f := range files {
		out = append(out, archiveView{f, f.Created.Add(a.cfg.ArchiveHandover)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"archives": out})
	return nil
}

// openArchive opens the archive the path names, if its window still lasts.
func (a *API) openArchive(r *http.Request) (*os.File, recordings.ArchiveFile, error) {
	if err := a.archivesAvailable(); err != nil {
		return nil, recordings.ArchiveFile{}, err
	}
	f, info, err := recordings.OpenArchive(a.cfg.ArchiveDir, r.PathValue("name"))
	switch {
	case errors.Is(err, recordings.ErrInvalidID), errors.Is(err, os.ErrNotExist):
		return nil, info, errStatus(http.StatusNotFound, "name", "no such archive")
	case err != nil:
		return nil, info, err
	}
	if !a.now().Before(info.Created.Add(a.cfg.ArchiveHandover)) {
		f.Close()
		return nil, info, errStatus(http.StatusGone, "name", "the archive's handover window is over; the retention sweeper deletes it")
	}
	return f, info, nil
}

func (a *API) downloadArchive(w http.ResponseWriter, r *http.Request) error {
	f, info, err := a.openArchive(r)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := a.auditWrite(r, "archive.download", info.CustomerID, info.Name); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", `attachment; filename="`+info.Name+`"`)
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (a *API) deleteArchive(w http.ResponseWriter, r *http.Request) error {
	if err := a.archivesAvailable(); err != nil {
		return err
	}
	name := r.PathValue("name")
	id, _, ok := recordings.ParseArchiveName(name)
	if !ok {
		return errStatus(http.StatusNotFound, "name", "no such archive")
	}
	if _, err := os.Stat(filepath.Join(a.cfg.ArchiveDir, name)); errors.Is(err, os.ErrNotExist) {
		return errStatus(http.StatusNotFound, "name", "no such archive")
	}
	if err := a.auditWrite(r, "archive.delete", id, name); err != nil {
		return err
	}
	if err := recordings.RemoveArchive(a.cfg.ArchiveDir, name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
