package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/trackline/trackline/integrations/googleads"
	"github.com/trackline/trackline/store"
)

// Google Ads offline conversions (issue 19; docs/googleads.md): a customer's settings, read
// and replaced with GET and PUT /v1/customers/{id}/google-ads, and its conversions as the
// CSV of Google's offline conversion import template. The OAuth2 client secret and refresh
// token are write-only: PUT seals them with the customer's key (package
// integrations/googleads), GET tells only whether they are set. They are served from the
// call store (WithCalls, when it can also View: *store.DB can) and the customers' keys
// (WithRecordings); without them the routes answer 503.

// adsStore is what the Google Ads endpoints need of the store; *store.DB is one.
type adsStore interface {
	View(fn func(*store.Tx) error) error
	Write(ctx context.Context, fn func(*store.Tx) error) error
}

func (a *API) googleAdsStore() (adsStore, error) {
	db, ok := a.calls.(adsStore)
	if !ok || a.keys == nil {
		return nil, errStatus(http.StatusServiceUnavailable, "", "Google Ads settings are not available")
	}
	return db, nil
}

// googleAdsCustomer is the store and the customer {id} of a Google Ads request: 503 without
// the store, the missing-customer answer for an unknown one.
func (a *API) googleAdsCustomer(r *http.Request) (adsStore, string, error) {
	db, err := a.googleAdsStore()
	if err != nil {
		return nil, "", err
	}
	id := r.PathValue("id")
	if _, err := a.pool.Customer(id); err != nil {
		return nil, "", err
	}
	return db, id, nil
}

// googleAdsView is what the API shows of the settings: never the secrets.
type googleAdsView struct {
	CustomerID       string         `json:"customer_id"`
	AdsCustomerID    string         `json:"ads_customer_id"`
	LoginCustomerID  string         `json:"login_customer_id,omitempty"`
	ConversionAction string         `json:"conversion_action"`
	ConversionName   string         `json:"conversion_name,omitempty"`
	Currency         string         `json:"currency"`
	TimeZone         string         `json:"time_zone,omitempty"`
	ClientID         string         `json:"client_id,omitempty"`
	HasCredentials   bool           `json:"has_credentials"`
	Rule             store.AdsRule  `json:"rule"`
	Disabled         bool           `json:"disabled"`
	Uploads          map[string]int `json:"uploads"` // the calls by upload state
	Created          time.Time      `json:"created"`
	Updated          time.Time      `json:"updated,omitzero"`
}

func viewGoogleAds(g *store.GoogleAds) googleAdsView {
	return googleAdsView{CustomerID: g.CustomerID, AdsCustomerID: g.AdsCustomerID, LoginCustomerID: g.LoginCustomerID,
		ConversionAction: g.ConversionAction, ConversionName: g.ConversionName, Currency: g.Currency, TimeZone: g.TimeZone,
		ClientID: g.ClientID, HasCredentials: len(g.SealedSecrets) > 0, Rule: g.Rule, Disabled: g.Disabled,
		Uploads: map[string]int{}, Created: g.Created, Updated: g.Updated}
}

// googleAdsInput is the body of PUT .../google-ads: it replaces the settings, but for the
// secrets, which stay as they are when absent.
type googleAdsInput struct {
	AdsCustomerID    string        `json:"ads_customer_id"`
	LoginCustomerID  string        `json:"login_customer_id"`
	ConversionAction string        `json:"conversion_action"`
	ConversionName   string        `json:"conversion_name"`
	Currency         string        `json:"currency"`
	TimeZone         string        `json:"time_zone"`
	ClientID         string        `json:"client_id"`
	ClientSecret     *string       `json:"client_secret"`
	RefreshToken     *string       `json:"refresh_token"`
	Rule             store.AdsRule `json:"rule"`
	Disabled         bool          `json:"disabled"`
}

func (a *API) getGoogleAds(w http.ResponseWriter, r *http.Request) error {
	db, id, err := a.googleAdsCustomer(r)
	if err != nil {
		return err
	}
	var v googleAdsView
	err = db.View(func(tx *store.Tx) error {
		g, err := tx.GoogleAds(id)
		if err != nil {
			return err
		}
		v = viewGoogleAds(&g)
		return tx.ConversionUploads(id, "", func(u store.ConversionUpload) bool {
			v.Uploads[u.State.String()]++
			return true
		})
	})
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusNotFound, "", "no Google Ads settings")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) putGoogleAds(w http.ResponseWriter, r *http.Request) error {
	db, id, err := a.googleAdsCustomer(r)
	if err != nil {
		return err
	}
	var in googleAdsInput
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	key, err := a.keys.Get(id)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	var old *store.GoogleAds
	err = db.View(func(tx *store.Tx) error {
		g, err := tx.GoogleAds(id)
		if err == nil {
			old = &g
		}
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	created := old == nil
	g, err := googleads.Apply(old, googleads.Edit{AdsCustomerID: in.AdsCustomerID, LoginCustomerID: in.LoginCustomerID,
		ConversionAction: in.ConversionAction, ConversionName: in.ConversionName, Currency: in.Currency, TimeZone: in.TimeZone,
		ClientID: in.ClientID, ClientSecret: in.ClientSecret, RefreshToken: in.RefreshToken, Rule: in.Rule, Disabled: in.Disabled}, key, now)
	if err != nil {
		return fieldProblem(err)
	}
	e := store.AuditEntry{Time: now, Actor: who(r).actor(), Action: "googleads.update", CustomerID: id}
	err = db.Write(r.Context(), func(tx *store.Tx) error {
		if err := tx.PutGoogleAds(&g); err != nil || a.access == nil {
			return err
		}
		return tx.AppendAudit(&e)
	})
	if err != nil {
		return fieldProblem(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	v := viewGoogleAds(&g)
	writeJSON(w, status, v)
	return nil
}

// listConversions answers the customer's calls' upload states, oldest call first: at most
// limit (default 100, at most 1000) after the call id cursor, optionally of one state.
func (a *API) listConversions(w http.ResponseWriter, r *http.Request) error {
	db, id, err := a.googleAdsCustomer(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return errStatus(http.StatusBadRequest, "limit", "limit: must be 1 to 1000")
		}
	}
	state := store.UploadState(q.Get("state"))
	switch state {
	case store.UploadUnknown, store.UploadPending, store.UploadUploaded, store.UploadFailed, store.UploadSkipped:
	default:
		return errStatus(http.StatusBadRequest, "state", "state: must be pending, uploaded, failed or skipped")
	}
	cursor := q.Get("cursor")
	if len(cursor) > 64 || !printable(cursor) {
		return errStatus(http.StatusBadRequest, "cursor", "cursor: not one this API gave")
	}
	out := []store.ConversionUpload{}
	next := ""
	err = db.View(func(tx *store.Tx) error {
		return tx.ConversionUploads(id, cursor, func(u store.ConversionUpload) bool {
			if len(out) == limit {
				next = out[len(out)-1].CallID
				return false
			}
			if state == store.UploadUnknown || u.State == state {
				out = append(out, u)
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Conversions []store.ConversionUpload `json:"conversions"`
		NextCursor  string                   `json:"next_cursor,omitempty"`
	}{out, next})
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// conversionsCSV answers the customer's conversions of the last 90 days (or from ... to,
// RFC 3339) in Google's offline conversion import template: a Parameters row with the time
// zone, the header row, and a row per call that matches the rule, has a gclid and the
// visitor's ad consent. Only the gclid: the template has no column for gbraid or wbraid.
func (a *API) conversionsCSV(w http.ResponseWriter, r *http.Request) error {
	db, id, err := a.googleAdsCustomer(r)
	if err != nil {
		return err
	}
	now := a.now()
	from, to := now.Add(-90*24*time.Hour), now
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := r.URL.Query().Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return errStatus(http.StatusBadRequest, p.name, p.name+": must be an RFC 3339 time")
			}
			*p.dst = t
		}
	}
	var out googleads.CSV
	err = db.View(func(tx *store.Tx) (err error) { out, err = googleads.Conversions(tx, id, from, to); return err })
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errStatus(http.StatusNotFound, "", "no Google Ads settings")
	case errors.Is(err, googleads.ErrNoConversionName):
		return errStatus(http.StatusConflict, "conversion_name", "conversion_name: set it (PUT .../google-ads) for the CSV")
	case err != nil:
		return err
	}
	if err := a.audit(r, "googleads.export", id); err != nil {
		return err
	}
	return out.Serve(w)
}
