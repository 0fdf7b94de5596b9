package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/integrations"
	"github.com/trackline/trackline/store"
)

// migrate is `trackline migrate [flags]`: copies a stopped switch's bbolt store into an empty
// PostgreSQL database and verifies the copy record by record (store.DB.CopyTo), for the move
// from one box to a cluster (docs/cluster.md). The bbolt file is left as it was: keep it
// until the cluster runs.
func migrate(args []string) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: trackline migrate [flags]\n\nCopies the bbolt store of a stopped switch into an empty PostgreSQL database and\nverifies the copy. The destination is --to, else the config's store.dsn.")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "YAML config file to take data_dir and store.dsn from")
	dataDir := fs.String("data", "", "data directory of the stopped switch (default: the config's data_dir)")
	to := fs.String("to", "", "the PostgreSQL database, a postgres:// URL or key=value string (default: store.dsn); a password is better in PGPASSWORD")
	timeout := fs.Duration("timeout", 2*time.Hour, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	var cfg *configs.Config
	var err error
	if *configPath != "" {
		cfg, err = configs.Load(*configPath)
	} else {
		cfg, err = configs.Default()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackline migrate:", err)
		return 1
	}
	if *dataDir == "" {
		*dataDir = cfg.DataDir
	}
	if *to == "" {
		*to = cfg.Store.DSN
	}
	if *to == "" {
		fmt.Fprintln(os.Stderr, "trackline migrate: no destination: give --to or set store.dsn in the config")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	path := filepath.Join(*dataDir, store.FileName)
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintln(os.Stderr, "trackline migrate:", err)
		return 1
	}
	src, err := store.Open(path, store.WithLockTimeout(time.Second))
	if errors.Is(err, store.ErrLocked) {
		fmt.Fprintf(os.Stderr, "trackline migrate: a switch is running on %s: stop it first\n", *dataDir)
		return 1
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackline migrate:", err)
		return 1
	}
	defer src.Close()
	// The personal fields are sealed with the customers' keys on the way (store/pg_seal.go):
	// the keyring the switch used, which the cluster's nodes then use.
	cfg.DataDir = *dataDir
	keys, err := openKeyring(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackline migrate:", err)
		return 1
	}
	dst, err := store.OpenPostgres(ctx, *to, store.WithFieldKeys(keyringFields{keys}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackline migrate:", err)
		return 1
	}
	defer dst.Close()
	// The webhook endpoints' secrets: opened with the customers' keys and sealed with them
	// in PostgreSQL, as trackline serve keeps them (the destination is empty: nothing to seal).
	if _, err := dst.SealEndpointSecrets(ctx, integrations.Sealer{Keys: keys}); err != nil {
		fmt.Fprintln(os.Stderr, "trackline migrate:", err)
		return 1
	}

	start := time.Now()
	last := time.Time{}
	rep, err := src.CopyTo(ctx, dst, func(kind string, n int) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "trackline migrate: %s: %d copied\n", kind, n)
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackline migrate:", err)
		if len(rep) > 0 {
			fmt.Fprintln(os.Stderr, "trackline migrate: the destination holds a partial copy: drop and recreate its database before trying again")
		}
		return 1
	}
	kinds := make([]string, 0, len(rep))
	for k, n := range rep {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	fmt.Printf("migrated %s into PostgreSQL and verified every record in %v: %s\n", path,
		time.Since(start).Round(time.Millisecond), strings.Join(kinds, ", "))
	return 0
}
