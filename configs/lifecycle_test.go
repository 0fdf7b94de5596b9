package configs

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

func TestLifecycleKeys(t *testing.T) {
	c, err := Parse([]byte(`
lifecycle: {sweep_interval: 30m, retention_months: 6, export_dir: /var/lib/trackline/exports}
customers:
  - {id: a, name: A, site_key: "valid-site-key", status: trial, trial_ends: 2026-12-01T00:00:00Z, retention_action: export_then_delete}
`))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Lifecycle
	if l.SweepInterval != 30*time.Minute || l.RetentionMonths != 6 || l.TrialDays != 14 || l.QuarantineMonths != 6 ||
		l.SessionDays != 90 || l.AuditMonths != 24 || l.ExportDir != "/var/lib/trackline/exports" {
		t.Fatalf("lifecycle %+v", l)
	}
	rec, err := c.Customers[0].Record()
	if err != nil || !rec.TrialEnds.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || rec.RetentionAction != store.RetainExportThenDelete {
		t.Fatalf("record %+v %v", rec, err)
	}
	_, err = Parse([]byte(`
lifecycle: {sweep_interval: 1s, trial_days: 0, retention_months: 200, quarantine_months: -1, session_days: 9999, audit_months: 0}
customers:
  - {id: a, name: A, site_key: "valid-site-key", retention_action: keep, retention_months: 500}
`))
	for _, want := range []string{"lifecycle.sweep_interval:", "lifecycle.retention_months:", "lifecycle.quarantine_months:",
		"lifecycle.session_days:", "customers[0].retention_action:", "customers[0].retention_months:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

// TestSeedMovesLifecycleForward: the config moves an existing customer forward (trial to
// active to ended, a contract end), never back, and does not make a deleted customer again.
func TestSeedMovesLifecycleForward(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p, err := pool.New(db, pool.Config{}, pool.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seed := func(status, extra string) SeedReport {
		t.Helper()
		c, err := Parse([]byte(`
customers:
  - {id: a, name: A, site_key: "valid-site-key", status: ` + status + extra + `}
  - {id: b, name: B, site_key: "other-site-key", status: trial, pool: ["+31850000009"]}
`))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := c.Seed(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := seed("trial", ""); rep.Created != 2 {
		t.Fatalf("first seed %+v", rep)
	}
	if rep := seed("active", ", contract_ends: 2027-01-01T00:00:00Z"); !slices.Equal(rep.Changed, []string{"a"}) {
		t.Fatalf("trial -> active: %+v", rep)
	}
	a, _ := p.Customer("a")
	if a.Status != store.StatusActive || !a.ActiveSince.Equal(now) || !a.ContractEnds.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("a after the config moved it: %+v", a)
	}
	if rep := seed("trial", ""); len(rep.Changed) != 0 {
		t.Fatalf("the config moved a back: %+v", rep)
	}
	if rep := seed("ended", ""); !slices.Equal(rep.Changed, []string{"a"}) {
		t.Fatalf("active -> ended: %+v", rep)
	}
	if a, _ := p.Customer("a"); a.Status != store.StatusEnded || !a.EndedAt.Equal(now) {
		t.Fatalf("a after the end: %+v", a)
	}
	entries, _, _ := db.AuditLog(store.AuditFilter{CustomerID: "a"})
	if len(entries) != 2 || entries[0].Actor != "config" || entries[0].Action != "customer.update" {
		t.Fatalf("audit of the config's changes: %+v", entries)
	}
	// b's trial lapses and its data is deleted: the config does not make it again.
	mu.Lock()
	now = now.AddDate(0, 0, 15)
	mu.Unlock()
	if _, err := p.Purge(ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	if rep := seed("ended", ""); rep.Created != 0 || !slices.Equal(rep.Deleted, []string{"b"}) {
		t.Fatalf("seed after b was deleted: %+v", rep)
	}
	if _, err := p.Customer("b"); err == nil {
		t.Fatal("b made again")
	}
}
