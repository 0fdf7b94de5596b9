package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/trackline/trackline/accounts"
	"github.com/trackline/trackline/privacy"
	"github.com/trackline/trackline/recordings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/app/assets"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Config configures the web app.
type Config struct {
	// SessionTTL is how long a login lasts (default 12 h); InviteTTL how long an invitation
	// link works (default 7 days).
	SessionTTL, InviteTTL time.Duration
	// PublicURL is the address of the public API as a customer's site reaches it, for the
	// DNI snippet on the settings page (default: this request's host on the public port is not
	// known, so the snippet names a placeholder).
	PublicURL string
	// CountryCode reads national numbers on the privacy page ("31").
	CountryCode string
}

func (c *Config) defaults() {
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.InviteTTL <= 0 {
		c.InviteTTL = 7 * 24 * time.Hour
	}
	if c.CountryCode == "" {
		c.CountryCode = "31"
	}
}

// App is the web app.
type App struct {
	cfg    Config
	db     *store.DB
	pool   *pool.Pool
	keys   *keyring.Keyring
	recDir string
	// objects is the object store of recordings (WithRecordingObjects); nil: local only.
	objects *recordings.Objects
	// promptDir holds uploaded prompts (WithPrompts); "" refuses uploads.
	promptDir    string
	webhooks     bool // the webhooks page is served (WithWebhooks)
	webhookAllow []netip.Prefix
	privacy      *privacy.Service
	exporter     *recordings.Exporter
	log          *slog.Logger
	now          func() time.Time
	reg          prometheus.Registerer
	pages        map[string]*template.Template
	static       fs.FS
	limit        *limiter
	decoy        accounts.Decoy
	reqs         *prometheus.HistogramVec
	live         *liveHub
}

// Option configures an App.
type Option func(*App)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(a *App) { a.log = l } }

// WithRegisterer registers the app's metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(a *App) { a.reg = r } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(a *App) { a.now = now } }

// WithRecordings serves the recordings under dir, decrypted with the customers' keys.
func WithRecordings(dir string, keys *keyring.Keyring) Option {
	return func(a *App) { a.recDir, a.keys = dir, keys }
}

// WithRecordingObjects plays the recordings that are not on this node's disk from the
// object store o.
func WithRecordingObjects(o *recordings.Objects) Option { return func(a *App) { a.objects = o } }

// New builds the web app on the store and the pool.
func New(cfg Config, db *store.DB, p *pool.Pool, opts ...Option) (*App, error) {
	cfg.defaults()
	a := &App{cfg: cfg, db: db, pool: p, log: slog.Default(), now: time.Now, limit: newLimiter()}
	for _, o := range opts {
		o(a)
	}
	var err error
	if a.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if a.static, err = fs.Sub(assets.FS, "."); err != nil {
		return nil, err
	}
	a.reqs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "trackline_app_request_duration_seconds", Help: "Web app requests by route and status code.",
		Buckets: []float64{.005, .01, .025, .05, .1, .15, .25, .5, 1, 2.5},
	}, []string{"route", "code"})
	if a.reg != nil {
		if err := a.reg.Register(a.reqs); err != nil {
			return nil, err
		}
	}
	a.live = newLiveHub(a)
	return a, nil
}

// Close stops the live view's poller; pages still open see their event streams end.
func (a *App) Close() { a.live.close() }

// --- sessions

// The session cookie holds a random id; the store keeps only its hash. Behind https (the
// request came over TLS, or the operator's proxy says so in X-Forwarded-Proto) it is Secure
// and named with the __Host- prefix, which browsers bind to this host and path.
const (
	cookiePlain  = "trackline_app"
	cookieSecure = "__Host-trackline_app"
)

// secure reports whether the request reached the app over https.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// startSession logs u in: a new server-side session and its cookie.
func (a *App) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, u store.User) error {
	id := accounts.Token()
	now := a.now()
	s := store.AppSession{IDHash: accounts.Hash(id), UserID: u.ID, CustomerID: u.CustomerID, CSRF: accounts.Token(),
		Created: now, Expires: now.Add(a.cfg.SessionTTL)}
	if err := a.db.Write(ctx, func(tx *store.Tx) error { return tx.PutAppSession(&s) }); err != nil {
		return err
	}
	name := cookiePlain
	if secure(r) {
		name = cookieSecure
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: id, Path: "/", HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteLaxMode, Expires: s.Expires})
	return nil
}

// session reads the request's session and its user; false when there is none (or it ended).
func (a *App) session(r *http.Request) (store.AppSession, store.User, bool) {
	for _, name := range []string{cookieSecure, cookiePlain} {
		c, err := r.Cookie(name)
		if err != nil || len(c.Value) > 64 {
			continue
		}
		s, err := a.db.AppSession(accounts.Hash(c.Value))
		if err != nil || !a.now().Before(s.Expires) {
			continue
		}
		u, err := a.db.User(s.UserID)
		if err != nil {
			continue
		}
		return s, u, true
	}
	return store.AppSession{}, store.User{}, false
}

// endSession logs the request's session out.
func (a *App) endSession(w http.ResponseWriter, r *http.Request) {
	for _, name := range []string{cookieSecure, cookiePlain} {
		if c, err := r.Cookie(name); err == nil && len(c.Value) <= 64 {
			h := accounts.Hash(c.Value)
			a.db.Write(r.Context(), func(tx *store.Tx) error { return tx.DeleteAppSession(h) })
			http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: name == cookieSecure,
				SameSite: http.SameSiteLaxMode})
		}
	}
}

// --- requests

// request is what a logged-in page knows about its request.
type request struct {
	r        *http.Request
	session  store.AppSession
	user     store.User
	customer store.Customer // the customer of the URL (/c/{cid}/...), when there is one
	lang     string
}

// actor is the audit log's name for the user.
func (q *request) actor() string { return "user:" + q.user.ID }

// isAdmin reports whether the user may change the customer's settings and users and take
// privacy actions.
func (q *request) isAdmin() bool {
	return q.user.Role == store.RoleOperator || q.user.Role == store.RoleAdmin
}

// pageError is an error a page shows with its status.
type pageError struct {
	status int
	msg    string
}

func (e *pageError) Error() string { return e.msg }

var errNotFound = &pageError{status: http.StatusNotFound, msg: "not found"}

func errForbidden(msg string) error { return &pageError{status: http.StatusForbidden, msg: msg} }

func errBadInput(msg string) error { return &pageError{status: http.StatusBadRequest, msg: msg} }

// handler is a page's handler: it renders or returns an error that one place shows.
type handler func(w http.ResponseWriter, q *request) error

// Handler serves the web app.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	open := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, a.instrument(pattern, h)) }
	open("GET /static/{file...}", a.serveStatic)
	open("GET /login", a.loginPage)
	open("POST /login", a.login)
	open("POST /logout", a.logout)
	open("GET /invite/{token}", a.invitePage)
	open("POST /invite/{token}", a.acceptInvite)
	open("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })

	in := func(pattern string, h handler) { mux.Handle(pattern, a.instrument(pattern, a.authed(h, false))) }
	cust := func(pattern string, h handler) { mux.Handle(pattern, a.instrument(pattern, a.authed(h, true))) }
	in("GET /{$}", a.home)
	in("GET /account", a.accountPage)
	in("POST /account/totp", a.enableTOTP)
	in("GET /operator", a.operatorPage)
	in("POST /operator/customers", a.createCustomer)
	cust("GET /c/{cid}/{$}", a.overview)
	cust("GET /c/{cid}/calls", a.callsPage)
	cust("GET /c/{cid}/calls/{id}", a.callPage)
	cust("POST /c/{cid}/calls/{id}", a.annotate)
	cust("GET /c/{cid}/calls/{id}/recording", a.recording)
	cust("GET /c/{cid}/live", a.liveStream)
	cust("GET /c/{cid}/numbers", a.numbersPage)
	cust("GET /c/{cid}/settings", a.settingsPage)
	cust("POST /c/{cid}/settings", a.saveSettings)
	cust("GET /c/{cid}/users", a.usersPage)
	cust("POST /c/{cid}/users", a.inviteUser)
	cust("GET /c/{cid}/audit", a.auditPage)
	cust("GET /c/{cid}/channels/{ch}", a.channelPage)
	cust("POST /c/{cid}/channels/{ch}", a.saveChannel)
	cust("GET /c/{cid}/privacy", a.privacyPage)
	cust("POST /c/{cid}/privacy/lookup", a.lookupCaller)
	cust("POST /c/{cid}/privacy/export", a.exportCaller)
	cust("POST /c/{cid}/privacy/erase", a.eraseCaller)
	cust("POST /c/{cid}/export", a.exportCustomer)
	cust("GET /c/{cid}/webhooks", a.webhooksPage)
	cust("POST /c/{cid}/webhooks", a.addWebhook)
	cust("POST /c/{cid}/webhooks/{wid}", a.changeWebhook)
	cust("GET /c/{cid}/google-ads", a.googleAdsPage)
	cust("POST /c/{cid}/google-ads", a.saveGoogleAds)
	cust("GET /c/{cid}/google-ads/conversions.csv", a.conversionsCSV)
	cust("POST /c/{cid}/prompts", a.uploadPrompt)
	cust("GET /c/{cid}/prompts/{kind}", a.promptAudio)
	return mux
}

// instrument measures a route and sets the headers every answer carries.
func (a *App) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		hd := w.Header()
		// No inline script or style, no third-party origin: htmx and uPlot are served from here.
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		a.reqs.WithLabelValues(route, fmt.Sprint(rec.status)).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Flush lets the live view's event stream through.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// authed runs h for a logged-in user: the request's session, a CSRF check on every request
// that changes something, and with withCustomer the customer of the URL, which the user must
// be allowed to see (otherwise the 404 of a missing record).
func (a *App) authed(h handler, withCustomer bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, u, ok := a.session(r)
		if !ok {
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			a.fail(w, r, "", &pageError{status: http.StatusUnauthorized, msg: "log in first"})
			return
		}
		q := &request{r: r, session: s, user: u, lang: language(r)}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := a.checkCSRF(r, s); err != nil {
				a.fail(w, r, q.lang, err)
				return
			}
		}
		if withCustomer {
			cid := r.PathValue("cid")
			if u.Role != store.RoleOperator && cid != u.CustomerID {
				a.fail(w, r, q.lang, errNotFound)
				return
			}
			c, err := a.pool.Customer(cid)
			if err != nil {
				a.fail(w, r, q.lang, errNotFound)
				return
			}
			q.customer = c
		}
		if err := h(w, q); err != nil {
			a.fail(w, r, q.lang, err)
		}
	}
}

var errCSRF = &pageError{status: http.StatusForbidden, msg: "the form has expired or did not come from this app: reload the page and try again"}

// checkCSRF compares the request's token (form field csrf, or the X-CSRF-Token header htmx
// sends) with the session's, and refuses a request whose Origin is another site.
func (a *App) checkCSRF(r *http.Request, s store.AppSession) error {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return errCSRF
		}
	}
	tok := r.Header.Get("X-CSRF-Token")
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		r.Body = http.MaxBytesReader(nil, r.Body, maxPromptUpload+maxForm)
		if err := r.ParseMultipartForm(maxForm); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err
			}
			return errBadInput("the form could not be read: " + err.Error())
		}
	} else {
		r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	}
	if tok == "" {
		tok = r.PostFormValue("csrf")
	}
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) != 1 {
		return errCSRF
	}
	return nil
}

// maxForm bounds a form's body, and the part of an upload held in memory.
const maxForm = 1 << 20

// fail shows an error page (or, to htmx, the error alone) with its status. Only unexpected
// errors are logged, never with the client's address.
func (a *App) fail(w http.ResponseWriter, r *http.Request, lang string, err error) {
	var pe *pageError
	var inv *pool.InvalidError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &mbe):
		pe = &pageError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("larger than %d bytes", mbe.Limit)}
	case errors.As(err, &inv):
		pe = &pageError{status: http.StatusBadRequest, msg: inv.Error()}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, pool.ErrUnknownCustomer):
		pe = errNotFound
	default:
		a.log.Error("app request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		pe = &pageError{status: http.StatusInternalServerError, msg: "something went wrong; try again"}
	}
	if lang == "" {
		lang = language(r)
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(pe.status)
		fmt.Fprintln(w, pe.msg)
		return
	}
	a.render(w, r, pe.status, "error", lang, map[string]any{"Status": pe.status, "Message": pe.msg})
}

// serveStatic serves the app's own files and the vendored libraries, cached for a day.
func (a *App) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	var path string
	switch {
	case strings.HasPrefix(name, "vendor/") && !strings.Contains(name[7:], "/") && !strings.HasPrefix(name[7:], "."):
		path = name
	case !strings.Contains(name, "/") && !strings.HasPrefix(name, "."):
		path = "static/" + name
	default:
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(a.static, path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(path, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(path, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(path, "LICENSE"):
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Write(b)
}

// pruneEvery is how often Run deletes the sessions that expired.
const pruneEvery = time.Hour

// Run deletes expired sessions from the store now and every hour until ctx ends; it returns
// then. Sessions that expired are refused anyway: this only keeps the store small.
func (a *App) Run(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		var n int
		// Once per cluster (an advisory lock on PostgreSQL): every node's store is the same.
		_, err := a.db.Exclusive(ctx, "app-session-prune", func(ctx context.Context) error {
			return a.db.Write(ctx, func(tx *store.Tx) (err error) { n, err = tx.PruneAppSessions(a.now()); return err })
		})
		if err != nil && ctx.Err() == nil {
			a.log.Warn("prune the web app's expired sessions", "err", err)
		} else if n > 0 {
			a.log.Debug("pruned the web app's expired sessions", "sessions", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
