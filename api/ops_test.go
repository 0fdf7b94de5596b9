package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// opsEnv is an API with readiness checks, the backup and a log level.
type opsEnv struct {
	db     *store.DB
	level  *slog.LevelVar
	public *httptest.Server
	admin  *httptest.Server
}

func newOpsEnv(t *testing.T, checks []Check, withBackup bool, extra ...Option) *opsEnv {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateCustomer(context.Background(), store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: siteKey}); err != nil {
		t.Fatal(err)
	}
	e := &opsEnv{db: db, level: new(slog.LevelVar)}
	opts := []Option{WithReadiness(checks...), WithLogLevel(e.level)}
	if withBackup {
		opts = append(opts, WithBackup(db))
	}
	opts = append(opts, extra...)
	a, err := New(Config{AdminToken: token}, p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.public, e.admin = httptest.NewServer(a.Public()), httptest.NewServer(a.Admin())
	t.Cleanup(e.public.Close)
	t.Cleanup(e.admin.Close)
	return e
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	full := func(context.Context) error { return errors.New("/data: 12 MiB free, want 1024 MiB") }
	tests := []struct {
		name   string
		checks []Check
		status int
	}{
		{"no checks", nil, 200},
		{"all pass", []Check{{"store", ok}, {"sip", ok}}, 200},
		{"one fails", []Check{{"store", ok}, {"disk", full}}, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newOpsEnv(t, tt.checks, false)
			for _, l := range []struct {
				url    string
				detail bool
			}{{e.admin.URL, true}, {e.public.URL, false}} {
				r := do(t, "GET", l.url+"/readyz", "", "")
				if r.status != tt.status || r.body["ready"] != (tt.status == 200) {
					t.Fatalf("%s/readyz: %d %v, want %d", l.url, r.status, r.body, tt.status)
				}
				checks, _ := r.body["checks"].([]any)
				if len(checks) != len(tt.checks) {
					t.Fatalf("checks %v, want %d", checks, len(tt.checks))
				}
				for i, c := range checks {
					m := c.(map[string]any)
					failed := tt.checks[i].Fn(context.Background()) != nil
					if m["name"] != tt.checks[i].Name || m["ok"] != !failed {
						t.Errorf("check %d: %v", i, m)
					}
					if _, has := m["error"]; has != (failed && l.detail) {
						t.Errorf("check %d on %s: error shown %v, want %v: %v", i, l.url, has, failed && l.detail, m)
					}
				}
			}
		})
	}
}

func TestBackupEndpoint(t *testing.T) {
	e := newOpsEnv(t, nil, true)
	if r := do(t, "GET", e.admin.URL+"/v1/backup", "", ""); r.status != 401 {
		t.Fatalf("backup without token: %d, want 401", r.status)
	}
	req, _ := http.NewRequest("GET", e.admin.URL+"/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/octet-stream" ||
		res.Header.Get("Content-Length") != strconv.Itoa(len(body)) || len(body) == 0 {
		t.Fatalf("backup: %d %v, %d bytes", res.StatusCode, res.Header, len(body))
	}
	path := filepath.Join(t.TempDir(), store.FileName)
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Verify(path); err != nil {
		t.Fatalf("the backup is not a store: %v", err)
	}
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *store.Tx) error { _, err := tx.Customer("acme"); return err }); err != nil {
		t.Errorf("customer in the backup: %v", err)
	}

	// A switch built without the backup says so.
	if r := do(t, "GET", newOpsEnv(t, nil, false).admin.URL+"/v1/backup", "", "", "Authorization", "Bearer "+token); r.status != 503 {
		t.Errorf("backup not configured: %d, want 503", r.status)
	}
	// A store on PostgreSQL is backed up with PostgreSQL's tools: 501, saying which.
	pg := newOpsEnv(t, nil, false, WithBackup(externalBackup{}))
	if r := do(t, "GET", pg.admin.URL+"/v1/backup", "", "", "Authorization", "Bearer "+token); r.status != 501 ||
		!strings.Contains(fmt.Sprint(r.body["detail"]), "pg_dump") || !strings.Contains(r.header.Get("Content-Type"), "problem+json") {
		t.Errorf("backup of a store on PostgreSQL: %d %q, want 501 naming pg_dump", r.status, r.body)
	}
}

// externalBackup is the backup of a store on PostgreSQL (store.DB.Backup there).
type externalBackup struct{}

func (externalBackup) Backup(io.Writer, func(int64)) (int64, error) {
	return 0, store.ErrExternalBackup
}

func TestLogLevel(t *testing.T) {
	e := newOpsEnv(t, nil, false)
	auth := []string{"Authorization", "Bearer " + token}
	if r := do(t, "GET", e.admin.URL+"/v1/log-level", "", "", auth...); r.status != 200 || r.body["level"] != "INFO" {
		t.Fatalf("GET: %d %v", r.status, r.body)
	}
	tests := []struct {
		name   string
		body   string
		auth   bool
		status int
		want   slog.Level
	}{
		{"debug", `{"level":"debug"}`, true, 200, slog.LevelDebug},
		{"upper case", `{"level":"WARN"}`, true, 200, slog.LevelWarn},
		{"unknown level", `{"level":"loud"}`, true, 400, slog.LevelWarn},
		{"empty", `{"level":""}`, true, 400, slog.LevelWarn},
		{"unknown field", `{"lvl":"info"}`, true, 400, slog.LevelWarn},
		{"no token", `{"level":"error"}`, false, 401, slog.LevelWarn},
		{"error", `{"level":"error"}`, true, 200, slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth {
				hdr = auth
			}
			r := do(t, "PUT", e.admin.URL+"/v1/log-level", "application/json", tt.body, hdr...)
			if r.status != tt.status {
				t.Fatalf("PUT %s: %d %v, want %d", tt.body, r.status, r.body, tt.status)
			}
			if got := e.level.Level(); got != tt.want {
				t.Errorf("level %v, want %v", got, tt.want)
			}
			if tt.status == 200 && r.body["level"] != tt.want.String() {
				t.Errorf("answer %v, want level %v", r.body, tt.want)
			}
		})
	}
}

// testDrainer keeps a drain as the switch does: once shutting down, it cannot be lifted.
type testDrainer struct {
	mu           sync.Mutex
	on, shutdown bool
}

func (d *testDrainer) SetDraining(on bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.shutdown {
		d.on = on
	}
	return d.on
}

func (d *testDrainer) Draining() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.on
}

func TestDrain(t *testing.T) {
	d := &testDrainer{}
	e := newOpsEnv(t, nil, false, WithDrain(d))
	auth := []string{"Authorization", "Bearer " + token}
	if r := do(t, "GET", e.admin.URL+"/v1/drain", "", "", auth...); r.status != 200 || r.body["draining"] != false {
		t.Fatalf("GET: %d %v", r.status, r.body)
	}
	tests := []struct {
		name     string
		body     string
		auth     bool
		shutdown bool
		status   int
		want     bool
	}{
		{"drain", `{"draining":true}`, true, false, 200, true},
		{"no token", `{"draining":false}`, false, false, 401, true},
		{"not a bool", `{"draining":"no"}`, true, false, 400, true},
		{"missing", `{}`, true, false, 400, true},
		{"unknown field", `{"drain":false}`, true, false, 400, true},
		{"lift", `{"draining":false}`, true, false, 200, false},
		{"drain again", `{"draining":true}`, true, false, 200, true},
		{"lift while shutting down", `{"draining":false}`, true, true, 409, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.mu.Lock()
			d.shutdown = tt.shutdown
			d.mu.Unlock()
			var hdr []string
			if tt.auth {
				hdr = auth
			}
			r := do(t, "PUT", e.admin.URL+"/v1/drain", "application/json", tt.body, hdr...)
			if r.status != tt.status {
				t.Fatalf("PUT %s: %d %v, want %d", tt.body, r.status, r.body, tt.status)
			}
			if got := d.Draining(); got != tt.want {
				t.Errorf("draining %v, want %v", got, tt.want)
			}
			if tt.status == 200 && r.body["draining"] != tt.want {
				t.Errorf("answer %v, want draining %v", r.body, tt.want)
			}
		})
	}
	// A node without a switch says so.
	e = newOpsEnv(t, nil, false)
	if r := do(t, "PUT", e.admin.URL+"/v1/drain", "application/json", `{"draining":true}`, auth...); r.status != 503 {
		t.Errorf("PUT without a switch: %d %v, want 503", r.status, r.body)
	}
}
