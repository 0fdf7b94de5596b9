package privacy

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
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// The numbers of the fixture: a caller's digits must never reach the logs or the audit log.
const (
	caller      = "+31612398765"
	callerLocal = "612398765" // the digits every written form of caller holds
	other       = "+31655500555"
)

// env is a real store file, pool, keyring and recordings tree with two customers in
// service, acme and bakery, and a Service on them that logs to logs.
type env struct {
	db       *store.DB
	pool     *pool.Pool
	keys     *keyring.Keyring
	recorder *recordings.Recorder
	svc      *Service
	logs     *bytes.Buffer
	now      time.Time // the Service's clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	recorder, err := recordings.New(recordings.Options{Dir: t.TempDir(), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recorder.Close() })
	for i, cu := range []string{"acme", "bakery"} {
		if _, err := p.CreateCustomer(context.Background(), store.Customer{ID: cu, Name: cu, Status: store.StatusActive,
			SiteKey: cu + "-site-key", AllowedOrigins: []string{"https://" + cu + ".example"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.ImportNumbers(context.Background(), cu, []pool.NumberInput{{Number: fmt.Sprintf("+3185000000%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{db: db, pool: p, keys: keys, recorder: recorder, logs: &bytes.Buffer{},
		now: time.Now().Add(time.Hour).Truncate(time.Second)}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc = New(db, keys, recorder.Dir(), p, WithLogger(log), WithClock(func() time.Time { return e.now }))
	return e
}

// addCall stores a finished (or, with active, ongoing) call of customer from number with a
// one-second recording, as the call layer does: the number in the clear or, pseudonymous,
// only its pseudonym and last three digits.
func (e *env) addCall(t *testing.T, customer, number string, pseudonymous, active bool) store.Call {
	t.Helper()
	key, err := e.keys.Get(customer)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := store.Call{ID: pool.NewID(now), CustomerID: customer, CallerPseudonym: key.Pseudonym(number),
		LandingPage: "https://" + customer + ".example/landing-probe", Start: now, End: now.Add(time.Minute), Disposition: "answered"}
	if pseudonymous {
		c.CallerLastDigits = number[len(number)-3:]
	} else {
		c.Caller = number
	}
	if active {
		c.End, c.Disposition = time.Time{}, ""
	}
	rw, err := e.recorder.Open(customer, c.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	rw.Submit(rw.NewChunk(0))
	info, err := rw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	rec := store.Recording{ID: pool.NewID(now), CustomerID: customer, CallID: c.ID, Path: info.Rel, Size: info.Size,
		SHA256: info.SHA256, Duration: info.Duration, Created: now}
	c.RecordingID = rec.ID
	if err := e.db.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.PutCall(&c); err != nil {
			return err
		}
		return tx.PutRecording(&rec)
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) subject(t *testing.T, customer, number string) Subject {
	t.Helper()
	s, err := e.svc.Subject(customer, number, "31")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lastAudit waits for the newest audit entry of a customer to be action (a read's entry
// shares the next commit) and returns it.
func (e *env) lastAudit(t *testing.T, customer, action string) store.AuditEntry {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		entries, _, err := e.db.AuditLog(store.AuditFilter{CustomerID: customer, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 1 && entries[0].Action == action {
			return entries[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("newest audit entry of %s: %+v, want %s", customer, entries, action)
		}
	}
}

// noNumberIn fails the test if what holds any digits of the fixture's caller.
func noNumberIn(t *testing.T, name string, what []byte) {
	t.Helper()
	if i := bytes.Index(what, []byte(callerLocal)); i >= 0 {
		t.Errorf("%s holds the caller's number: %q", name, what[max(0, i-40):min(len(what), i+40)])
	}
}

func TestSubject(t *testing.T) {
	e := newEnv(t)
	key, err := e.keys.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range []string{caller, "0612398765", "06-12398765", "06 1239 8765", "0031612398765", "+31 (0)6 12398765"} {
		s, err := e.svc.Subject("acme", form, "31")
		if err != nil || s.CustomerID() != "acme" || s.number != caller || s.pseudonym != key.Pseudonym(caller) {
			t.Errorf("%q: %+v %v", form, s, err)
		}
		for _, printed := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s)} {
			noNumberIn(t, "a printed Subject", []byte(printed))
		}
	}
	for _, tc := range []struct {
		name, customer, number string
		want                   error
	}{
		{"not a number", "acme", "anonymous", ErrBadNumber},
		{"too short", "acme", "0612", ErrBadNumber},
		{"ambiguous without prefix", "acme", "31612398765", ErrBadNumber},
		{"empty", "acme", "", ErrBadNumber},
		{"unknown customer", "nobody", caller, pool.ErrUnknownCustomer},
		{"the customer is checked first", "nobody", "anonymous", pool.ErrUnknownCustomer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Subject(tc.customer, tc.number, "31")
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			if tc.want == ErrBadNumber && !errors.Is(err, e164.ErrEmpty) && !errors.Is(err, e164.ErrInvalid) &&
				!errors.Is(err, e164.ErrTooShort) && !errors.Is(err, e164.ErrTooLong) {
				t.Errorf("%v does not wrap e164's reason", err)
			}
		})
	}
	// bakery has no key yet: no call of it has a pseudonym, and looking up makes none.
	s := e.subject(t, "bakery", caller)
	if s.pseudonym != "" {
		t.Errorf("a customer without a key: pseudonym %q", s.pseudonym)
	}
	if _, err := e.keys.Lookup("bakery"); !errors.Is(err, keyring.ErrNoKey) {
		t.Errorf("Subject made a key: %v", err)
	}
	d, err := e.svc.Lookup(context.Background(), s, "operator")
	if err != nil || d.CustomerID != "bakery" || d.Calls == nil || d.Recordings == nil || len(d.Calls)+len(d.Recordings) != 0 {
		t.Errorf("lookup at a customer without a key: %+v %v", d, err)
	}
}

func TestLookup(t *testing.T) {
	e := newEnv(t)
	older := e.addCall(t, "acme", caller, false, false)
	newer := e.addCall(t, "acme", caller, true, false) // pseudonymous since: found all the same
	e.addCall(t, "acme", other, false, false)
	bakery := e.addCall(t, "bakery", caller, false, false)

	d, err := e.svc.Lookup(context.Background(), e.subject(t, "acme", "0612398765"), "user:u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Calls) != 2 || d.Calls[0].ID != newer.ID || d.Calls[1].ID != older.ID || d.Calls[0].Caller != "" ||
		d.Calls[0].CallerLastDigits != "765" {
		t.Fatalf("calls %+v", d.Calls)
	}
	if len(d.Recordings) != 2 || d.Recordings[0].ID != newer.RecordingID || d.Recordings[0].CallID != newer.ID ||
		d.Recordings[0].DurationSeconds != 1 || d.Recordings[0].File != "" || !d.ExportedAt.IsZero() {
		t.Errorf("recordings %+v", d.Recordings)
	}
	a := e.lastAudit(t, "acme", "caller.read")
	if a.Actor != "user:u1" || !a.Time.Equal(e.now) || strings.Join(a.IDs, " ") != strings.Join([]string{newer.ID, older.ID, newer.RecordingID, older.RecordingID}, " ") {
		t.Errorf("audit entry %+v", a)
	}
	b, _ := json.Marshal(a)
	noNumberIn(t, "the audit entry", b)
	if strings.Contains(string(b), newer.CallerPseudonym) || strings.Contains(string(b), bakery.ID) {
		t.Errorf("the audit entry names the pseudonym or bakery's call: %s", b)
	}
	// The JSON of what is held: the admin API's answer.
	j, _ := json.Marshal(d)
	for _, member := range []string{`"customer_id":"acme"`, `"calls":[`, `"recordings":[`, `"duration_seconds":1`} {
		if !strings.Contains(string(j), member) {
			t.Errorf("JSON lacks %s: %s", member, j)
		}
	}
	if strings.Contains(string(j), "exported_at") || strings.Contains(string(j), `"file"`) || strings.Contains(string(j), bakery.ID) {
		t.Errorf("JSON of a lookup: %s", j)
	}
}

// readZip writes an export to memory and returns its files.
func readZip(t *testing.T, x *CallerExport) map[string][]byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := x.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d of %d bytes, %v", n, buf.Len(), err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func TestExportCaller(t *testing.T) {
	e := newEnv(t)
	kept := e.addCall(t, "acme", caller, false, false)
	lost := e.addCall(t, "acme", caller, false, false)
	bakery := e.addCall(t, "bakery", caller, false, false)
	rec, err := e.db.Recording(lost.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.recorder.Dir(), filepath.FromSlash(rec.Path))); err != nil {
		t.Fatal(err)
	}

	x, err := e.svc.ExportCaller(context.Background(), e.subject(t, "acme", caller), "token:t1")
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Filename() != "caller-acme.zip" {
		t.Errorf("file name %q", x.Filename())
	}
	files := readZip(t, x)
	var d CallerData
	if err := json.Unmarshal(files["caller.json"], &d); err != nil {
		t.Fatalf("caller.json: %v", err)
	}
	if len(files) != 2 || len(d.Calls) != 2 || len(d.Recordings) != 2 || !d.ExportedAt.Equal(e.now) {
		t.Fatalf("archive %d files, caller.json %s", len(files), files["caller.json"])
	}
	for _, r := range d.Recordings {
		switch r.CallID {
		case kept.ID:
			wav := files[r.File]
			sum := sha256.Sum256(wav)
			if r.File != "recordings/"+kept.ID+".wav" || r.Missing != "" || len(wav) < 4 || string(wav[:4]) != "RIFF" ||
				hex.EncodeToString(sum[:]) != r.SHA256 {
				t.Errorf("the kept recording: %+v, %d bytes", r, len(wav))
			}
		case lost.ID:
			if r.File != "" || r.Missing != "the recording's file is gone" {
				t.Errorf("the lost recording: %+v", r)
			}
		default:
			t.Errorf("a recording of another call: %+v", r)
		}
	}
	if bytes.Contains(files["caller.json"], []byte(bakery.ID)) {
		t.Error("the archive holds bakery's call")
	}
	a := e.lastAudit(t, "acme", "caller.export")
	if a.Actor != "token:t1" || len(a.IDs) != 4 {
		t.Errorf("audit entry %+v", a)
	}
	if err := x.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}

	// The key destroyed after the subject was resolved: the recording is missing, for that.
	s := e.subject(t, "bakery", caller)
	if err := e.keys.Destroy("bakery"); err != nil {
		t.Fatal(err)
	}
	x, err = e.svc.ExportCaller(context.Background(), s, "operator")
	if err != nil {
		t.Fatal(err)
	}
	if d := x.Data(); len(d.Recordings) != 1 || d.Recordings[0].Missing != "the recording's key was destroyed" {
		t.Errorf("after the key was destroyed: %+v", d.Recordings)
	}
	x.Close()
}

// TestExportRefusesForeignPath: a record whose path leaves the recordings directory fails
// the export, logged; nothing is audited as exported.
func TestExportRefusesForeignPath(t *testing.T) {
	e := newEnv(t)
	c := e.addCall(t, "acme", caller, false, false)
	rec, err := e.db.Recording(c.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	rec.Path = "../../etc/passwd.wav.enc"
	if err := e.db.Write(context.Background(), func(tx *store.Tx) error { return tx.PutRecording(&rec) }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ExportCaller(context.Background(), e.subject(t, "acme", caller), "operator"); !errors.Is(err, ErrUnknownRecording) {
		t.Fatalf("%v, want ErrUnknownRecording", err)
	}
	if !strings.Contains(e.logs.String(), "recording path leaves the recordings directory") || !strings.Contains(e.logs.String(), rec.ID) {
		t.Errorf("logs: %s", e.logs)
	}
	entries, _, _ := e.db.AuditLog(store.AuditFilter{CustomerID: "acme", Limit: 10})
	for _, en := range entries {
		if en.Action == "caller.export" {
			t.Errorf("a refused export was audited: %+v", en)
		}
	}
}

// TestEraseCaller: the caller's calls, recordings and files are gone, the store file no
// longer holds the number, the compaction runs only when something was deleted, another
// caller's and another customer's data are untouched, and the audit log and the logs name
// ids only.
func TestEraseCaller(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var victims []store.Call
	for range 3 {
		victims = append(victims, e.addCall(t, "acme", caller, false, false))
	}
	keep := e.addCall(t, "acme", other, false, false)
	bakery := e.addCall(t, "bakery", caller, false, false)
	active := e.addCall(t, "acme", "+31677700777", false, true)

	// A call in progress blocks its caller's erasure; nothing is erased.
	if _, err := e.svc.EraseCaller(ctx, e.subject(t, "acme", "+31677700777"), "operator"); !errors.Is(err, ErrCallInProgress) {
		t.Fatalf("erase while a call is in progress: %v", err)
	}
	rec, _ := e.db.Recording(active.RecordingID)
	if _, err := e.db.Call(active.ID); err != nil {
		t.Errorf("the refused erasure removed the call: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.recorder.Dir(), filepath.FromSlash(rec.Path))); err != nil {
		t.Errorf("the refused erasure removed the recording: %v", err)
	}

	inode := func() uint64 {
		st, err := os.Stat(e.db.Path())
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	// A number with nothing here: nothing erased, no compaction (the file stays).
	before := inode()
	got, err := e.svc.EraseCaller(ctx, e.subject(t, "acme", "0600000001"), "operator")
	if err != nil || got.CustomerID != "acme" || got.Calls == nil || got.Recordings == nil || len(got.Calls)+len(got.Recordings) != 0 {
		t.Errorf("erase a number without calls: %+v %v", got, err)
	}
	if inode() != before {
		t.Error("erasing a number without calls compacted the store")
	}

	got, err = e.svc.EraseCaller(ctx, e.subject(t, "acme", "06 1239 8765"), "user:u7")
	if err != nil {
		t.Fatal(err)
	}
	if inode() == before {
		t.Error("the erasure did not compact the store")
	}
	if due, err := e.db.CompactionDue(); err != nil || due {
		t.Errorf("compaction still due after the erasure: %v %v", due, err)
	}
	if len(got.Calls) != 3 || len(got.Recordings) != 3 {
		t.Fatalf("erased %+v", got)
	}
	for i, v := range victims {
		if !strings.Contains(strings.Join(got.Calls, " "), v.ID) || !strings.Contains(strings.Join(got.Recordings, " "), v.RecordingID) {
			t.Errorf("victim %d not in %+v", i, got)
		}
		if _, err := e.db.Call(v.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("call %d: %v", i, err)
		}
		if _, err := e.db.Recording(v.RecordingID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("recording %d: %v", i, err)
		}
		if files, _ := filepath.Glob(filepath.Join(e.recorder.Dir(), "acme", "*", "*", "*", v.ID+"*")); len(files) != 0 {
			t.Errorf("recording files left: %v", files)
		}
	}
	a := e.lastAudit(t, "acme", "caller.erase")
	if a.Actor != "user:u7" || len(a.IDs) != 6 {
		t.Errorf("audit entry %+v", a)
	}
	// Another caller and another customer are untouched.
	if d, err := e.svc.Lookup(ctx, e.subject(t, "acme", other), "operator"); err != nil || len(d.Calls) != 1 || d.Calls[0].ID != keep.ID {
		t.Errorf("acme's other caller: %+v %v", d, err)
	}
	if d, err := e.svc.Lookup(ctx, e.subject(t, "bakery", caller), "operator"); err != nil || len(d.Calls) != 1 || d.Calls[0].ID != bakery.ID {
		t.Errorf("bakery's call of the number: %+v %v", d, err)
	}
	// Erased at bakery too, the number is nowhere in the store file, the audit log or the logs.
	if _, err := e.svc.EraseCaller(ctx, e.subject(t, "bakery", caller), "operator"); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(e.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	noNumberIn(t, "the store file", file)
	entries, _, err := e.db.AuditLog(store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(entries)
	noNumberIn(t, "the audit log", b)
	noNumberIn(t, "the logs", e.logs.Bytes())
	if !strings.Contains(e.logs.String(), `msg="caller erased" customer=acme calls=3 recordings=3`) {
		t.Errorf("logs: %s", e.logs)
	}
}

// TestEraseCustomer: only a customer out of service and without calls in progress is erased;
// its key is destroyed first (a copy of a recording made before no longer decrypts), its
// recordings and records go, the store is compacted, the other customer stays.
func TestEraseCustomer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.addCall(t, "bakery", caller, false, false)
	e.addCall(t, "acme", caller, false, false)
	rec, err := e.db.Recording(c.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.wav.enc")
	b, err := os.ReadFile(filepath.Join(e.recorder.Dir(), filepath.FromSlash(rec.Path)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backup, b, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := e.svc.EraseCustomer(ctx, "nobody", "operator"); !errors.Is(err, pool.ErrUnknownCustomer) {
		t.Errorf("an unknown customer: %v", err)
	}
	if _, err := e.svc.EraseCustomer(ctx, "bakery", "operator"); !errors.Is(err, ErrInService) {
		t.Errorf("a customer in service: %v", err)
	}
	if _, err := e.pool.EndContract(ctx, "bakery", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	active := e.addCall(t, "bakery", other, false, true)
	if _, err := e.svc.EraseCustomer(ctx, "bakery", "operator"); !errors.Is(err, ErrActiveCalls) {
		t.Errorf("a call in progress: %v", err)
	}
	if _, err := e.keys.Lookup("bakery"); err != nil {
		t.Fatalf("a refused erasure destroyed the key: %v", err)
	}
	active.End, active.Disposition = active.Start.Add(time.Minute), "answered"
	if err := e.db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&active) }); err != nil {
		t.Fatal(err)
	}

	counts, err := e.svc.EraseCustomer(ctx, "bakery", "operator")
	if err != nil || counts["calls"] != 2 || counts["recordings"] != 2 {
		t.Fatalf("erase: %v %v", counts, err)
	}
	if _, err := e.keys.Lookup("bakery"); !errors.Is(err, keyring.ErrNoKey) {
		t.Errorf("key after erasure: %v", err)
	}
	if _, err := recordings.Open(e.keys, backup); !errors.Is(err, keyring.ErrNoKey) {
		t.Errorf("the backup copy after erasure: %v, want ErrNoKey", err)
	}
	if _, err := os.Stat(filepath.Join(e.recorder.Dir(), "bakery")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bakery's recordings: %v", err)
	}
	if _, err := e.pool.Customer("bakery"); !errors.Is(err, pool.ErrUnknownCustomer) {
		t.Errorf("the customer after erasure: %v", err)
	}
	if _, err := e.svc.EraseCustomer(ctx, "bakery", "operator"); !errors.Is(err, pool.ErrUnknownCustomer) {
		t.Errorf("erase it again: %v", err)
	}
	if due, err := e.db.CompactionDue(); err != nil || due {
		t.Errorf("compaction still due: %v %v", due, err)
	}
	file, _ := os.ReadFile(e.db.Path())
	for _, needle := range []string{"bakery-site-key", "bakery.example", other[3:]} {
		if bytes.Contains(file, []byte(needle)) {
			t.Errorf("the store file still holds %q", needle)
		}
	}
	a := e.lastAudit(t, "bakery", "customer.erase")
	if a.Actor != "operator" || !a.Time.Equal(e.now) || a.Counts["calls"] != 2 || len(a.IDs) != 0 {
		t.Errorf("audit entry %+v", a)
	}
	// acme is untouched.
	if d, err := e.svc.Lookup(ctx, e.subject(t, "acme", caller), "operator"); err != nil || len(d.Calls) != 1 || len(d.Recordings) != 1 {
		t.Errorf("acme after bakery's erasure: %+v %v", d, err)
	}
	if !strings.Contains(e.logs.String(), `msg="customer erased" customer=bakery`) {
		t.Errorf("logs: %s", e.logs)
	}
	noNumberIn(t, "the logs", e.logs.Bytes())
}

// TestCallerWebhookMessages: a caller's lookup and export list the webhook messages of the
// caller's calls, payload as sent and where they went; the erasure deletes them, and
// another caller's stay.
func TestCallerWebhookMessages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	secret := store.SecretPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if err := e.db.Write(ctx, func(tx *store.Tx) error {
		return tx.PutEndpoint(&store.Endpoint{ID: "crm", CustomerID: "acme", URL: "https://crm.acme.example/hook",
			EventTypes: []store.EventType{store.EventCallCompleted, store.EventRecordingReady}, Secret: secret})
	}); err != nil {
		t.Fatal(err)
	}
	mine := e.addCall(t, "acme", caller, false, false)
	theirs := e.addCall(t, "acme", other, false, false)
	d, err := e.svc.Lookup(ctx, e.subject(t, "acme", caller), "operator")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.WebhookMessages) != 2 {
		t.Fatalf("%d webhook messages, want call.completed and recording.ready", len(d.WebhookMessages))
	}
	for _, m := range d.WebhookMessages {
		if m.Subject != mine.ID || len(m.Deliveries) != 1 || m.Deliveries[0].URL != "https://crm.acme.example/hook" ||
			m.Deliveries[0].State != store.DeliveryPending {
			t.Errorf("message %+v", m)
		}
	}
	if m := d.WebhookMessages[0]; m.Type != store.EventCallCompleted || !bytes.Contains(m.Payload, []byte(mine.Caller)) {
		t.Errorf("the completion's payload: %s", m.Payload)
	}
	x, err := e.svc.ExportCaller(ctx, e.subject(t, "acme", caller), "operator")
	if err != nil {
		t.Fatal(err)
	}
	files := readZip(t, x)
	x.Close()
	var got struct {
		WebhookMessages []struct {
			ID         string          `json:"id"`
			Payload    json.RawMessage `json:"payload"`
			Deliveries []struct {
				URL string `json:"url"`
			} `json:"deliveries"`
		} `json:"webhook_messages"`
	}
	if err := json.Unmarshal(files["caller.json"], &got); err != nil || len(got.WebhookMessages) != 2 ||
		!bytes.Contains(got.WebhookMessages[0].Payload, []byte(mine.ID)) || got.WebhookMessages[0].Deliveries[0].URL == "" {
		t.Fatalf("caller.json: %s (%v)", files["caller.json"], err)
	}
	if a := e.lastAudit(t, "acme", "caller.export"); len(a.IDs) != 1+1+2 {
		t.Errorf("audit entry %+v", a)
	}
	erased, err := e.svc.EraseCaller(ctx, e.subject(t, "acme", caller), "operator")
	if err != nil {
		t.Fatal(err)
	}
	if len(erased.WebhookMessages) != 2 || erased.WebhookMessages[0] != d.WebhookMessages[0].ID {
		t.Fatalf("erased %+v", erased)
	}
	if ms, err := e.db.WebhookMessagesOf(ctx, "acme", []string{mine.ID}); err != nil || len(ms) != 0 {
		t.Fatalf("the erased call's messages: %d %v", len(ms), err)
	}
	if ms, err := e.db.WebhookMessagesOf(ctx, "acme", []string{theirs.ID}); err != nil || len(ms) != 2 {
		t.Fatalf("the other caller's messages: %d %v", len(ms), err)
	}
	raw, err := os.ReadFile(e.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(caller)) { // the payloads held it
		t.Error("the store file still holds the erased caller's number")
	}
}
