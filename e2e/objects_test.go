package e2e

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/internal/weedtest"
)

// objectPrefix is where the test's node puts its recordings in the bucket.
const objectPrefix = "node-a/"

// TestRecordingsInObjectStore records calls through the real binary (sipp as trunk and as
// the business line) with recordings.object_store on a real SeaweedFS: each recording is
// uploaded and its local file removed; the admin API serves it from the bucket, Range
// requests too; erasing the caller, then the customer, deletes the objects, and after
// SeaweedFS has compacted its volumes no byte of the recordings, encrypted or plain, is left
// in its data directory.
func TestRecordingsInObjectStore(t *testing.T) {
	weed := weedtest.Start(t)
	audio := g711.Encode(nil, testSignal(3*8000, 7), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true, calls: 2,
		files: map[string][]byte{"callee.pcap": pcapOf(audio, 0xCA11EE)}})
	config := writeConfig(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true})
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("recordings:\n  object_store:\n    endpoint: \"" + weed.Endpoint + "\"\n    bucket: " + weed.Bucket +
		"\n    access_key: " + weed.AccessKey + "\n    prefix: " + objectPrefix + "\n")
	f.Close()
	t.Setenv("TRACKLINE_OBJECT_SECRET_KEY", weed.SecretKey) // inherited by the binary
	s := startServerOn(t, config, t.TempDir())
	ctx := context.Background()
	s3 := weed.Client(t)
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
			if len(calls) == 1 && calls[0].RecordingID != "" && calls[0].Caller == caller {
				return calls[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no recorded call from %s: %+v", caller, calls)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// uploaded waits until the call's recording is an object and no longer a local file, and
	// returns the object's bytes.
	uploaded := func(callID string) []byte {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			local, _ := filepath.Glob(filepath.Join(s.dataDir, "recordings", customerID, "*", "*", "*", callID+".wav.enc*"))
			var key string
			for obj := range s3.ListObjects(ctx, weed.Bucket, minio.ListObjectsOptions{Prefix: objectPrefix + customerID + "/", Recursive: true}) {
				if strings.HasSuffix(obj.Key, "/"+callID+".wav.enc") {
					key = obj.Key
				}
			}
			if len(local) == 0 && key != "" {
				o, err := s3.GetObject(ctx, weed.Bucket, key, minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer o.Close()
				b, err := io.ReadAll(o)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			if time.Now().After(deadline) {
				t.Fatalf("recording of %s: local %v, object %q after 30 s\n%s", callID, local, key, s.Logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	const subject, other = "+31687878722", "+31687878723"
	first := call(subject)
	enc := uploaded(first.ID)
	second := call(other)
	encOther := uploaded(second.ID)
	line.expectSuccess()
	if got := s.metric(t, `trackline_recording_uploads_total{outcome="uploaded"}`); got != 2 {
		t.Errorf("uploads_total{uploaded} = %v, want 2", got)
	}
	if got := s.metric(t, "trackline_recording_uploads_pending"); got != 0 {
		t.Errorf("uploads_pending = %v", got)
	}

	// Served from the bucket: the whole WAV, and a Range of it (206, the same bytes).
	code, _, wav := s.getRecording(t, first.RecordingID, nil)
	if code != 200 {
		t.Fatalf("GET the uploaded recording: %d %s", code, wav)
	}
	if w := parseWAV(t, wav); len(w.left) < 8000 {
		t.Fatalf("recording served from the object store: %d frames", len(w.left))
	}
	code, h, part := s.getRecording(t, first.RecordingID, http.Header{"Range": {"bytes=40000-47999"}})
	if code != http.StatusPartialContent || !bytes.Equal(part, wav[40000:48000]) {
		t.Fatalf("Range from the object store: %d %q, %d bytes (equal %v)", code, h.Get("Content-Range"), len(part), bytes.Equal(part, wav[40000:48000]))
	}
	if cr := h.Get("Content-Range"); cr != "bytes 40000-47999/"+strconv.Itoa(len(wav)) {
		t.Errorf("Content-Range %q", cr)
	}
	_, _, wavOther := s.getRecording(t, second.RecordingID, nil)

	// What the byte search looks for: a stretch of each recording's ciphertext (the object)
	// and of its audio in the clear, both from well inside the audio.
	needles := map[string][]byte{
		"first's ciphertext": enc[len(enc)/2 : len(enc)/2+64], "first's audio": wav[len(wav)/2 : len(wav)/2+64],
		"second's ciphertext": encOther[len(encOther)/2 : len(encOther)/2+64], "second's audio": wavOther[len(wavOther)/2 : len(wavOther)/2+64],
	}
	if found := search(t, weed.Dir, needles); found["first's ciphertext"] == "" || found["second's ciphertext"] == "" {
		t.Fatalf("the objects' bytes are not found in SeaweedFS's directory before erasure (%v): the search proves nothing", found)
	}

	// Erase the caller: the object goes.
	r := admin("DELETE", "/v1/callers/"+url.PathEscape(subject)+"?customer="+customerID)
	if r.Status != 200 || !bytes.Contains(r.Body, []byte(first.ID)) {
		t.Fatalf("erase the caller: %d %s", r.Status, r.Body)
	}
	if n := countObjects(t, s3, weed.Bucket, first.ID); n != 0 {
		t.Errorf("%d objects of the erased call", n)
	}
	if code, _, _ := s.getRecording(t, second.RecordingID, nil); code != 200 {
		t.Errorf("the other caller's recording answers %d", code)
	}

	// Erase the customer: every object of it goes.
	resp, err := do(ctx, httpClient, "PATCH", "http://"+s.Admin+"/v1/customers/"+customerID, "application/json",
		[]byte(`{"status":"ended"}`), http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil || resp.Status != 200 {
		t.Fatalf("end the contract: %v %d %s", err, resp.Status, resp.Body)
	}
	if r := admin("POST", "/v1/customers/"+customerID+"/erase"); r.Status != 200 {
		t.Fatalf("erase the customer: %d %s", r.Status, r.Body)
	}
	if n := countObjects(t, s3, weed.Bucket, ""); n != 0 {
		t.Errorf("%d objects left after erasing the customer", n)
	}
	if got := s.metric(t, "trackline_recording_object_deletes_pending"); got != 0 {
		t.Errorf("object_deletes_pending = %v", got)
	}

	// SeaweedFS's filer frees a deleted object's chunks in the background, and its volume
	// files keep deleted needles until they are vacuumed: vacuum until nothing is found.
	vacuumed := time.Now()
	deadline := vacuumed.Add(60 * time.Second)
	for rounds := 1; ; rounds++ {
		weed.Vacuum(t)
		found := search(t, weed.Dir, needles)
		if len(found) == 0 {
			t.Logf("SeaweedFS's directory clean after %d vacuum rounds, %s", rounds, time.Since(vacuumed).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after erasure and 60 s of vacuuming, SeaweedFS's directory still holds %v", found)
		}
		time.Sleep(time.Second)
	}
}

// search answers, for each needle found in a file under dir, the file.
func search(t *testing.T, dir string, needles map[string][]byte) map[string]string {
	t.Helper()
	found := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a file vacuuming replaced
			}
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for name, n := range needles {
			if bytes.Contains(b, n) {
				found[name] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// countObjects counts the objects under objectPrefix whose name holds substr.
func countObjects(t *testing.T, c *minio.Client, bucket, substr string) int {
	t.Helper()
	n := 0
	for obj := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: objectPrefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if strings.Contains(obj.Key, substr) {
			n++
		}
	}
	return n
}
