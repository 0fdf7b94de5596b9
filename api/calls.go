package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/store"
)

// CallReader reads call records, and writes the customers' annotations of them; *store.DB
// is one.
type CallReader interface {
	// Calls lists the calls f selects, newest first, and the cursor of the next page.
	Calls(f store.CallFilter) (calls []store.Call, next string, err error)
	// Call reads one call; an error wrapping store.ErrNotFound if there is none.
	Call(id string) (store.Call, error)
	// Write runs fn in a durable transaction: PATCH /v1/calls/{id} changes a call's
	// annotations (store.Tx.AnnotateCall) and writes their audit entry in one.
	Write(ctx context.Context, fn func(*store.Tx) error) error
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

// errUnknownCall answers a call that does not exist or is another customer's: the same
// answer, so that a customer does not learn another's call ids.
func errUnknownCall() error { return errStatus(http.StatusNotFound, "", "unknown call") }

func (a *API) getCall(w http.ResponseWriter, r *http.Request) error {
	if err := a.callsAvailable(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if len(id) > 64 {
		return errUnknownCall()
	}
	c, err := a.calls.Call(id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !who(r).sees(c.CustomerID) {
		return errUnknownCall()
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

// callPatch is the body of PATCH /v1/calls/{id}: the annotations to change. A member that is
// absent (or null) stays as it is; "" , [] and 0 clear theirs.
type callPatch struct {
	LeadStatus *string   `json:"lead_status"`
	Tags       *[]string `json:"tags"`
	Value      *float64  `json:"value"`
	Note       *string   `json:"note"`
}

// maxCallPatch bounds the body of PATCH /v1/calls/{id}: a note of 2,000 characters of up to
// 4 bytes each (6 when escaped), and 20 tags of 32.
const maxCallPatch = 32 << 10

// patchCall changes the annotations of a call (store.Call.CheckAnnotation says what they may
// hold) and answers the call. The change and its audit entry (call.update) commit together.
func (a *API) patchCall(w http.ResponseWriter, r *http.Request) error {
	if err := a.callsAvailable(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if len(id) > 64 {
		return errUnknownCall()
	}
	var p callPatch
	if err := decodeBody(w, r, maxCallPatch, &p, false); err != nil {
		return err
	}
	if p.LeadStatus == nil && p.Tags == nil && p.Value == nil && p.Note == nil {
		return errStatus(http.StatusBadRequest, "", "nothing to change: send lead_status, tags, value or note")
	}
	pr, now := who(r), a.now().UTC()
	var c store.Call
	err := a.calls.Write(r.Context(), func(tx *store.Tx) error {
		cur, err := tx.Call(id)
		if err != nil {
			return err
		}
		if !pr.sees(cur.CustomerID) {
			return store.ErrNotFound
		}
		c, err = tx.AnnotateCall(cur.CustomerID, id, func(c *store.Call) error {
			if p.LeadStatus != nil {
				c.LeadStatus = store.LeadStatus(*p.LeadStatus)
			}
			if p.Tags != nil {
				c.Tags = *p.Tags
			}
			if p.Value != nil {
				c.Value = *p.Value
			}
			if p.Note != nil {
				c.Note = *p.Note
			}
			c.Updated = now
			return nil
		})
		if err != nil || a.access == nil {
			return err
		}
		e := store.AuditEntry{Time: now, Actor: pr.actor(), Action: "call.update", CustomerID: c.CustomerID, IDs: []string{c.ID}}
		return tx.AppendAudit(&e)
	})
	var fe *store.FieldError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errUnknownCall()
	case errors.As(err, &fe):
		return errStatus(http.StatusBadRequest, fe.Field, fe.Error())
	case err != nil:
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
