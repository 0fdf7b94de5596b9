package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/trackline/trackline/integrations"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// Webhook endpoints (issue 19): a customer's token manages the customer's own, the operator
// every customer's. package integrations delivers them; docs/webhooks.md describes the events
// and the signature. A secret is shown once, in the answer that made it (create and
// rotate-secret); afterwards its last four characters (secret_hint). Every change is audited
// (webhook.create, .update, .delete, .rotate_secret, .replay) in its own transaction.

// WebhookStore is what the webhook endpoints need of the store; *store.DB is one.
type WebhookStore interface {
	// Write runs fn in a durable transaction (PutEndpoint, ReplayMessage, the audit entry).
	Write(ctx context.Context, fn func(*store.Tx) error) error
	Endpoints(customerID string) ([]store.Endpoint, error)
	Endpoint(customerID, id string) (store.Endpoint, error)
	DeleteEndpoint(ctx context.Context, customerID, id string) error
	Deliveries(customerID, endpointID, before string, limit int) ([]store.Delivery, string, error)
	ReplaySince(ctx context.Context, customerID, endpointID string, since time.Time) (int, error)
}

// WithWebhooks serves the webhook endpoints from db; URLs must be https unless their host
// is an address in allow (webhooks.allow_cidrs). Without it the routes answer 503.
func WithWebhooks(db WebhookStore, allow []netip.Prefix) Option {
	return func(a *API) { a.webhooks = &webhookAPI{db: db, allow: allow} }
}

// webhookAPI is what the webhook endpoints are served from.
type webhookAPI struct {
	db    WebhookStore
	allow []netip.Prefix
}

// rotationOverlap is how long the previous secret signs too after a rotation.
const rotationOverlap = 24 * time.Hour

// webhookView is what the API shows of an endpoint: never its secrets.
type webhookView struct {
	ID             string            `json:"id"`
	CustomerID     string            `json:"customer_id"`
	URL            string            `json:"url"`
	Description    string            `json:"description,omitempty"`
	EventTypes     []store.EventType `json:"event_types"`
	Disabled       bool              `json:"disabled"`
	DisabledReason string            `json:"disabled_reason,omitempty"`
	SecretHint     string            `json:"secret_hint"`
	// PreviousSecretExpires is when the secret before the last rotation stops signing.
	PreviousSecretExpires time.Time `json:"previous_secret_expires,omitzero"`
	Created               time.Time `json:"created"`
	Updated               time.Time `json:"updated,omitzero"`
}

func viewWebhook(e *store.Endpoint, now time.Time) webhookView {
	v := webhookView{ID: e.ID, CustomerID: e.CustomerID, URL: e.URL, Description: e.Description, EventTypes: e.EventTypes,
		Disabled: e.Disabled || e.Deleting, DisabledReason: e.DisabledReason, SecretHint: e.Secret[max(len(e.Secret)-4, 0):],
		Created: e.Created, Updated: e.Updated}
	if e.Deleting {
		v.DisabledReason = "deleting"
	}
	if e.PreviousSecret != "" && now.Before(e.PreviousExpires) {
		v.PreviousSecretExpires = e.PreviousExpires
	}
	return v
}

// webhookInput is the body of POST and PATCH .../webhooks: a member that is absent stays
// as it is (PATCH) or takes its default (POST).
type webhookInput struct {
	URL         *string   `json:"url"`
	EventTypes  *[]string `json:"event_types"`
	Description *string   `json:"description"`
	Disabled    *bool     `json:"disabled"`
	Secret      *string   `json:"secret"` // POST only; made when absent
}

func (a *API) webhooksAvailable() error {
	if a.webhooks == nil {
		return errStatus(http.StatusServiceUnavailable, "", "webhooks are not available")
	}
	return nil
}

// applyWebhook checks in and writes it into e (integrations.EditEndpoint), answering a 400
// that names the first field that is wrong.
func (a *API) applyWebhook(in *webhookInput, e *store.Endpoint, now time.Time) error {
	err := integrations.EditEndpoint(e, integrations.EndpointEdit{URL: in.URL, EventTypes: in.EventTypes,
		Description: in.Description, Disabled: in.Disabled}, a.webhooks.allow, now)
	var fe *store.FieldError
	if errors.As(err, &fe) {
		return errStatus(http.StatusBadRequest, fe.Field, fe.Error())
	}
	return err
}

// checkSecret answers a 400 for a secret not of the form whsec_ and the base64 of 24-64
// bytes.
func checkSecret(s string) error {
	if _, err := store.SecretBytes(s); err != nil {
		return errStatus(http.StatusBadRequest, "secret", "secret: "+err.Error())
	}
	return nil
}

// writeWebhook commits the change fn makes with its audit entry, mapping the store's
// problems to answers.
func (a *API) writeWebhook(r *http.Request, action, customerID string, ids []string, fn func(tx *store.Tx) error) error {
	e := store.AuditEntry{Time: a.now(), Actor: who(r).actor(), Action: action, CustomerID: customerID, IDs: ids}
	err := a.webhooks.db.Write(r.Context(), func(tx *store.Tx) error {
		if err := fn(tx); err != nil || a.access == nil {
			return err
		}
		return tx.AppendAudit(&e)
	})
	return webhookProblem(err)
}

// webhookProblem maps the store's errors of the webhook endpoints to answers.
func webhookProblem(err error) error {
	var fe *store.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe) && fe.Field == "disabled":
		return errStatus(http.StatusConflict, "disabled", "the endpoint is disabled: enable it first (PATCH disabled false)")
	case errors.As(err, &fe):
		return errStatus(http.StatusBadRequest, fe.Field, fe.Error())
	case errors.Is(err, store.ErrNotFound):
		return errUnknownWebhook()
	}
	return err
}

func errUnknownWebhook() error {
	return errStatus(http.StatusNotFound, "", "unknown webhook endpoint")
}

// webhookOf reads the endpoint {wid} of the customer {id} (404 for either unknown).
func (a *API) webhookOf(r *http.Request) (store.Endpoint, error) {
	if err := a.webhooksAvailable(); err != nil {
		return store.Endpoint{}, err
	}
	id, wid := r.PathValue("id"), r.PathValue("wid")
	if _, err := a.pool.Customer(id); err != nil {
		return store.Endpoint{}, err
	}
	if len(wid) > 64 {
		return store.Endpoint{}, errUnknownWebhook()
	}
	e, err := a.webhooks.db.Endpoint(id, wid)
	if err != nil {
		return store.Endpoint{}, webhookProblem(err)
	}
	return e, nil
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := a.webhooksAvailable(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := a.pool.Customer(id); err != nil {
		return err
	}
	var in webhookInput
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	if in.URL == nil {
		return errStatus(http.StatusBadRequest, "url", "url: required")
	}
	if in.EventTypes == nil {
		return errStatus(http.StatusBadRequest, "event_types", "event_types: required (want some of "+integrations.EventTypeNames()+")")
	}
	now := a.now().UTC()
	e := store.Endpoint{ID: pool.NewID(now), CustomerID: id, Created: now}
	if err := a.applyWebhook(&in, &e, now); err != nil {
		return err
	}
	e.Updated = time.Time{}
	e.Secret = integrations.NewSecret()
	if in.Secret != nil {
		if err := checkSecret(*in.Secret); err != nil {
			return err
		}
		e.Secret = *in.Secret
	}
	if eps, err := a.webhooks.db.Endpoints(id); err != nil {
		return err
	} else if len(eps) >= store.MaxEndpoints {
		return errStatus(http.StatusConflict, "", "a customer has at most "+strconv.Itoa(store.MaxEndpoints)+" webhook endpoints")
	}
	if err := a.writeWebhook(r, "webhook.create", id, []string{e.ID}, func(tx *store.Tx) error { return tx.PutEndpoint(&e) }); err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/customers/"+id+"/webhooks/"+e.ID)
	writeJSON(w, http.StatusCreated, struct {
		webhookView
		Secret string `json:"secret"`
	}{viewWebhook(&e, now), e.Secret})
	return nil
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	if err := a.webhooksAvailable(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := a.pool.Customer(id); err != nil {
		return err
	}
	eps, err := a.webhooks.db.Endpoints(id)
	if err != nil {
		return err
	}
	now := a.now()
	out := make([]webhookView, 0, len(eps))
	for i := range eps {
		out = append(out, viewWebhook(&eps[i], now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out, "event_types": store.EventTypes()})
	return nil
}

func (a *API) getWebhook(w http.ResponseWriter, r *http.Request) error {
	e, err := a.webhookOf(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewWebhook(&e, a.now()))
	return nil
}

// patchWebhook changes an endpoint's URL, event types, description or whether it is
// disabled. Disabling fails what the endpoint still owed (the workers do, once they see
// it); enabling it again sends the events from then on (replay the others).
func (a *API) patchWebhook(w http.ResponseWriter, r *http.Request) error {
	e, err := a.webhookOf(r)
	if err != nil {
		return err
	}
	var in webhookInput
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	if in.Secret != nil {
		return errStatus(http.StatusBadRequest, "secret", "secret: change it with POST .../rotate-secret")
	}
	if in.URL == nil && in.EventTypes == nil && in.Description == nil && in.Disabled == nil {
		return errStatus(http.StatusBadRequest, "", "nothing to change: send url, event_types, description or disabled")
	}
	if e.Deleting {
		return errUnknownWebhook()
	}
	now := a.now().UTC()
	err = a.writeWebhook(r, "webhook.update", e.CustomerID, []string{e.ID}, func(tx *store.Tx) error {
		cur, err := tx.Endpoint(e.CustomerID, e.ID)
		if err != nil {
			return err
		}
		if err := a.applyWebhook(&in, &cur, now); err != nil {
			return err
		}
		e = cur
		return tx.PutEndpoint(&cur)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewWebhook(&e, now))
	return nil
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	e, err := a.webhookOf(r)
	if err != nil {
		return err
	}
	if err := webhookProblem(a.webhooks.db.DeleteEndpoint(r.Context(), e.CustomerID, e.ID)); err != nil {
		return err
	}
	if err := a.auditWrite(r, "webhook.delete", e.CustomerID, e.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateWebhookSecret gives an endpoint a new secret (the one in the body, or a new one);
// the old one goes on signing for rotationOverlap, so that the receiver can switch.
func (a *API) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	e, err := a.webhookOf(r)
	if err != nil {
		return err
	}
	var in struct {
		Secret *string `json:"secret"`
	}
	if r.ContentLength != 0 {
		if err := decodeBody(w, r, maxBody, &in, false); err != nil {
			return err
		}
	}
	secret := integrations.NewSecret()
	if in.Secret != nil {
		if err := checkSecret(*in.Secret); err != nil {
			return err
		}
		secret = *in.Secret
	}
	now := a.now().UTC()
	err = a.writeWebhook(r, "webhook.rotate_secret", e.CustomerID, []string{e.ID}, func(tx *store.Tx) error {
		cur, err := tx.Endpoint(e.CustomerID, e.ID)
		if err != nil {
			return err
		}
		if cur.Deleting {
			return store.ErrNotFound
		}
		cur.PreviousSecret, cur.PreviousExpires, cur.Secret, cur.Updated = cur.Secret, now.Add(rotationOverlap), secret, now
		e = cur
		return tx.PutEndpoint(&cur)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		webhookView
		Secret string `json:"secret"`
	}{viewWebhook(&e, now), secret})
	return nil
}

func (a *API) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) error {
	e, err := a.webhookOf(r)
	if err != nil {
		return err
	}
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
	ds, next, err := a.webhooks.db.Deliveries(e.CustomerID, e.ID, cursor, limit)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []store.Delivery{}
	}
	writeJSON(w, http.StatusOK, struct {
		Deliveries []store.Delivery `json:"deliveries"`
		NextCursor string           `json:"next_cursor,omitempty"`
	}{ds, next})
	return nil
}

// replayWebhook sends one message again ({"message_id"}) or every message since a time
// ({"since"}) to the endpoint, with the same webhook-ids.
func (a *API) replayWebhook(w http.ResponseWriter, r *http.Request) error {
	e, err := a.webhookOf(r)
	if err != nil {
		return err
	}
	var in struct {
		MessageID *string `json:"message_id"`
		Since     *string `json:"since"`
	}
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	switch {
	case (in.MessageID == nil) == (in.Since == nil):
		return errStatus(http.StatusBadRequest, "", "send either message_id or since")
	case in.MessageID != nil:
		id := *in.MessageID
		if id == "" || len(id) > 64 {
			return errStatus(http.StatusBadRequest, "message_id", "message_id: malformed")
		}
		err := a.writeWebhook(r, "webhook.replay", e.CustomerID, []string{e.ID, id}, func(tx *store.Tx) error {
			err := tx.ReplayMessage(e.CustomerID, e.ID, id)
			if errors.Is(err, store.ErrNotFound) {
				return errStatus(http.StatusNotFound, "message_id", "message_id: unknown message")
			}
			return err
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, map[string]int{"replayed": 1})
		return nil
	}
	since, err := time.Parse(time.RFC3339Nano, *in.Since)
	if err != nil {
		return errStatus(http.StatusBadRequest, "since", "since: must be an RFC 3339 time")
	}
	n, err := a.webhooks.db.ReplaySince(r.Context(), e.CustomerID, e.ID, since)
	if err := webhookProblem(err); err != nil {
		return err
	}
	if err := a.auditWrite(r, "webhook.replay", e.CustomerID, e.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"replayed": n})
	return nil
}
