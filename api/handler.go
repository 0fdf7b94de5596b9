package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/pool"
)

// handlerFunc is an HTTP handler that returns its error; route() maps it to a problem.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route registers h on mux with metrics and the one place where errors are logged and mapped.
func (a *API) route(mux *http.ServeMux, pattern string, h handlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if err := h(rec, r); err != nil {
			a.fail(rec, r, pattern, err)
		}
		a.reqDuration.WithLabelValues(pattern, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
	})
}

// fail maps an error to a problem response. Only server-side failures are logged, with the
// route and never the client's address.
func (a *API) fail(w http.ResponseWriter, r *http.Request, route string, err error) {
	var he *httpError
	var inv *pool.InvalidError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &mbe):
		he = &httpError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("body larger than %d bytes", mbe.Limit)}
	case errors.As(err, &inv):
		he = &httpError{status: http.StatusBadRequest, field: inv.Field, line: inv.Line, detail: inv.Error()}
	case errors.Is(err, pool.ErrUnknownCustomer):
		he = &httpError{status: http.StatusNotFound, detail: "unknown customer"}
	case errors.Is(err, pool.ErrUnknownSession):
		he = &httpError{status: http.StatusNotFound, field: "session_id", detail: "unknown session"}
	case errors.Is(err, pool.ErrUnknownNumber):
		he = &httpError{status: http.StatusNotFound, field: "number", detail: "not a tracked number"}
	case errors.Is(err, pool.ErrCustomerEnded):
		he = &httpError{status: http.StatusGone, detail: "this customer no longer tracks calls"}
	case errors.Is(err, pool.ErrConflict):
		he = &httpError{status: http.StatusConflict, detail: err.Error()}
	case errors.Is(err, pool.ErrNoNumbers):
		he = &httpError{status: http.StatusServiceUnavailable, detail: "no pool numbers configured"}
	default:
		a.log.Error("request failed", "route", route, "method", r.Method, "err", err)
		he = &httpError{status: http.StatusInternalServerError, detail: "internal error"}
	}
	writeProblem(w, he)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (deadlines, flushes).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func newRequestDuration() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "trackline_http_request_duration_seconds",
		Help:    "HTTP request durations by route and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "code"})
}

// decodeBody reads a JSON body of at most limit bytes into v, refusing unknown fields,
// trailing data and content types other than JSON (or text/plain, which browsers may send
// without a preflight).
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, allowText bool) error {
	if err := checkContentType(r, allowText); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

// checkContentType accepts a request without a Content-Type, with JSON, or (allowText) with
// text/plain.
func checkContentType(r *http.Request, allowText bool) error {
	ct := r.Header.Get("Content-Type")
	switch ct {
	case "", "application/json", "application/json; charset=utf-8":
		return nil
	case "text/plain;charset=UTF-8", "text/plain":
		if allowText { // as browsers send it
			return nil
		}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !(mt == "application/json" || allowText && mt == "text/plain") {
		return errStatus(http.StatusUnsupportedMediaType, "", "Content-Type must be application/json")
	}
	return nil
}

// decodeJSON decodes body into v as decodeBody does.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if dec.More() {
		return errStatus(http.StatusBadRequest, "", "trailing data after the JSON object")
	}
	return nil
}

func jsonProblem(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return errStatus(http.StatusBadRequest, te.Field, fmt.Sprintf("%s: must be %s", te.Field, te.Type))
	case errors.As(err, &se):
		return errStatus(http.StatusBadRequest, "", fmt.Sprintf("malformed JSON at byte %d", se.Offset))
	case errors.Is(err, io.EOF):
		return errStatus(http.StatusBadRequest, "", "empty body")
	}
	// encoding/json reports unknown fields as `json: unknown field "x"`.
	if f, ok := unknownField(err.Error()); ok {
		return errStatus(http.StatusBadRequest, f, fmt.Sprintf("unknown field %q", f))
	}
	return errStatus(http.StatusBadRequest, "", "malformed JSON")
}

func unknownField(msg string) (string, bool) {
	const p = `json: unknown field "`
	if len(msg) > len(p) && msg[:len(p)] == p && msg[len(msg)-1] == '"' {
		return msg[len(p) : len(msg)-1], true
	}
	return "", false
}
