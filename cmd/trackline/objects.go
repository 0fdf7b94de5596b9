package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store/keyring"
)

// openObjects makes the object store of recordings.object_store, or nil when none is
// configured (its metrics are registered all the same, at 0). Its secret key: TRACKLINE_OBJECT_SECRET_KEY, else secret_key_file, else
// secret_key. Pending deletions are kept under <data_dir>/objects.
func openObjects(cfg *configs.Config, recDir string, keys *keyring.Keyring, db recordings.RecordingLookup,
	reg prometheus.Registerer, logger *slog.Logger) (*recordings.Objects, error) {
	o := cfg.Recordings.ObjectStore
	if !o.Enabled() {
		return nil, recordings.RegisterObjectMetrics(reg) // all 0: the dashboards and alerts find them
	}
	secret, err := objectSecret(cfg)
	if err != nil {
		return nil, err
	}
	objs, err := recordings.NewObjects(recordings.ObjectConfig{
		Endpoint: o.Endpoint, Bucket: o.Bucket, Region: o.Region, AccessKey: o.AccessKey, SecretKey: secret,
		Secure: o.Secure, Prefix: o.Prefix, Uploads: o.Uploads, PartSize: int64(o.PartSizeMB) << 20,
		StateDir: filepath.Join(cfg.DataDir, "objects"),
	}, recDir, keys, db, recordings.WithRegisterer(reg), recordings.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	logger.Info("recordings go to the object store", "endpoint", o.Endpoint, "bucket", o.Bucket, "prefix", o.Prefix,
		"pending_deletes", objs.PendingDeletes())
	// Not fatal: the uploads wait and retry until the store answers (and alert if it does not).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := objs.Check(ctx); err != nil {
		logger.Error("object store not usable now; recordings stay on this disk until it is", "err", err)
	}
	return objs, nil
}

// objectSecret is the object store's secret key: TRACKLINE_OBJECT_SECRET_KEY, else
// secret_key_file, else secret_key.
func objectSecret(cfg *configs.Config) (string, error) {
	o := cfg.Recordings.ObjectStore
	secret := os.Getenv("TRACKLINE_OBJECT_SECRET_KEY")
	if secret == "" && o.SecretKeyFile != "" {
		b, err := os.ReadFile(o.SecretKeyFile)
		if err != nil {
			return "", fmt.Errorf("recordings.object_store.secret_key_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		secret = o.SecretKey
	}
	return secret, nil
}

// runObjects runs the uploads and the retried deletions until ctx ends or stop is called;
// stop waits for them. A nil objs runs nothing.
func runObjects(ctx context.Context, objs *recordings.Objects) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { objs.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}
