package api

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

const (
	maxBody  = 16 << 10
	maxURL   = 2048
	maxParam = 256
)

// sessionRequest is the body of POST /v1/sessions.
type sessionRequest struct {
	SiteKey     string `json:"site_key"`
	SessionID   string `json:"session_id"`
	LandingURL  string `json:"landing_url"`
	Referrer    string `json:"referrer"`
	UTMSource   string `json:"utm_source"`
	UTMMedium   string `json:"utm_medium"`
	UTMCampaign string `json:"utm_campaign"`
	UTMTerm     string `json:"utm_term"`
	UTMContent  string `json:"utm_content"`
	Gclid       string `json:"gclid"`
	Gbraid      string `json:"gbraid"`
	Wbraid      string `json:"wbraid"`
}

// sessionBody is the body of POST /v1/sessions: the session request and the visitor's ad
// consent the script read from the page, "granted", "denied", "unknown" or absent
// (docs/googleads.md). A body with ad_consent is read by encoding/json: the plain reader
// (fastjson.go) knows the request's fields only.
type sessionBody struct {
	SiteKey     string `json:"site_key"`
	SessionID   string `json:"session_id"`
	LandingURL  string `json:"landing_url"`
	Referrer    string `json:"referrer"`
	UTMSource   string `json:"utm_source"`
	UTMMedium   string `json:"utm_medium"`
	UTMCampaign string `json:"utm_campaign"`
	UTMTerm     string `json:"utm_term"`
	UTMContent  string `json:"utm_content"`
	Gclid       string `json:"gclid"`
	Gbraid      string `json:"gbraid"`
	Wbraid      string `json:"wbraid"`
	AdConsent   string `json:"ad_consent"`
}

// request is the body without the consent.
func (b *sessionBody) request() *sessionRequest {
	return &sessionRequest{b.SiteKey, b.SessionID, b.LandingURL, b.Referrer, b.UTMSource, b.UTMMedium, b.UTMCampaign,
		b.UTMTerm, b.UTMContent, b.Gclid, b.Gbraid, b.Wbraid}
}

func (s *sessionRequest) validate() error {
	if !pool.ValidSiteKey(s.SiteKey) {
		return errStatus(http.StatusBadRequest, "site_key", "site_key: missing or malformed")
	}
	for _, u := range []struct{ name, v string }{{"landing_url", s.LandingURL}, {"referrer", s.Referrer}} {
		if err := checkURL(u.name, u.v); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{
		{"session_id", s.SessionID}, {"utm_source", s.UTMSource}, {"utm_medium", s.UTMMedium},
		{"utm_campaign", s.UTMCampaign}, {"utm_term", s.UTMTerm}, {"utm_content", s.UTMContent},
		{"gclid", s.Gclid}, {"gbraid", s.Gbraid}, {"wbraid", s.Wbraid},
	} {
		if err := checkParam(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

func (s *sessionBody) validate() error {
	if err := s.request().validate(); err != nil {
		return err
	}
	if _, err := store.ParseConsent(s.AdConsent); err != nil {
		return errStatus(http.StatusBadRequest, "ad_consent", `ad_consent: must be "granted", "denied" or "unknown"`)
	}
	return nil
}

func checkURL(name, v string) error {
	if v == "" {
		return nil
	}
	if len(v) > maxURL {
		return errStatus(http.StatusBadRequest, name, fmt.Sprintf("%s: longer than %d characters", name, maxURL))
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errStatus(http.StatusBadRequest, name, name+": must be an http or https URL")
	}
	return nil
}

func checkParam(name, v string) error {
	if len(v) > maxParam {
		return errStatus(http.StatusBadRequest, name, fmt.Sprintf("%s: longer than %d characters", name, maxParam))
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errStatus(http.StatusBadRequest, name, name+": control characters are not allowed")
	}
	return nil
}

// sessionResponse is the answer to the session endpoints.
type sessionResponse struct {
	SessionID       string    `json:"session_id"`
	Number          string    `json:"number"`
	FormattedNumber string    `json:"formatted_number"`
	ExpiresAt       time.Time `json:"expires_at"`
	Channel         string    `json:"channel"`
	Campaign        string    `json:"campaign,omitempty"`
	Replace         []string  `json:"replace"`
	TouchInterval   int       `json:"touch_interval"`
}

func leaseResponse(l pool.Lease) sessionResponse {
	return sessionResponse{
		SessionID: l.SessionID, Number: l.Number, FormattedNumber: l.Formatted,
		ExpiresAt: l.Until, Channel: l.Channel, Campaign: l.Campaign,
		Replace: l.Replace, TouchInterval: 60,
	}
}

// customerFor resolves a site key and checks the request's Origin against the customer.
// Nothing is stored before it passes.
func (a *API) customerFor(w http.ResponseWriter, r *http.Request, siteKey string) (store.Customer, error) {
	c, err := a.pool.CustomerBySiteKey(siteKey)
	if err != nil {
		a.rejected.WithLabelValues("unknown_site_key").Inc()
		return c, errStatus(http.StatusNotFound, "site_key", "unknown site key")
	}
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !slices.Contains(c.AllowedOrigins, origin) {
			a.rejected.WithLabelValues("origin").Inc()
			return c, errStatus(http.StatusForbidden, "", "origin not allowed for this site key")
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	if !pool.InService(&c, a.now()) {
		return c, pool.ErrCustomerEnded
	}
	return c, nil
}

// buffer is a buffer of a.buffers (or a new one), to be given back with putBuffer.
func (a *API) buffer() *bytes.Buffer {
	if b, ok := a.buffers.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (a *API) putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 2*maxBody {
		b.Reset()
		a.buffers.Put(b)
	}
}

// readSessionRequest reads and decodes the body of the session endpoints: a plain body
// without reflection (parseSessionRequest), else with encoding/json.
func (a *API) readSessionRequest(w http.ResponseWriter, r *http.Request, req *sessionBody) error {
	if err := checkContentType(r, true); err != nil {
		return err
	}
	buf := a.buffer()
	defer a.putBuffer(buf)
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
		return err
	}
	var plain sessionRequest
	if parseSessionRequest(buf.Bytes(), &plain) {
		*req = sessionBody{plain.SiteKey, plain.SessionID, plain.LandingURL, plain.Referrer, plain.UTMSource, plain.UTMMedium,
			plain.UTMCampaign, plain.UTMTerm, plain.UTMContent, plain.Gclid, plain.Gbraid, plain.Wbraid, ""}
		return nil
	}
	return decodeJSON(buf.Bytes(), req)
}

// writeSession answers a lease as writeJSON does.
func (a *API) writeSession(w http.ResponseWriter, status int, l pool.Lease) {
	resp := leaseResponse(l)
	buf := a.buffer()
	defer a.putBuffer(buf)
	out, ok := appendSessionResponse(buf.AvailableBuffer(), &resp)
	if !ok {
		writeJSON(w, status, resp)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(out)
}

func (a *API) createSession(w http.ResponseWriter, r *http.Request) error {
	var req sessionBody
	if err := a.readSessionRequest(w, r, &req); err != nil {
		a.rejected.WithLabelValues("bad_request").Inc()
		return err
	}
	if err := req.validate(); err != nil {
		a.rejected.WithLabelValues("bad_request").Inc()
		return err
	}
	c, err := a.customerFor(w, r, req.SiteKey)
	if err != nil {
		return err
	}
	ad := admit{a: a, w: w, site: c.SiteKey, addr: a.clientAddr(r)}
	l, err := a.pool.Assign(r.Context(), c.ID, pool.Visit{
		SessionID: req.SessionID, LandingURL: req.LandingURL, Referrer: req.Referrer,
		UTMSource: req.UTMSource, UTMMedium: req.UTMMedium, UTMCampaign: req.UTMCampaign,
		UTMTerm: req.UTMTerm, UTMContent: req.UTMContent,
		Gclid: req.Gclid, Gbraid: req.Gbraid, Wbraid: req.Wbraid, AdConsent: adConsent(req.AdConsent),
		Admit: ad.check,
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if l.New {
		status = http.StatusCreated
	}
	a.writeSession(w, status, l)
	return nil
}

type touchRequest struct {
	SiteKey string `json:"site_key"`
}

func (a *API) touchSession(w http.ResponseWriter, r *http.Request) error {
	var req touchRequest
	if err := decodeBody(w, r, maxBody, &req, true); err != nil {
		return err
	}
	if !pool.ValidSiteKey(req.SiteKey) {
		return errStatus(http.StatusBadRequest, "site_key", "site_key: missing or malformed")
	}
	c, err := a.customerFor(w, r, req.SiteKey)
	if err != nil {
		return err
	}
	l, err := a.pool.Touch(r.Context(), c.ID, r.PathValue("id"))
	if err != nil {
		return err
	}
	a.writeSession(w, http.StatusOK, l)
	return nil
}

// preflight answers CORS preflights for origins that some customer allows. The script sends
// text/plain and needs none; this is for integrations that post application/json.
func (a *API) preflight(w http.ResponseWriter, r *http.Request) error {
	origin := r.Header.Get("Origin")
	for _, c := range a.pool.Customers() {
		if origin != "" && slices.Contains(c.AllowedOrigins, origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "POST")
			h.Set("Access-Control-Allow-Headers", "Content-Type")
			h.Set("Access-Control-Max-Age", "86400")
			h.Add("Vary", "Origin")
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	return errStatus(http.StatusForbidden, "", "origin not allowed")
}

func (a *API) serveScript(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", a.scriptETag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Header.Get("If-None-Match") == a.scriptETag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Write(script)
	return nil
}

// adConsent is a validated ad_consent as the store names it ("unknown" is the zero value).
func adConsent(v string) store.Consent {
	c, _ := store.ParseConsent(v)
	return c
}
