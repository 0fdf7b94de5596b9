package provision

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/accounts"
	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

func TestDefaultSeedsTheDemo(t *testing.T) {
	c, err := configs.Default(Check)
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t)
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for round, want := range []int{1, 0} { // seeding twice creates nothing the second time
		rep, err := Seed(context.Background(), c, p)
		if err != nil || rep.Created != want {
			t.Fatalf("seed round %d: %+v, %v", round, rep, err)
		}
	}
	st, err := p.Status("demo")
	if err != nil || st.Total != 20 || st.Static != 2 {
		t.Fatalf("demo pool: %+v %v", st, err)
	}
	for _, n := range []string{"+31850000101", "+31850000102"} {
		a, err := p.Attribute(n, time.Now())
		if err != nil || a.Kind != store.KindStatic {
			t.Fatalf("static %s: %+v %v", n, a, err)
		}
	}
}

// TestDomainProblemsAreReportedWithTheSchemas: what the admin API would refuse is reported
// with the config's paths, together with the schema's problems, all at once.
func TestDomainProblemsAreReportedWithTheSchemas(t *testing.T) {
	_, err := configs.Parse([]byte(`
pool: {lease: 10s}
webrtc: {ips: ["127.0.0.1"]}
customers:
  - id: "Bad ID"
    name: A
    status: paused
    site_key: "k"
    allowed_origins: ["ftp://x"]
    channels:
      - name: Flyer
        rules: [{param: ip_address, pattern: "*"}]
  - {id: b, name: B, site_key: "valid-site-key", display_numbers: ["12"], business_lines: ["webrtc:Sales Desk"],
     prompts: {disclaimer: /nonexistent/prompt.wav}}
  - {id: c, name: C, site_key: "valid-site-key-c", display_numbers: ["12"]}
  - {id: d, name: D, site_key: "valid-site-key-d", retention_months: 500}
`), Check)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"pool.lease:", // the schema's
		"customers[0].status:",
		"customers[0].channels[0].rules[0].param: unknown parameter \"ip_address\"",
		"customers[2].display_numbers[0]:",
		"customers[3].retention_months:",
		"customers[1].business_lines[0]: webrtc:<group>",
		"customers[1].prompts.disclaimer:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	c, err := configs.Parse([]byte(`
customers:
  - {id: a, name: A, site_key: "valid-site-key", status: trial, trial_ends: 2026-12-01T00:00:00Z, retention_action: export_then_delete}
`), Check)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Record(&c.Customers[0])
	if err != nil || !rec.TrialEnds.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || rec.RetentionAction != store.RetainExportThenDelete || rec.Status != store.StatusTrial {
		t.Fatalf("record %+v %v", rec, err)
	}
}

// TestSeedMovesLifecycleForward: the config moves an existing customer forward (trial to
// active to ended, a contract end), never back, and does not make a deleted customer again.
func TestSeedMovesLifecycleForward(t *testing.T) {
	db := storetest.Open(t)
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
		c, err := configs.Parse([]byte(`
customers:
  - {id: a, name: A, site_key: "valid-site-key", status: ` + status + extra + `}
  - {id: b, name: B, site_key: "other-site-key", status: trial, pool: ["+31850000009"]}
`))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Seed(ctx, c, p)
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

// TestSeedUsers: configured accounts are made once, with their passwords hashed; a second
// start leaves them (and a password the user chose since) alone.
func TestSeedUsers(t *testing.T) {
	c, err := configs.Default(Check)
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t)
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := Seed(ctx, c, p); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for round, want := range []int{2, 0} {
		n, err := SeedUsers(ctx, c, db, now)
		if err != nil || n != want {
			t.Fatalf("round %d: made %d, %v; want %d", round, n, err, want)
		}
	}
	u, err := db.UserByEmail("demo@trackline.test")
	if err != nil || u.CustomerID != "demo" || u.Role != store.RoleAdmin {
		t.Fatalf("demo user %+v %v", u, err)
	}
	if ok, err := accounts.VerifyPassword(u.PasswordHash, "demo-password"); !ok || err != nil {
		t.Fatalf("the demo password does not verify: %v", err)
	}
	if strings.Contains(u.PasswordHash, "demo-password") {
		t.Fatal("the password is stored in the clear")
	}
	op, err := db.UserByEmail("operator@trackline.test")
	if err != nil || op.Role != store.RoleOperator || op.CustomerID != "" {
		t.Fatalf("operator %+v %v", op, err)
	}
}

func TestUserProblems(t *testing.T) {
	_, err := configs.Parse([]byte(`
customers:
  - {id: a, name: A, site_key: "valid-site-key"}
users:
  - {email: not-an-email, password: short, customer: a, role: admin}
  - {email: x@example.com, password: long-enough-pw, customer: b, role: member}
  - {email: X@example.com, password: long-enough-pw, customer: a, role: operator}
  - {email: y@example.com, password: long-enough-pw, role: boss}
`), Check)
	for _, want := range []string{"users[0].email:", "users[0].password:", "users[1].customer:", "users[2].email: repeats users[1]",
		"users[2].customer: an operator belongs to no customer", "users[3].role:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
