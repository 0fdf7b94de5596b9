// Command trackline is the call-tracking switch. main only wires: flags, config, logger and
// metrics registry, store, pool, api, listeners; then it runs until a signal and stops in order.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/trackline/trackline/agents"
	"github.com/trackline/trackline/api"
	"github.com/trackline/trackline/app"
	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/integrations"
	"github.com/trackline/trackline/integrations/googleads"
	"github.com/trackline/trackline/media"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/privacy"
	"github.com/trackline/trackline/provision"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/sip"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "backup":
		os.Exit(backup(os.Args[2:]))
	case "migrate":
		os.Exit(migrate(os.Args[2:]))
	case "version":
		fmt.Println("trackline", version)
	default:
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: trackline serve [flags] | trackline backup [flags] FILE | trackline migrate [flags] | trackline version\n       trackline serve -h, trackline backup -h, trackline migrate -h for the flags")
}

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML config file (default: the embedded demo config)")
	dataDir := fs.String("data", "", "data directory (overrides data_dir)")
	httpAddr := fs.String("http", "", "public API listen address (overrides listen.http)")
	adminAddr := fs.String("admin", "", "admin API listen address (overrides listen.admin)")
	metricsAddr := fs.String("metrics", "", "metrics listen address (overrides listen.metrics)")
	appAddr := fs.String("app", "", "web app listen address (overrides listen.app)")
	sipAddr := fs.String("sip", "", "SIP listen address, UDP and TCP (overrides sip.listen)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error (SIGHUP toggles debug)")
	minFreeMB := fs.Uint64("min-free-disk-mb", 1024, "/readyz fails when the data or recordings filesystem has less free (MiB)")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "--log-level:", err)
		return 2
	}
	lv := new(slog.LevelVar)
	lv.Set(level)
	hopts := &slog.HandlerOptions{Level: lv}
	var logger *slog.Logger
	switch *logFormat {
	case "text":
		logger = slog.New(slog.NewTextHandler(os.Stderr, hopts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	default:
		fmt.Fprintln(os.Stderr, "--log-format: want text or json")
		return 2
	}

	var cfg *configs.Config
	var err error
	if *configPath == "" {
		cfg, err = configs.Default(provision.Check)
	} else {
		cfg, err = configs.Load(*configPath, provision.Check)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{{&cfg.DataDir, *dataDir}, {&cfg.Listen.HTTP, *httpAddr}, {&cfg.Listen.Admin, *adminAddr}, {&cfg.Listen.Metrics, *metricsAddr}, {&cfg.Listen.App, *appAddr}, {&cfg.SIP.Listen, *sipAddr}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	if tok := os.Getenv("TRACKLINE_ADMIN_TOKEN"); tok != "" {
		cfg.AdminToken = tok
	}
	if probs := append(cfg.Check(), provision.Check(cfg)...); len(probs) > 0 {
		fmt.Fprintln(os.Stderr, probs)
		return 2
	}
	if cfg.AdminToken == "" && !loopback(cfg.Listen.Admin) {
		fmt.Fprintln(os.Stderr, "config:\n  admin_token: required when listen.admin is not a loopback address")
		return 2
	}

	if cfg.Media.LatchWindow != 0 {
		logger.Warn("media.latch_window is no longer used: a leg latches onto the IP its SDP or, behind NAT, its signalling names, after media.probation packets (docs/api.md, Media and recordings)")
	}

	// sipgo's process-wide settings. Its layers log through our logger, without the raw
	// messages and numbers they quote (sip.RedactHandler). Finished transactions
	// linger to absorb retransmissions (Timers D, J, L, M); sipgo keeps them, and the dialogs
	// their callbacks reach, until those timers fire even after the dialog ended, so their
	// length sets the switch's memory: calls per second x linger x ~16 KB, less since the
	// switch empties an ended call's INVITE transactions (sip/call.go, release). The
	// retransmission intervals (T1, T2) stay as RFC 3261 has them.
	sipmsg.SetDefaultLogger(slog.New(sip.RedactHandler(logger.Handler()))) // sipgo logs raw messages
	linger := cfg.SIP.TransactionLinger
	sipmsg.Timer_D, sipmsg.Timer_J, sipmsg.Timer_L, sipmsg.Timer_M = linger, linger, linger, linger
	// The garbage collector: fewer cycles (GOGC 200) under a soft memory limit, unless the
	// environment sets its own.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.Runtime.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && cfg.Runtime.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(int64(cfg.Runtime.MemoryLimitMB) << 20)
	}

	hup, stopHUP := notifyHUP()
	defer stopHUP()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go toggleDebugOnHUP(ctx, hup, lv, level, logger)
	drainSig, stopDrainSig := notifyDrain()
	defer stopDrainSig()
	if err := run(ctx, cfg, logger, opsConfig{level: lv, minFreeDisk: *minFreeMB << 20, drain: drainSig}); err != nil {
		logger.Error("trackline stopped", "err", err)
		return 1
	}
	return 0
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func run(ctx context.Context, cfg *configs.Config, logger *slog.Logger, ops opsConfig) error {
	start := time.Now()
	recDir := recordingsDir(cfg)
	if err := os.MkdirAll(recDir, 0o700); err != nil {
		return fmt.Errorf("create recordings directory: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(opsCollectors(cfg.NodeID, recDir)...)

	keys, err := openKeyring(cfg)
	if err != nil {
		return err
	}
	if err := checkSharedKeys(ctx, keys, logger); err != nil {
		return err
	}
	reg.MustRegister(keyCollectors(keys)...)
	db, err := openStore(ctx, cfg, logger, reg, keys)
	if err != nil {
		return err
	}
	defer db.Close()
	defer runSharedKeys(ctx, keys, db)()

	p, err := openPool(ctx, cfg, db, reg, logger)
	if err != nil {
		return err
	}
	// Webhook endpoints' secrets are sealed with their customer's key (store/webhooksecrets.go).
	if n, err := db.SealEndpointSecrets(ctx, integrations.Sealer{Keys: keys}); err != nil {
		return err
	} else if n > 0 {
		logger.Info("sealed the webhook endpoints' secrets", "endpoints", n)
	}
	objs, err := openObjects(cfg, recDir, keys, db, reg, logger) // nil: recordings stay on this disk
	if err != nil {
		return err
	}
	rec, err := recordings.New(recordings.Options{Dir: recDir, Keys: keys, Workers: cfg.Recordings.Workers},
		recordings.WithRegisterer(reg), recordings.WithLogger(logger), recordings.WithFinished(objs.Enqueue))
	if err != nil {
		return err
	}
	defer rec.Close()
	me, err := newMedia(cfg, p, rec, reg, logger)
	if err != nil {
		return err
	}
	defer me.Close()
	hub, err := newAgents(cfg, db, reg, logger)
	if err != nil {
		return err
	}
	defer hub.Close()
	sw, err := newSwitch(cfg, p, db, reg, logger, sip.WithMedia(me), sip.WithAgents(hub), sip.WithKeys(keys))
	if err != nil {
		return err
	}
	defer sw.Close()
	stopWatch, err := runStoreWatch(ctx, db, sw, reg, logger) // 503 to new calls while PostgreSQL is away
	if err != nil {
		return err
	}
	defer stopWatch()
	go drainOnSignal(ctx, ops.drain, sw, logger)
	var stopping atomic.Bool // set when the drain begins: /readyz answers 503 from then on
	// Exports read recordings through recordings.Opener, which decrypts them.
	exporter := recordings.NewExporter(db, rec.Dir(), keys, recordings.WithExportObjects(objs))
	sweeper, err := pool.NewSweeper(p, pool.SweepConfig{
		Interval: cfg.Lifecycle.SweepInterval, RetentionMonths: cfg.Lifecycle.RetentionMonths,
		SessionDays: cfg.Lifecycle.SessionDays, AuditMonths: cfg.Lifecycle.AuditMonths, ExportDir: exportDir(cfg),
		ArchiveHandover: cfg.Lifecycle.ArchiveHandover,
	}, exporter, pool.SweepLogger(logger), pool.SweepRegisterer(reg))
	if err != nil {
		return err
	}
	priv := privacy.New(db, keys, rec.Dir(), p, privacy.WithLogger(logger), privacy.WithObjects(objs))
	allow, err := cfg.Webhooks.Allowed()
	if err != nil {
		return fmt.Errorf("webhooks.allow_cidrs: %w", err)
	}
	hooks, err := integrations.New(db, integrations.Config{Workers: cfg.Webhooks.Workers, PerEndpoint: cfg.Webhooks.PerEndpoint,
		AllowCIDRs: allow}, integrations.WithLogger(logger), integrations.WithRegisterer(reg))
	if err != nil {
		return err
	}
	defer hooks.Close()
	var ads *googleads.Uploader // nil: no developer token, nothing is uploaded
	if cfg.GoogleAds.DeveloperToken != "" {
		ads, err = googleads.New(googleads.Config{DeveloperToken: cfg.GoogleAds.DeveloperToken, BaseURL: cfg.GoogleAds.BaseURL,
			TokenURL: cfg.GoogleAds.TokenURL, Interval: cfg.GoogleAds.Interval, Batch: cfg.GoogleAds.Batch}, db, keys,
			googleads.WithLogger(logger), googleads.WithRegisterer(reg))
		if err != nil {
			return err
		}
		defer ads.Close()
	}
	proxies, err := cfg.Pool.Proxies()
	if err != nil {
		return fmt.Errorf("pool.trusted_proxies: %w", err)
	}
	a, err := api.New(api.Config{AdminToken: cfg.AdminToken, RateLimit: cfg.Pool.RateLimit, CountryCode: cfg.CountryCode,
		ClientShare: cfg.Pool.ClientShare, Lease: cfg.Pool.Lease, TrustedProxies: proxies,
		ArchiveDir: exportDir(cfg), ArchiveHandover: cfg.Lifecycle.ArchiveHandover}, p,
		api.WithRegisterer(reg), api.WithLogger(logger), api.WithCalls(db), api.WithPrivacy(priv), api.WithUsers(db, cfg.App.URL, cfg.App.InviteTTL),
		api.WithRecordings(db, rec.Dir(), keys), api.WithBackup(db), api.WithLogLevel(ops.level), api.WithDrain(sw), api.WithAccess(db), api.WithAgents(hub),
		api.WithExport(exporter), api.WithUsage(db), api.WithWebhooks(db, allow), api.WithRecordingObjects(objs),
		api.WithReadiness(readiness(&stopping, db, sw, cfg.DataDir, recDir, ops.minFreeDisk)...))
	if err != nil {
		return err
	}
	web, err := app.New(app.Config{SessionTTL: cfg.App.SessionTTL, InviteTTL: cfg.App.InviteTTL, PublicURL: cfg.App.PublicURL,
		CountryCode: cfg.CountryCode}, db, p, app.WithLogger(logger), app.WithRegisterer(reg), app.WithRecordings(rec.Dir(), keys),
		app.WithPrompts(filepath.Join(cfg.DataDir, "prompts")), app.WithPrivacy(priv, exporter),
		app.WithWebhooks(allow), app.WithRecordingObjects(objs))
	if err != nil {
		return err
	}
	defer web.Close()
	if n, err := provision.SeedUsers(ctx, cfg, db, time.Now()); err != nil {
		return err
	} else if n > 0 {
		logger.Info("made the web app accounts of the config", "users", n)
	}
	if err := recoverState(ctx, db, sw, rec, keys, logger); err != nil {
		return err
	}
	defer runObjects(ctx, objs)() // after Repair and MigratePlain: their files are uploaded too
	if err := sw.Listen(); err != nil {
		return err
	}
	defer reloadTLSOnHUP(ctx, sw, logger)()

	return serveUntilStopped(ctx, node{cfg: cfg, logger: logger, reg: reg, db: db, pool: p, sweeper: sweeper, sw: sw, hub: hub,
		api: a, web: web, hooks: hooks, ads: ads, stopping: &stopping, start: start})
}

// openPool loads the pool and seeds the configured customers the store does not have.
func openPool(ctx context.Context, cfg *configs.Config, db *store.DB, reg prometheus.Registerer, logger *slog.Logger) (*pool.Pool, error) {
	p, err := pool.New(db, pool.Config{Lease: cfg.Pool.Lease, Grace: cfg.Pool.Grace, CountryCode: cfg.CountryCode,
		TrialDays: cfg.Lifecycle.TrialDays, QuarantineMonths: cfg.Lifecycle.QuarantineMonths},
		pool.WithLogger(logger), pool.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("load pool: %w", err)
	}
	seeded, err := provision.Seed(ctx, cfg, p)
	if err != nil {
		return nil, err
	}
	if seeded.Created > 0 {
		logger.Info("seeded customers from config", "customers", seeded.Created)
	}
	if len(seeded.Changed) > 0 {
		logger.Info("config moved customers on in their contract", "customers", seeded.Changed)
	}
	if len(seeded.Deleted) > 0 {
		logger.Warn("customers in the config were deleted (lapsed trial or retention over) and are not made again; remove them from the config", "customers", seeded.Deleted)
	}

	return p, nil
}

// recoverState finishes what an earlier stop left: open call records, the caller index,
// an erasure's compaction, recordings cut short and plain recordings of an earlier build.
func recoverState(ctx context.Context, db *store.DB, sw *sip.Switch, rec *recordings.Recorder, keys *keyring.Keyring, logger *slog.Logger) error {
	if n, err := sw.RecoverRecords(ctx); err != nil {
		return err
	} else if n > 0 {
		logger.Warn("completed call records left open by an earlier stop", "calls", n)
	}
	if n, err := db.IndexCallers(ctx, func(customerID, caller string) (string, error) {
		key, err := keys.Get(customerID)
		if err != nil {
			return "", err
		}
		return key.Pseudonym(caller), nil
	}); err != nil {
		return err
	} else if n > 0 {
		logger.Info("indexed the calls stored before the caller index", "calls", n)
	}
	// An erasure cut short by a crash: finish its compaction before serving.
	if due, err := db.CompactionDue(); err != nil {
		return err
	} else if due {
		st, err := db.Compact(ctx)
		if err != nil {
			return fmt.Errorf("compact the store after an unfinished erasure: %w", err)
		}
		logger.Warn("compacted the store after an unfinished erasure", "store_bytes_before", st.Before,
			"store_bytes_after", st.After, "compact_ms", st.Copy.Milliseconds())
	}
	if n, err := media.RecoverRecordings(ctx, db, rec); err != nil {
		logger.Error("repair recordings left by an earlier stop", "repaired", n, "err", err)
	} else if n > 0 {
		logger.Warn("repaired recordings left by an earlier stop", "recordings", n)
	}
	// Recordings of a build before encryption at rest: encrypted, or shredded when their
	// customer is gone.
	if st, err := rec.MigratePlain(ctx, db); err != nil {
		logger.Error("encrypt the plain recordings of an earlier build", "encrypted", st.Encrypted, "repaired", st.Repaired,
			"unlinked", st.Unlinked, "removed", st.Removed, "failed", st.Failed, "err", err)
	} else if st != (recordings.MigrateStats{}) {
		logger.Warn("encrypted the plain recordings of an earlier build", "encrypted", st.Encrypted, "repaired", st.Repaired,
			"unlinked", st.Unlinked, "removed", st.Removed)
	}
	return nil
}

// node is what serveUntilStopped runs and stops.
type node struct {
	cfg      *configs.Config
	logger   *slog.Logger
	reg      *prometheus.Registry
	db       *store.DB
	pool     *pool.Pool
	sweeper  *pool.Sweeper
	sw       *sip.Switch
	hub      *agents.Hub
	api      *api.API
	web      *app.App
	hooks    *integrations.Webhooks
	ads      *googleads.Uploader // nil: no uploads
	stopping *atomic.Bool        // set when the drain begins: /readyz answers 503 from then on
	start    time.Time
}

// serveUntilStopped serves SIP and HTTP and runs the pool's background work and the
// webhooks' delivery until ctx ends or a listener fails, then stops in order: calls first
// (new INVITEs get 503 while calls in progress finish, up to the drain timeout), then the
// HTTP listeners, the pool's work, the webhooks, the Google Ads uploads and the store.
func serveUntilStopped(ctx context.Context, n node) error {
	cfg, logger := n.cfg, n.logger
	servers := []*server{
		{name: "http", addr: cfg.Listen.HTTP, handler: n.api.Public()},
		{name: "admin", addr: cfg.Listen.Admin, handler: n.api.Admin()},
		{name: "metrics", addr: cfg.Listen.Metrics, handler: metricsMux(n.reg, n.api.Ready())},
		{name: "app", addr: cfg.Listen.App, handler: n.web.Handler()},
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		if err := s.listen(logger); err != nil {
			for _, o := range servers {
				o.close()
			}
			return err
		}
	}
	for _, s := range servers {
		go func() { errc <- s.serve() }()
	}
	n.sw.Serve()
	poolCtx, stopPool := context.WithCancel(ctx)
	poolDone, sweepDone := make(chan struct{}), make(chan struct{})
	go func() { n.pool.Run(poolCtx); close(poolDone) }()
	go func() { n.sweeper.Run(poolCtx); close(sweepDone) }()
	webDone := make(chan struct{})
	go func() { n.web.Run(poolCtx); close(webDone) }()
	hooksDone := make(chan struct{})
	go func() { n.hooks.Run(poolCtx); close(hooksDone) }()
	beatDone := make(chan struct{}) // on PostgreSQL: this node's liveness (store/pg_nodes.go)
	go func() { n.db.RunHeartbeat(poolCtx, cfg.NodeID); close(beatDone) }()
	adsDone := make(chan struct{})
	go func() {
		if n.ads != nil {
			n.ads.Run(poolCtx)
		}
		close(adsDone)
	}()

	logger.Info("ready", "http", servers[0].ln.Addr().String(), "admin", servers[1].ln.Addr().String(),
		"metrics", servers[2].ln.Addr().String(), "app", servers[3].ln.Addr().String(), "sip", n.sw.Addr().String(), "data", cfg.DataDir, "node", cfg.NodeID, "version", version,
		"startup_ms", time.Since(n.start).Milliseconds())

	var err error
	select {
	case <-ctx.Done():
		logger.Info("stopping")
	case err = <-errc:
	}
	n.stopping.Store(true)
	n.sw.Drain(context.Background())
	n.sw.Close()
	n.hub.Close() // the agent pages' WebSockets: http.Server.Shutdown does not wait for them
	n.web.Close() // the web app's live views (event streams), which Shutdown would wait for
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		s.srv.Shutdown(shutdownCtx)
	}
	stopPool()
	<-poolDone
	<-sweepDone
	<-webDone
	<-hooksDone // the webhooks' attempts in flight are cancelled: made again after the restart
	<-beatDone
	<-adsDone // an upload in flight is cancelled: made again after the restart (the order id dedups)
	if cerr := n.db.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// metricsMux serves /metrics, /healthz and /readyz and, for operators on the same listener,
// Go's profiler.
func metricsMux(reg *prometheus.Registry, ready http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /readyz", ready)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// procsFor is the GOMAXPROCS of a process on cores with loops packet loops. Each loop keeps
// a P while it waits in the kernel (media's package doc), so the process gets one more per
// loop for the rest of it to keep the cores it had; and one more for the garbage
// collector: during a mark the runtime gives a quarter of all Ps, the loops' counted, to
// dedicated mark workers, which on two cores with two loops is one of the two Ps left to
// SIP, the store and the recorder, so that each collection (~250 ms every ~2 s at 1,000
// recorded calls a second) halved them. With the extra P they keep two; measured in
// docs/benchmarks.md ("One more P for the collector").
func procsFor(cores, loops int) int { return cores + loops + 1 }

// newMedia starts the RTP anchor on the SIP host unless media.ip says otherwise.
func newMedia(cfg *configs.Config, p *pool.Pool, rec *recordings.Recorder, reg prometheus.Registerer, logger *slog.Logger) (*media.Engine, error) {
	lo, hi, err := cfg.Media.Ports()
	if err != nil {
		return nil, err
	}
	mc := media.Config{PortMin: lo, PortMax: hi, RTPTimeout: cfg.Media.RTPTimeout, Probation: cfg.Media.Probation,
		BatchWait: cfg.Media.BatchWait, RealtimePriority: cfg.Media.RealtimePriority, IO: cfg.Media.IO, Kernel: cfg.Media.Kernel, Loops: cfg.Media.Loops, DefaultDisclaimer: configs.DefaultDisclaimer}
	if mc.IP, err = mediaIP(cfg); err != nil {
		return nil, err
	}
	cores := runtime.GOMAXPROCS(0)
	if mc.Loops <= 0 {
		mc.Loops = media.DefaultLoops(cores)
	}
	runtime.GOMAXPROCS(procsFor(cores, mc.Loops))
	announce := cfg.Media.Announce
	if announce == "" && mc.IP.IsUnspecified() {
		announce = cfg.SIP.ExternalHost
	}
	if announce != "" {
		if mc.Announce, err = netip.ParseAddr(announce); err != nil || !mc.Announce.Is4() {
			return nil, fmt.Errorf("media.announce: %q is not an IPv4 address", announce)
		}
	} else if mc.IP.IsUnspecified() {
		return nil, errors.New("media: RTP binds to 0.0.0.0: set media.announce to the address callers reach")
	}
	return media.New(mc, p.Customer, rec, media.WithRegisterer(reg), media.WithLogger(logger))
}

// mediaIP is the address the RTP sockets bind to: media.ip, else the SIP listen host.
func mediaIP(cfg *configs.Config) (netip.Addr, error) {
	ipText := cfg.Media.IP
	if ipText == "" {
		ipText, _, _ = net.SplitHostPort(cfg.SIP.Listen)
	}
	ip, err := netip.ParseAddr(ipText)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("media.ip: %q is not an IPv4 address; set media.ip", ipText)
	}
	return ip, nil
}

// newAgents builds the browser agents' hub; its bridges talk RTP with the anchor on the
// media address.
func newAgents(cfg *configs.Config, db *store.DB, reg prometheus.Registerer, logger *slog.Logger) (*agents.Hub, error) {
	w := cfg.WebRTC
	ac := agents.Config{Interfaces: w.Interfaces, AnnounceIPs: w.AnnounceIPs, Loopback: w.Loopback,
		ConnectTimeout: w.ConnectTimeout, MaxMessage: w.MaxMessage, MaxAgents: w.MaxAgents}
	var err error
	if ac.MediaIP, err = mediaIP(cfg); err != nil {
		return nil, err
	}
	if ac.IPs, err = w.Addrs(); err != nil {
		return nil, fmt.Errorf("webrtc.ips: %w", err)
	}
	if ac.PortMin, ac.PortMax, err = w.Ports(); err != nil {
		return nil, fmt.Errorf("webrtc.udp_ports: %w", err)
	}
	for _, s := range w.ICEServers {
		ac.ICEServers = append(ac.ICEServers, agents.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return agents.New(ac, db, agents.WithLogger(logger), agents.WithRegisterer(reg))
}

func newSwitch(cfg *configs.Config, p *pool.Pool, db *store.DB, reg prometheus.Registerer, logger *slog.Logger, opts ...sip.Option) (*sip.Switch, error) {
	sc := sip.Config{
		NodeID: cfg.NodeID, Listen: cfg.SIP.Listen, ExternalHost: cfg.SIP.ExternalHost, OutboundProxy: cfg.SIP.OutboundProxy,
		OutboundUsername: cfg.SIP.OutboundUsername, OutboundPassword: cfg.SIP.OutboundPassword, OutboundNAT: cfg.SIP.OutboundNAT,
		ToFallback: cfg.SIP.ToFallback, CountryCode: cfg.CountryCode, RingTimeout: cfg.SIP.RingTimeout,
		MaxDuration: cfg.SIP.MaxCallDuration, DrainTimeout: cfg.SIP.DrainTimeout,
		TLS: sip.TLSConfig{Listen: cfg.SIP.TLS.Listen, CertFile: cfg.SIP.TLS.CertFile, KeyFile: cfg.SIP.TLS.KeyFile,
			ClientCAFile: cfg.SIP.TLS.ClientCAFile, HandshakeTimeout: cfg.SIP.TLS.HandshakeTimeout},
		Auth: sip.AuthConfig{NonceLifetime: cfg.SIP.Digest.NonceLifetime, MaxFailures: cfg.SIP.Digest.MaxFailures,
			Window: cfg.SIP.Digest.FailureWindow, Ban: cfg.SIP.Digest.Ban},
		Edge:   edgeConfig(cfg.SIP),
		MaxCPS: cfg.SIP.MaxCPS, OverloadDelay: cfg.SIP.OverloadDelay,
	}
	for _, t := range cfg.SIP.Trunks {
		prefixes, err := t.Prefixes()
		if err != nil {
			return nil, err
		}
		sc.Trunks = append(sc.Trunks, sip.Trunk{Name: t.Name, Sources: prefixes, Username: t.Username, Password: t.Password, NAT: t.NAT,
			ClientCert: t.ClientCert, ClientCertName: t.ClientCertName})
	}
	return sip.New(sc, p, db, append([]sip.Option{sip.WithRegisterer(reg), sip.WithLogger(logger)}, opts...)...)
}

type server struct {
	name    string
	addr    string
	handler http.Handler
	ln      net.Listener
	srv     *http.Server
}

func (s *server) listen(logger *slog.Logger) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s on %s: %w", s.name, s.addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(&redactingWriter{logger: logger, listener: s.name}, "", 0),
	}
	return nil
}

func (s *server) serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s server: %w", s.name, err)
	}
	return nil
}

func (s *server) close() {
	if s.ln != nil {
		s.ln.Close()
	}
}

// redactingWriter passes net/http's own error log (TLS handshake errors, panics) to slog with
// client addresses removed: a visitor's IP address is never logged.
type redactingWriter struct {
	logger   *slog.Logger
	listener string
}

var addrRe = regexp.MustCompile(`\[?[0-9a-fA-F:.]*[0-9a-fA-F]\]?:\d+|\b\d{1,3}(\.\d{1,3}){3}\b`)

func (w *redactingWriter) Write(b []byte) (int, error) {
	w.logger.Warn("http server", "listener", w.listener, "msg_redacted", addrRe.ReplaceAllString(string(b), "[addr]"))
	return len(b), nil
}

var _ io.Writer = (*redactingWriter)(nil)
