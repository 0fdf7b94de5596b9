package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	probeIP        = "203.0.113.77"
	probeSourceIP  = "127.0.0.7"
	probeUserAgent = "TracklinePrivacyProbe/9.9"
	// Parts of the landing URL and referrer that must not be stored: only the
	// landing page's scheme, host and path and the referrer's host are.
	probeQuery    = "visitor.probe@example.com"
	probeFragment = "frag-probe-4711"
	probeSearch   = "probe-search-terms-0815"
)

// probeClient returns an HTTP client that connects from 127.0.0.7 when that
// address can be bound, and the address it uses ("" when it cannot).
func probeClient(t *testing.T) (*http.Client, string) {
	t.Helper()
	l, err := net.Listen("tcp", probeSourceIP+":0")
	if err != nil {
		t.Logf("cannot bind %s (%v): requests come from the default source address", probeSourceIP, err)
		return httpClient, ""
	}
	_ = l.Close()
	dialer := &net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(probeSourceIP)},
		Timeout:   5 * time.Second,
	}
	tr := &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}, probeSourceIP
}

// probeHeaders are the headers that carry a client address or identity.
func probeHeaders() http.Header {
	return http.Header{
		"Origin":           {apiOrigin},
		"User-Agent":       {probeUserAgent},
		"X-Forwarded-For":  {probeIP + ", 198.51.100.1"},
		"Forwarded":        {"for=" + probeIP + ";proto=https;by=198.51.100.1"},
		"X-Real-Ip":        {probeIP},
		"True-Client-Ip":   {probeIP},
		"Cf-Connecting-Ip": {probeIP},
	}
}

// TestNoVisitorIPOrUserAgentStored sends sessions, touches and bad requests
// that carry a visitor address and user agent, reads the sessions, the export
// archive and the audit log through the admin API with the same headers, stops
// the binary and searches every byte of the data directory, of the logs, of the
// archive's files and of the audit log for them.
func TestNoVisitorIPOrUserAgentStored(t *testing.T) {
	s := startServer(t, testConfig{}, "--log-level", "debug")
	client, source := probeClient(t)
	ctx := context.Background()

	post := func(path string, body string) response {
		t.Helper()
		resp, err := do(ctx, client, http.MethodPost, "http://"+s.HTTP+path, "text/plain", []byte(body), probeHeaders())
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		return resp
	}

	landing := apiOrigin + "/offer?email=" + url.QueryEscape(probeQuery) + "&utm_source=newsletter#" + probeFragment
	referrer := "https://www.google.com/search?q=" + probeSearch
	body, _ := json.Marshal(map[string]string{"site_key": siteKey, "landing_url": landing, "referrer": referrer})
	var ids []string
	for range 3 {
		resp := post("/v1/sessions", string(body))
		if resp.Status != http.StatusCreated {
			t.Fatalf("POST /v1/sessions: status %d, want 201: %s", resp.Status, resp.Body)
		}
		ids = append(ids, decodeSession(t, resp).SessionID)
	}
	// Resuming a session and touching it.
	resume, _ := json.Marshal(map[string]string{"site_key": siteKey, "session_id": ids[0], "landing_url": landing})
	if resp := post("/v1/sessions", string(resume)); resp.Status != http.StatusOK {
		t.Errorf("resume session: status %d, want 200: %s", resp.Status, resp.Body)
	}
	for _, id := range ids {
		if resp := post("/v1/sessions/"+id+"/touch", `{"site_key":"`+siteKey+`"}`); resp.Status != http.StatusOK {
			t.Errorf("touch: status %d, want 200: %s", resp.Status, resp.Body)
		}
	}
	// Error paths log too.
	for _, b := range []string{`{"site_key":`, `{"site_key":"no-such-site-key"}`, `{"site_key":"` + siteKey + `","bogus":1}`} {
		if resp := post("/v1/sessions", b); resp.Status < 400 {
			t.Errorf("bad request %s: status %d, want 4xx", b, resp.Status)
		}
	}
	if resp := post("/v1/sessions/no-such-session/touch", `{"site_key":"`+siteKey+`"}`); resp.Status != http.StatusNotFound {
		t.Errorf("touch of an unknown session: status %d, want 404: %s", resp.Status, resp.Body)
	}
	amp, err := do(ctx, client, http.MethodGet, "http://"+s.HTTP+"/v1/amp/number?site_key="+siteKey, "", nil, probeHeaders())
	if err != nil {
		t.Fatalf("GET /v1/amp/number: %v", err)
	}
	if amp.Status != http.StatusOK {
		t.Errorf("GET /v1/amp/number: status %d, want 200: %s", amp.Status, amp.Body)
	}
	// The admin API, called with the same headers: the sessions, the export archive and the
	// audit log that records those reads.
	admin := func(path string) response {
		t.Helper()
		h := probeHeaders()
		h.Set("Authorization", "Bearer "+adminToken)
		resp, err := do(ctx, client, http.MethodGet, "http://"+s.Admin+path, "", nil, h)
		if err != nil || resp.Status != http.StatusOK {
			t.Fatalf("GET %s: %v %d %s", path, err, resp.Status, resp.Body)
		}
		return resp
	}
	admin("/v1/customers/" + customerID + "/sessions")
	export := admin("/v1/export?customer=" + customerID)
	archive := unzipAll(t, export.Body)
	if !bytes.Contains(archive["sessions.jsonl"], []byte(ids[0])) {
		t.Fatalf("the export lacks the session %s", ids[0])
	}
	audit := admin("/v1/audit?limit=1000")
	if !bytes.Contains(audit.Body, []byte(`"action":"export"`)) || !bytes.Contains(audit.Body, []byte(`"action":"sessions.list"`)) {
		t.Fatalf("the audit log lacks the reads: %s", audit.Body)
	}

	s.Stop()

	needles := map[string][]byte{
		"forwarded IP":         []byte(probeIP),
		"forwarded IP, binary": net.ParseIP(probeIP).To4(),
		"user agent":           []byte(probeUserAgent),
		"user agent, part":     []byte("PrivacyProbe"),
		"landing query":        []byte(probeQuery),
		"landing query, enc":   []byte(url.QueryEscape(probeQuery)),
		"landing fragment":     []byte(probeFragment),
		"referrer query":       []byte(probeSearch),
	}
	if source != "" {
		needles["source address"] = []byte(source)
	}

	files := 0
	err = filepath.WalkDir(s.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, n := range needles {
			if i := bytes.Index(b, n); i >= 0 {
				t.Errorf("%s %q found in %s at offset %d", name, n, path, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", s.dataDir, err)
	}
	if files == 0 {
		t.Errorf("data directory %s is empty: nothing was stored", s.dataDir)
	}
	logs := s.Logs()
	for name, n := range needles {
		if i := strings.Index(logs, string(n)); i >= 0 {
			t.Errorf("%s %q found in the logs: ...%s...", name, n, excerpt(logs, i, len(n)))
		}
	}
	// The export archive (every file, uncompressed, and the zip as sent) and the audit log.
	archive["(the zip as sent)"] = export.Body
	archive["(the audit log as answered)"] = audit.Body
	for file, b := range archive {
		for name, n := range needles {
			if i := bytes.Index(b, n); i >= 0 {
				t.Errorf("%s %q found in the export's %s at offset %d", name, n, file, i)
			}
		}
	}
}

// unzipAll reads every file of a zip archive.
func unzipAll(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip archive: %v", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		files[f.Name] = data
	}
	return files
}

func excerpt(s string, i, n int) string {
	from, to := max(0, i-120), min(len(s), i+n+120)
	return s[from:to]
}

// TestBadSessionRequestsRefused sends invalid session requests: each must be
// answered with the contract's status as problem+json, and none may create a
// session.
func TestBadSessionRequestsRefused(t *testing.T) {
	s := startServer(t, testConfig{})
	// One good session first, so that the count is known to move.
	s.newSession(t, apiOrigin, map[string]string{"site_key": siteKey, "landing_url": apiOrigin + "/"})
	before := s.sessionsTotal(t)
	if before != 1 {
		t.Fatalf("sessions_total = %d after one session, want 1", before)
	}

	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name        string
		contentType string
		origin      string
		body        string
		status      int
		field       string // the field the problem must name, if any
	}{
		{
			name:   "body larger than 16 KiB",
			body:   `{"site_key":"` + siteKey + `","landing_url":"` + apiOrigin + `/` + long(17<<10) + `"}`,
			status: http.StatusRequestEntityTooLarge,
		},
		{
			name:   "malformed JSON",
			body:   `{"site_key":"` + siteKey + `","landing_url":`,
			status: http.StatusBadRequest,
		},
		{
			name:   "not an object",
			body:   `["` + siteKey + `"]`,
			status: http.StatusBadRequest,
		},
		{
			name:   "unknown field",
			body:   `{"site_key":"` + siteKey + `","landing_url":"` + apiOrigin + `/","ip":"1.2.3.4"}`,
			status: http.StatusBadRequest,
		},
		{
			name:   "landing_url longer than 2048",
			body:   `{"site_key":"` + siteKey + `","landing_url":"` + apiOrigin + `/` + long(2100) + `"}`,
			status: http.StatusBadRequest,
			field:  "landing_url",
		},
		{
			name:   "landing_url not http(s)",
			body:   `{"site_key":"` + siteKey + `","landing_url":"javascript:alert(1)"}`,
			status: http.StatusBadRequest,
			field:  "landing_url",
		},
		{
			name:   "referrer longer than 2048",
			body:   `{"site_key":"` + siteKey + `","landing_url":"` + apiOrigin + `/","referrer":"https://r.example/` + long(2100) + `"}`,
			status: http.StatusBadRequest,
			field:  "referrer",
		},
		{
			name:   "utm_source longer than 256",
			body:   `{"site_key":"` + siteKey + `","landing_url":"` + apiOrigin + `/","utm_source":"` + long(300) + `"}`,
			status: http.StatusBadRequest,
			field:  "utm_source",
		},
		{
			name:   "unknown site key",
			body:   `{"site_key":"no-such-site-key","landing_url":"` + apiOrigin + `/"}`,
			status: http.StatusNotFound,
		},
		{
			name:   "disallowed origin",
			origin: "https://evil.example",
			body:   `{"site_key":"` + siteKey + `","landing_url":"` + apiOrigin + `/"}`,
			status: http.StatusForbidden,
		},
		{
			name:        "unsupported content type",
			contentType: "application/xml",
			body:        `{"site_key":"` + siteKey + `","landing_url":"` + apiOrigin + `/"}`,
			status:      http.StatusUnsupportedMediaType,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = "text/plain"
			}
			origin := tc.origin
			if origin == "" {
				origin = apiOrigin
			}
			resp, err := do(context.Background(), httpClient, http.MethodPost, "http://"+s.HTTP+"/v1/sessions",
				ct, []byte(tc.body), http.Header{"Origin": {origin}})
			if err != nil {
				t.Fatalf("POST /v1/sessions: %v", err)
			}
			p := checkProblem(t, resp, tc.status)
			if tc.field != "" && p.Field != tc.field && !strings.Contains(p.Detail, tc.field) {
				t.Errorf("problem does not name the field %s: %s", tc.field, resp.Body)
			}
			if tc.origin != "" {
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
					t.Errorf("Access-Control-Allow-Origin %q for a disallowed origin", got)
				}
			}
		})
	}

	t.Run("touch of an unknown session", func(t *testing.T) {
		resp, err := s.touch(context.Background(), httpClient, "no-such-session")
		if err != nil {
			t.Fatalf("touch: %v", err)
		}
		checkProblem(t, resp, http.StatusNotFound)
	})

	if after := s.sessionsTotal(t); after != before {
		t.Errorf("sessions_total went from %d to %d after refused requests", before, after)
	}
}

// TestCustomerTokenThroughBinary makes a customer token through the admin API, uses it
// across a restart, checks that it reaches no other customer and no operator endpoint, that
// its reads are in the audit log after the restart, that the secret is nowhere in the data
// directory, and that a revoked token stops working.
func TestCustomerTokenThroughBinary(t *testing.T) {
	s := startServer(t, testConfig{})
	ctx := context.Background()
	admin := func(method, path, tok, body string) response {
		t.Helper()
		h := http.Header{}
		if tok != "" {
			h.Set("Authorization", "Bearer "+tok)
		}
		ctype := ""
		if body != "" {
			ctype = "application/json"
		}
		resp, err := do(ctx, httpClient, method, "http://"+s.Admin+path, ctype, []byte(body), h)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp
	}
	if r := admin("POST", "/v1/customers", adminToken, `{"id":"other","name":"Other","site_key":"other-site-key-0001"}`); r.Status != http.StatusCreated {
		t.Fatalf("create customer: %d %s", r.Status, r.Body)
	}
	r := admin("POST", "/v1/customers/"+customerID+"/tokens", adminToken, `{"label":"crm"}`)
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal(r.Body, &tok); r.Status != http.StatusCreated || err != nil || !strings.HasPrefix(tok.Token, "tlc_") {
		t.Fatalf("create token: %d %s", r.Status, r.Body)
	}
	s.newSession(t, apiOrigin, map[string]string{"site_key": siteKey, "landing_url": apiOrigin + "/"})

	checks := []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/customers/" + customerID + "/sessions", http.StatusOK},
		{"GET", "/v1/calls", http.StatusOK},
		{"GET", "/v1/customers/other", http.StatusNotFound},
		{"GET", "/v1/customers/other/sessions", http.StatusNotFound},
		{"GET", "/v1/calls?customer=other", http.StatusNotFound},
		{"GET", "/v1/backup", http.StatusForbidden},
		{"POST", "/v1/customers/" + customerID + "/tokens", http.StatusForbidden},
	}
	for round := range 2 {
		for _, c := range checks {
			if r := admin(c.method, c.path, tok.Token, ""); r.Status != c.want {
				t.Errorf("round %d: %s %s = %d %s, want %d", round, c.method, c.path, r.Status, r.Body, c.want)
			}
		}
		if round == 0 {
			s.Stop() // a graceful stop commits what is queued
			s.Restart()
		}
	}
	// The reads before the restart were answered; their audit entries survived it.
	r = admin("GET", "/v1/audit?limit=1000", tok.Token, "")
	var log struct {
		Entries []struct {
			Actor  string `json:"actor"`
			Action string `json:"action"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(r.Body, &log); r.Status != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/audit: %d %s", r.Status, r.Body)
	}
	reads := 0
	for _, e := range log.Entries {
		if e.Action == "sessions.list" {
			reads++
		}
	}
	if reads != 2 {
		t.Errorf("sessions.list entries = %d, want 2 (one per round): %s", reads, r.Body)
	}
	if r := admin("DELETE", "/v1/customers/"+customerID+"/tokens/"+tok.ID, adminToken, ""); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if r := admin("GET", "/v1/calls", tok.Token, ""); r.Status != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", r.Status)
	}
	s.Stop()
	err := filepath.WalkDir(s.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(tok.Token)) {
			t.Errorf("%s holds the token's secret", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
