package app

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trackline/trackline/integrations/googleads"
	"github.com/trackline/trackline/store"
)

// The Google Ads page: a customer's offline conversion settings (admins change them; the
// OAuth2 secrets are write-only, as in the admin API), the calls' upload states by state and
// the latest of them with Google's error, and the conversions' CSV for customers who import
// by hand. The settings are made by integrations/googleads.Apply, as the API's are.

// recentUploads is how many of the latest upload states the page lists.
const recentUploads = 20

func (a *App) googleAdsPage(w http.ResponseWriter, q *request) error {
	return a.googleAdsView(w, q, http.StatusOK, map[string]any{"Saved": q.r.URL.Query().Get("saved") != ""})
}

func (a *App) googleAdsView(w http.ResponseWriter, q *request, status int, data map[string]any) error {
	counts := map[string]int{}
	var recent []store.ConversionUpload
	err := a.db.View(func(tx *store.Tx) error {
		g, err := tx.GoogleAds(q.customer.ID)
		switch {
		case err == nil:
			if _, ok := data["Settings"]; !ok {
				data["Settings"] = g
			}
			data["HasCredentials"] = len(g.SealedSecrets) > 0
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return tx.ConversionUploads(q.customer.ID, "", func(u store.ConversionUpload) bool {
			counts[u.State.String()]++
			if recent = append(recent, u); len(recent) > recentUploads {
				recent = recent[1:]
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	if _, ok := data["Settings"]; !ok {
		data["Settings"] = store.GoogleAds{Currency: "EUR", Rule: store.AdsRule{MinTalkSeconds: 60, Value: store.AdsValueFixed}}
	}
	for i, j := 0, len(recent)-1; i < j; i, j = i+1, j-1 {
		recent[i], recent[j] = recent[j], recent[i]
	}
	data["Counts"], data["Recent"] = counts, recent
	data["States"] = []store.UploadState{store.UploadPending, store.UploadUploaded, store.UploadFailed, store.UploadSkipped}
	data["LeadStatuses"] = []store.LeadStatus{store.LeadStatusLead, store.LeadStatusQualified, store.LeadStatusCustomer}
	return a.pageStatus(w, q, status, "googleads", data)
}

// saveGoogleAds replaces the settings with the form's (admins only). Empty secret fields keep
// the stored secrets.
func (a *App) saveGoogleAds(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden(msg(q.lang, "admin_only"))
	}
	if a.keys == nil {
		return &pageError{status: http.StatusServiceUnavailable, msg: "the customers' keys are not available here"}
	}
	f := q.r.PostForm
	e := googleads.Edit{AdsCustomerID: strings.ReplaceAll(strings.TrimSpace(f.Get("ads_customer_id")), "-", ""),
		LoginCustomerID:  strings.ReplaceAll(strings.TrimSpace(f.Get("login_customer_id")), "-", ""),
		ConversionAction: strings.TrimSpace(f.Get("conversion_action")), ConversionName: strings.TrimSpace(f.Get("conversion_name")),
		Currency: strings.ToUpper(strings.TrimSpace(f.Get("currency"))), TimeZone: strings.TrimSpace(f.Get("time_zone")),
		ClientID: strings.TrimSpace(f.Get("client_id")), Disabled: f.Get("disabled") != "",
		Rule: store.AdsRule{Value: store.AdsValueSource(f.Get("value"))}}
	for _, s := range []struct {
		name string
		dst  **string
	}{{"client_secret", &e.ClientSecret}, {"refresh_token", &e.RefreshToken}} {
		if v := f.Get(s.name); v != "" {
			*s.dst = &v
		}
	}
	var err error
	if v := strings.TrimSpace(f.Get("min_talk_seconds")); v != "" {
		if e.Rule.MinTalkSeconds, err = strconv.Atoi(v); err != nil {
			return a.googleAdsView(w, q, http.StatusBadRequest, map[string]any{"Error": "rule.min_talk_seconds: must be a whole number"})
		}
	}
	if v := strings.TrimSpace(f.Get("fixed_value")); v != "" {
		if e.Rule.FixedValue, err = strconv.ParseFloat(strings.ReplaceAll(v, ",", "."), 64); err != nil {
			return a.googleAdsView(w, q, http.StatusBadRequest, map[string]any{"Error": "rule.fixed_value: must be a number"})
		}
	}
	for _, s := range f["lead_status"] {
		ls, err := store.ParseLeadStatus(s)
		if err != nil {
			return errBadInput("lead_status: " + err.Error())
		}
		e.Rule.LeadStatuses = append(e.Rule.LeadStatuses, ls)
	}
	key, err := a.keys.Get(q.customer.ID)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	var old *store.GoogleAds
	if err := a.db.View(func(tx *store.Tx) error {
		g, err := tx.GoogleAds(q.customer.ID)
		if err == nil {
			old = &g
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	g, err := googleads.Apply(old, e, key, now)
	if err == nil {
		ae := store.AuditEntry{Time: now, Actor: q.actor(), Action: "googleads.update", CustomerID: q.customer.ID}
		err = a.db.Write(q.r.Context(), func(tx *store.Tx) error {
			if err := tx.PutGoogleAds(&g); err != nil {
				return err
			}
			return tx.AppendAudit(&ae)
		})
	}
	var fe *store.FieldError
	if errors.As(err, &fe) {
		// The form as sent, for the admin to correct; never the secrets.
		g.ClientID, g.SealedSecrets = e.ClientID, nil
		return a.googleAdsView(w, q, http.StatusBadRequest, map[string]any{"Error": fe.Error(), "Settings": g})
	}
	if err != nil {
		return err
	}
	http.Redirect(w, q.r, "/c/"+url.PathEscape(q.customer.ID)+"/google-ads?saved=1", http.StatusSeeOther)
	return nil
}

// conversionsCSV downloads the last 90 days' conversions in Google's import template
// (admins only: the file holds the visitors' click ids).
func (a *App) conversionsCSV(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden(msg(q.lang, "admin_only"))
	}
	now := a.now()
	var out googleads.CSV
	err := a.db.View(func(tx *store.Tx) (err error) {
		out, err = googleads.Conversions(tx, q.customer.ID, now.Add(-90*24*time.Hour), now)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &pageError{status: http.StatusNotFound, msg: msg(q.lang, "ads_none")}
	case errors.Is(err, googleads.ErrNoConversionName):
		return &pageError{status: http.StatusConflict, msg: msg(q.lang, "ads_need_name")}
	case err != nil:
		return err
	}
	if err := a.auditWrite(q, "googleads.export"); err != nil {
		return err
	}
	return out.Serve(w)
}
