package googleads

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/trackline/trackline/internal/textutil"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// APIVersion is the Google Ads API version the uploader speaks (REST,
// POST /{APIVersion}/customers/{id}:uploadClickConversions).
const APIVersion = "v21"

// The defaults of the endpoints; tests point both at a local server.
const (
	DefaultBaseURL  = "https://googleads.googleapis.com"
	DefaultTokenURL = "https://oauth2.googleapis.com/token"
	// Scope is the OAuth2 scope of the Google Ads API.
	Scope = "https://www.googleapis.com/auth/adwords"
)

// MaxBatch is the most conversions one request carries (Google takes 2,000).
const MaxBatch = 2000

// clickWindow is how long after a click Google takes its conversion (90 days).
const clickWindow = 90 * 24 * time.Hour

// Store is what the uploader reads and writes; *store.DB is one.
type Store interface {
	View(fn func(*store.Tx) error) error
	Write(ctx context.Context, fn func(*store.Tx) error) error
	// Exclusive runs a job unless another node of the cluster runs it (store.DB.Exclusive).
	Exclusive(ctx context.Context, name string, fn func(context.Context) error) (bool, error)
}

// Keys gives a customer's key; *keyring.Keyring is one.
type Keys interface {
	Lookup(customerID string) (*keyring.Key, error)
}

// Config tunes the uploader. The zero value of a field is its default.
type Config struct {
	BaseURL  string // the API's base URL (default DefaultBaseURL)
	TokenURL string // the OAuth2 token endpoint (default DefaultTokenURL)
	// DeveloperToken is the developer-token header of every request: the operator's Google
	// Ads API developer token.
	DeveloperToken string
	Interval       time.Duration // between two rounds (default 1m)
	Batch          int           // conversions per request (default 200, at most MaxBatch)
	Timeout        time.Duration // one request (default 30s)
	// A request answered 429 or 5xx, or not answered, is made again at most Retries times
	// (default 3), after a random wait up to min(BackoffMax, BackoffBase·2^(n-1)). Calls of a
	// request that still fails stay pending, to be tried again after the same schedule
	// (counted per call), until MaxAttempts (default 20): then they are failed.
	Retries     int
	BackoffBase time.Duration // default 1s
	BackoffMax  time.Duration // default 1h
	MaxAttempts int
}

func (c *Config) defaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.TokenURL == "" {
		c.TokenURL = DefaultTokenURL
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.Batch <= 0 {
		c.Batch = 200
	}
	c.Batch = min(c.Batch, MaxBatch)
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 3
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = time.Hour
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 20
	}
}

// Option configures New.
type Option func(*Uploader)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(u *Uploader) { u.log = l } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(u *Uploader) { u.now = now } }

// WithHTTPClient sets the client of the API and token requests (tests).
func WithHTTPClient(c *http.Client) Option { return func(u *Uploader) { u.client = c } }

// WithRegisterer registers the metrics on r.
func WithRegisterer(r prometheus.Registerer) Option { return func(u *Uploader) { u.reg = r } }

// WithSleep sets how the uploader waits between retries (tests: no wait).
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(u *Uploader) { u.sleep = sleep }
}

// UserAgent is the User-Agent of every request.
const UserAgent = "trackline-googleads/1"

// Uploader uploads the customers' conversions.
type Uploader struct {
	cfg    Config
	db     Store
	keys   Keys
	log    *slog.Logger
	now    func() time.Time
	client *http.Client
	sleep  func(ctx context.Context, d time.Duration) error
	reg    prometheus.Registerer
	m      *metrics

	mu      sync.Mutex
	tokens  map[string]cachedSource // customer -> its token source
	running bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// cachedSource is a customer's token source for the settings of one Updated time.
type cachedSource struct {
	updated time.Time
	src     oauth2.TokenSource
}

// New makes an uploader.
func New(cfg Config, db Store, keys Keys, opts ...Option) (*Uploader, error) {
	cfg.defaults()
	u := &Uploader{cfg: cfg, db: db, keys: keys, log: slog.New(slog.DiscardHandler), now: time.Now,
		tokens: map[string]cachedSource{}, done: make(chan struct{})}
	for _, o := range opts {
		o(u)
	}
	u.m = newMetrics()
	if u.reg != nil {
		if err := u.m.register(u.reg); err != nil {
			return nil, err
		}
	}
	if u.client == nil {
		// A transport of its own, whose idle connections Close closes.
		u.client = &http.Client{Timeout: cfg.Timeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if u.sleep == nil {
		u.sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	return u, nil
}

// Run uploads every Interval until ctx ends or Close.
func (u *Uploader) Run(ctx context.Context) error {
	u.mu.Lock()
	if u.running || u.closed {
		u.mu.Unlock()
		return ErrRunning
	}
	u.running = true
	ctx, u.cancel = context.WithCancel(ctx)
	u.mu.Unlock()
	defer close(u.done)
	t := time.NewTicker(u.cfg.Interval)
	defer t.Stop()
	for {
		if err := u.round(ctx); err != nil && ctx.Err() == nil {
			u.log.Warn("google ads upload round", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// round is one of Run's rounds, made once per cluster: a node that finds another node's
// round running (store.DB.Exclusive, an advisory lock on PostgreSQL) skips it, so two nodes
// never upload one customer's calls at once. On bbolt it always runs.
func (u *Uploader) round(ctx context.Context) error {
	_, err := u.db.Exclusive(ctx, "google-ads-upload", u.RunOnce)
	return err
}

// Close stops Run, waits for it and closes the idle connections; it is idempotent.
func (u *Uploader) Close() error {
	u.mu.Lock()
	u.closed = true
	running, cancel := u.running, u.cancel
	u.mu.Unlock()
	if running {
		cancel()
		<-u.done
	}
	u.client.CloseIdleConnections()
	return nil
}

// RunOnce makes one round: for every customer with settings, the due calls, in batches.
func (u *Uploader) RunOnce(ctx context.Context) error {
	var all []store.GoogleAds
	if err := u.db.View(func(tx *store.Tx) (err error) { all, err = tx.AllGoogleAds(); return err }); err != nil {
		return err
	}
	var errs []error
	for i := range all {
		if !all[i].Uploads() {
			continue
		}
		if err := u.customer(ctx, &all[i]); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("customer %s: %w", all[i].CustomerID, err))
		}
	}
	return errors.Join(errs...)
}

// customer uploads one customer's due calls.
func (u *Uploader) customer(ctx context.Context, g *store.GoogleAds) error {
	loc := time.UTC
	if g.TimeZone != "" {
		l, err := time.LoadLocation(g.TimeZone)
		if err != nil {
			return err
		}
		loc = l
	}
	for {
		now := u.now()
		var cands []store.ConversionCandidate
		err := u.db.View(func(tx *store.Tx) (err error) {
			cands, err = tx.ConversionCandidates(g.CustomerID, &g.Rule, now.Add(-clickWindow), now, u.cfg.Batch)
			return err
		})
		if err != nil {
			return err
		}
		if len(cands) == 0 {
			return nil
		}
		var batch []store.ConversionCandidate
		var conv []clickConversion
		var done []store.ConversionUpload
		for _, c := range cands {
			if reason := skipReason(&c); reason != "" {
				done = append(done, store.ConversionUpload{CustomerID: g.CustomerID, CallID: c.Call.ID, State: store.UploadSkipped,
					Reason: reason, Updated: now})
				continue
			}
			batch = append(batch, c)
			conv = append(conv, conversionOf(g, &c, loc))
		}
		if len(batch) > 0 {
			done = append(done, u.upload(ctx, g, batch, conv)...)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = u.db.Write(ctx, func(tx *store.Tx) error {
			for i := range done {
				if err := tx.PutConversionUpload(&done[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range done {
			u.m.conversions.WithLabelValues(string(done[i].State)).Inc()
		}
		if len(cands) < u.cfg.Batch {
			return nil
		}
	}
}

// skipReason is why a candidate is not uploaded, "" if it is.
func skipReason(c *store.ConversionCandidate) string {
	s := &c.Session
	switch {
	case c.Call.SessionID == "" || s.ID == "":
		return store.SkipNoSession
	case s.Gclid == "" && s.Gbraid == "" && s.Wbraid == "":
		return store.SkipNoClickID
	case s.AdConsent != store.ConsentGranted:
		return store.SkipNoConsent
	case c.Call.Start.Sub(s.Created) > clickWindow:
		return store.SkipTooOld
	}
	return ""
}

// The request's JSON, as the REST reference names it (ClickConversion,
// UploadClickConversionsRequest).
type (
	uploadRequest struct {
		Conversions    []clickConversion `json:"conversions"`
		PartialFailure bool              `json:"partialFailure"`
	}
	clickConversion struct {
		Gclid              string   `json:"gclid,omitempty"`
		Gbraid             string   `json:"gbraid,omitempty"`
		Wbraid             string   `json:"wbraid,omitempty"`
		ConversionAction   string   `json:"conversionAction"`
		ConversionDateTime string   `json:"conversionDateTime"`
		ConversionValue    *float64 `json:"conversionValue,omitempty"`
		CurrencyCode       string   `json:"currencyCode,omitempty"`
		OrderID            string   `json:"orderId"`
		Consent            consent  `json:"consent"`
	}
	consent struct {
		AdUserData        string `json:"adUserData"`
		AdPersonalization string `json:"adPersonalization"`
	}
	uploadResponse struct {
		PartialFailureError *status           `json:"partialFailureError"`
		Results             []json.RawMessage `json:"results"`
	}
	status struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Errors []struct {
				ErrorCode map[string]string `json:"errorCode"`
				Message   string            `json:"message"`
				Location  struct {
					FieldPathElements []struct {
						FieldName string `json:"fieldName"`
						Index     *int   `json:"index"`
					} `json:"fieldPathElements"`
				} `json:"location"`
			} `json:"errors"`
		} `json:"details"`
	}
)

// DateTimeLayout is Google's conversion time: "yyyy-mm-dd hh:mm:ss+|-hh:mm".
const DateTimeLayout = "2006-01-02 15:04:05-07:00"

// conversionOf is the conversion of a candidate. One click id goes: the gclid if there is
// one, else the gbraid, else the wbraid (Google takes exactly one).
func conversionOf(g *store.GoogleAds, c *store.ConversionCandidate, loc *time.Location) clickConversion {
	cv := clickConversion{ConversionAction: g.ConversionAction, OrderID: c.Call.ID,
		ConversionDateTime: c.Call.Start.In(loc).Format(DateTimeLayout),
		Consent:            consent{AdUserData: "GRANTED", AdPersonalization: "GRANTED"}}
	switch s := &c.Session; {
	case s.Gclid != "":
		cv.Gclid = s.Gclid
	case s.Gbraid != "":
		cv.Gbraid = s.Gbraid
	default:
		cv.Wbraid = s.Wbraid
	}
	if v := g.Rule.ValueOf(&c.Call); v > 0 {
		cv.ConversionValue, cv.CurrencyCode = &v, g.Currency
	}
	return cv
}

// upload sends one batch, with retries, and answers each call's new state.
func (u *Uploader) upload(ctx context.Context, g *store.GoogleAds, batch []store.ConversionCandidate, conv []clickConversion) []store.ConversionUpload {
	out := make([]store.ConversionUpload, len(batch))
	for i := range batch {
		out[i] = store.ConversionUpload{CustomerID: g.CustomerID, CallID: batch[i].Call.ID, Attempts: batch[i].Upload.Attempts + 1}
		if v := conv[i].ConversionValue; v != nil {
			out[i].Value, out[i].Currency = *v, conv[i].CurrencyCode
		}
	}
	resp, err := u.send(ctx, g, conv)
	now := u.now()
	for i := range out {
		out[i].Updated = now
	}
	if err != nil {
		for i := range out {
			out[i].State, out[i].Error = store.UploadPending, textutil.Clip(err.Error(), 500)
			if out[i].Attempts >= u.cfg.MaxAttempts {
				out[i].State = store.UploadFailed
				continue
			}
			out[i].NextAttempt = now.Add(u.backoff(out[i].Attempts))
		}
		return out
	}
	failed := partialFailures(resp.PartialFailureError)
	for i := range out {
		if msg, ok := failed[i]; ok {
			out[i].State, out[i].Error = store.UploadFailed, textutil.Clip(msg, 500)
		} else {
			out[i].State = store.UploadUploaded
		}
	}
	return out
}

// partialFailures maps the index of each failed conversion to Google's error for it.
func partialFailures(st *status) map[int]string {
	failed := map[int]string{}
	if st == nil {
		return failed
	}
	for _, d := range st.Details {
		for _, e := range d.Errors {
			idx := -1
			for _, el := range e.Location.FieldPathElements {
				if el.FieldName == "conversions" && el.Index != nil {
					idx = *el.Index
					break
				}
			}
			if idx < 0 {
				continue
			}
			msg := e.Message
			for k, v := range e.ErrorCode {
				msg = k + "." + v + ": " + msg
			}
			if prev, ok := failed[idx]; ok {
				msg = prev + "; " + msg
			}
			failed[idx] = msg
		}
	}
	return failed
}

// send posts the conversions, retrying on 429, 5xx and transport errors, and once with a
// fresh access token on 401.
func (u *Uploader) send(ctx context.Context, g *store.GoogleAds, conv []clickConversion) (*uploadResponse, error) {
	body, err := json.Marshal(uploadRequest{Conversions: conv, PartialFailure: true})
	if err != nil {
		return nil, err
	}
	url := u.cfg.BaseURL + "/" + APIVersion + "/customers/" + g.AdsCustomerID + ":uploadClickConversions"
	refreshed := false
	for attempt := 0; ; attempt++ {
		src, err := u.tokenSource(g, false)
		if err != nil {
			return nil, err
		}
		tok, err := src.Token()
		if err != nil {
			u.m.requests.WithLabelValues(requestTokenError).Inc()
			return nil, fmt.Errorf("oauth2 token: %w", err)
		}
		status, answer, err := u.post(ctx, url, tok.AccessToken, g, body)
		u.m.requests.WithLabelValues(outcome(status, err)).Inc()
		switch {
		case err == nil && status == http.StatusOK:
			var r uploadResponse
			if err := json.Unmarshal(answer, &r); err != nil {
				return nil, fmt.Errorf("decode answer: %w", err)
			}
			return &r, nil
		case err == nil && status == http.StatusUnauthorized && !refreshed:
			// The access token expired early or was revoked: get a new one, once.
			refreshed = true
			if _, err := u.tokenSource(g, true); err != nil {
				return nil, err
			}
			attempt--
			continue
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			return nil, &APIError{Status: status, Body: textutil.Clip(string(answer), 300)}
		}
		if err == nil {
			err = &APIError{Status: status, Body: textutil.Clip(string(answer), 300)}
		}
		if attempt >= u.cfg.Retries || ctx.Err() != nil {
			return nil, err
		}
		if err := u.sleep(ctx, u.backoff(attempt+1)); err != nil {
			return nil, err
		}
	}
}

// outcome is a request's label in trackline_googleads_requests_total.
func outcome(status int, err error) string {
	switch {
	case err != nil || status == http.StatusTooManyRequests || status >= 500:
		return requestRetryable
	case status == http.StatusOK:
		return requestOK
	case status == http.StatusUnauthorized:
		return requestUnauthorized
	}
	return requestRefused
}

// post makes one request; it answers the status and the body (at most 1 MiB).
func (u *Uploader) post(ctx context.Context, url, token string, g *store.GoogleAds, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", UserAgent)
	if u.cfg.DeveloperToken != "" {
		req.Header.Set("developer-token", u.cfg.DeveloperToken)
	}
	if g.LoginCustomerID != "" {
		req.Header.Set("login-customer-id", g.LoginCustomerID)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, answer, nil
}

// tokenSource is the customer's cached token source; fresh makes a new one, so that the
// next Token exchanges the refresh token again.
func (u *Uploader) tokenSource(g *store.GoogleAds, fresh bool) (oauth2.TokenSource, error) {
	u.mu.Lock()
	c, ok := u.tokens[g.CustomerID]
	u.mu.Unlock()
	if ok && !fresh && c.updated.Equal(g.Updated) {
		return c.src, nil
	}
	key, err := u.keys.Lookup(g.CustomerID)
	if err != nil {
		return nil, fmt.Errorf("customer key: %w", err)
	}
	sec, err := Unseal(key, g.SealedSecrets)
	if err != nil {
		return nil, err
	}
	conf := &oauth2.Config{ClientID: g.ClientID, ClientSecret: sec.ClientSecret, Scopes: []string{Scope},
		Endpoint: oauth2.Endpoint{TokenURL: u.cfg.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	// The token source outlives this call: it gets a context of its own that carries only
	// the HTTP client.
	tctx := context.WithValue(context.Background(), oauth2.HTTPClient, u.client)
	src := conf.TokenSource(tctx, &oauth2.Token{RefreshToken: sec.RefreshToken})
	u.mu.Lock()
	u.tokens[g.CustomerID] = cachedSource{updated: g.Updated, src: src}
	u.mu.Unlock()
	return src, nil
}

// backoff is the wait before try n (1-based): full jitter up to min(BackoffMax,
// BackoffBase·2^(n-1)).
func (u *Uploader) backoff(n int) time.Duration {
	d := u.cfg.BackoffMax
	if n < 40 {
		d = min(d, u.cfg.BackoffBase<<(n-1))
	}
	return time.Duration(rand.Int64N(int64(d))) + 1
}
