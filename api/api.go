package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/internal/textutil"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/privacy"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store/keyring"
)

//go:embed web/script.js
var script []byte

// Config configures the API.
type Config struct {
	AdminToken string  // bearer token of the operator; empty means no auth (loopback only)
	RateLimit  float64 // new sessions per second per site key; burst is twice that
	// CountryCode reads national numbers given to the data-subject endpoints (default "31").
	CountryCode string
	// ClientShare is the share of a customer's pool numbers one client may take new sessions
	// for in one Lease (at least one session): see clientlimit.go. 0: no per-client limit
	// (the config's default is 0.25).
	ClientShare float64
	// Lease is the pool's lease, the period ClientShare applies to (default 30m).
	Lease time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names the client.
	TrustedProxies []netip.Prefix
	// ArchiveDir holds the retention archives of export_then_delete (empty: the archive
	// endpoints answer 503); ArchiveHandover is how long one stays there (default 720h).
	ArchiveDir      string
	ArchiveHandover time.Duration
}

// API serves the public and the admin HTTP handlers.
type API struct {
	cfg           Config
	users         UserStore // nil: the invitation endpoints answer 503
	appURL        string
	inviteTTL     time.Duration
	pool          *pool.Pool
	calls         CallReader       // nil: call records are not available
	recordings    RecordingReader  // nil: recordings are not available
	access        Access           // nil: only the operator token, no audit log
	privacy       *privacy.Service // nil: no data-subject endpoints, no erasure
	agents        Agents           // nil: no browser agents
	recordingsDir string
	objects       *recordings.Objects
	keys          *keyring.Keyring // the customers' keys (recordings)
	checks        []Check          // readiness checks of /readyz
	backup        Backuper         // nil: no hot backup
	exporter      Exporter         // nil: no exports
	usage         UsageReader      // nil: no usage report
	webhooks      *webhookAPI      // nil: the webhook endpoints answer 503 (webhooks.go)
	level         *slog.LevelVar
	drain         Drainer // nil: no SIP switch (GET and PUT /v1/drain answer 503)
	log           *slog.Logger
	reg           prometheus.Registerer // nil: the metrics are kept but not registered
	now           func() time.Time
	limiter       *limiter
	clients       *clientLimiter // nil: no per-client limit
	ampClients    *ampClients
	scriptETag    string
	reqDuration   *prometheus.HistogramVec
	rejected      *prometheus.CounterVec
	buffers       sync.Pool // *bytes.Buffer for the session endpoints' bodies, in and out
}

// Option configures New.
type Option func(*API)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(a *API) { a.log = l } }

// WithRegisterer registers the API's metrics on r; without it (or with nil) they are kept
// but not registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(a *API) { a.reg = r } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(a *API) { a.now = now } }

// New builds the API.
func New(cfg Config, p *pool.Pool, opts ...Option) (*API, error) {
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 500
	}
	if cfg.CountryCode == "" {
		cfg.CountryCode = "31"
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Minute
	}
	if cfg.ArchiveHandover <= 0 {
		cfg.ArchiveHandover = 30 * 24 * time.Hour
	}
	sum := sha256.Sum256(script)
	a := &API{
		cfg: cfg, pool: p, log: slog.New(slog.DiscardHandler), now: time.Now,
		scriptETag:  `"` + hex.EncodeToString(sum[:8]) + `"`,
		reqDuration: newRequestDuration(),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_http_rejected_total",
			Help: "Public requests refused before reaching the pool, by reason.",
		}, []string{"reason"}),
	}
	for _, o := range opts {
		o(a)
	}
	a.limiter = newLimiter(cfg.RateLimit, 2*cfg.RateLimit, a.now)
	if cfg.ClientShare > 0 {
		a.clients = newClientLimiter(cfg.ClientShare, cfg.Lease, max(time.Hour, cfg.Lease), 1<<18, a.now)
	}
	a.ampClients = newAMPClients(cfg.Lease, 1<<16, a.now)
	if a.reg != nil {
		for _, c := range []prometheus.Collector{a.reqDuration, a.rejected} {
			if err := a.reg.Register(c); err != nil {
				return nil, fmt.Errorf("register api metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Public is the handler for websites: sessions, the AMP endpoint and the DNI script.
func (a *API) Public() http.Handler {
	mux := http.NewServeMux()
	a.route(mux, "POST /v1/sessions", a.createSession)
	a.route(mux, "POST /v1/sessions/{id}/touch", a.touchSession)
	a.route(mux, "OPTIONS /v1/sessions", a.preflight)
	a.route(mux, "OPTIONS /v1/sessions/{id}/touch", a.preflight)
	a.route(mux, "GET /v1/amp/number", a.ampNumber)
	a.route(mux, "GET /v1/script.js", a.serveScript)
	a.route(mux, "GET /healthz", healthz)
	a.route(mux, "GET /readyz", a.readyz(false))
	if a.agents != nil {
		a.route(mux, "GET /agent", a.servePage)
		// A WebSocket lives as long as its page: outside the request duration metric.
		mux.HandleFunc("GET /v1/agent/ws", a.agents.ServeSignalling)
	}
	a.route(mux, "/", notFound)
	return mux
}

// Admin is the handler of the admin API: every route but /healthz and /readyz needs the
// operator's bearer token or a customer's, as adminRoutes rules (see access.go).
func (a *API) Admin() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.adminRoutes() {
		a.route(mux, rt.pattern, a.guard(rt))
	}
	return mux
}

func healthz(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok\n"))
	return nil
}

func notFound(w http.ResponseWriter, r *http.Request) error {
	return errStatus(http.StatusNotFound, "", "no such endpoint: "+textutil.Clip(r.Method+" "+r.URL.Path, 100))
}
