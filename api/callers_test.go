package api

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// callerEnv is the tenancy fixture plus what the caller tests need to reach.
type callerEnv struct {
	*tenancyEnv
	keys     *keyring.Keyring
	recorder *recordings.Recorder
}

func newCallerEnv(t *testing.T) *callerEnv {
	t.Helper()
	e := newTenancyEnv(t)
	return &callerEnv{tenancyEnv: e, keys: e.keys, recorder: e.recorder}
}

// addCall stores a finished (or, with active, ongoing) call of customer from number, with a
// one-second recording, as the call layer does: number in the clear or, for pseudonymous,
// only its pseudonym and last three digits.
func (e *callerEnv) addCall(t *testing.T, customer, number, landing string, pseudonymous, active bool) store.Call {
	t.Helper()
	key, err := e.keys.Get(customer)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := store.Call{ID: pool.NewID(now), CustomerID: customer, Dialled: e.number[customer], CallerPseudonym: key.Pseudonym(number),
		LandingPage: landing, Start: now, Disposition: "answered", End: now.Add(time.Minute)}
	if pseudonymous {
		c.CallerLastDigits = number[len(number)-3:]
	} else {
		c.Caller = number
	}
	if active {
		c.End, c.Disposition = time.Time{}, ""
	}
	info := recordOneSecond(t, e.recorder, customer, c.ID)
	rec := store.Recording{ID: c.ID, CustomerID: customer, CallID: c.ID, Path: info.Rel, Size: info.Size, SHA256: info.SHA256, Created: now}
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

type callerAnswer struct {
	CustomerID string       `json:"customer_id"`
	Calls      []store.Call `json:"calls"`
	Recordings []struct {
		ID     string `json:"id"`
		CallID string `json:"call_id"`
		SHA256 string `json:"sha256"`
		File   string `json:"file"`
	} `json:"recordings"`
	WebhookMessages []struct {
		ID      string          `json:"id"`
		Subject string          `json:"subject"`
		Payload json.RawMessage `json:"payload"`
	} `json:"webhook_messages"`
}

func (e *callerEnv) caller(t *testing.T, tok, path string) (int, callerAnswer, string) {
	t.Helper()
	status, _, body := raw(t, "GET", e.url+path, tok, "")
	var a callerAnswer
	if status == 200 {
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("%s: %v: %s", path, err, body)
		}
	}
	return status, a, body
}

func TestCallerLookup(t *testing.T) {
	e := newCallerEnv(t)
	acmeCall := e.call["acme"]
	forms := []string{"+31612398765", "0612398765", "06-12398765", "06 1239 8765", "0031612398765", "+31 (0)6 12398765", "06.1239.8765"}
	for _, form := range forms {
		status, a, body := e.caller(t, token, "/v1/callers/"+url.PathEscape(form)+"?customer=acme")
		if status != 200 || len(a.Calls) != 1 || a.Calls[0].ID != acmeCall || len(a.Recordings) != 1 || a.Recordings[0].CallID != acmeCall {
			t.Errorf("operator, number %q: %d %s", form, status, body)
		}
		status, a, body = e.caller(t, e.acmeToken, "/v1/callers/"+url.PathEscape(form))
		if status != 200 || len(a.Calls) != 1 || a.Calls[0].ID != acmeCall || strings.Contains(body, e.call["bakery"]) {
			t.Errorf("customer token, number %q: %d %s", form, status, body)
		}
	}
	// A customer with pseudonymous callers: found by the number all the same.
	ps := e.addCall(t, "acme", "+31677700777", "", true, false)
	if status, a, body := e.caller(t, e.acmeToken, "/v1/callers/0677700777"); status != 200 || len(a.Calls) != 1 || a.Calls[0].ID != ps.ID ||
		a.Calls[0].Caller != "" || a.Calls[0].CallerLastDigits != "777" {
		t.Errorf("pseudonymous caller: %d %s", status, body)
	}
	if status, a, _ := e.caller(t, e.acmeToken, "/v1/callers/+31611111111"); status != 200 || len(a.Calls) != 0 || len(a.Recordings) != 0 {
		t.Errorf("a caller without calls: %d %+v", status, a)
	}

	for _, tc := range []struct {
		name, tok, path string
		status          int
		field           string
	}{
		{"operator without customer", token, "/v1/callers/+31612398765", 400, "customer"},
		{"not a number", token, "/v1/callers/anonymous?customer=acme", 400, "number"},
		{"too short", e.acmeToken, "/v1/callers/0612", 400, "number"},
		{"ambiguous without prefix", e.acmeToken, "/v1/callers/31612398765", 400, "number"},
		{"another customer's", e.acmeToken, "/v1/callers/+31612398765?customer=bakery", 404, "customer"},
		{"unknown customer", token, "/v1/callers/+31612398765?customer=nobody", 404, "customer"},
		{"no token", "", "/v1/callers/+31612398765?customer=acme", 401, ""},
	} {
		status, ctype, body := raw(t, "GET", e.url+tc.path, tc.tok, "")
		if status != tc.status || ctype != "application/problem+json" || !strings.Contains(body, `"field":"`+tc.field+`"`) && tc.field != "" {
			t.Errorf("%s: %d %s %s", tc.name, status, ctype, body)
		}
		if strings.Contains(body, "612398765") {
			t.Errorf("%s: the problem repeats the number: %s", tc.name, body)
		}
	}
}

func TestCallerExport(t *testing.T) {
	e := newCallerEnv(t)
	req, _ := http.NewRequest("GET", e.url+"/v1/callers/0612398765/export", nil)
	req.Header.Set("Authorization", "Bearer "+e.acmeToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/zip" ||
		strings.Contains(res.Header.Get("Content-Disposition"), "612398765") {
		t.Fatalf("export: %d %v", res.StatusCode, res.Header)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	var d callerAnswer
	if err := json.Unmarshal(files["caller.json"], &d); err != nil {
		t.Fatalf("caller.json: %v (files %v)", err, len(files))
	}
	acmeCall := e.call["acme"]
	if len(d.Calls) != 1 || d.Calls[0].ID != acmeCall || len(d.Recordings) != 1 || d.Recordings[0].File != "recordings/"+acmeCall+".wav" {
		t.Fatalf("caller.json: %s", files["caller.json"])
	}
	wav := files[d.Recordings[0].File]
	sum := sha256.Sum256(wav)
	if string(wav[:4]) != "RIFF" || hex.EncodeToString(sum[:]) != d.Recordings[0].SHA256 {
		t.Errorf("the recording in the archive is not the plain WAV of the record (%d bytes)", len(wav))
	}
	if len(files) != 2 || bytes.Contains(body, []byte(e.call["bakery"])) {
		t.Errorf("archive holds %d files or bakery's call", len(files))
	}
	// A read's audit entry shares the next commit: wait for it.
	var entries []store.AuditEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if entries, _, _ = e.db.AuditLog(store.AuditFilter{CustomerID: "acme", Limit: 1}); entries[0].Action == "caller.export" {
			break
		}
	}
	ids := []string{acmeCall, e.recording["acme"]} // and the call's webhook messages
	for _, m := range d.WebhookMessages {
		if m.Subject != acmeCall || !bytes.Contains(m.Payload, []byte(acmeCall)) {
			t.Errorf("webhook message of the export %+v", m)
		}
		ids = append(ids, m.ID)
	}
	if len(d.WebhookMessages) == 0 {
		t.Error("the export lists no webhook message of the call")
	}
	if entries[0].Action != "caller.export" || strings.Join(entries[0].IDs, " ") != strings.Join(ids, " ") {
		t.Errorf("newest audit entry %+v", entries[0])
	}
}

// TestCallerErase: the caller's calls, recordings and files are gone, the store file no
// longer holds the number, another caller's and another customer's data are untouched, and
// the audit log names ids only.
func TestCallerErase(t *testing.T) {
	e := newCallerEnv(t)
	const number, landing = "+31687654321", "erase-landing-probe-42"
	var victims []store.Call
	for range 3 {
		victims = append(victims, e.addCall(t, "acme", number, "https://acme.example/"+landing, false, false))
	}
	other := e.addCall(t, "bakery", number, "", false, false) // the same person called bakery too
	active := e.addCall(t, "acme", "+31655500555", "", false, true)

	// A call in progress blocks its caller's erasure.
	if status, _, body := raw(t, "DELETE", e.url+"/v1/callers/0655500555", e.acmeToken, ""); status != 409 {
		t.Errorf("erase while a call is in progress: %d %s", status, body)
	}
	if _, err := e.db.Call(active.ID); err != nil {
		t.Errorf("the refused erasure removed the call: %v", err)
	}

	// A number with nothing here: nothing erased, and no compaction (the file stays). On
	// PostgreSQL the compaction is a VACUUM, not a new file: the store's own tests check it
	// (TestPostgresFileOperations); inode is 0 there.
	inode := func() uint64 {
		if e.db.Driver() != "bbolt" {
			return 0
		}
		st, err := os.Stat(e.db.Path())
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	before := inode()
	if status, _, body := raw(t, "DELETE", e.url+"/v1/callers/0600000001", e.acmeToken, ""); status != 200 || !strings.Contains(body, `"erased_calls":[]`) {
		t.Errorf("erase a number without calls: %d %s", status, body)
	}
	if inode() != before {
		t.Error("erasing a number without calls compacted the store")
	}
	status, _, body := raw(t, "DELETE", e.url+"/v1/callers/"+url.PathEscape("06 8765 4321"), e.acmeToken, "")
	if status != 200 {
		t.Fatalf("erase: %d %s", status, body)
	}
	if inode() == before && e.db.Driver() == "bbolt" {
		t.Error("the erasure did not compact the store")
	}
	for _, v := range victims {
		if !strings.Contains(body, v.ID) {
			t.Errorf("the answer %s lacks erased call %s", body, v.ID)
		}
		if _, err := e.db.Call(v.ID); err == nil {
			t.Errorf("call %s still there", v.ID)
		}
		if s, _, _ := raw(t, "GET", e.url+"/v1/recordings/"+v.RecordingID, token, ""); s != 404 {
			t.Errorf("recording %s answers %d after erasure", v.RecordingID, s)
		}
		files, _ := filepath.Glob(filepath.Join(e.recorder.Dir(), "acme", "*", "*", "*", v.ID+"*"))
		if len(files) != 0 {
			t.Errorf("recording files left: %v", files)
		}
	}
	if status, a, _ := e.caller(t, e.acmeToken, "/v1/callers/"+number); status != 200 || len(a.Calls) != 0 {
		t.Errorf("after erasure: %d %+v", status, a)
	}
	if status, a, _ := e.caller(t, token, "/v1/callers/"+number+"?customer=bakery"); status != 200 || len(a.Calls) != 1 || a.Calls[0].ID != other.ID {
		t.Errorf("bakery's call of the same number: %d %+v", status, a)
	}
	// acme's other caller is untouched.
	if status, a, _ := e.caller(t, e.acmeToken, "/v1/callers/"+probeCaller); status != 200 || len(a.Calls) != 1 {
		t.Errorf("another caller after erasure: %d %+v", status, a)
	}
	// bakery still holds the number; erase it there too, then nothing is left anywhere.
	if status, _, body := raw(t, "DELETE", e.url+"/v1/callers/"+number+"?customer=bakery", token, ""); status != 200 {
		t.Fatalf("erase at bakery: %d %s", status, body)
	}
	if e.db.Driver() == "bbolt" {
		file, err := os.ReadFile(e.db.Path())
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{"687654321", landing} {
			if bytes.Contains(file, []byte(needle)) {
				t.Errorf("the store file still holds %q", needle)
			}
		}
	} else {
		// PostgreSQL: no row holds them (freed space and WAL: cluster.md, the erasure).
		for _, needle := range []string{"687654321", landing} {
			if where := storetest.RawHolds(t, e.db, needle); len(where) > 0 {
				t.Errorf("rows still hold %q: %v", needle, where)
			}
		}
	}
	audit := auditJSON(t, e.db)
	if bytes.Contains(audit.Bytes(), []byte("687654321")) || !bytes.Contains(audit.Bytes(), []byte(`"caller.erase"`)) {
		t.Errorf("audit log: %s", audit.Bytes())
	}
}

// TestCustomerErase: erasing a customer destroys its key (a copy of a recording made before
// can no longer be read), deletes its recordings and records, compacts the store, and
// leaves the other customer alone; only the operator may, and only once the customer is out
// of service and has no call in progress.
func TestCustomerErase(t *testing.T) {
	e := newCallerEnv(t)
	const number = "+31698765432"
	c := e.addCall(t, "bakery", number, "https://bakery.example/erase-me-landing", false, false)
	rec, err := e.db.Recording(c.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.wav.enc")
	b, _ := os.ReadFile(filepath.Join(e.recorder.Dir(), filepath.FromSlash(rec.Path)))
	os.WriteFile(backup, b, 0o600)
	if r, err := recordings.Open(e.keys, backup); err != nil {
		t.Fatalf("the backup copy before erasure: %v", err)
	} else {
		r.Close()
	}

	post := func(tok string) (int, string) {
		status, _, body := raw(t, "POST", e.url+"/v1/customers/bakery/erase", tok, "")
		return status, body
	}
	if status, body := post(e.acmeToken); status != 403 {
		t.Errorf("a customer token: %d %s", status, body)
	}
	if status, body := post(token); status != 409 {
		t.Errorf("a customer in service: %d %s", status, body)
	}
	if _, err := e.tenancyEnv.pool.EndContract(context.Background(), "bakery", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	active := e.addCall(t, "bakery", "+31611122233", "", false, true)
	if status, body := post(token); status != 409 {
		t.Errorf("a call in progress: %d %s", status, body)
	}
	if _, err := e.keys.Lookup("bakery"); err != nil {
		t.Fatalf("a refused erasure destroyed the key: %v", err)
	}
	active.End, active.Disposition = active.Start.Add(time.Minute), "answered"
	if err := e.db.Write(context.Background(), func(tx *store.Tx) error { return tx.PutCall(&active) }); err != nil {
		t.Fatal(err)
	}

	status, body := post(token)
	if status != 200 || !strings.Contains(body, `"calls":3`) || !strings.Contains(body, `"recordings":3`) {
		t.Fatalf("erase: %d %s", status, body)
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
	if s, _, _ := raw(t, "GET", e.url+"/v1/customers/bakery", token, ""); s != 404 {
		t.Errorf("GET the erased customer: %d", s)
	}
	if s, _, _ := raw(t, "POST", e.url+"/v1/customers/bakery/erase", token, ""); s != 404 {
		t.Errorf("erase it again: %d", s)
	}
	file, _ := os.ReadFile(e.db.Path())
	for _, needle := range []string{"698765432", "erase-me-landing", "bakery-site-key", "bakery.example"} {
		if bytes.Contains(file, []byte(needle)) {
			t.Errorf("the store file still holds %q", needle)
		}
	}
	// acme is untouched.
	if status, a, _ := e.caller(t, e.acmeToken, "/v1/callers/"+probeCaller); status != 200 || len(a.Calls) != 1 {
		t.Errorf("acme after bakery's erasure: %d %+v", status, a)
	}
	if s, _, _ := raw(t, "GET", e.url+"/v1/recordings/"+e.recording["acme"], token, ""); s != 200 {
		t.Errorf("acme's recording after bakery's erasure: %d", s)
	}
	entries, _, _ := e.db.AuditLog(store.AuditFilter{CustomerID: "bakery", Limit: 1})
	if len(entries) != 1 || entries[0].Action != "customer.erase" || entries[0].Counts["calls"] != 3 {
		t.Errorf("audit: %+v", entries)
	}
}
