package api

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

const maxImport = 4 << 20

// customerInput is the body of POST /v1/customers; PATCH takes the same fields, all optional.
type customerInput struct {
	ID             *string   `json:"id"`
	Name           *string   `json:"name"`
	Status         *string   `json:"status"`
	SiteKey        *string   `json:"site_key"`
	AllowedOrigins *[]string `json:"allowed_origins"`
	BusinessLines  *[]string `json:"business_lines"`
	DisplayNumbers *[]string `json:"display_numbers"`
	DisplayFormat  *string   `json:"display_format"`
	// PseudonymousCallers applies to calls from the moment it is set: stored calls keep
	// what they hold (erase a caller to remove the number from them).
	PseudonymousCallers *bool `json:"pseudonymous_callers"`
	// Recording and Prompts take effect on the next call.
	Recording *recordingInput `json:"recording"`
	Prompts   *promptsInput   `json:"prompts"`
	lifecycleInput
}

// recordingInput changes the fields of a customer's recording policy that it names.
type recordingInput struct {
	Enabled             *bool     `json:"enabled"`
	Numbers             *[]string `json:"numbers"`
	Channels            *[]string `json:"channels"`
	ProfessionalSecrecy *bool     `json:"professional_secrecy"`
	ConsentConfirmed    *bool     `json:"recording_consent_confirmed"`
}

// promptsInput changes a customer's prompts: "" none, "default" the built-in disclaimer, or
// the path of a WAV file on the switch that loads as a prompt.
type promptsInput struct {
	Disclaimer *string `json:"disclaimer"`
	Whisper    *string `json:"whisper"`
}

func (in *recordingInput) apply(p *store.RecordingPolicy) {
	for _, b := range []struct {
		dst *bool
		v   *bool
	}{{&p.Enabled, in.Enabled}, {&p.ProfessionalSecrecy, in.ProfessionalSecrecy}, {&p.ConsentConfirmed, in.ConsentConfirmed}} {
		if b.v != nil {
			*b.dst = *b.v
		}
	}
	if in.Numbers != nil {
		p.Numbers = *in.Numbers
	}
	if in.Channels != nil {
		p.Channels = *in.Channels
	}
}

func (in *promptsInput) apply(p *store.Prompts) error {
	for _, x := range []struct {
		name string
		v    *string
		dst  *string
	}{{"disclaimer", in.Disclaimer, &p.Disclaimer}, {"whisper", in.Whisper, &p.Whisper}} {
		if x.v == nil {
			continue
		}
		if v := *x.v; v != "" && v != "default" {
			if _, err := recordings.LoadPrompt(v); err != nil {
				return errStatus(http.StatusBadRequest, "prompts."+x.name, "prompts."+x.name+": "+err.Error())
			}
		}
		*x.dst = *x.v
	}
	return nil
}

func (in *customerInput) apply(c *store.Customer) error {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.Name, in.Name)
	set(&c.SiteKey, in.SiteKey)
	set(&c.DisplayFormat, in.DisplayFormat)
	if in.PseudonymousCallers != nil {
		c.PseudonymousCallers = *in.PseudonymousCallers
	}
	if in.Status != nil {
		s, err := store.ParseCustomerStatus(*in.Status)
		if err != nil {
			return errStatus(http.StatusBadRequest, "status", "status: must be trial, active or ended")
		}
		c.Status = s
	}
	for _, l := range []struct {
		dst *[]string
		v   *[]string
	}{{&c.AllowedOrigins, in.AllowedOrigins}, {&c.BusinessLines, in.BusinessLines}, {&c.DisplayNumbers, in.DisplayNumbers}} {
		if l.v != nil {
			*l.dst = *l.v
		}
	}
	if in.Recording != nil {
		in.Recording.apply(&c.Recording)
	}
	if in.Prompts != nil {
		if err := in.Prompts.apply(&c.Prompts); err != nil {
			return err
		}
	}
	return in.lifecycleInput.apply(c)
}

func (a *API) listCustomers(w http.ResponseWriter, r *http.Request) error {
	cs := a.pool.Customers()
	if p := who(r); p.customer != "" {
		cs = slices.DeleteFunc(cs, func(c store.Customer) bool { return c.ID != p.customer })
	}
	if cs == nil {
		cs = []store.Customer{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": cs})
	return nil
}

func (a *API) createCustomer(w http.ResponseWriter, r *http.Request) error {
	var in customerInput
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	var c store.Customer
	if in.ID != nil {
		c.ID = *in.ID
	}
	if err := in.apply(&c); err != nil {
		return err
	}
	if c.Status == store.StatusUnknown {
		c.Status = store.StatusTrial
	}
	c, err := a.pool.CreateCustomer(r.Context(), c)
	if err != nil {
		return err
	}
	if err := a.auditWrite(r, "customer.create", c.ID); err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/customers/"+c.ID)
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (a *API) getCustomer(w http.ResponseWriter, r *http.Request) error {
	c, err := a.pool.Customer(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (a *API) patchCustomer(w http.ResponseWriter, r *http.Request) error {
	var in customerInput
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	if in.ID != nil {
		return errStatus(http.StatusBadRequest, "id", "id: cannot be changed")
	}
	var applyErr error
	c, err := a.pool.UpdateCustomer(r.Context(), r.PathValue("id"), func(c *store.Customer) { applyErr = in.apply(c) })
	if applyErr != nil {
		return applyErr
	}
	if err != nil {
		return err
	}
	if err := a.auditWrite(r, "customer.update", c.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (a *API) listNumbers(w http.ResponseWriter, r *http.Request) error {
	ns, err := a.pool.Numbers(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"numbers": ns})
	return nil
}

// importNumbers takes text/csv (number,kind,channel; a header line is allowed) or a JSON
// array, and imports all lines or none.
func (a *API) importNumbers(w http.ResponseWriter, r *http.Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var in []pool.NumberInput
	switch mt {
	case "text/csv":
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImport))
		if err != nil {
			return err
		}
		if in, err = parseNumbersCSV(body); err != nil {
			return err
		}
	case "application/json":
		if err := decodeBody(w, r, maxImport, &in, false); err != nil {
			return err
		}
	default:
		return errStatus(http.StatusUnsupportedMediaType, "", "Content-Type must be text/csv or application/json")
	}
	if len(in) == 0 {
		return errStatus(http.StatusBadRequest, "", "no numbers to import")
	}
	n, err := a.pool.ImportNumbers(r.Context(), r.PathValue("id"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]int{"imported": n})
	return nil
}

func parseNumbersCSV(body []byte) ([]pool.NumberInput, error) {
	cr := csv.NewReader(strings.NewReader(string(body)))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var out []pool.NumberInput
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, &httpError{status: http.StatusBadRequest, line: line, detail: fmt.Sprintf("line %d: malformed CSV", line)}
		}
		if line == 1 && len(rec) > 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "number") {
			continue // header
		}
		if len(rec) > 3 {
			return nil, &httpError{status: http.StatusBadRequest, line: line, detail: fmt.Sprintf("line %d: at most 3 fields (number,kind,channel)", line)}
		}
		ni := pool.NumberInput{Line: line, Number: rec[0]}
		if len(rec) > 1 {
			ni.Kind = strings.TrimSpace(rec[1])
		}
		if len(rec) > 2 {
			ni.Channel = strings.TrimSpace(rec[2])
		}
		out = append(out, ni)
	}
}

func (a *API) quarantineNumber(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Until time.Time `json:"until"`
	}
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	id, number := r.PathValue("id"), r.PathValue("number")
	if owner, err := a.pool.NumberOwner(number); err != nil || owner != id {
		return errStatus(http.StatusNotFound, "number", "not a number of this customer")
	}
	if err := a.pool.Quarantine(r.Context(), number, in.Until); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listChannels(w http.ResponseWriter, r *http.Request) error {
	chs, err := a.pool.Channels(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": chs})
	return nil
}

func (a *API) putChannel(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		ID    string              `json:"id"`
		Name  string              `json:"name"`
		Order int                 `json:"order"`
		Rules []store.ChannelRule `json:"rules"`
	}
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	ch, err := a.pool.PutChannel(r.Context(), r.PathValue("id"), store.Channel{ID: in.ID, Name: in.Name, Order: in.Order, Rules: in.Rules})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ch)
	return nil
}

func (a *API) poolStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := a.pool.Status(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errStatus(http.StatusBadRequest, "limit", "limit: must be 1-1000")
		}
		limit = n
	}
	cursor := q.Get("cursor")
	if len(cursor) > 64 {
		return errStatus(http.StatusBadRequest, "cursor", "cursor: malformed")
	}
	id := r.PathValue("id")
	ss, err := a.pool.Sessions(id, cursor, limit)
	if err != nil {
		return err
	}
	ids := make([]string, len(ss))
	for i := range ss {
		ids[i] = ss[i].ID
	}
	if err := a.audit(r, "sessions.list", id, ids...); err != nil {
		return err
	}
	out := map[string]any{"sessions": ss}
	if len(ss) == limit {
		out["next_cursor"] = ss[len(ss)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) attribution(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	at := a.now()
	if v := q.Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return errStatus(http.StatusBadRequest, "at", "at: must be an RFC 3339 time")
		}
		at = t
	}
	res, err := a.pool.Attribute(q.Get("number"), at)
	if err == nil && res.CustomerID != r.PathValue("id") {
		err = pool.ErrUnknownNumber
	}
	if err != nil && !errors.Is(err, pool.ErrQuarantined) {
		return err
	}
	var ids []string
	if res.Session != nil {
		ids = append(ids, res.Session.ID)
	}
	if err := a.audit(r, "attribution.read", res.CustomerID, ids...); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Number      string         `json:"number"`
		Kind        string         `json:"kind"`
		Channel     string         `json:"channel"`
		Candidates  int            `json:"candidates"`
		Session     *store.Session `json:"session,omitempty"`
		Quarantined bool           `json:"quarantined,omitempty"`
	}{res.Number, res.Kind.String(), res.Channel, res.Candidates, res.Session, errors.Is(err, pool.ErrQuarantined)})
	return nil
}
