package googleads

import (
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Edit is a change of a customer's settings, as the admin API's PUT and the web app's form
// make it: every field replaces the stored one, but for the secrets, which stay as they are
// when nil.
type Edit struct {
	AdsCustomerID    string
	LoginCustomerID  string
	ConversionAction string
	ConversionName   string
	Currency         string
	TimeZone         string
	ClientID         string
	ClientSecret     *string
	RefreshToken     *string
	Rule             store.AdsRule
	Disabled         bool
}

// MaxSecret bounds the client secret and the refresh token (characters).
const MaxSecret = 1024

// Apply makes the settings e asks for out of the stored ones (old, nil if the customer has
// none), sealing the secrets with the customer's key. A *store.FieldError names the first
// bad field; the settings' own checks (store.GoogleAds.Check) run when they are written.
func Apply(old *store.GoogleAds, e Edit, key *keyring.Key, now time.Time) (store.GoogleAds, error) {
	bad := func(field, why string) error { return &store.FieldError{Field: field, Reason: why} }
	for _, f := range []struct {
		name string
		v    *string
	}{{"client_secret", e.ClientSecret}, {"refresh_token", e.RefreshToken}} {
		if f.v != nil && (*f.v == "" || len(*f.v) > MaxSecret || !printable(*f.v)) {
			return store.GoogleAds{}, bad(f.name, "must be 1 to "+strconv.Itoa(MaxSecret)+" printable characters")
		}
	}
	g := store.GoogleAds{CustomerID: key.CustomerID(), AdsCustomerID: e.AdsCustomerID, LoginCustomerID: e.LoginCustomerID,
		ConversionAction: e.ConversionAction, ConversionName: e.ConversionName, Currency: e.Currency, TimeZone: e.TimeZone,
		ClientID: e.ClientID, Rule: e.Rule, Disabled: e.Disabled, Created: now}
	var sec Secrets
	if old != nil {
		g.Created, g.Updated = old.Created, now
		if len(old.SealedSecrets) > 0 {
			var err error
			if sec, err = Unseal(key, old.SealedSecrets); err != nil {
				return g, err
			}
		}
	}
	if e.ClientSecret != nil {
		sec.ClientSecret = *e.ClientSecret
	}
	if e.RefreshToken != nil {
		sec.RefreshToken = *e.RefreshToken
	}
	switch {
	case e.ClientID == "" && (e.ClientSecret != nil || e.RefreshToken != nil):
		return g, bad("client_id", "required with client_secret and refresh_token")
	case e.ClientID != "" && sec.ClientSecret == "":
		return g, bad("client_secret", "required with client_id")
	case e.ClientID != "" && sec.RefreshToken == "":
		return g, bad("refresh_token", "required with client_id")
	case e.ClientID != "":
		var err error
		if g.SealedSecrets, err = Seal(key, sec); err != nil {
			return g, err
		}
	}
	return g, nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ErrNoConversionName is CSV's answer for settings without a conversion name: the import
// template names the conversion action by it.
var ErrNoConversionName = &store.FieldError{Field: "conversion_name", Reason: "set it for the CSV"}

// plainClickID is a gclid that can go into a spreadsheet as it is: Google's click ids are
// URL-safe base64. Anything else (a visitor can put any text in the landing URL) is left
// out, so that no cell starts a formula.
var plainClickID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// CSV is a customer's conversions in Google's offline conversion import template.
type CSV struct {
	TimeZone string     // the Parameters row's zone
	Rows     [][]string // Google Click ID, Conversion Name, Conversion Time, Value, Currency
}

// Conversions reads the customer's conversions among the ended calls that started in
// [from, to): the calls that match the rule, have a gclid and the visitor's ad consent.
// Only the gclid: the template has no column for gbraid or wbraid. store.ErrNotFound if the
// customer has no settings, ErrNoConversionName if they name no conversion.
func Conversions(tx *store.Tx, customerID string, from, to time.Time) (CSV, error) {
	out := CSV{TimeZone: "Etc/UTC"}
	g, err := tx.GoogleAds(customerID)
	if err != nil {
		return out, err
	}
	if g.ConversionName == "" {
		return out, ErrNoConversionName
	}
	loc := time.UTC
	if g.TimeZone != "" {
		if loc, err = time.LoadLocation(g.TimeZone); err != nil {
			return out, err
		}
		out.TimeZone = g.TimeZone
	}
	ended := false
	f := store.CallFilter{CustomerID: customerID, From: from, To: to, Active: &ended, Limit: 1000}
	for {
		calls, next, err := tx.Calls(f)
		if err != nil {
			return out, err
		}
		for i := range calls {
			c := &calls[i]
			if !g.Rule.Matches(c) || c.SessionID == "" {
				continue
			}
			s, err := tx.Session(c.SessionID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return out, err
			}
			if s.AdConsent != store.ConsentGranted || !plainClickID.MatchString(s.Gclid) {
				continue
			}
			value, currency := "", ""
			if v := g.Rule.ValueOf(c); v > 0 {
				value, currency = strconv.FormatFloat(v, 'f', -1, 64), g.Currency
			}
			out.Rows = append(out.Rows, []string{s.Gclid, g.ConversionName, c.Start.In(loc).Format(time.DateTime), value, currency})
		}
		if next == "" {
			return out, nil
		}
		f.Before = next
	}
}

// Serve answers the CSV as a download, never cached.
func (c *CSV) Serve(w http.ResponseWriter) error {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="conversions.csv"`)
	h.Set("Cache-Control", "no-store")
	return c.Write(w)
}

// Write writes the CSV: the Parameters row, the header row and the conversions.
func (c *CSV) Write(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"Parameters:TimeZone=" + c.TimeZone})
	cw.Write([]string{"Google Click ID", "Conversion Name", "Conversion Time", "Conversion Value", "Conversion Currency"})
	return cw.WriteAll(c.Rows)
}
