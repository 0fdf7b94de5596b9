package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/g711"
)

// TestArchiveHandoverThroughBinary follows a customer that chose export_then_delete through
// the real binary: a recorded call from a distinctive caller (sipp as trunk and business
// line); the contract ends in the past, so the sweeper (at each start) ends it, then writes
// the archive and deletes the customer's data. The operator lists and downloads the archive
// through the admin API while its handover window (lifecycle.archive_handover, short here)
// lasts; after it the sweeper deletes the archive, and the byte search of the erasure test
// finds the caller nowhere under the data directory or in the logs.
func TestArchiveHandoverThroughBinary(t *testing.T) {
	const handover = 12 * time.Second
	audio := g711.Encode(nil, testSignal(2*8000, 7), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true, calls: 1,
		files: map[string][]byte{"callee.pcap": pcapOf(audio, 0xCA11EE)}})
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true, archiveHandover: handover.String()})
	ctx := context.Background()
	admin := func(method, path, body string) response {
		t.Helper()
		ctype := ""
		if body != "" {
			ctype = "application/json"
		}
		r, err := do(ctx, httpClient, method, "http://"+s.Admin+path, ctype, []byte(body), http.Header{"Authorization": {"Bearer " + adminToken}})
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return r
	}
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: flyerNumber, remote: s.SIP, caller: subjectNumber,
		pauseMS: 2000, media: true, files: map[string][]byte{"caller.pcap": pcapOf(audio, 0xCA11E4)}})
	trunk.expectSuccess()
	line.expectSuccess()
	waitFor(t, 10*time.Second, "the recorded call", func() bool {
		calls := s.calls(t, url.Values{"number": {flyerNumber}, "limit": {"1"}})
		return len(calls) == 1 && calls[0].RecordingID != "" && calls[0].Disposition != ""
	})

	// The contract ended four months ago (the default retention is three).
	ended := time.Now().UTC().AddDate(0, -4, 0).Format(time.RFC3339)
	if r := admin("PATCH", "/v1/customers/"+customerID, `{"contract_ends":"`+ended+`","retention_action":"export_then_delete"}`); r.Status != 200 {
		t.Fatalf("set the contract's end: %d %s", r.Status, r.Body)
	}
	s.Stop()
	s.Restart() // the sweep at start ends the contract
	waitSweep(t, s)
	if r := admin("GET", "/v1/customers/"+customerID, ""); !bytes.Contains(r.Body, []byte(`"status":"ended"`)) {
		t.Fatalf("the contract did not end: %s", r.Body)
	}
	s.Stop()
	s.Restart() // the sweep at start exports, then deletes the customer's data
	waitSweep(t, s)
	var archives struct {
		Archives []struct {
			Name       string    `json:"name"`
			CustomerID string    `json:"customer_id"`
			Created    time.Time `json:"created"`
			Expires    time.Time `json:"expires"`
			Bytes      int64     `json:"bytes"`
		} `json:"archives"`
	}
	waitFor(t, 10*time.Second, "the archive", func() bool {
		r := admin("GET", "/v1/archives", "")
		return r.Status == 200 && json.Unmarshal(r.Body, &archives) == nil && len(archives.Archives) == 1
	})
	a := archives.Archives[0]
	if a.CustomerID != customerID || !a.Expires.Equal(a.Created.Add(handover)) || a.Bytes < 8000 {
		t.Fatalf("the archive: %+v", a)
	}
	if traces := numberTraces(t, filepath.Join(s.dataDir, "exports"), "", subjectNumber); len(traces) != 1 {
		t.Fatalf("the caller in the exports: %v (the search must find it in the archive)", traces)
	}
	if traces := numberTraces(t, s.dataDir, "", subjectNumber); len(traces) != 1 {
		t.Fatalf("the caller outside the archive after the deletion: %v", traces)
	}

	// The handover: the operator downloads it while the window lasts.
	r := admin("GET", "/v1/archives/"+a.Name, "")
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/zip" || int64(len(r.Body)) != a.Bytes {
		t.Fatalf("download: %d %v (%d bytes)", r.Status, r.Header, len(r.Body))
	}
	files := unzipAll(t, r.Body)
	if !bytes.Contains(files["calls.jsonl"], []byte(subjectNumber)) {
		t.Fatalf("the archive's calls lack the caller: %s", files["calls.jsonl"])
	}
	wavs := 0
	for name := range files {
		if strings.HasPrefix(name, "recordings/") && strings.HasSuffix(name, ".wav") {
			wavs++
		}
	}
	if wavs != 1 {
		t.Fatalf("%d recordings in the archive, want 1", wavs)
	}

	// After the window the next sweep deletes it.
	time.Sleep(time.Until(a.Expires.Add(time.Second)))
	s.Stop()
	s.Restart()
	waitSweep(t, s)
	waitFor(t, 10*time.Second, "the archive's deletion", func() bool {
		r := admin("GET", "/v1/archives", "")
		return r.Status == 200 && json.Unmarshal(r.Body, &archives) == nil && len(archives.Archives) == 0
	})
	if r := admin("GET", "/v1/archives/"+a.Name, ""); r.Status != 404 {
		t.Fatalf("download after the window: %d", r.Status)
	}
	audit := admin("GET", "/v1/audit", "")
	for _, action := range []string{"retention.export", "archive.download", "retention.archive_delete"} {
		if !bytes.Contains(audit.Body, []byte(`"action":"`+action+`"`)) {
			t.Errorf("the audit log lacks %s", action)
		}
	}
	s.Stop()
	if left, _ := os.ReadDir(filepath.Join(s.dataDir, "exports")); len(left) != 0 {
		t.Errorf("left in exports: %v", left)
	}
	if traces := numberTraces(t, s.dataDir, s.Logs(), subjectNumber); len(traces) > 0 {
		t.Errorf("the caller is still in %v", traces)
	}
}

// waitSweep waits for the first retention sweep of the running process to be done.
func waitSweep(t *testing.T, s *server) {
	t.Helper()
	waitFor(t, 20*time.Second, "the sweep at start", func() bool {
		m, err := do(context.Background(), httpClient, "GET", "http://"+s.Metrics+"/metrics", "", nil, nil)
		return err == nil && bytes.Contains(m.Body, []byte("\ntrackline_retention_sweeps_total 1\n"))
	})
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
