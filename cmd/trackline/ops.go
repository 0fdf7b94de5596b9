package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/api"
	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/sip"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Operations wiring: readiness checks, the build-info and disk metrics, and the log level's
// SIGHUP toggle.

// opsConfig is what serve's flags give run for operations.
type opsConfig struct {
	level       *slog.LevelVar   // the handler's level, changed at runtime
	minFreeDisk uint64           // readiness fails below this many free bytes (data, recordings)
	drain       <-chan os.Signal // SIGUSR1 and SIGUSR2: the operator's drain (drain.go)
}

// openStore opens the store of cfg.Store.Driver. The PostgreSQL backend is refused until it
// does every store operation (store.PostgresMissing): a node must not start half-working.
func openStore(ctx context.Context, cfg *configs.Config, logger *slog.Logger, reg prometheus.Registerer, keys *keyring.Keyring) (*store.DB, error) {
	if cfg.Store.Driver == configs.StorePostgres {
		if missing := store.PostgresMissing(); len(missing) > 0 {
			return nil, fmt.Errorf("store.driver postgres is not complete yet: %d store operations are not implemented on PostgreSQL (%s, ...); use driver bbolt (docs/cluster.md)",
				len(missing), strings.Join(missing[:min(4, len(missing))], ", "))
		}
		// Personal fields are sealed with the customers' keys (store/pg_seal.go).
		return store.OpenPostgres(ctx, cfg.Store.DSN, store.WithLogger(logger), store.WithRegisterer(reg),
			store.WithFieldKeys(keyringFields{keys}))
	}
	return store.Open(filepath.Join(cfg.DataDir, store.FileName), store.WithLogger(logger), store.WithRegisterer(reg))
}

// keyringFields gives the PostgreSQL store the customers' field keys (keyring.Key.FieldKey).
type keyringFields struct{ k *keyring.Keyring }

// FieldKey implements store.FieldKeys: with create, the customer's key is made if it has
// none; without, a customer without a key answers store.ErrNoFieldKey.
func (f keyringFields) FieldKey(customerID string, create bool) ([]byte, error) {
	get := f.k.Lookup
	if create {
		get = f.k.Get
	}
	key, err := get(customerID)
	if errors.Is(err, keyring.ErrNoKey) {
		return nil, fmt.Errorf("%w: %v", store.ErrNoFieldKey, err)
	}
	if err != nil {
		return nil, err
	}
	return key.FieldKey(), nil
}

// readiness is the checks of /readyz: not shutting down, the store answers a read, SIP is
// listening, the recordings directory takes a file, and the disks of the data and the
// recordings have at least minFree bytes free.
func readiness(stopping *atomic.Bool, db *store.DB, sw *sip.Switch, dataDir, recDir string, minFree uint64) []api.Check {
	return []api.Check{
		{Name: "draining", Fn: func(context.Context) error {
			if stopping.Load() {
				return errors.New("shutting down")
			}
			if sw.Draining() {
				return errors.New("sip draining: new calls refused (SIGUSR2 lifts it)")
			}
			return nil
		}},
		{Name: "store", Fn: func(ctx context.Context) error { return db.Ready(ctx) }},
		{Name: "sip", Fn: func(context.Context) error {
			// A drain is the draining check's to report: the checks run one after
			// another, and a drain that begins between them must not show as SIP's.
			if !sw.Listening() && !sw.Draining() {
				return errors.New("not listening (starting or closed)")
			}
			return nil
		}},
		{Name: "recordings", Fn: func(context.Context) error { return dirWritable(recDir) }},
		{Name: "disk", Fn: func(context.Context) error {
			for _, dir := range []string{dataDir, recDir} {
				free, err := diskFree(dir)
				if err != nil {
					return err
				}
				if free < minFree {
					return fmt.Errorf("%s: %d MiB free, want at least %d MiB", dir, free>>20, minFree>>20)
				}
			}
			return nil
		}},
	}
}

// dirWritable creates and removes a file in dir.
func dirWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".readyz-*")
	if err != nil {
		return fmt.Errorf("recordings directory not writable: %w", err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok"))
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fmt.Errorf("recordings directory not writable: %w", err)
	}
	return nil
}

// diskFree is the space an unprivileged process may still use on dir's filesystem.
func diskFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// opsCollectors are the build-info gauge (always 1; its labels are the information: the
// build and the node's id) and the free space on the recordings' filesystem, sampled at each
// scrape.
func opsCollectors(nodeID, recDir string) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "trackline_build_info",
			Help:        "Always 1; the labels say which build runs.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version(), "node": nodeID},
		}, func() float64 { return 1 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trackline_recordings_disk_free_bytes",
			Help: "Bytes free for trackline on the filesystem of the recordings directory (NaN when it cannot be read).",
		}, func() float64 {
			free, err := diskFree(recDir)
			if err != nil {
				return math.NaN()
			}
			return float64(free)
		}),
	}
}

// recordingsDir is where recordings are written: <data_dir>/recordings.
// recordingsDir is recordings.dir, by default <data_dir>/recordings.
func recordingsDir(cfg *configs.Config) string {
	if cfg.Recordings.Dir != "" {
		return cfg.Recordings.Dir
	}
	return filepath.Join(cfg.DataDir, "recordings")
}

// openKeyring opens the customers' keys: <data_dir>/keys unless keys.dir says otherwise,
// sealed with the master key of TRACKLINE_MASTER_KEY or keys.master_key_file if one is set
// (64 hex characters). With keys.shared the keys are objects in the recordings' bucket
// (docs/cluster.md), which requires the master key.
func openKeyring(cfg *configs.Config) (*keyring.Keyring, error) {
	dir := cfg.Keys.Dir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "keys")
	}
	hexKey, from := os.Getenv("TRACKLINE_MASTER_KEY"), "TRACKLINE_MASTER_KEY"
	if hexKey == "" && cfg.Keys.MasterKeyFile != "" {
		b, err := os.ReadFile(cfg.Keys.MasterKeyFile)
		if err != nil {
			return nil, fmt.Errorf("keys.master_key_file: %w", err)
		}
		hexKey, from = string(b), "keys.master_key_file"
	}
	var opts []keyring.Option
	if hexKey = strings.TrimSpace(hexKey); hexKey != "" {
		master, err := hex.DecodeString(hexKey)
		if err != nil || len(master) != keyring.MasterKeySize {
			return nil, fmt.Errorf("%s: want %d hex characters (openssl rand -hex %d)", from, 2*keyring.MasterKeySize, keyring.MasterKeySize)
		}
		opts = append(opts, keyring.WithMasterKey(master))
	}
	if cfg.Keys.Shared {
		if hexKey == "" {
			return nil, errors.New("keys.shared needs a master key (TRACKLINE_MASTER_KEY or keys.master_key_file): the bucket must never hold a key in the clear")
		}
		secret, err := objectSecret(cfg)
		if err != nil {
			return nil, err
		}
		o := cfg.Recordings.ObjectStore
		opts = append(opts, keyring.WithObjects(keyring.Objects{Endpoint: o.Endpoint, Bucket: o.Bucket, Region: o.Region,
			AccessKey: o.AccessKey, SecretKey: secret, Secure: o.Secure, Prefix: cfg.Keys.Prefix}))
	}
	return keyring.Open(dir, opts...)
}

// checkSharedKeys checks, at start, the object store of shared keys: one that ignores
// If-None-Match is refused (two nodes could make two keys for one customer); one that does
// not answer is logged, and the keys are fetched once it does.
func checkSharedKeys(ctx context.Context, keys *keyring.Keyring, logger *slog.Logger) error {
	if !keys.Shared() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := keys.Check(ctx)
	if errors.Is(err, keyring.ErrUnconditional) {
		return err
	}
	if err != nil {
		logger.Error("the object store of the shared keys is not usable now; calls needing a key wait for it", "err", err)
		return nil
	}
	logger.Info("customer keys are shared in the object store", "pending_destroys", keys.PendingDestroys())
	return nil
}

// keyCollectors are the keyring's metrics: the destructions of shared keys the object store
// has not confirmed (0 with keys in the directory, so that dashboards and alerts find it).
func keyCollectors(keys *keyring.Keyring) []prometheus.Collector {
	return []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trackline_key_destroys_pending",
		Help: "Customer keys destroyed (erasure) whose objects the object store has not deleted yet; retried.",
	}, func() float64 { return float64(keys.PendingDestroys()) })}
}

// runSharedKeys keeps the shared keys true until ctx ends or stop is called: Run's
// revalidation and retried destructions, and each customer change another node made drops
// that customer's cached key (its key may have been destroyed there). A keyring of files
// runs nothing.
func runSharedKeys(ctx context.Context, keys *keyring.Keyring, db *store.DB) (stop func()) {
	if !keys.Shared() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); keys.Run(ctx) }()
	changes := db.CustomerChanges(ctx)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case id := <-changes:
				if id == "" {
					keys.ForgetAll() // changes may have been missed
				} else {
					keys.Forget(id)
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// exportDir is where the retention sweeper writes the archives of customers that chose
// export_then_delete.
func exportDir(cfg *configs.Config) string {
	if cfg.Lifecycle.ExportDir != "" {
		return cfg.Lifecycle.ExportDir
	}
	return filepath.Join(cfg.DataDir, "exports")
}

// toggleDebugOnHUP switches the log level to debug on SIGHUP, and back to the configured
// level on the next one, until ctx ends. The admin API sets any level (PUT /v1/log-level); a
// SIGHUP after that goes to debug, or back to the configured level from debug.
func toggleDebugOnHUP(ctx context.Context, hup <-chan os.Signal, lv *slog.LevelVar, configured slog.Level, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		old, next := lv.Level(), slog.LevelDebug
		if old == slog.LevelDebug {
			next = configured
		}
		lv.Set(next)
		logger.Log(ctx, max(old, next, slog.LevelInfo), "log level changed", "from", old.String(), "to", next.String(), "by", "SIGHUP")
	}
}

// notifyHUP starts catching SIGHUP (whose default ends the process) before anything runs.
func notifyHUP() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}
