package configs

import (
	"strings"
	"testing"
	"time"
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
	if c.Customers[0].RetentionAction != "export_then_delete" || !c.Customers[0].TrialEnds.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("customer %+v", c.Customers[0])
	}
	_, err = Parse([]byte(`
lifecycle: {sweep_interval: 1s, trial_days: 0, retention_months: 200, quarantine_months: -1, session_days: 9999, audit_months: 0}
customers:
  - {id: a, name: A, site_key: "valid-site-key", retention_action: keep, retention_months: 500}
`))
	for _, want := range []string{"lifecycle.sweep_interval:", "lifecycle.retention_months:", "lifecycle.quarantine_months:",
		"lifecycle.session_days:", "customers[0].retention_action:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
