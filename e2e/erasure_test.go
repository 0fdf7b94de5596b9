package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
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

	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store/keyring"
)

// subjectNumber is the caller the erasure test erases: distinctive, so that any trace of it
// on disk or in the logs is found.
const subjectNumber = "+31687878721"

// separators are what people and programs write between a number's digits; nulls cover
// UTF-16.
var separators = []byte(" -./()\x00\u00a0")

// squeeze drops separators, so that a number is found in any of its written forms:
// +31 6 8787 8721, 06-87878721, (06) 87 87 87 21, 0031687878721, in UTF-16 as well.
func squeeze(b []byte) []byte {
	return bytes.Map(func(r rune) rune {
		if r < 0x80 && bytes.IndexByte(separators, byte(r)) >= 0 || r == 0xa0 {
			return -1
		}
		return r
	}, b)
}

// numberTraces lists where under dir (inside zip archives too), and in the logs, the
// national significant number of e164number appears, in any format.
func numberTraces(t *testing.T, dir, logs, e164number string) []string {
	t.Helper()
	nsn := []byte(strings.TrimPrefix(e164number, "+31"))
	var where []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, nsn) || bytes.Contains(squeeze(b), nsn) {
			where = append(where, path)
		} else if member := zipTrace(b, nsn); member != "" {
			where = append(where, path+":"+member)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(squeeze([]byte(logs)), nsn) {
		where = append(where, "the logs")
	}
	return where
}

// zipTrace looks into b when it is a zip (an export archive deflates its records) and
// answers the first member that holds nsn, in any format, or "".
func zipTrace(b, nsn []byte) string {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return ""
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			continue
		}
		m, _ := io.ReadAll(rc)
		rc.Close()
		if bytes.Contains(m, nsn) || bytes.Contains(squeeze(m), nsn) {
			return f.Name
		}
	}
	return ""
}

// TestErasureThroughBinary records calls through the real binary (sipp as trunk and as the
// business line) from a distinctive caller and from another, erases the first caller
// through the API and searches every byte under the data directory and the logs for the
// number in all its forms; then erases the whole customer, and a copy of a recording taken
// before can no longer be decrypted.
func TestErasureThroughBinary(t *testing.T) {
	audio := g711.Encode(nil, testSignal(3*8000, 5), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true, calls: 2,
		files: map[string][]byte{"callee.pcap": pcapOf(audio, 0xCA11EE)}})
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true}, "--log-level", "debug")
	ctx := context.Background()
	admin := func(method, path string) response {
		t.Helper()
		resp, err := do(ctx, httpClient, method, "http://"+s.Admin+path, "", nil, http.Header{"Authorization": {"Bearer " + adminToken}})
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp
	}
	call := func(caller string) callRecord {
		t.Helper()
		trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: flyerNumber, remote: s.SIP, caller: caller,
			pauseMS: 2500, media: true, files: map[string][]byte{"caller.pcap": pcapOf(audio, 0xCA11E4)}})
		trunk.expectSuccess()
		deadline := time.Now().Add(10 * time.Second)
		for {
			calls := s.calls(t, url.Values{"number": {flyerNumber}, "limit": {"1"}})
			if len(calls) == 1 && calls[0].Disposition != "" && calls[0].RecordingID != "" &&
				(caller == "" && calls[0].Caller == callerNumber || calls[0].Caller == caller) {
				return calls[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no recorded call from %q: %+v", caller, calls)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	subject := call(subjectNumber)
	other := call("")
	line.expectSuccess()
	// A datagram that is not SIP, quoting the number: the switch's edge drops it unread into
	// the log (no Via to answer to) and counts it; sipgo never logs its bytes.
	if conn, err := net.Dial("udp", s.SIP); err == nil {
		conn.Write([]byte("INVITE sip:" + flyerNumber + " SIP/2.0\r\nFrom: <sip:" + subjectNumber + "@x>\r\nCSeq: x\r\n\r\n"))
		conn.Close()
	}

	// The data subject's view: the call and its recording, found from the national form.
	national := strings.Replace(e164.Format(subjectNumber, e164.National), " ", "", -1)
	r := admin("GET", "/v1/callers/"+url.PathEscape(national)+"?customer="+customerID)
	if r.Status != 200 || !bytes.Contains(r.Body, []byte(subject.ID)) || bytes.Contains(r.Body, []byte(other.ID)) ||
		!bytes.Contains(r.Body, []byte(subject.RecordingID)) {
		t.Fatalf("GET /v1/callers: %d %s", r.Status, r.Body)
	}
	r = admin("GET", "/v1/callers/"+url.PathEscape(subjectNumber)+"/export?customer="+customerID)
	if r.Status != 200 {
		t.Fatalf("export: %d %s", r.Status, r.Body)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.Body), int64(len(r.Body)))
	if err != nil {
		t.Fatal(err)
	}
	var wav []byte
	for _, f := range zr.File {
		if f.Name == "recordings/"+subject.ID+".wav" {
			rc, _ := f.Open()
			wav, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	if w := parseWAV(t, wav); len(w.left) < 8000 {
		t.Errorf("exported recording: %d frames", len(w.left))
	}
	if traces := numberTraces(t, s.dataDir, "", subjectNumber); len(traces) == 0 {
		t.Fatal("the number is nowhere on disk before erasure: the search proves nothing")
	}

	// Erase the caller (the number in another form again).
	r = admin("DELETE", "/v1/callers/"+url.PathEscape("06-8787 8721")+"?customer="+customerID)
	if r.Status != 200 || !bytes.Contains(r.Body, []byte(subject.ID)) {
		t.Fatalf("erase the caller: %d %s", r.Status, r.Body)
	}
	if r := admin("GET", "/v1/calls/"+subject.ID); r.Status != 404 {
		t.Errorf("the erased call answers %d", r.Status)
	}
	if r := admin("GET", "/v1/recordings/"+subject.RecordingID); r.Status != 404 {
		t.Errorf("the erased recording answers %d", r.Status)
	}
	if code, _, _ := s.getRecording(t, other.RecordingID, nil); code != 200 {
		t.Errorf("the other caller's recording answers %d", code)
	}
	if traces := numberTraces(t, s.dataDir, s.Logs(), subjectNumber); len(traces) > 0 {
		t.Errorf("the erased number is still in %v", traces)
	}
	if got := s.metric(t, `trackline_sip_edge_dropped_total{reason="unanswerable"}`); got < 1 {
		t.Errorf("the datagram that is not SIP was not dropped at the edge (dropped unanswerable = %v): the log search proves less than it says", got)
	}

	// A backup copy of the other caller's recording, taken before the customer is erased.
	files, _ := filepath.Glob(filepath.Join(s.dataDir, "recordings", customerID, "*", "*", "*", other.ID+".wav.enc"))
	if len(files) != 1 {
		t.Fatalf("recording files of the other call: %v", files)
	}
	backup := filepath.Join(t.TempDir(), "backup.wav.enc")
	b, _ := os.ReadFile(files[0])
	os.WriteFile(backup, b, 0o600)

	// Erase the whole customer: out of service first, then erased.
	resp, err := do(ctx, httpClient, "PATCH", "http://"+s.Admin+"/v1/customers/"+customerID, "application/json",
		[]byte(`{"status":"ended"}`), http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil || resp.Status != 200 {
		t.Fatalf("end the contract: %v %d %s", err, resp.Status, resp.Body)
	}
	if r := admin("POST", "/v1/customers/"+customerID+"/erase"); r.Status != 200 {
		t.Fatalf("erase the customer: %d %s", r.Status, r.Body)
	}
	s.Stop()
	keys, err := keyring.Open(filepath.Join(s.dataDir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recordings.Open(keys, backup); !errors.Is(err, keyring.ErrNoKey) {
		t.Errorf("the backup copy after erasing the customer: %v, want ErrNoKey", err)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "recordings", customerID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the customer's recordings: %v", err)
	}
	for _, n := range []string{subjectNumber, callerNumber} {
		if traces := numberTraces(t, s.dataDir, s.Logs(), n); len(traces) > 0 {
			t.Errorf("%s is still in %v", n, traces)
		}
	}
}
