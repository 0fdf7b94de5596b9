package api

import (
	"errors"
	"net/http"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/privacy"
)

// Data subjects: a caller can ask a customer what is held about them, for a copy, or to be
// erased; the operator erases a customer. What is done is package privacy's, which the web
// app shares; the handlers here read the request, name the actor, and map privacy's errors
// to problems. The caller is named by their number in the path, in any form e164.Normalize
// reads; the number is never logged, written to the audit log or repeated in a problem.

// WithPrivacy enables the data-subject endpoints (/v1/callers) and customer erasure,
// served by s. Without it, they answer 503.
func WithPrivacy(s *privacy.Service) Option { return func(a *API) { a.privacy = s } }

var errUnavailable = errStatus(http.StatusServiceUnavailable, "", "erasure and caller data are not available")

// resolveCaller reads the caller and the customer of a data-subject request. A customer
// token acts for its own customer (a customer parameter naming another answers 404); the
// operator names the customer with the customer parameter.
func (a *API) resolveCaller(r *http.Request) (privacy.Subject, error) {
	if a.privacy == nil {
		return privacy.Subject{}, errUnavailable
	}
	p := who(r)
	customer := r.URL.Query().Get("customer")
	switch {
	case len(customer) > 64:
		return privacy.Subject{}, errStatus(http.StatusBadRequest, "customer", "customer: too long")
	case p.customer != "" && customer != "" && customer != p.customer:
		return privacy.Subject{}, errStatus(http.StatusNotFound, "customer", "unknown customer")
	case p.customer != "":
		customer = p.customer
	case customer == "":
		return privacy.Subject{}, errStatus(http.StatusBadRequest, "customer", "customer: required with the operator token")
	}
	s, err := a.privacy.Subject(customer, r.PathValue("number"), a.cfg.CountryCode)
	switch {
	case errors.Is(err, pool.ErrUnknownCustomer):
		return privacy.Subject{}, errStatus(http.StatusNotFound, "customer", "unknown customer")
	case errors.Is(err, privacy.ErrBadNumber):
		return privacy.Subject{}, errStatus(http.StatusBadRequest, "number",
			"number: not a phone number; give it in E.164 (+31612345678) or national (0612345678) form")
	}
	return s, err
}

// privacyProblem maps the errors of package privacy that are the client's to problems;
// others pass through to fail.
func privacyProblem(err error) error {
	switch {
	case errors.Is(err, privacy.ErrCallInProgress):
		return errStatus(http.StatusConflict, "", "a call from this number is in progress; erase it once the call has ended")
	case errors.Is(err, privacy.ErrInService):
		return errStatus(http.StatusConflict, "", "the customer is in service: end its contract (or trial) first")
	case errors.Is(err, privacy.ErrActiveCalls):
		return errStatus(http.StatusConflict, "", "the customer has calls in progress; erase it once they have ended")
	case errors.Is(err, privacy.ErrUnknownRecording):
		return errStatus(http.StatusNotFound, "", "unknown recording")
	}
	return err
}

func (a *API) getCaller(w http.ResponseWriter, r *http.Request) error {
	s, err := a.resolveCaller(r)
	if err != nil {
		return err
	}
	d, err := a.privacy.Lookup(r.Context(), s, who(r).actor())
	if err != nil {
		return privacyProblem(err)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// exportCaller streams a caller's zip archive (privacy.CallerExport). Every recording is
// opened before the first byte is sent; one that then fails to read aborts the response, so
// a broken archive is never taken for a whole one.
func (a *API) exportCaller(w http.ResponseWriter, r *http.Request) error {
	s, err := a.resolveCaller(r)
	if err != nil {
		return err
	}
	exp, err := a.privacy.ExportCaller(r.Context(), s, who(r).actor())
	if err != nil {
		return privacyProblem(err)
	}
	defer exp.Close()
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `attachment; filename="`+exp.Filename()+`"`)
	w.WriteHeader(http.StatusOK)
	if _, err := exp.WriteTo(w); err != nil {
		a.log.Error("caller export broken off", "customer", s.CustomerID(), "err", err)
		panic(http.ErrAbortHandler) // the client sees a cut connection, not a short archive
	}
	return nil
}

// eraseCaller erases a caller at a customer for good (privacy.Service.EraseCaller): 409
// while a call from the number is in progress.
func (a *API) eraseCaller(w http.ResponseWriter, r *http.Request) error {
	s, err := a.resolveCaller(r)
	if err != nil {
		return err
	}
	erased, err := a.privacy.EraseCaller(r.Context(), s, who(r).actor())
	if err != nil {
		return privacyProblem(err)
	}
	writeJSON(w, http.StatusOK, erased)
	return nil
}

// eraseCustomer erases a customer for good (privacy.Service.EraseCustomer): 409 while it is
// in service or has calls in progress.
func (a *API) eraseCustomer(w http.ResponseWriter, r *http.Request) error {
	if a.privacy == nil {
		return errUnavailable
	}
	id := r.PathValue("id")
	counts, err := a.privacy.EraseCustomer(r.Context(), id, who(r).actor())
	if err != nil {
		return privacyProblem(err)
	}
	writeJSON(w, http.StatusOK, struct {
		CustomerID string         `json:"customer_id"`
		Erased     map[string]int `json:"erased"`
	}{id, counts})
	return nil
}
