package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// The data lifecycle on the admin API: the export archive, the usage report, numbers marked
// for porting and the numbers held in quarantine after their customer was deleted.

// Exporter streams a customer's export archive (a zip); *recordings.Exporter is one.
type Exporter interface {
	Write(ctx context.Context, w io.Writer, customerID string) (recordings.Manifest, error)
}

// UsageReader reads a customer's usage counters of a month; *store.DB is one.
type UsageReader interface {
	Usage(customerID, month string) (store.Usage, error)
}

// WithExport serves GET /v1/export from e. Without it the endpoint answers 503.
func WithExport(e Exporter) Option { return func(a *API) { a.exporter = e } }

// WithUsage serves the usage report from u. Without it the endpoint answers 503.
func WithUsage(u UsageReader) Option { return func(a *API) { a.usage = u } }

// exportWriteWindow is how long one write of an export may take: the admin listener's
// write timeout would cut a long archive, so each write gets a fresh deadline instead.
const exportWriteWindow = 30 * time.Second

// deadlineWriter renews the connection's write deadline before each write.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(exportWriteWindow)) // not supported: the server's own timeout applies
	return d.w.Write(p)
}

// export streams the archive of a customer: a customer token its own (customer= absent or
// its own; another answers 404), the operator the one named by customer=.
func (a *API) export(w http.ResponseWriter, r *http.Request) error {
	if a.exporter == nil {
		return errStatus(http.StatusServiceUnavailable, "", "exports are not available")
	}
	p := who(r)
	id := r.URL.Query().Get("customer")
	switch {
	case len(id) > 64:
		return errStatus(http.StatusBadRequest, "customer", "customer: too long")
	case p.customer != "" && id != "" && id != p.customer:
		return pool.ErrUnknownCustomer
	case p.customer != "":
		id = p.customer
	case id == "":
		return errStatus(http.StatusBadRequest, "customer", "customer: required with the operator token")
	}
	if _, err := a.pool.Customer(id); err != nil {
		return err
	}
	// An export is committed to the audit log before a byte of it is sent.
	if err := a.auditWrite(r, "export", id); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", `attachment; filename="trackline-export-`+id+"-"+a.now().UTC().Format("20060102T150405Z")+`.zip"`)
	w.WriteHeader(http.StatusOK)
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	if _, err := a.exporter.Write(r.Context(), dw, id); err != nil {
		if r.Context().Err() == nil {
			a.log.Error("export failed part way", "customer", id, "err", err)
		}
		// The status is sent: cut the connection so that the client sees a broken
		// transfer, not a short archive.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// usageReport is the answer of GET /v1/customers/{id}/usage.
type usageReport struct {
	CustomerID  string  `json:"customer_id"`
	Month       string  `json:"month"`
	Sessions    uint64  `json:"sessions"`
	Calls       uint64  `json:"calls"`
	TalkSeconds float64 `json:"talk_seconds"`
	Minutes     float64 `json:"minutes"`
}

func (a *API) usageReport(w http.ResponseWriter, r *http.Request) error {
	if a.usage == nil {
		return errStatus(http.StatusServiceUnavailable, "", "usage reports are not available")
	}
	id := r.PathValue("id")
	if _, err := a.pool.Customer(id); err != nil {
		return err
	}
	month := store.Month(a.now())
	if v := r.URL.Query().Get("month"); v != "" {
		if _, err := store.ParseMonth(v); err != nil {
			return errStatus(http.StatusBadRequest, "month", "month: must be yyyy-mm, like 2026-11")
		}
		month = v
	}
	u, err := a.usage.Usage(id, month)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, usageReport{
		CustomerID: id, Month: month, Sessions: u.Sessions, Calls: u.Calls,
		TalkSeconds: u.TalkSeconds, Minutes: math.Round(u.TalkSeconds/60*100) / 100,
	})
	return nil
}

// patchNumber changes a customer's number; for now its porting mark.
func (a *API) patchNumber(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Porting *bool `json:"porting"`
	}
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	if in.Porting == nil {
		return errStatus(http.StatusBadRequest, "porting", "porting: required (true or false)")
	}
	id, number := r.PathValue("id"), r.PathValue("number")
	if owner, err := a.pool.NumberOwner(number); err != nil || owner != id {
		return errStatus(http.StatusNotFound, "number", "not a number of this customer")
	}
	n, err := a.pool.SetPorting(r.Context(), number, *in.Porting)
	if err != nil {
		return err
	}
	if err := a.auditWrite(r, "number.update", id, number); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (a *API) listHeld(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"numbers": a.pool.HeldNumbers()})
	return nil
}

func (a *API) releaseHeld(w http.ResponseWriter, r *http.Request) error {
	number := r.PathValue("number")
	if err := a.pool.ReleaseHeld(r.Context(), number); err != nil {
		if errors.Is(err, pool.ErrUnknownNumber) {
			return errStatus(http.StatusNotFound, "number", "not a held number")
		}
		return err
	}
	if err := a.auditWrite(r, "number.release", "", number); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// lifecycleInput are the lifecycle fields of a customer's POST and PATCH body.
type lifecycleInput struct {
	TrialEnds       *string         `json:"trial_ends"`    // RFC 3339; "" clears
	ContractEnds    *string         `json:"contract_ends"` // RFC 3339; "" clears
	RetentionMonths *int            `json:"retention_months"`
	RetentionAction *string         `json:"retention_action"`
	MaxCallDuration json.RawMessage `json:"max_call_duration"` // "90m", or nanoseconds as shown
	RingTimeout     json.RawMessage `json:"ring_timeout"`
}

func (in *lifecycleInput) apply(c *store.Customer) error {
	for _, t := range []struct {
		name string
		v    *string
		dst  *time.Time
	}{{"trial_ends", in.TrialEnds, &c.TrialEnds}, {"contract_ends", in.ContractEnds, &c.ContractEnds}} {
		if t.v == nil {
			continue
		}
		if *t.v == "" {
			*t.dst = time.Time{}
			continue
		}
		tm, err := time.Parse(time.RFC3339, *t.v)
		if err != nil {
			return errStatus(http.StatusBadRequest, t.name, t.name+": must be an RFC 3339 time, or \"\" for none")
		}
		*t.dst = tm.UTC()
	}
	if in.RetentionMonths != nil {
		c.RetentionMonths = *in.RetentionMonths
	}
	if in.RetentionAction != nil {
		ra, err := store.ParseRetentionAction(*in.RetentionAction)
		if err != nil {
			return errStatus(http.StatusBadRequest, "retention_action", "retention_action: must be delete or export_then_delete")
		}
		c.RetentionAction = ra
	}
	for _, d := range []struct {
		name   string
		raw    json.RawMessage
		dst    *time.Duration
		lo, hi time.Duration
	}{{"max_call_duration", in.MaxCallDuration, &c.MaxCallDuration, time.Second, 48 * time.Hour},
		{"ring_timeout", in.RingTimeout, &c.RingTimeout, time.Second, 10 * time.Minute}} {
		if len(d.raw) == 0 {
			continue
		}
		v, err := parseDuration(d.raw)
		if err != nil || v != 0 && (v < d.lo || v > d.hi) {
			return errStatus(http.StatusBadRequest, d.name, fmt.Sprintf(`%s: must be a duration from %v to %v like "90m", or "" for the switch default`, d.name, d.lo, d.hi))
		}
		*d.dst = v
	}
	return nil
}

// parseDuration reads a JSON string in Go's duration syntax ("" is zero) or a number of
// nanoseconds, the form in which records show durations.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if strings.TrimSpace(s) == "" {
			return 0, nil
		}
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a duration")
	}
	return time.Duration(n), nil
}
