package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Google Ads settings and upload states on PostgreSQL (tables googleads_settings,
// googleads_uploads: migrations/00006_users_googleads.sql), with googleads.go's semantics.
// The sealed credentials are a bytea column as they came (sealed with the customer's key by
// integrations/googleads); the store neither opens nor seals them.

// pgAdsDetail is the part of the settings no query looks into: their jsonb column.
type pgAdsDetail struct {
	LoginCustomerID string  `json:"login_customer_id,omitempty"`
	ConversionName  string  `json:"conversion_name,omitempty"`
	Currency        string  `json:"currency"`
	TimeZone        string  `json:"time_zone,omitempty"`
	Rule            AdsRule `json:"rule"`
}

const pgAdsColumns = `customer_id, ads_customer_id, conversion_action, client_id, sealed_secrets, disabled, created, updated, detail`

func scanGoogleAds(r pgx.Row) (GoogleAds, error) {
	var (
		g                GoogleAds
		created, updated *time.Time
		detail           []byte
	)
	if err := r.Scan(&g.CustomerID, &g.AdsCustomerID, &g.ConversionAction, &g.ClientID, &g.SealedSecrets, &g.Disabled,
		&created, &updated, &detail); err != nil {
		return GoogleAds{}, err
	}
	var d pgAdsDetail
	if err := json.Unmarshal(detail, &d); err != nil {
		return GoogleAds{}, fmt.Errorf("decode google ads settings of %q: %w", g.CustomerID, err)
	}
	if len(g.SealedSecrets) == 0 {
		g.SealedSecrets = nil
	}
	g.LoginCustomerID, g.ConversionName, g.Currency, g.TimeZone, g.Rule = d.LoginCustomerID, d.ConversionName, d.Currency, d.TimeZone, d.Rule
	g.Created, g.Updated = pgTimeOf(created), pgTimeOf(updated)
	return g, nil
}

// putGoogleAds writes a customer's settings (googleads.go's PutGoogleAds has checked them).
func (t *pgTx) putGoogleAds(g *GoogleAds) error {
	if err := t.customerExists(g.CustomerID); err != nil {
		return err
	}
	detail, err := json.Marshal(pgAdsDetail{LoginCustomerID: g.LoginCustomerID, ConversionName: g.ConversionName,
		Currency: g.Currency, TimeZone: g.TimeZone, Rule: g.Rule})
	if err != nil {
		return fmt.Errorf("encode google ads settings of %q: %w", g.CustomerID, err)
	}
	var sealed []byte
	if len(g.SealedSecrets) > 0 {
		sealed = g.SealedSecrets
	}
	// Check has refused control characters in the free text: pgClean only mends bad UTF-8.
	return t.exec(nil, `INSERT INTO googleads_settings (`+pgAdsColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (customer_id) DO UPDATE SET ads_customer_id = excluded.ads_customer_id,
			conversion_action = excluded.conversion_action, client_id = excluded.client_id,
			sealed_secrets = excluded.sealed_secrets, disabled = excluded.disabled, created = excluded.created,
			updated = excluded.updated, detail = excluded.detail`,
		g.CustomerID, g.AdsCustomerID, g.ConversionAction, pgClean(g.ClientID), sealed, g.Disabled,
		pgTime(g.Created), pgTime(g.Updated), detail)
}

func (t *pgTx) googleAds(customerID string) (GoogleAds, error) {
	if !pgKey(customerID) {
		return GoogleAds{}, ErrNotFound
	}
	var g GoogleAds
	err := t.rowFn(`SELECT `+pgAdsColumns+` FROM googleads_settings WHERE customer_id = $1`+t.forUpdate(), []any{customerID},
		func(r pgx.Row) (err error) { g, err = scanGoogleAds(r); return err })
	if err != nil {
		return GoogleAds{}, err
	}
	return g, nil
}

func (t *pgTx) deleteGoogleAds(customerID string) error {
	if _, err := t.googleAds(customerID); err != nil {
		return err
	}
	return t.exec(nil, `DELETE FROM googleads_settings WHERE customer_id = $1`, customerID)
}

func (t *pgTx) allGoogleAds() ([]GoogleAds, error) {
	var all []GoogleAds
	err := t.query(`SELECT `+pgAdsColumns+` FROM googleads_settings ORDER BY customer_id`, nil, func(r pgx.Rows) error {
		g, err := scanGoogleAds(r)
		all = append(all, g)
		return err
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// --- upload states

const pgUploadColumns = `customer_id, call_id, state, reason, error, attempts, next_attempt, value, currency, updated`

func scanUpload(r pgx.Row) (ConversionUpload, error) {
	var (
		u             ConversionUpload
		state         string
		next, updated *time.Time
	)
	if err := r.Scan(&u.CustomerID, &u.CallID, &state, &u.Reason, &u.Error, &u.Attempts, &next, &u.Value, &u.Currency, &updated); err != nil {
		return ConversionUpload{}, err
	}
	u.State, u.NextAttempt, u.Updated = UploadState(state), pgTimeOf(next), pgTimeOf(updated)
	return u, nil
}

// putConversionUpload writes a call's upload state (googleads.go's PutConversionUpload has
// checked it and cut its error).
func (t *pgTx) putConversionUpload(u *ConversionUpload) error {
	return t.exec(nil, `INSERT INTO googleads_uploads (`+pgUploadColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (customer_id, call_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
			error = excluded.error, attempts = excluded.attempts, next_attempt = excluded.next_attempt,
			value = excluded.value, currency = excluded.currency, updated = excluded.updated`,
		u.CustomerID, u.CallID, pgClean(string(u.State)), pgClean(u.Reason), pgClean(u.Error), u.Attempts,
		pgTime(u.NextAttempt), u.Value, pgClean(u.Currency), pgTime(u.Updated))
}

func (t *pgTx) conversionUpload(customerID, callID string) (ConversionUpload, error) {
	if !pgKey(customerID) || !pgKey(callID) {
		return ConversionUpload{}, ErrNotFound
	}
	var u ConversionUpload
	err := t.rowFn(`SELECT `+pgUploadColumns+` FROM googleads_uploads WHERE customer_id = $1 AND call_id = $2`+t.forUpdate(),
		[]any{customerID, callID}, func(r pgx.Row) (err error) { u, err = scanUpload(r); return err })
	if err != nil {
		return ConversionUpload{}, err
	}
	return u, nil
}

// pgUploadsPage is how many upload states ConversionUploads reads in one query: fn is
// called between queries, never while one is being read, so it may use the transaction.
const pgUploadsPage = 500

// conversionUploads is googleads.go's ConversionUploads: the call ids after `after`, in
// byte order (COLLATE "C", as bbolt's keys), a page at a time.
func (t *pgTx) conversionUploads(customerID, after string, fn func(ConversionUpload) bool) error {
	if !pgKey(customerID) {
		return nil
	}
	// A call id is valid UTF-8 without NUL; an `after` that is not is compared by its bytes.
	cmp := `call_id > $2`
	var afterArg any = after
	if !pgKey(after) {
		cmp, afterArg = `convert_to(call_id, 'UTF8') > $2::bytea`, []byte(after)
	}
	for {
		var page []ConversionUpload
		err := t.query(`SELECT `+pgUploadColumns+` FROM googleads_uploads WHERE customer_id = $1 AND `+cmp+
			` ORDER BY call_id LIMIT $3`, []any{customerID, afterArg, pgUploadsPage}, func(r pgx.Rows) error {
			u, err := scanUpload(r)
			page = append(page, u)
			return err
		})
		if err != nil {
			return err
		}
		for _, u := range page {
			if !fn(u) {
				return nil
			}
		}
		if len(page) < pgUploadsPage {
			return nil
		}
		cmp, afterArg = `call_id > $2`, page[len(page)-1].CallID
	}
}

// conversionCandidates is googleads.go's ConversionCandidates with the upload states of a
// page of calls read in one query, and the sessions of the candidates only.
func (t *pgTx) conversionCandidates(tx *Tx, customerID string, rule *AdsRule, since, now time.Time, limit int) ([]ConversionCandidate, error) {
	var out []ConversionCandidate
	ended := false
	f := CallFilter{CustomerID: customerID, From: since, Active: &ended, Limit: 500}
	for {
		calls, next, err := tx.Calls(f)
		if err != nil {
			return nil, err
		}
		var ids []string
		for i := range calls {
			if rule.Matches(&calls[i]) {
				ids = append(ids, calls[i].ID)
			}
		}
		uploads := make(map[string]ConversionUpload, len(ids))
		if len(ids) > 0 {
			err := t.query(`SELECT `+pgUploadColumns+` FROM googleads_uploads WHERE customer_id = $1 AND call_id = ANY($2)`,
				[]any{customerID, ids}, func(r pgx.Rows) error {
					u, err := scanUpload(r)
					uploads[u.CallID] = u
					return err
				})
			if err != nil {
				return nil, err
			}
		}
		for i := range calls {
			c := &calls[i]
			if !slices.Contains(ids, c.ID) {
				continue
			}
			u := uploads[c.ID]
			if u.State.Final() || u.NextAttempt.After(now) {
				continue
			}
			cand, err := tx.candidate(c, u)
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

// deleteCallUpload queues the deletion of a call's upload state (DeleteCall: it may quote
// Google's error about the call's click).
func (t *pgTx) deleteCallUpload(customerID, callID string) error {
	return t.exec(nil, `DELETE FROM googleads_uploads WHERE customer_id = $1 AND call_id = $2`, customerID, callID)
}
