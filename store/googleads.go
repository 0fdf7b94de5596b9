package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Google Ads offline conversions: a customer's settings and each call's upload state
// (package integrations/googleads uploads; docs/googleads.md).
//
// googleads_settings holds one value per customer with settings, keyed customer 0x00 (so
// the purge's prefix finds it): the Google Ads ids, the conversion rule and the OAuth2
// client secret and refresh token sealed with the customer's key (SealedSecrets: the store
// never sees them in the clear; integrations/googleads seals and opens them).
// googleads_uploads holds a call's upload state, keyed customer 0x00 call id.
//
// Open makes both buckets (store.go's addedBuckets); ensureAdsBucket still makes one a write
// needs in a file opened without it (a file an earlier build wrote, read by tests).

var (
	bucketAdsSettings = []byte("googleads_settings")
	bucketAdsUploads  = []byte("googleads_uploads")
)

// Limits of the Google Ads settings.
const (
	// MaxAdsConversionValue bounds a fixed conversion value.
	MaxAdsConversionValue = MaxCallValue
	// MaxAdsSealed bounds the sealed secrets (bytes).
	MaxAdsSealed   = 4096
	maxAdsClientID = 256
	maxAdsError    = 1000
)

var (
	adsCustomerID = regexp.MustCompile(`^[0-9]{10}$`)
	adsAction     = regexp.MustCompile(`^customers/[0-9]{10}/conversionActions/[0-9]{1,19}$`)
	adsCurrency   = regexp.MustCompile(`^[A-Z]{3}$`)
)

// AdsValueSource is where a conversion's value comes from.
type AdsValueSource string

// The value sources.
const (
	AdsValueFixed AdsValueSource = "fixed" // the rule's FixedValue
	AdsValueCall  AdsValueSource = "call"  // the call's Value field (the customer's annotation)
)

// AdsRule says which calls count as conversions and what each is worth. A call counts when
// it was answered with at least MinTalkSeconds of talk (MinTalkSeconds > 0), or when the
// customer marked it with one of LeadStatuses; at least one of the two is set.
type AdsRule struct {
	MinTalkSeconds int            `json:"min_talk_seconds,omitempty"`
	LeadStatuses   []LeadStatus   `json:"lead_statuses,omitempty"`
	Value          AdsValueSource `json:"value"`
	FixedValue     float64        `json:"fixed_value,omitempty"`
}

// Matches tells whether the ended call c counts as a conversion under r.
func (r *AdsRule) Matches(c *Call) bool {
	if c.End.IsZero() {
		return false
	}
	if r.MinTalkSeconds > 0 && !c.Answer.IsZero() && c.TalkSeconds >= float64(r.MinTalkSeconds) {
		return true
	}
	return c.LeadStatus != LeadStatusNone && slices.Contains(r.LeadStatuses, c.LeadStatus)
}

// ValueOf is the conversion value of c under r.
func (r *AdsRule) ValueOf(c *Call) float64 {
	if r.Value == AdsValueCall {
		return c.Value
	}
	return r.FixedValue
}

// GoogleAds is a customer's Google Ads offline conversion settings.
type GoogleAds struct {
	CustomerID string `json:"customer_id"`
	// AdsCustomerID is the Google Ads account's customer id: ten digits, no dashes.
	AdsCustomerID string `json:"ads_customer_id"`
	// LoginCustomerID, if set, is the manager account the credentials act through.
	LoginCustomerID string `json:"login_customer_id,omitempty"`
	// ConversionAction is the conversion action's resource name,
	// customers/{AdsCustomerID}/conversionActions/{id}.
	ConversionAction string `json:"conversion_action"`
	// ConversionName is the conversion action's name, as the CSV import names it.
	ConversionName string `json:"conversion_name,omitempty"`
	// Currency is the ISO 4217 code of the conversion values.
	Currency string `json:"currency"`
	// TimeZone is the IANA zone conversion times are written in (the CSV's
	// Parameters:TimeZone); "" is UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// ClientID is the OAuth2 client id (not a secret). Without it and SealedSecrets nothing
	// is uploaded: the customer imports the conversions' CSV by hand.
	ClientID string `json:"client_id,omitempty"`
	// SealedSecrets are the OAuth2 client secret and refresh token, sealed with the
	// customer's key.
	SealedSecrets []byte    `json:"sealed_secrets,omitempty"`
	Rule          AdsRule   `json:"rule"`
	Disabled      bool      `json:"disabled,omitempty"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated,omitzero"`
}

// Check checks g's fields; a FieldError names the first bad one.
func (g *GoogleAds) Check() error {
	bad := func(field, why string) error { return &FieldError{Field: field, Reason: why} }
	switch {
	case !adsCustomerID.MatchString(g.AdsCustomerID):
		return bad("ads_customer_id", "must be the ten digits of a Google Ads customer id, without dashes")
	case g.LoginCustomerID != "" && !adsCustomerID.MatchString(g.LoginCustomerID):
		return bad("login_customer_id", "must be ten digits, without dashes")
	case !adsAction.MatchString(g.ConversionAction):
		return bad("conversion_action", "must be a resource name customers/{id}/conversionActions/{id}")
	case g.ConversionAction[len("customers/"):len("customers/")+10] != g.AdsCustomerID:
		return bad("conversion_action", "must belong to ads_customer_id")
	case len(g.ConversionName) > 100 || !plainText(g.ConversionName):
		return bad("conversion_name", "must be at most 100 printable characters")
	case !adsCurrency.MatchString(g.Currency):
		return bad("currency", "must be an ISO 4217 code such as EUR")
	case len(g.ClientID) > maxAdsClientID || !plainText(g.ClientID) || (g.ClientID == "") != (len(g.SealedSecrets) == 0):
		return bad("client_id", "must be the OAuth2 client id, set together with the client secret and refresh token")
	case len(g.SealedSecrets) > MaxAdsSealed:
		return bad("client_secret", "too long")
	}
	if g.TimeZone != "" {
		if _, err := time.LoadLocation(g.TimeZone); err != nil || g.TimeZone == "Local" {
			return bad("time_zone", "must be an IANA time zone such as Europe/Amsterdam")
		}
	}
	r := &g.Rule
	switch {
	case r.MinTalkSeconds < 0 || r.MinTalkSeconds > 86400:
		return bad("rule.min_talk_seconds", "must be 0 to 86400")
	case r.MinTalkSeconds == 0 && len(r.LeadStatuses) == 0:
		return bad("rule", "must set min_talk_seconds or lead_statuses")
	case r.Value != AdsValueFixed && r.Value != AdsValueCall:
		return bad("rule.value", `must be "fixed" or "call"`)
	case r.FixedValue < 0 || r.FixedValue > MaxAdsConversionValue || r.FixedValue != r.FixedValue:
		return bad("rule.fixed_value", fmt.Sprintf("must be 0 to %g", float64(MaxAdsConversionValue)))
	}
	for _, s := range r.LeadStatuses {
		if s != LeadStatusLead && s != LeadStatusQualified && s != LeadStatusCustomer {
			return bad("rule.lead_statuses", "each must be lead, qualified or customer")
		}
	}
	return nil
}

// plainText tells whether s holds no control characters.
func plainText(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ensureAdsBucket answers the bucket called name, making it if the file has none.
func (t *Tx) ensureAdsBucket(name []byte) (bucket, error) {
	if b := t.tx.Bucket(name); b.b != nil {
		return b, nil
	}
	if _, err := t.tx.tx.CreateBucket(name); err != nil {
		return bucket{}, fmt.Errorf("create bucket %s: %w", name, err)
	}
	return t.tx.Bucket(name), nil
}

// adsKey is the key of a customer's settings.
func adsKey(customerID string) []byte { return compose(customerID, "") }

// PutGoogleAds stores a customer's settings after Check; the customer must exist.
func (t *Tx) PutGoogleAds(g *GoogleAds) error {
	if err := g.Check(); err != nil {
		return err
	}
	if t.pg != nil {
		return t.pg.putGoogleAds(g)
	}
	if _, err := t.Customer(g.CustomerID); err != nil {
		return fmt.Errorf("customer %q: %w", g.CustomerID, err)
	}
	b, err := t.ensureAdsBucket(bucketAdsSettings)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return b.Put(adsKey(g.CustomerID), raw)
}

// GoogleAds reads a customer's settings; ErrNotFound if it has none.
func (t *Tx) GoogleAds(customerID string) (GoogleAds, error) {
	if t.pg != nil {
		return t.pg.googleAds(customerID)
	}
	var g GoogleAds
	b := t.tx.Bucket(bucketAdsSettings)
	if b.b == nil {
		return g, ErrNotFound
	}
	raw := b.Get(adsKey(customerID))
	if raw == nil {
		return g, ErrNotFound
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return g, fmt.Errorf("decode google ads settings of %q: %w", customerID, err)
	}
	return g, nil
}

// DeleteGoogleAds removes a customer's settings (the upload states stay, so no call is
// uploaded twice if settings come back); ErrNotFound if it has none.
func (t *Tx) DeleteGoogleAds(customerID string) error {
	if t.pg != nil {
		return t.pg.deleteGoogleAds(customerID)
	}
	b := t.tx.Bucket(bucketAdsSettings)
	if b.b == nil || b.Get(adsKey(customerID)) == nil {
		return ErrNotFound
	}
	return b.Delete(adsKey(customerID))
}

// Uploads tells whether the settings upload through the API (they hold OAuth2 credentials)
// and are not disabled.
func (g *GoogleAds) Uploads() bool {
	return !g.Disabled && g.ClientID != "" && len(g.SealedSecrets) > 0
}

// AllGoogleAds lists the settings of every customer that has them, enabled or not.
func (t *Tx) AllGoogleAds() ([]GoogleAds, error) {
	if t.pg != nil {
		return t.pg.allGoogleAds()
	}
	b := t.tx.Bucket(bucketAdsSettings)
	if b.b == nil {
		return nil, nil
	}
	var all []GoogleAds
	err := b.ForEach(func(k, v []byte) error {
		var g GoogleAds
		if err := json.Unmarshal(v, &g); err != nil {
			return fmt.Errorf("decode google ads settings %q: %w", k, err)
		}
		all = append(all, g)
		return nil
	})
	return all, err
}

// UploadState is where a call's conversion upload stands; the zero value is unknown (no
// record).
type UploadState string

// The upload states.
const (
	UploadUnknown  UploadState = ""
	UploadPending  UploadState = "pending"  // to be uploaded (again, after NextAttempt)
	UploadUploaded UploadState = "uploaded" // Google accepted it
	UploadFailed   UploadState = "failed"   // Google refused it; Error says why. Not retried
	UploadSkipped  UploadState = "skipped"  // not uploaded; Reason says why (no consent, no click id)
)

// String names the state; "unknown" for the zero value.
func (s UploadState) String() string {
	if s == UploadUnknown {
		return "unknown"
	}
	return string(s)
}

// Final tells whether the state is one the uploader does not change.
func (s UploadState) Final() bool {
	return s == UploadUploaded || s == UploadFailed || s == UploadSkipped
}

// The reasons of a skipped upload.
const (
	SkipNoClickID = "no_click_id" // the call's session has no gclid, gbraid or wbraid
	SkipNoConsent = "no_consent"  // the visitor did not grant ad consent
	SkipNoSession = "no_session"  // the call was not attributed to a session
	SkipTooOld    = "too_old"     // the click is older than Google takes (90 days)
	SkipNoValue   = "no_value"    // the rule takes the call's value and it has none
)

// ConversionUpload is a call's conversion upload state.
type ConversionUpload struct {
	CustomerID string      `json:"customer_id"`
	CallID     string      `json:"call_id"`
	State      UploadState `json:"state"`
	Reason     string      `json:"reason,omitempty"`
	// Error is Google's error for this conversion (a partial failure), or the last
	// transport error of a pending one.
	Error       string    `json:"error,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	Value       float64   `json:"value,omitempty"`
	Currency    string    `json:"currency,omitempty"`
	Updated     time.Time `json:"updated"`
}

// PutConversionUpload stores a call's upload state.
func (t *Tx) PutConversionUpload(u *ConversionUpload) error {
	if u.CustomerID == "" || u.CallID == "" || u.State == UploadUnknown {
		return fmt.Errorf("%w: conversion upload needs customer, call and state", ErrInvalid)
	}
	if !pgKey(u.CustomerID) || !pgKey(u.CallID) {
		return fmt.Errorf("%w: conversion upload's customer and call must be UTF-8 without NUL", ErrInvalid)
	}
	if len(u.Error) > maxAdsError {
		u.Error = u.Error[:maxAdsError]
	}
	if t.pg != nil {
		return t.pg.putConversionUpload(u)
	}
	b, err := t.ensureAdsBucket(bucketAdsUploads)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return b.Put(compose(u.CustomerID, u.CallID), raw)
}

// ConversionUpload reads a call's upload state; ErrNotFound if it has none.
func (t *Tx) ConversionUpload(customerID, callID string) (ConversionUpload, error) {
	if t.pg != nil {
		return t.pg.conversionUpload(customerID, callID)
	}
	var u ConversionUpload
	b := t.tx.Bucket(bucketAdsUploads)
	if b.b == nil {
		return u, ErrNotFound
	}
	raw := b.Get(compose(customerID, callID))
	if raw == nil {
		return u, ErrNotFound
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, fmt.Errorf("decode conversion upload %q: %w", callID, err)
	}
	return u, nil
}

// ConversionUploads calls fn with a customer's upload states whose call ids sort after
// after ("" for all), in call id order (oldest call first), until fn answers false.
func (t *Tx) ConversionUploads(customerID, after string, fn func(ConversionUpload) bool) error {
	if t.pg != nil {
		return t.pg.conversionUploads(customerID, after, fn)
	}
	b := t.tx.Bucket(bucketAdsUploads)
	if b.b == nil {
		return nil
	}
	prefix := compose(customerID, "")
	c := b.Cursor()
	k, v := c.Seek(compose(customerID, after))
	if after != "" && k != nil && bytes.Equal(k, compose(customerID, after)) {
		k, v = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var u ConversionUpload
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("decode conversion upload %q: %w", k, err)
		}
		if !fn(u) {
			return nil
		}
	}
	return nil
}

// ConversionCandidate is an ended call that matches its customer's rule and has no final
// upload state, with its session (zero if the call has none or the session is gone) and
// its current state (zero if none).
type ConversionCandidate struct {
	Call    Call
	Session Session
	Upload  ConversionUpload
}

// ConversionCandidates walks the customer's ended calls that started at or after since,
// newest first, and answers those rule matches whose upload state is not final and whose
// NextAttempt is not after now, at most limit of them.
func (t *Tx) ConversionCandidates(customerID string, rule *AdsRule, since, now time.Time, limit int) ([]ConversionCandidate, error) {
	if t.pg != nil {
		return t.pg.conversionCandidates(t, customerID, rule, since, now, limit)
	}
	var out []ConversionCandidate
	ended := false
	f := CallFilter{CustomerID: customerID, From: since, Active: &ended, Limit: 500}
	for {
		calls, next, err := t.Calls(f)
		if err != nil {
			return nil, err
		}
		for i := range calls {
			c := &calls[i]
			if !rule.Matches(c) {
				continue
			}
			u, err := t.ConversionUpload(customerID, c.ID)
			if err != nil && err != ErrNotFound {
				return nil, err
			}
			if u.State.Final() || u.NextAttempt.After(now) {
				continue
			}
			cand, err := t.candidate(c, u)
			if err != nil {
				return nil, err
			}
			out = append(out, cand)
			if len(out) == limit {
				return out, nil
			}
		}
		if next == "" {
			return out, nil
		}
		f.Before = next
	}
}

// purgeGoogleAds deletes the customer's settings and upload states, in bounded
// transactions (lifecycle.go).
func (p *purge) purgeGoogleAds() error {
	for _, name := range [][]byte{bucketAdsSettings, bucketAdsUploads} {
		for {
			n := 0
			err := p.db.Write(p.ctx, func(tx *Tx) error {
				n = 0
				b := tx.tx.Bucket(name)
				if b.b == nil {
					return nil
				}
				var err error
				n, err = deletePrefix(b, p.prefix, p.batch, nil)
				return err
			})
			if err != nil {
				return fmt.Errorf("purge %s of %s: %w", name, p.customerID, err)
			}
			if n < p.batch {
				break
			}
		}
	}
	return nil
}

// candidate is call c with its upload state u and its session, if that is still kept.
func (t *Tx) candidate(c *Call, u ConversionUpload) (ConversionCandidate, error) {
	cand := ConversionCandidate{Call: *c, Upload: u}
	if c.SessionID != "" {
		s, err := t.Session(c.SessionID)
		switch {
		case err == nil:
			cand.Session = s
		case err != ErrNotFound:
			return cand, err
		}
	}
	return cand, nil
}
