package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestContractEndThroughBinary ends the customer's contract through the admin API of the
// real binary: the public API refuses numbers with a problem, a call to its static number
// gets 480 (sipp as the trunk), its numbers are quarantined, and its data stays readable
// and exportable during the retention period, across a restart. The usage report counts
// the session, and the sweeper's runs are in /metrics.
func TestContractEndThroughBinary(t *testing.T) {
	sippBinary(t)
	s := startServer(t, testConfig{flyerNumbers: []string{flyerNumber}})
	ctx := context.Background()
	admin := func(method, path, body string) response {
		t.Helper()
		ctype := ""
		if body != "" {
			ctype = "application/json"
		}
		resp, err := do(ctx, httpClient, method, "http://"+s.Admin+path, ctype, []byte(body), http.Header{"Authorization": {"Bearer " + adminToken}})
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp
	}
	sess := s.newSession(t, apiOrigin, map[string]string{"site_key": siteKey, "landing_url": apiOrigin + "/"})
	month := time.Now().UTC().Format("2006-01")
	var usage struct {
		Sessions int `json:"sessions"`
	}
	if r := admin("GET", "/v1/customers/"+customerID+"/usage?month="+month, ""); r.Status != 200 || json.Unmarshal(r.Body, &usage) != nil || usage.Sessions != 1 {
		t.Fatalf("usage: %d %s", r.Status, r.Body)
	}

	r := admin("PATCH", "/v1/customers/"+customerID, `{"status":"ended","retention_action":"export_then_delete"}`)
	if r.Status != 200 || !bytes.Contains(r.Body, []byte(`"ended_at"`)) {
		t.Fatalf("end the contract: %d %s", r.Status, r.Body)
	}
	// The public API hands out nothing, and says so.
	resp := s.postSession(t, apiOrigin, map[string]string{"site_key": siteKey, "landing_url": apiOrigin + "/"})
	if p := checkProblem(t, resp, http.StatusGone); !strings.Contains(p.Detail, "no longer") {
		t.Errorf("410 detail %q", p.Detail)
	}
	if resp, err := s.touch(ctx, httpClient, sess.SessionID); err != nil || resp.Status != http.StatusGone {
		t.Errorf("touch after the end: %v %d", err, resp.Status)
	}
	// A call to its number is not in service.
	uac := startSipp(t, "trunk", sippSpec{scenario: "uac-reject-480.xml", service: flyerNumber, remote: s.SIP})
	uac.expectSuccess()
	expectNoCall(t, s, flyerNumber)

	for round := range 2 {
		if r := admin("GET", "/v1/customers/"+customerID+"/numbers", ""); r.Status != 200 || bytes.Contains(r.Body, []byte(`"state":"available"`)) {
			t.Fatalf("round %d: numbers after the end: %d %s", round, r.Status, r.Body)
		}
		r := admin("GET", "/v1/export?customer="+customerID, "")
		if r.Status != 200 {
			t.Fatalf("round %d: export during retention: %d %s", round, r.Status, r.Body)
		}
		files := unzipAll(t, r.Body)
		if !bytes.Contains(files["sessions.jsonl"], []byte(sess.SessionID)) || !bytes.Contains(files["numbers.csv"], []byte(flyerNumber+",static")) {
			t.Fatalf("round %d: the export lacks the session or the number", round)
		}
		if round == 0 {
			s.Stop()
			s.Restart()
			if resp := s.postSession(t, apiOrigin, map[string]string{"site_key": siteKey}); resp.Status != http.StatusGone {
				t.Fatalf("session after a restart: %d %s", resp.Status, resp.Body)
			}
		}
	}
	metrics, err := do(ctx, httpClient, http.MethodGet, "http://"+s.Metrics+"/metrics", "", nil, nil)
	if err != nil || !bytes.Contains(metrics.Body, []byte("trackline_retention_sweeps_total 1")) {
		t.Errorf("/metrics lacks the sweeper's run: %v", err)
	}
}
