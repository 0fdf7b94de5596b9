package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/provision"
	"github.com/trackline/trackline/store"
)

// backup is `trackline backup [flags] FILE`: a consistent copy of the store, written to FILE
// atomically (a temporary file beside it, fsync, verify, rename). While the switch runs its
// store is locked, so the copy comes from the switch's admin API (GET /v1/backup); with
// --data it is read from a stopped switch's data directory instead.
func backup(args []string) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: trackline backup [flags] FILE\n\nWrites a consistent copy of the store to FILE: from the running switch's admin API,\nor with --data from a stopped switch's data directory. Flags go before FILE.")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "YAML config file to take listen.admin and admin_token from")
	adminAddr := fs.String("admin", "", "admin API of the running switch, host:port or URL (default listen.admin, else 127.0.0.1:8081)")
	token := fs.String("token", "", "admin bearer token (default: $TRACKLINE_ADMIN_TOKEN, else the config's admin_token); visible in ps, prefer the variable")
	dataDir := fs.String("data", "", "copy from this data directory of a stopped switch instead of asking a running one")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	dst := fs.Arg(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var copyTo func(w io.Writer) (int64, error)
	source := ""
	if storeDriver(*configPath) == configs.StorePostgres {
		fmt.Fprintln(os.Stderr, "trackline backup:", store.ErrExternalBackup)
		return 1
	}
	if *dataDir != "" {
		path := filepath.Join(*dataDir, store.FileName)
		source = path
		copyTo = func(w io.Writer) (int64, error) {
			n, err := store.BackupFile(path, w, store.WithLockTimeout(time.Second))
			if errors.Is(err, store.ErrLocked) {
				return n, fmt.Errorf("%w: a switch is running on %s; take the backup through it (--admin, without --data)", err, *dataDir)
			}
			return n, err
		}
	} else {
		base, tok, err := adminTarget(*configPath, *adminAddr, *token)
		if err != nil {
			fmt.Fprintln(os.Stderr, "trackline backup:", err)
			return 2
		}
		source = base + "/v1/backup"
		copyTo = func(w io.Writer) (int64, error) { return fetchBackup(ctx, source, tok, w) }
	}

	n, err := writeAtomically(dst, copyTo)
	if err != nil {
		fmt.Fprintf(os.Stderr, "trackline backup: %v\n", err)
		return 1
	}
	fmt.Printf("trackline backup: %d bytes from %s written to %s and verified\n", n, source, dst)
	return 0
}

// adminTarget is the admin API's base URL and the token: flags, then the environment, then
// the config file, then the defaults of the embedded config.
func adminTarget(configPath, addr, token string) (string, string, error) {
	var cfg *configs.Config
	var err error
	if configPath != "" {
		cfg, err = configs.Load(configPath, provision.Check)
	} else {
		cfg, err = configs.Default(provision.Check)
	}
	if err != nil {
		return "", "", err
	}
	if addr == "" {
		addr = cfg.Listen.Admin
	}
	if token == "" {
		token = os.Getenv("TRACKLINE_ADMIN_TOKEN")
	}
	if token == "" {
		token = cfg.AdminToken
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/"), token, nil
}

// storeDriver is the store driver the config at configPath (or the default config) names;
// "" if it does not load (adminTarget reports why).
func storeDriver(configPath string) string {
	var cfg *configs.Config
	var err error
	if configPath != "" {
		cfg, err = configs.Load(configPath, provision.Check)
	} else {
		cfg, err = configs.Default(provision.Check)
	}
	if err != nil {
		return ""
	}
	return cfg.Store.Driver
}

// fetchBackup copies GET /v1/backup to w. A body shorter than its Content-Length is an error
// (net/http reports it), so a copy cut off by the switch is never taken for a whole one.
func fetchBackup(ctx context.Context, url, token string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		return 0, fmt.Errorf("GET %s: %s: %s", url, res.Status, strings.TrimSpace(string(body)))
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	if res.ContentLength >= 0 && n != res.ContentLength {
		return n, fmt.Errorf("GET %s: %d bytes, want %d", url, n, res.ContentLength)
	}
	return n, nil
}

// writeAtomically fills a temporary file beside dst with copyTo, makes it durable, checks it
// is a store this build opens, and only then renames it to dst. dst is never half written.
func writeAtomically(dst string, copyTo func(io.Writer) (int64, error)) (int64, error) {
	dir := filepath.Dir(dst)
	f, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := copyTo(f)
	if err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if err := store.Verify(tmp); err != nil {
		return n, fmt.Errorf("the copy does not check out: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return n, err
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return n, fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return n, nil
}
