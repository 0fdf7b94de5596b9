package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/store"
)

// CallReader reads call records; *store.DB is one.
type CallReader interface {
	// Calls lists the calls f selects, newest first, and the cursor of the next page.
	Calls(f store.CallFilter) (calls []store.Call, next string, err error)
	// Call reads one call; an error wrapping store.ErrNotFound if there is none.
	Call(id string) (store.Call, error)
}

// WithCalls serves the call records of r on the admin API. Without it, /v1/calls answers 503.
func WithCalls(r CallReader) Option { return func(a *API) { a.calls = r } }

func (a *API) callsAvailable() error {
	if a.calls == nil {
		return errStatus(http.StatusServiceUnavailable, "", "call records are not available")
	}
	return nil
}

// callFilter reads the query of GET /v1/calls, naming the first parameter that is wrong.
func (a *API) callFilter(r *http.Request) (store.CallFilter, error) {
	q := r.URL.Query()
	f := store.CallFilter{Limit: 100}
	bad := func(field, reason string) (store.CallFilter, error) {
		return store.CallFilter{}, errStatus(http.StatusBadRequest, field, field+": "+reason)
	}
	p := who(r)
	if v := q.Get("customer"); v != "" {
		if len(v) > 64 {
			return bad("customer", "too long")
		}
		if !p.sees(v) {
			return store.CallFilter{}, errStatus(http.StatusNotFound, "customer", "unknown customer")
		}
		if _, err := a.pool.Customer(v); err != nil {
			if errors.Is(err, pool.ErrUnknownCustomer) {
				return store.CallFilter{}, errStatus(http.StatusNotFound, "customer", "unknown customer")
			}
			return store.CallFilter{}, err
		}
		f.CustomerID = v
	}
	if p.customer != "" {
		f.CustomerID = p.customer
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return bad(p.name, "must be an RFC 3339 time")
			}
			*p.dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return bad("to", "must be after from")
	}
	if v := q.Get("channel"); v != "" {
		if len(v) > 100 {
			return bad("channel", "too long")
		}
		f.Channel = v
	}
	if v := q.Get("number"); v != "" {
		if !e164.Valid(v) {
			return bad("number", "must be an E.164 number like +31852087972")
		}
		f.Dialled = v
	}
	if v := q.Get("disposition"); v != "" {
		d, err := store.ParseDisposition(v)
		if err != nil {
			return bad("disposition", "must be answered, busy, no-answer, cancelled, rejected or failed")
		}
		f.Disposition = d
	}
	switch v := q.Get("active"); v {
	case "":
	case "true", "false":
		active := v == "true"
		f.Active = &active
	default:
		return bad("active", "must be true or false")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return bad("limit", "must be 1-1000")
		}
		f.Limit = n
	}
	f.Before = q.Get("cursor")
	if len(f.Before) > 64 {
		return bad("cursor", "malformed")
	}
	return f, nil
}

func (a *API) listCalls(w http.ResponseWriter, r *http.Request) error {
	if err := a.callsAvailable(); err != nil {
		return err
	}
	f, err := a.callFilter(r)
	if err != nil {
		return err
	}
	calls, next, err := a.calls.Calls(f)
	if err != nil {
		return err
	}
	if calls == nil {
		calls = []store.Call{}
	}
	if err := a.auditCalls(r, f.CustomerID, calls); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Calls      []store.Call `json:"calls"`
		NextCursor string       `json:"next_cursor,omitempty"`
	}{calls, next})
	return nil
}

func (a *API) getCall(w http.ResponseWriter, r *http.Request) error {
	if err := a.callsAvailable(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if len(id) > 64 {
		return errStatus(http.StatusNotFound, "", "unknown call")
	}
	c, err := a.calls.Call(id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !who(r).sees(c.CustomerID) {
		return errStatus(http.StatusNotFound, "", "unknown call")
	}
	if err != nil {
		return err
	}
	if err := a.audit(r, "call.read", c.CustomerID, c.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// auditCalls writes one calls.list entry per customer whose calls the page holds, so that
// each customer's log shows who listed its calls; a page without calls writes one entry for
// the customer filtered on (or none).
func (a *API) auditCalls(r *http.Request, customerID string, calls []store.Call) error {
	if len(calls) == 0 {
		return a.audit(r, "calls.list", customerID)
	}
	var order []string
	ids := map[string][]string{}
	for _, c := range calls {
		if _, ok := ids[c.CustomerID]; !ok {
			order = append(order, c.CustomerID)
		}
		ids[c.CustomerID] = append(ids[c.CustomerID], c.ID)
	}
	for _, cu := range order {
		if err := a.audit(r, "calls.list", cu, ids[cu]...); err != nil {
			return err
		}
	}
	return nil
}
