package app

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/trackline/trackline/integrations"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// The webhooks page: a customer's admin adds, disables and removes its webhook endpoints
// and reads their latest deliveries; members read. The checks are integrations', as the
// admin API's are; a new endpoint's secret is shown once, on the page that made it.

// WithWebhooks serves the webhooks page; URLs must be https unless their host is in allow.
func WithWebhooks(allow []netip.Prefix) Option {
	return func(a *App) { a.webhooks, a.webhookAllow = true, allow }
}

func (a *App) webhooksPage(w http.ResponseWriter, q *request) error {
	return a.webhooksView(w, q, http.StatusOK, map[string]any{})
}

func (a *App) webhooksView(w http.ResponseWriter, q *request, status int, data map[string]any) error {
	if !a.webhooks {
		return &pageError{status: http.StatusServiceUnavailable, msg: "webhooks are not available here"}
	}
	eps, err := a.db.Endpoints(q.customer.ID)
	if err != nil {
		return err
	}
	type row struct {
		E          store.Endpoint
		Deliveries []store.Delivery
	}
	var rows []row
	for _, e := range eps {
		ds, _, err := a.db.Deliveries(q.customer.ID, e.ID, "", 10)
		if err != nil {
			return err
		}
		rows = append(rows, row{e, ds})
	}
	data["Endpoints"] = rows
	data["Types"] = store.EventTypes()
	return a.pageStatus(w, q, status, "webhooks", data)
}

// addWebhook makes an endpoint and shows its secret once (admins only).
func (a *App) addWebhook(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin changes webhooks")
	}
	if !a.webhooks {
		return &pageError{status: http.StatusServiceUnavailable, msg: "webhooks are not available here"}
	}
	f := q.r.PostForm
	u, desc, types := f.Get("url"), f.Get("description"), f["event"]
	now := a.now().UTC()
	e := store.Endpoint{ID: pool.NewID(now), CustomerID: q.customer.ID, Created: now, Secret: integrations.NewSecret()}
	err := integrations.EditEndpoint(&e, integrations.EndpointEdit{URL: &u, EventTypes: &types, Description: &desc}, a.webhookAllow, now)
	var fe *store.FieldError
	if errors.As(err, &fe) {
		return a.webhooksView(w, q, http.StatusBadRequest, map[string]any{"Error": fe.Error(), "URL": u, "Description": desc})
	}
	if err != nil {
		return err
	}
	e.Updated = now
	if eps, err := a.db.Endpoints(q.customer.ID); err != nil {
		return err
	} else if len(eps) >= store.MaxEndpoints {
		return &pageError{status: http.StatusConflict, msg: "a customer has at most so many webhook endpoints"}
	}
	ae := store.AuditEntry{Time: now, Actor: q.actor(), Action: "webhook.create", CustomerID: q.customer.ID, IDs: []string{e.ID}}
	if err := a.db.Write(q.r.Context(), func(tx *store.Tx) error {
		if err := tx.PutEndpoint(&e); err != nil {
			return err
		}
		return tx.AppendAudit(&ae)
	}); err != nil {
		return err
	}
	return a.webhooksView(w, q, http.StatusOK, map[string]any{"Secret": e.Secret, "Made": e.URL})
}

// changeWebhook disables, enables or removes an endpoint (admins only).
func (a *App) changeWebhook(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin changes webhooks")
	}
	id := q.r.PathValue("wid")
	if len(id) > 64 {
		return errNotFound
	}
	e, err := a.db.Endpoint(q.customer.ID, id)
	if err != nil {
		return errNotFound
	}
	now := a.now().UTC()
	switch action := q.r.PostFormValue("action"); action {
	case "delete":
		if err := a.db.DeleteEndpoint(q.r.Context(), q.customer.ID, e.ID); err != nil {
			return err
		}
		a.auditAs(q.r.Context(), q.actor(), "webhook.delete", q.customer.ID, e.ID)
	case "disable", "enable":
		off := action == "disable"
		if err := integrations.EditEndpoint(&e, integrations.EndpointEdit{Disabled: &off}, a.webhookAllow, now); err != nil {
			return err
		}
		ae := store.AuditEntry{Time: now, Actor: q.actor(), Action: "webhook.update", CustomerID: q.customer.ID, IDs: []string{e.ID}}
		if err := a.db.Write(q.r.Context(), func(tx *store.Tx) error {
			if err := tx.PutEndpoint(&e); err != nil {
				return err
			}
			return tx.AppendAudit(&ae)
		}); err != nil {
			return err
		}
	default:
		return errBadInput("action: delete, disable or enable")
	}
	http.Redirect(w, q.r, "/c/"+url.PathEscape(q.customer.ID)+"/webhooks", http.StatusSeeOther)
	return nil
}
