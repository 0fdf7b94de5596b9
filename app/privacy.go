package app

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/trackline/trackline/privacy"
	"github.com/trackline/trackline/recordings"
)

// The privacy page: a customer answers its callers' requests (what is held about me, a
// copy, erase it) and takes its own export. The caller's number travels in POST bodies only,
// never in a URL, so it reaches no log or browser history; package privacy does the work,
// as it does for the admin API, and writes the audit log with the user as actor.

// WithPrivacy serves the privacy page through s, and the customer's export through x.
func WithPrivacy(s *privacy.Service, x *recordings.Exporter) Option {
	return func(a *App) { a.privacy, a.exporter = s, x }
}

func (a *App) privacyPage(w http.ResponseWriter, q *request) error {
	return a.page(w, q, "privacy", map[string]any{})
}

// subject reads the caller a privacy form names.
func (a *App) subject(q *request) (privacy.Subject, error) {
	if a.privacy == nil {
		return privacy.Subject{}, &pageError{status: http.StatusServiceUnavailable, msg: "privacy actions are not available here"}
	}
	number := q.r.PostFormValue("number")
	if len(number) > 32 {
		return privacy.Subject{}, errBadInput(msg(q.lang, "bad_number"))
	}
	sub, err := a.privacy.Subject(q.customer.ID, number, a.cfg.CountryCode)
	if errors.Is(err, privacy.ErrBadNumber) {
		return privacy.Subject{}, errBadInput(msg(q.lang, "bad_number"))
	}
	return sub, err
}

// lookupCaller shows what is held about a caller.
func (a *App) lookupCaller(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin answers callers' requests")
	}
	sub, err := a.subject(q)
	if err != nil {
		return err
	}
	d, err := a.privacy.Lookup(q.r.Context(), sub, q.actor())
	if err != nil {
		return err
	}
	return a.page(w, q, "privacy", map[string]any{"Number": q.r.PostFormValue("number"), "Found": d, "Looked": true})
}

// exportCaller sends the caller's data and recordings as a zip archive.
func (a *App) exportCaller(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin answers callers' requests")
	}
	sub, err := a.subject(q)
	if err != nil {
		return err
	}
	x, err := a.privacy.ExportCaller(q.r.Context(), sub, q.actor())
	if err != nil {
		return err
	}
	defer x.Close()
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `attachment; filename="`+x.Filename()+`"`)
	if _, err := x.WriteTo(w); err != nil {
		panic(http.ErrAbortHandler) // the status is sent: a broken transfer, not a short archive
	}
	return nil
}

// eraseCaller erases everything held about a caller, for good, once the form confirms it.
func (a *App) eraseCaller(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin erases callers")
	}
	if q.r.PostFormValue("confirm") != "on" {
		return errBadInput(msg(q.lang, "erase_confirm"))
	}
	sub, err := a.subject(q)
	if err != nil {
		return err
	}
	res, err := a.privacy.EraseCaller(q.r.Context(), sub, q.actor())
	switch {
	case errors.Is(err, privacy.ErrCallInProgress):
		return &pageError{status: http.StatusConflict, msg: msg(q.lang, "erase_busy")}
	case err != nil:
		return err
	}
	return a.page(w, q, "privacy", map[string]any{"Erased": res,
		"ErasedText": fmt.Sprintf(msg(q.lang, "erased"), len(res.Calls), len(res.Recordings), len(res.WebhookMessages))})
}

// exportCustomer sends the customer's whole export archive (admins only).
func (a *App) exportCustomer(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin exports the customer's data")
	}
	if a.exporter == nil {
		return &pageError{status: http.StatusServiceUnavailable, msg: "exports are not available here"}
	}
	if err := a.auditWrite(q, "export"); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `attachment; filename="trackline-export-`+q.customer.ID+"-"+a.now().UTC().Format("20060102T150405Z")+`.zip"`)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(time.Hour))
	if _, err := a.exporter.Write(q.r.Context(), w, q.customer.ID); err != nil {
		if q.r.Context().Err() == nil {
			a.log.Error("export failed part way", "customer", q.customer.ID, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}
