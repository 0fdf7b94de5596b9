package pool

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// lifecycleEnv is the pool fixture with a recordings tree, an export directory and a
// sweeper on the fixture's clock.
type lifecycleEnv struct {
	*fixture
	recDir, exportDir string
	keys              *keyring.Keyring
	rec               *recordings.Recorder
	sw                *Sweeper
	reg               *prometheus.Registry
}

func newLifecycleEnv(t *testing.T) *lifecycleEnv {
	t.Helper()
	e := &lifecycleEnv{fixture: newFixture(t, 2), recDir: t.TempDir(), exportDir: filepath.Join(t.TempDir(), "exports"), reg: prometheus.NewRegistry()}
	var err error
	if e.keys, err = keyring.Open(filepath.Join(t.TempDir(), "keys")); err != nil {
		t.Fatal(err)
	}
	if e.rec, err = recordings.New(recordings.Options{Dir: e.recDir, Keys: e.keys}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rec.Close() })
	ex := recordings.NewExporter(e.db, e.recDir, e.keys, recordings.WithExportClock(e.clk.now))
	sw, err := NewSweeper(e.p, SweepConfig{ExportDir: e.exportDir, Batch: 3}, ex, SweepRegisterer(e.reg))
	if err != nil {
		t.Fatal(err)
	}
	e.sw = sw
	return e
}

// tenant is a customer made by a test, with what it holds.
type tenant struct {
	id        string
	numbers   []string // pool numbers; the last is static
	sessions  []string // the first led to the call
	call      string
	recording string
	recFile   string // absolute path
	audio     []byte
}

// newTenant makes a customer with two pool numbers and a static one, three sessions, a
// recorded call from the first session, and a token.
func (e *lifecycleEnv) newTenant(c store.Customer, base int) *tenant {
	t := e.t
	t.Helper()
	ctx := context.Background()
	c.Name, c.SiteKey = c.ID, c.ID+"-site-key"
	if _, err := e.p.CreateCustomer(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.PutChannel(ctx, c.ID, store.Channel{Name: "Flyer"}); err != nil {
		t.Fatal(err)
	}
	tn := &tenant{id: c.ID}
	in := []NumberInput{{Number: numberOf(base)}, {Number: numberOf(base + 1)}, {Number: numberOf(base + 2), Kind: "static", Channel: "Flyer"}}
	for _, n := range in {
		tn.numbers = append(tn.numbers, n.Number)
	}
	if _, err := e.p.ImportNumbers(ctx, c.ID, in); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l, err := e.p.Assign(ctx, c.ID, Visit{LandingURL: "https://" + c.ID + ".example/landing?utm_source=x"})
		if err != nil {
			t.Fatal(err)
		}
		tn.sessions = append(tn.sessions, l.SessionID)
	}
	now := e.clk.now()
	tn.call = NewID(now)
	tn.recording = tn.call
	// One second of the call, recorded (encrypted) as the media layer records it.
	rec, err := e.rec.Open(c.ID, tn.call, now)
	if err != nil {
		t.Fatal(err)
	}
	chunk := rec.NewChunk(0)
	copy(chunk.L[:], "audio of "+tn.call)
	rec.Submit(chunk)
	info, err := rec.Finish()
	if err != nil {
		t.Fatal(err)
	}
	tn.recFile = info.Path
	plain, err := recordings.Open(e.keys, info.Path)
	if err != nil {
		t.Fatal(err)
	}
	tn.audio, err = io.ReadAll(plain)
	plain.Close()
	if err != nil {
		t.Fatal(err)
	}
	err = e.db.Write(ctx, func(tx *store.Tx) error {
		if err := tx.PutRecording(&store.Recording{ID: tn.recording, CustomerID: c.ID, CallID: tn.call, Path: info.Rel,
			Size: info.Size, SHA256: info.SHA256, Created: now}); err != nil {
			return err
		}
		if err := tx.PutCall(&store.Call{ID: tn.call, CustomerID: c.ID, Dialled: tn.numbers[0], Caller: "+31612345678",
			SessionID: tn.sessions[0], Start: now, Answer: now, End: now.Add(2 * time.Minute), TalkSeconds: 120,
			Disposition: "answered", RecordingID: tn.recording}); err != nil {
			return err
		}
		return tx.PutToken(sha256.Sum256([]byte("tlc_"+c.ID)), &store.Token{Kind: store.TokenAPI, ID: "tok-" + c.ID, CustomerID: c.ID, Created: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func (e *lifecycleEnv) sweep() SweepReport {
	e.t.Helper()
	rep, err := e.sw.Sweep(context.Background())
	if err != nil {
		e.t.Fatalf("sweep: %v (%v)", err, rep)
	}
	return rep
}

// gone checks that nothing of tn is left in the store or the recordings tree.
func (e *lifecycleEnv) gone(tn *tenant) {
	t := e.t
	t.Helper()
	if _, err := e.p.Customer(tn.id); !errors.Is(err, ErrUnknownCustomer) {
		t.Errorf("customer %s: %v, want unknown", tn.id, err)
	}
	if _, err := e.p.CustomerBySiteKey(tn.id + "-site-key"); !errors.Is(err, ErrUnknownCustomer) {
		t.Errorf("site key of %s still known: %v", tn.id, err)
	}
	err := e.db.View(func(tx *store.Tx) error {
		if _, err := tx.Customer(tn.id); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("customer record: %v", err)
		}
		for _, s := range tn.sessions {
			if _, err := tx.Session(s); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("session %s: %v", s, err)
			}
		}
		if _, err := tx.Call(tn.call); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("call: %v", err)
		}
		if _, err := tx.Recording(tn.recording); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("recording: %v", err)
		}
		if toks, err := tx.TokensOf(store.TokenAPI, tn.id); err != nil || len(toks) != 0 {
			return fmt.Errorf("tokens: %v %v", toks, err)
		}
		if chs, err := tx.Channels(tn.id); err != nil || len(chs) != 0 {
			return fmt.Errorf("channels: %v %v", chs, err)
		}
		found := false
		if err := tx.Assignments(tn.id, time.Time{}, time.Time{}, func(store.Assignment) bool { found = true; return false }); err != nil || found {
			return fmt.Errorf("assignments left (%v)", err)
		}
		if u, err := tx.Usage(tn.id, "2026-03"); err != nil || u.Sessions+u.Calls != 0 {
			return fmt.Errorf("usage: %+v %v", u, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s left in the store: %v", tn.id, err)
	}
	if _, err := os.Stat(filepath.Join(e.recDir, tn.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("recordings of %s still on disk: %v", tn.id, err)
	}
	// Copies of its recordings cannot be read any more.
	if _, err := e.keys.Lookup(tn.id); !errors.Is(err, keyring.ErrNoKey) {
		t.Errorf("key of %s: %v, want destroyed", tn.id, err)
	}
}

// auditActions lists the (actor action customer) of the audit log, oldest first.
func (e *lifecycleEnv) auditActions() []string {
	e.t.Helper()
	entries, _, err := e.db.AuditLog(store.AuditFilter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Actor+" "+entries[i].Action+" "+entries[i].CustomerID)
	}
	return out
}

func TestTrialExpiry(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	tn := e.newTenant(store.Customer{ID: "trial", Status: store.StatusTrial}, 100)
	c, _ := e.p.Customer("trial")
	if want := e.clk.now().AddDate(0, 0, 14); !c.TrialEnds.Equal(want) {
		t.Fatalf("trial_ends %v, want %v (14 days)", c.TrialEnds, want)
	}
	// Day 13: still a trial, nothing is deleted.
	e.clk.add(13 * 24 * time.Hour)
	if rep := e.sweep(); rep["trials_expired"] != 0 {
		t.Fatalf("sweep during the trial: %v", rep)
	}
	if _, err := e.p.Assign(ctx, "trial", Visit{}); err != nil {
		t.Fatalf("Assign during the trial: %v", err)
	}
	// Day 14: the trial lapsed. No number is handed out at once, before any sweep.
	e.clk.add(24 * time.Hour)
	if _, err := e.p.Assign(ctx, "trial", Visit{}); !errors.Is(err, ErrCustomerEnded) {
		t.Fatalf("Assign after the trial: %v, want ErrCustomerEnded", err)
	}
	rep := e.sweep()
	if rep["trials_expired"] != 1 || rep["calls"] != 1 || rep["sessions"] != 4 || rep["recordings"] != 1 || rep["numbers"] != 3 ||
		rep["compactions"] != 1 {
		t.Fatalf("sweep after the trial: %v", rep)
	}
	e.gone(tn)
	// Its numbers are free at once, without quarantine: another customer imports them.
	if _, err := e.p.ImportNumbers(ctx, "acme", []NumberInput{{Number: tn.numbers[0]}, {Number: tn.numbers[1]}}); err != nil {
		t.Fatalf("import a lapsed trial's numbers: %v", err)
	}
	if held := e.p.HeldNumbers(); len(held) != 0 {
		t.Fatalf("held numbers after a trial: %v", held)
	}
	// The id is not given again, and the audit log says what happened (ids only).
	if _, err := e.p.CreateCustomer(ctx, store.Customer{ID: "trial", Name: "x", Status: store.StatusTrial, SiteKey: "another-site-key"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("reuse of a purged id: %v, want ErrConflict", err)
	}
	if acts := e.auditActions(); !slices.Contains(acts, "sweeper trial.expire trial") || !slices.Contains(acts, "sweeper sweep.run ") {
		t.Fatalf("audit log %v", acts)
	}
	if got := testutil.ToFloat64(e.sw.m.deleted.WithLabelValues("sessions")); got != 4 {
		t.Fatalf("trackline_retention_deleted_total{kind=sessions} = %v, want 4", got)
	}
	if got := testutil.ToFloat64(e.sw.m.runs); got != 2 {
		t.Fatalf("runs = %v, want 2", got)
	}
	// A restart finds nothing of it either.
	e.restart()
	if _, err := e.p.Customer("trial"); !errors.Is(err, ErrUnknownCustomer) {
		t.Fatalf("after restart: %v", err)
	}
}

// TestContractEndRetentionAndQuarantine follows an ended contract: numbers quarantined at
// the end, data kept for the retention period then exported and deleted, numbers released
// six months after the end, except the one marked for porting.
func TestContractEndRetentionAndQuarantine(t *testing.T) {
	for _, action := range []store.RetentionAction{store.RetainDelete, store.RetainExportThenDelete} {
		t.Run(action.String(), func(t *testing.T) {
			e := newLifecycleEnv(t)
			ctx := context.Background()
			t0 := e.clk.now()
			end := t0.AddDate(0, 1, 0)
			tn := e.newTenant(store.Customer{ID: "client", Status: store.StatusActive, ContractEnds: end, RetentionAction: action}, 200)
			if _, err := e.p.SetPorting(ctx, tn.numbers[1], true); err != nil {
				t.Fatal(err)
			}

			// The contract ends: at once no numbers, and the sweeper quarantines them.
			e.clk.add(end.Sub(t0) + time.Minute)
			if _, err := e.p.Assign(ctx, "client", Visit{}); !errors.Is(err, ErrCustomerEnded) {
				t.Fatalf("Assign after the contract end: %v", err)
			}
			if rep := e.sweep(); rep["contracts_ended"] != 1 || rep["customers_purged"] != 0 {
				t.Fatalf("sweep at the end: %v", rep)
			}
			c, _ := e.p.Customer("client")
			if c.Status != store.StatusEnded || !c.EndedAt.Equal(end) {
				t.Fatalf("customer after the end: %s ended %v", c.Status, c.EndedAt)
			}
			nums, _ := e.p.Numbers("client")
			for _, n := range nums {
				if n.State != store.NumberQuarantined || !n.QuarantinedUntil.Equal(end.AddDate(0, 6, 0)) {
					t.Fatalf("number after the end: %+v", n)
				}
			}
			if _, err := e.p.Attribute(tn.numbers[2], e.clk.now()); !errors.Is(err, ErrQuarantined) {
				t.Fatalf("Attribute of a quarantined number: %v", err)
			}

			// Two months on the data is still there.
			e.clk.add(61 * 24 * time.Hour)
			e.sweep()
			if _, err := e.db.Call(tn.call); err != nil {
				t.Fatalf("call within retention: %v", err)
			}
			// Three months after the end: deleted (exported first if so chosen).
			e.clk.add(31 * 24 * time.Hour)
			rep := e.sweep()
			if rep["customers_purged"] != 1 || rep["numbers"] != 0 || rep["held_numbers"] != 3 || rep["compactions"] != 1 {
				t.Fatalf("sweep after the retention: %v", rep)
			}
			e.gone(tn)
			files, _ := filepath.Glob(filepath.Join(e.exportDir, "*"))
			if action == store.RetainExportThenDelete {
				if rep["exports"] != 1 || len(files) != 1 || !strings.HasSuffix(files[0], ".zip") {
					t.Fatalf("export before deletion: %v, files %v", rep, files)
				}
				checkArchive(t, files[0], tn)
			} else if len(files) != 0 {
				t.Fatalf("exported though the customer chose delete: %v", files)
			}
			// The numbers stay held, quarantined: calls find them not in service, and
			// nobody may import them.
			if held := e.p.HeldNumbers(); len(held) != 3 || held[0].CustomerID != "" {
				t.Fatalf("held numbers %+v", held)
			}
			if a, err := e.p.Attribute(tn.numbers[0], e.clk.now()); !errors.Is(err, ErrQuarantined) || a.CustomerID != "" {
				t.Fatalf("Attribute of a held number: %+v %v", a, err)
			}
			if _, err := e.p.ImportNumbers(ctx, "acme", []NumberInput{{Number: tn.numbers[0]}}); err == nil || !strings.Contains(err.Error(), "quarantine") {
				t.Fatalf("import of a held number: %v", err)
			}
			// Held numbers survive a restart.
			e.restart()
			ex := recordings.NewExporter(e.db, e.recDir, e.keys, recordings.WithExportClock(e.clk.now))
			var err error
			if e.sw, err = NewSweeper(e.p, SweepConfig{ExportDir: e.exportDir}, ex); err != nil {
				t.Fatal(err)
			}
			if held := e.p.HeldNumbers(); len(held) != 3 {
				t.Fatalf("held numbers after a restart: %+v", held)
			}
			if action == store.RetainExportThenDelete {
				// The archive stays for its handover window (30 days), then the sweeper
				// deletes it: it holds the recordings and the callers.
				e.clk.add(29 * 24 * time.Hour)
				if rep := e.sweep(); rep["archives_deleted"] != 0 {
					t.Fatalf("archive deleted within its window: %v", rep)
				}
				if files, _ := filepath.Glob(filepath.Join(e.exportDir, "*")); len(files) != 1 {
					t.Fatalf("archives within the window: %v", files)
				}
				e.clk.add(24*time.Hour + time.Minute)
				if rep := e.sweep(); rep["archives_deleted"] != 1 {
					t.Fatalf("sweep after the window: %v", rep)
				}
				if files, _ := filepath.Glob(filepath.Join(e.exportDir, "*")); len(files) != 0 {
					t.Fatalf("archives after the window: %v", files)
				}
			}

			// Six months after the end the quarantine is over: back to the stock, but
			// for the number marked for porting.
			e.clk.add(end.AddDate(0, 6, 0).Sub(e.clk.now()) - time.Hour)
			if rep := e.sweep(); rep["numbers_released"] != 0 {
				t.Fatalf("released before six months: %v", rep)
			}
			e.clk.add(time.Hour)
			if rep := e.sweep(); rep["numbers_released"] != 2 {
				t.Fatalf("sweep after six months: %v", rep)
			}
			held := e.p.HeldNumbers()
			if len(held) != 1 || held[0].E164 != tn.numbers[1] || !held[0].Porting {
				t.Fatalf("held after the quarantine: %+v", held)
			}
			if _, err := e.p.ImportNumbers(ctx, "acme", []NumberInput{{Number: tn.numbers[0]}, {Number: tn.numbers[2]}}); err != nil {
				t.Fatalf("import of released numbers: %v", err)
			}
			if _, err := e.p.ImportNumbers(ctx, "acme", []NumberInput{{Number: tn.numbers[1]}}); err == nil {
				t.Fatal("the number marked for porting was released")
			}
			// The port is done: the operator releases it.
			if err := e.p.ReleaseHeld(ctx, tn.numbers[1]); err != nil {
				t.Fatal(err)
			}
			if held := e.p.HeldNumbers(); len(held) != 0 {
				t.Fatalf("held after the release: %+v", held)
			}
			acts := e.auditActions()
			for _, want := range []string{"sweeper contract.end client", "sweeper retention.purge client", "sweeper number.release "} {
				if !slices.Contains(acts, want) {
					t.Errorf("audit log lacks %q: %v", want, acts)
				}
			}
			if action == store.RetainExportThenDelete && !slices.Contains(acts, "sweeper retention.export client") {
				t.Errorf("audit log lacks the export: %v", acts)
			}
		})
	}
}

// checkArchive opens an export archive and checks it holds tn's data and verifies against
// its manifest.
func checkArchive(t *testing.T, path string, tn *tenant) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("archive %s: %v", path, err)
	}
	defer zr.Close()
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		files[f.Name] = b
	}
	var m recordings.Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil || m.Format != recordings.ArchiveFormat || m.CustomerID != tn.id {
		t.Fatalf("manifest %+v %v", m, err)
	}
	for _, mf := range m.Files {
		sum := sha256.Sum256(files[mf.Name])
		if hex.EncodeToString(sum[:]) != mf.SHA256 || int64(len(files[mf.Name])) != mf.Bytes {
			t.Errorf("%s does not match its manifest entry", mf.Name)
		}
	}
	if !bytes.Contains(files["calls.jsonl"], []byte(tn.call)) || !bytes.Contains(files["calls.csv"], []byte(tn.call)) {
		t.Errorf("calls files lack the call:\n%s", files["calls.jsonl"])
	}
	// The sessions that never led to a call expired after 90 days; the called one is there.
	if !bytes.Contains(files["sessions.jsonl"], []byte(tn.sessions[0])) || !bytes.Contains(files["sessions.csv"], []byte(tn.sessions[0])) {
		t.Errorf("sessions files lack %s", tn.sessions[0])
	}
	if !bytes.Equal(files["recordings/"+tn.call+".wav"], tn.audio) {
		t.Errorf("the recording in the archive differs from the file")
	}
	for _, n := range tn.numbers {
		if !bytes.Contains(files["numbers.csv"], []byte(n)) {
			t.Errorf("numbers.csv lacks %s", n)
		}
	}
}

// TestQuarantineWithinRetention: a customer that keeps its data longer than the quarantine
// loses its numbers to the stock at six months while its data stays; a number the operator
// quarantined in a running contract returns to that customer's pool when its time is over.
func TestQuarantineWithinRetention(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	tn := e.newTenant(store.Customer{ID: "keeper", Status: store.StatusActive, RetentionMonths: 12}, 300)
	if err := e.p.Quarantine(ctx, numberOf(1), e.clk.now().Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.UpdateCustomer(ctx, "keeper", func(c *store.Customer) { c.Status = store.StatusEnded }); err != nil {
		t.Fatal(err)
	}
	e.clk.add(49 * time.Hour)
	if rep := e.sweep(); rep["numbers_returned"] != 1 {
		t.Fatalf("operator's quarantine over: %v", rep)
	}
	if st := e.status(); st.Quarantined != 0 || st.Available != 2 {
		t.Fatalf("acme's pool after the return: %+v", st)
	}
	e.clk.add(time.Duration(6*31) * 24 * time.Hour)
	if rep := e.sweep(); rep["numbers_released"] != 3 || rep["customers_purged"] != 0 {
		t.Fatalf("sweep at six months: %v", rep)
	}
	if nums, _ := e.p.Numbers("keeper"); len(nums) != 0 {
		t.Fatalf("keeper's numbers after release: %+v", nums)
	}
	if _, err := e.db.Call(tn.call); err != nil {
		t.Fatalf("keeper's call within its retention: %v", err)
	}
	if _, err := e.p.ImportNumbers(ctx, "acme", []NumberInput{{Number: tn.numbers[0]}}); err != nil {
		t.Fatalf("import of a released number: %v", err)
	}
}

func TestStatusTransitions(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	if _, err := f.p.CreateCustomer(ctx, store.Customer{ID: "t", Name: "T", Status: store.StatusTrial, SiteKey: "t-site-key"}); err != nil {
		t.Fatal(err)
	}
	set := func(s store.CustomerStatus) (store.Customer, error) {
		return f.p.UpdateCustomer(ctx, "t", func(c *store.Customer) { c.Status = s })
	}
	f.clk.add(time.Hour)
	c, err := set(store.StatusActive)
	if err != nil || !c.ActiveSince.Equal(f.clk.now()) {
		t.Fatalf("trial -> active: %+v %v", c, err)
	}
	if _, err := set(store.StatusTrial); !errors.Is(err, ErrConflict) {
		t.Fatalf("active -> trial: %v, want ErrConflict", err)
	}
	if c, err = set(store.StatusEnded); err != nil || !c.EndedAt.Equal(f.clk.now()) {
		t.Fatalf("active -> ended: %+v %v", c, err)
	}
	if _, err := set(store.StatusActive); !errors.Is(err, ErrConflict) {
		t.Fatalf("ended -> active: %v, want ErrConflict", err)
	}
	if TrialLapsed(&c, f.clk.now()) {
		t.Fatal("an ended contract taken for a lapsed trial")
	}
}

// TestSessionExpiry: sessions that never led to a call are deleted after 90 days, for an
// active customer too; the one that led to a call stays, and the month's usage still counts
// every session.
func TestSessionExpiry(t *testing.T) {
	e := newLifecycleEnv(t)
	tn := e.newTenant(store.Customer{ID: "shop", Status: store.StatusActive}, 400)
	e.clk.add(89 * 24 * time.Hour)
	if rep := e.sweep(); rep["sessions"] != 0 {
		t.Fatalf("sweep at 89 days: %v", rep)
	}
	e.clk.add(24*time.Hour + time.Minute)
	rep := e.sweep()
	// acme's fixture has no sessions; shop's two uncalled ones go.
	if rep["sessions"] != 2 || rep["assignments"] != 2 {
		t.Fatalf("sweep at 90 days: %v", rep)
	}
	err := e.db.View(func(tx *store.Tx) error {
		if _, err := tx.Session(tn.sessions[0]); err != nil {
			return fmt.Errorf("the called session: %w", err)
		}
		for _, s := range tn.sessions[1:] {
			if _, err := tx.Session(s); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("session %s: %v, want gone", s, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := e.db.Usage("shop", "2026-03"); u.Sessions != 3 || u.Calls != 1 {
		t.Fatalf("usage after expiry: %+v", u)
	}
	entries, _, _ := e.db.AuditLog(store.AuditFilter{CustomerID: "shop"})
	var expired []string
	for _, en := range entries {
		if en.Action == "sessions.expire" {
			expired = append(expired, en.IDs...)
		}
	}
	slices.Sort(expired)
	want := slices.Sorted(slices.Values(tn.sessions[1:]))
	if !slices.Equal(expired, want) {
		t.Fatalf("audited expiry %v, want %v", expired, want)
	}
}

// TestPurgeWaitsForCalls: a lapsed trial with a call in progress keeps its data (and its
// recording being written) until the call ended.
func TestPurgeWaitsForCalls(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	tn := e.newTenant(store.Customer{ID: "busy", Status: store.StatusTrial}, 500)
	live := store.Call{ID: NewID(e.clk.now()), CustomerID: "busy", Dialled: tn.numbers[0], Start: e.clk.now()}
	if err := e.db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&live) }); err != nil {
		t.Fatal(err)
	}
	e.clk.add(15 * 24 * time.Hour)
	if rep := e.sweep(); rep["deferred"] != 1 || rep["trials_expired"] != 0 {
		t.Fatalf("sweep with a call in progress: %v", rep)
	}
	if _, err := os.Stat(tn.recFile); err != nil {
		t.Fatalf("recording removed while a call runs: %v", err)
	}
	live.End = e.clk.now()
	if err := e.db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&live) }); err != nil {
		t.Fatal(err)
	}
	if rep := e.sweep(); rep["trials_expired"] != 1 {
		t.Fatalf("sweep after the call: %v", rep)
	}
	e.gone(tn)
}

// TestAuditRetention: entries older than the audit retention are pruned by the sweeper.
func TestAuditRetention(t *testing.T) {
	e := newLifecycleEnv(t)
	t0 := e.clk.now()
	e.sweep() // one sweep.run entry, now
	e.clk.add(t0.AddDate(0, 24, 0).Sub(t0) + time.Second)
	rep := e.sweep()
	if rep["audit_entries"] != 1 {
		t.Fatalf("sweep after 24 months: %v", rep)
	}
	if acts := e.auditActions(); len(acts) != 1 {
		t.Fatalf("audit log after pruning: %v", acts)
	}
}

// Webhook messages with their deliveries' attempts are kept for the retention period: the
// sweep deletes those made before it that nothing waits to deliver.
func TestWebhookMessagesRetention(t *testing.T) {
	e := newLifecycleEnv(t)
	ctx := context.Background()
	secret := store.SecretPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if err := e.db.Write(ctx, func(tx *store.Tx) error {
		return tx.PutEndpoint(&store.Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.example/hook",
			EventTypes: []store.EventType{store.EventCallRinging}, Secret: secret})
	}); err != nil {
		t.Fatal(err)
	}
	// The store's messages are made at the real time: the sweeper's clock is set from it.
	made := time.Now()
	for range 5 {
		c := store.Call{ID: NewID(made), CustomerID: "acme", Dialled: numberOf(1), Start: made}
		if err := e.db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&c) }); err != nil {
			t.Fatal(err)
		}
	}
	// The endpoint goes: nothing is pending, the messages stay with the customer.
	if err := e.db.DeleteEndpoint(ctx, "acme", "crm"); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		var n int
		if err := e.db.View(func(tx *store.Tx) error {
			ms, err := tx.Messages("acme", time.Time{}, time.Time{}, 100)
			n = len(ms)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 5 {
		t.Fatalf("%d messages", n)
	}
	e.clk.add(made.AddDate(0, 3, -1).Sub(e.clk.now()))
	if rep := e.sweep(); rep["webhook_messages"] != 0 || count() != 5 {
		t.Fatalf("a day within the retention period: %v, %d messages", rep, count())
	}
	e.clk.add(2 * 24 * time.Hour)
	if rep := e.sweep(); rep["webhook_messages"] != 5 || count() != 0 {
		t.Fatalf("a day past the retention period: %v, %d messages", rep, count())
	}
}
