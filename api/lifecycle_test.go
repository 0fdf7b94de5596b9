package api

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// unzip reads every file of a zip archive.
func unzip(t *testing.T, body string) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("not a zip archive: %v", err)
	}
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
	return files
}

func TestExportArchive(t *testing.T) {
	e := newTenancyEnv(t)
	// A session whose campaign a spreadsheet would run as a formula.
	formula := "=HYPERLINK(\"https://evil.example\")"
	err := e.db.Write(context.Background(), func(tx *store.Tx) error {
		return tx.PutSession(&store.Session{ID: pool.NewID(time.Now()), CustomerID: "acme", Created: time.Now(), Channel: "Direct", UTMSource: formula})
	})
	if err != nil {
		t.Fatal(err)
	}
	status, ctype, body := raw(t, "GET", e.url+"/v1/export", e.acmeToken, "")
	if status != 200 || ctype != "application/zip" {
		t.Fatalf("GET /v1/export = %d %s", status, ctype)
	}
	files := unzip(t, body)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"calls.csv", "calls.jsonl", "channels.csv", "channels.jsonl", "customer.json", "manifest.json",
		"numbers.csv", "numbers.jsonl", "recordings.csv", "recordings.jsonl", "recordings/" + e.call["acme"] + ".wav",
		"sessions.csv", "sessions.jsonl", "webhook_endpoints.jsonl"}
	if !slices.Equal(names, want) {
		t.Fatalf("archive files %v, want %v", names, want)
	}
	// The endpoints, never their signing secrets.
	if eps := string(files["webhook_endpoints.jsonl"]); !strings.Contains(eps, "https://crm.acme.example/hook") {
		t.Errorf("webhook_endpoints.jsonl: %s", eps)
	}
	for n, b := range files {
		if strings.Contains(string(b), testWebhookSecret) {
			t.Errorf("%s holds a webhook secret", n)
		}
	}
	// Only acme's data, and all of it.
	all := bytes.Join([][]byte{files["calls.jsonl"], files["calls.csv"], files["sessions.jsonl"], files["numbers.csv"], files["customer.json"]}, nil)
	for _, id := range []string{e.call["bakery"], e.recording["bakery"], e.number["bakery"], "bakery"} {
		if bytes.Contains(all, []byte(id)) {
			t.Errorf("acme's archive holds bakery's %q", id)
		}
	}
	var call store.Call
	if err := json.Unmarshal(bytes.TrimSpace(files["calls.jsonl"]), &call); err != nil || call.ID != e.call["acme"] || call.Caller != probeCaller {
		t.Fatalf("calls.jsonl: %+v %v", call, err)
	}
	// The recording is in the archive decrypted: the plain WAV its record's sha256 names.
	wav := files["recordings/"+e.call["acme"]+".wav"]
	sum := sha256.Sum256(wav)
	if rec, err := e.db.Recording(e.recording["acme"]); err != nil || len(wav) < 44 || string(wav[:4]) != "RIFF" || hex.EncodeToString(sum[:]) != rec.SHA256 {
		t.Fatalf("recording in the archive: %d bytes, not the plain WAV of its record (%v)", len(wav), err)
	}
	// CSV: the documented header, the caller as a plain number, a formula neutralised.
	rows, err := csv.NewReader(bytes.NewReader(files["calls.csv"])).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("calls.csv: %v %v", rows, err)
	}
	if strings.Join(rows[0][:5], ",") != "id,dialled,caller,business_line,start" || rows[1][2] != probeCaller {
		t.Fatalf("calls.csv: %v", rows)
	}
	srows, err := csv.NewReader(bytes.NewReader(files["sessions.csv"])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range srows[1:] {
		if r[5] == "'"+formula {
			found = true
		}
		if r[5] == formula {
			t.Fatalf("a formula in sessions.csv is not neutralised: %q", r[5])
		}
	}
	if !found {
		t.Fatalf("sessions.csv lacks the neutralised campaign: %v", srows)
	}
	// The manifest verifies every file.
	var m recordings.Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil || m.Format != "trackline-export" || m.Version != 1 || m.CustomerID != "acme" {
		t.Fatalf("manifest %+v %v", m, err)
	}
	for _, f := range m.Files {
		sum := sha256.Sum256(files[f.Name])
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(files[f.Name])) != f.Bytes {
			t.Errorf("manifest entry of %s does not match the file", f.Name)
		}
		if f.Name == "sessions.jsonl" && f.Records != 2 {
			t.Errorf("sessions.jsonl: %d records in the manifest, want 2", f.Records)
		}
	}

	// The operator names the customer; another customer's token gets 404 for it.
	if status, _, body := raw(t, "GET", e.url+"/v1/export", token, ""); status != 400 || !strings.Contains(body, `"field":"customer"`) {
		t.Fatalf("operator export without customer = %d %s", status, body)
	}
	status, _, body = raw(t, "GET", e.url+"/v1/export?customer=bakery", token, "")
	if status != 200 || !bytes.Contains(unzip(t, body)["calls.jsonl"], []byte(e.call["bakery"])) {
		t.Fatalf("operator export of bakery = %d", status)
	}
	// Every export is in the audit log, before it was sent.
	entries, _, err := e.db.AuditLog(store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var exports []string
	for _, en := range entries {
		if en.Action == "export" {
			exports = append(exports, en.Actor+" "+en.CustomerID)
		}
	}
	if !slices.Contains(exports, "token:"+e.tokenID["acme"]+" acme") || !slices.Contains(exports, "operator bakery") {
		t.Fatalf("export entries %v", exports)
	}
}

func TestUsageReport(t *testing.T) {
	e := newTenancyEnv(t)
	nov := time.Date(2025, 11, 3, 12, 0, 0, 0, time.UTC)
	err := e.db.Write(context.Background(), func(tx *store.Tx) error {
		for i := range 4 { // three sessions in November, one on the first of December
			at := nov.Add(time.Duration(i) * 24 * time.Hour)
			if i == 3 {
				at = time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
			}
			if err := tx.PutSession(&store.Session{ID: pool.NewID(at), CustomerID: "acme", Created: at, Channel: "Direct"}); err != nil {
				return err
			}
		}
		for i, talk := range []float64{61, 119.5, 0} { // two answered calls and a missed one
			start := nov.Add(time.Duration(i) * time.Hour)
			c := store.Call{ID: pool.NewID(start), CustomerID: "acme", Dialled: e.number["acme"], Start: start, End: start.Add(3 * time.Minute), TalkSeconds: talk}
			if err := tx.PutCall(&c); err != nil {
				return err
			}
		}
		// bakery's call in November counts for bakery only.
		c := store.Call{ID: pool.NewID(nov), CustomerID: "bakery", Dialled: e.number["bakery"], Start: nov, End: nov.Add(time.Minute), TalkSeconds: 60}
		return tx.PutCall(&c)
	})
	if err != nil {
		t.Fatal(err)
	}
	status, _, body := raw(t, "GET", e.url+"/v1/customers/acme/usage?month=2025-11", e.acmeToken, "")
	var u usageReport
	if err := json.Unmarshal([]byte(body), &u); status != 200 || err != nil {
		t.Fatalf("usage = %d %s", status, body)
	}
	if want := (usageReport{CustomerID: "acme", Month: "2025-11", Sessions: 3, Calls: 3, TalkSeconds: 180.5, Minutes: 3.01}); u != want {
		t.Fatalf("usage %+v, want %+v", u, want)
	}
	for _, q := range []string{"?month=2026-13", "?month=nov", "?month=2026-1"} {
		if status, _, body := raw(t, "GET", e.url+"/v1/customers/acme/usage"+q, token, ""); status != 400 || !strings.Contains(body, `"field":"month"`) {
			t.Errorf("usage%s = %d %s, want 400 naming month", q, status, body)
		}
	}
}

func TestPatchLifecycle(t *testing.T) {
	e := newTenancyEnv(t)
	patch := func(body string) (int, map[string]any) {
		t.Helper()
		status, _, b := raw(t, "PATCH", e.url+"/v1/customers/acme", token, body)
		var m map[string]any
		json.Unmarshal([]byte(b), &m)
		return status, m
	}
	status, c := patch(`{"contract_ends":"2030-01-01T00:00:00Z","retention_months":6,"retention_action":"export_then_delete","max_call_duration":"90m"}`)
	if status != 200 || c["contract_ends"] != "2030-01-01T00:00:00Z" || c["retention_action"] != "export_then_delete" ||
		c["retention_months"] != 6.0 || c["max_call_duration"] != float64(90*time.Minute) {
		t.Fatalf("PATCH lifecycle fields = %d %v", status, c)
	}
	bad := []struct{ body, field string }{
		{`{"retention_action":"keep"}`, "retention_action"},
		{`{"retention_months":121}`, "retention_months"},
		{`{"contract_ends":"tomorrow"}`, "contract_ends"},
		{`{"max_call_duration":"49h"}`, "max_call_duration"},
		{`{"max_call_duration":"soon"}`, "max_call_duration"},
	}
	for _, b := range bad {
		if status, m := patch(b.body); status != 400 || m["field"] != b.field {
			t.Errorf("PATCH %s = %d %v, want 400 naming %s", b.body, status, m, b.field)
		}
	}
	if status, _ := patch(`{"status":"trial"}`); status != 409 {
		t.Fatalf("active -> trial = %d, want 409", status)
	}
	// Porting, then the end of the contract: numbers quarantined, the porting mark kept.
	if status, _, body := raw(t, "PATCH", e.url+"/v1/customers/acme/numbers/"+e.number["acme"], token, `{"porting":true}`); status != 200 || !strings.Contains(body, `"porting":true`) {
		t.Fatalf("PATCH porting = %d %s", status, body)
	}
	if status, _, _ := raw(t, "PATCH", e.url+"/v1/customers/acme/numbers/"+e.number["bakery"], token, `{"porting":true}`); status != 404 {
		t.Fatalf("PATCH another customer's number = %d, want 404", status)
	}
	if status, _, _ := raw(t, "PATCH", e.url+"/v1/customers/acme/numbers/"+e.number["acme"], token, `{}`); status != 400 {
		t.Fatalf("PATCH number without porting = %d, want 400", status)
	}
	status, c = patch(`{"status":"ended"}`)
	if status != 200 || c["status"] != "ended" || c["ended_at"] == nil {
		t.Fatalf("end the contract = %d %v", status, c)
	}
	_, _, body := raw(t, "GET", e.url+"/v1/customers/acme/numbers", token, "")
	if !strings.Contains(body, `"state":"quarantined"`) || !strings.Contains(body, `"porting":true`) {
		t.Fatalf("numbers after the end: %s", body)
	}
	if status, _ := patch(`{"status":"active"}`); status != 409 {
		t.Fatalf("ended -> active = %d, want 409", status)
	}
	if status, _, body := raw(t, "GET", e.url+"/v1/numbers/held", token, ""); status != 200 || body != "{\"numbers\":[]}\n" {
		t.Fatalf("held numbers = %d %s", status, body)
	}
	if status, _, _ := raw(t, "DELETE", e.url+"/v1/numbers/held/"+e.number["acme"], token, ""); status != 404 {
		t.Fatalf("release a number that is not held = %d, want 404", status)
	}
}

// settable is a test clock.
type settable struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settable) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *settable) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestPublicRefusesOutOfService: once a trial ends, and once a contract's end date passes,
// the public endpoints answer 410 problem+json, with no sweeper run needed.
func TestPublicRefusesOutOfService(t *testing.T) {
	clk := &settable{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	db := storetest.Open(t)
	p, err := pool.New(db, pool.Config{}, pool.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []store.Customer{
		{ID: "trial", Name: "T", Status: store.StatusTrial, SiteKey: "trial-site-key"},
		{ID: "client", Name: "C", Status: store.StatusActive, SiteKey: "client-site-key", ContractEnds: clk.now().AddDate(0, 0, 20)},
	} {
		if _, err := p.CreateCustomer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	p.ImportNumbers(ctx, "trial", []pool.NumberInput{{Number: "+31850000001"}})
	p.ImportNumbers(ctx, "client", []pool.NumberInput{{Number: "+31850000002"}})
	a, err := New(Config{AdminToken: token}, p, WithRegisterer(prometheus.NewRegistry()), WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Public())
	t.Cleanup(srv.Close)
	session := func(key string) resp {
		return do(t, "POST", srv.URL+"/v1/sessions", "text/plain", `{"site_key":"`+key+`"}`)
	}
	sid := map[string]string{}
	for _, key := range []string{"trial-site-key", "client-site-key"} {
		r := session(key)
		if r.status != 201 {
			t.Fatalf("session of %s: %d %v", key, r.status, r.body)
		}
		sid[key] = r.body["session_id"].(string)
	}
	steps := []struct {
		advance time.Duration
		key     string
		want    int
	}{
		{14 * 24 * time.Hour, "trial-site-key", 410},
		{0, "client-site-key", 201},
		{6 * 24 * time.Hour, "client-site-key", 410},
	}
	for _, st := range steps {
		clk.add(st.advance)
		r := session(st.key)
		if r.status != st.want {
			t.Fatalf("%v later, session of %s = %d %v, want %d", st.advance, st.key, r.status, r.body, st.want)
		}
		if st.want != 410 {
			continue
		}
		if r.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(r.body["detail"].(string), "no longer") {
			t.Fatalf("410 without a clear problem: %v %v", r.header, r.body)
		}
		touch := do(t, "POST", srv.URL+"/v1/sessions/"+sid[st.key]+"/touch", "text/plain", `{"site_key":"`+st.key+`"}`)
		amp := do(t, "GET", srv.URL+"/v1/amp/number?site_key="+st.key, "", "", "AMP-Same-Origin", "true")
		if touch.status != 410 || amp.status != 410 {
			t.Fatalf("touch %d, amp %d; want 410", touch.status, amp.status)
		}
	}
}
