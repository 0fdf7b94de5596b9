package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/trackline/trackline/store"
)

// problem is an RFC 9457 problem detail.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Field  string `json:"field,omitempty"`
	Line   int    `json:"line,omitempty"`
}

// httpError is an error with the HTTP status and field it maps to.
type httpError struct {
	status int
	field  string
	line   int
	detail string
}

func (e *httpError) Error() string { return e.detail }

func errStatus(status int, field, detail string) error {
	return &httpError{status: status, field: field, detail: detail}
}

func writeProblem(w http.ResponseWriter, e *httpError) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(problem{
		Type: "about:blank", Title: http.StatusText(e.status), Status: e.status,
		Detail: e.detail, Field: e.field, Line: e.line,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func retryAfter(w http.ResponseWriter, seconds int) {
	w.Header().Set("Retry-After", strconv.Itoa(seconds))
}

// fieldProblem is a *store.FieldError as a 400 that names its field; other errors as they are.
func fieldProblem(err error) error {
	var fe *store.FieldError
	if errors.As(err, &fe) {
		return errStatus(http.StatusBadRequest, fe.Field, fe.Error())
	}
	return err
}
