package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/store"
)

// plainWAV is a recording as builds before encryption at rest stored it: a canonical
// 44-byte header (sizes 0xFFFFFFFF while it was written: finished false) and stereo 8 kHz
// PCM16 audio in the clear.
func plainWAV(seconds int, seed uint32, finished bool) []byte {
	l, r := testSignal(seconds*8000, seed), testSignal(seconds*8000, seed+1)
	dataLen := uint32(len(l) * 4)
	riff, data := 36+dataLen, dataLen
	if !finished {
		riff, data = 0xFFFFFFFF, 0xFFFFFFFF
	}
	le := binary.LittleEndian
	b := le.AppendUint32([]byte("RIFF"), riff)
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 2)
	b = le.AppendUint32(b, 8000)
	b = le.AppendUint32(b, 32000)
	b = le.AppendUint16(b, 4)
	b = le.AppendUint16(b, 16)
	b = le.AppendUint32(append(b, "data"...), data)
	for i := range l {
		b = le.AppendUint16(b, uint16(l[i]))
		b = le.AppendUint16(b, uint16(r[i]))
	}
	return b
}

// An upgrade from a build that stored recordings in the clear: at start the binary encrypts
// them (a finished one with its record, a crash's .wav.part linked to its call), shreds the
// one of a customer that is gone, and serves them through GET /v1/recordings/{id} with the
// same ETag and Range as before; nothing is left in the clear, and the next start has
// nothing to do.
func TestPlainRecordingsUpgrade(t *testing.T) {
	s := startServer(t, testConfig{})
	s.Stop() // the store now holds the customer; the earlier build's data goes in beside it

	const caller = "+31612345678"
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	recDir := filepath.Join(s.dataDir, "recordings")
	day := filepath.Join(recDir, customerID, "2026", "05", "01")
	gone := filepath.Join(recDir, "erased", "2026", "05", "01")
	for _, d := range []string{day, gone} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	finished, crashed := "01JTAFQ0000000000000000001", "01JTAFQ0000000000000000002"
	plain := plainWAV(3, 7, true)
	part := plainWAV(2, 9, false)
	files := map[string][]byte{
		filepath.Join(day, finished+".wav"):         plain,
		filepath.Join(day, crashed+".wav.part"):     part,
		filepath.Join(gone, "01JTAFQ0003.wav"):      plainWAV(1, 11, true),
		filepath.Join(gone, "01JTAFQ0004.wav.part"): plainWAV(1, 13, false),
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(plain)
	db, err := store.Open(filepath.Join(s.dataDir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Write(context.Background(), func(tx *store.Tx) error {
		for _, id := range []string{finished, crashed} {
			c := store.Call{ID: id, CustomerID: customerID, Dialled: poolFirst, Caller: caller, Start: start,
				Answer: start.Add(5 * time.Second), End: start.Add(time.Minute), Disposition: "answered", TalkSeconds: 55}
			if id == finished {
				c.RecordingID = id
				if err := tx.PutRecording(&store.Recording{ID: id, CustomerID: customerID, CallID: id,
					Path: customerID + "/2026/05/01/" + id + ".wav", Duration: 3 * time.Second, Size: int64(len(plain)),
					SHA256: hex.EncodeToString(sum[:]), Created: c.End}); err != nil {
					return err
				}
			}
			if err := tx.PutCall(&c); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	s.Restart()
	if !strings.Contains(s.Logs(), "encrypted the plain recordings of an earlier build") ||
		!strings.Contains(s.Logs(), `"encrypted":2,"repaired":1,"unlinked":0,"removed":2`) {
		t.Errorf("no log line with the migration's counts")
	}

	// Served as before: the same bytes, the same ETag, Range across chunks.
	code, hdr, body := s.getRecording(t, finished, nil)
	if code != 200 || !bytes.Equal(body, plain) {
		t.Fatalf("GET the migrated recording: %d, %d bytes; want 200 and the %d bytes of the plain WAV", code, len(body), len(plain))
	}
	if hdr.Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Errorf("ETag %s, want the plain WAV's sha256 as before the upgrade", hdr.Get("ETag"))
	}
	code, _, body = s.getRecording(t, finished, http.Header{"Range": {"bytes=31000-65000"}})
	if code != http.StatusPartialContent || !bytes.Equal(body, plain[31000:65001]) {
		t.Errorf("Range request: %d, %d bytes", code, len(body))
	}
	// The crash's recording: repaired (header sizes), linked to its call.
	if c := s.callByID(t, crashed); c.RecordingID != crashed {
		t.Errorf("crashed call's recording_id = %q, want it linked", c.RecordingID)
	}
	wantPart := bytes.Clone(part)
	binary.LittleEndian.PutUint32(wantPart[4:], uint32(len(part)-8))
	binary.LittleEndian.PutUint32(wantPart[40:], uint32(len(part)-44))
	if code, _, body := s.getRecording(t, crashed, nil); code != 200 || !bytes.Equal(body, wantPart) {
		t.Errorf("GET the repaired recording: %d, %d bytes; want 200 and %d", code, len(body), len(wantPart))
	}
	if got := s.metric(t, `trackline_recordings_migrated_total{result="encrypted"}`); got != 2 {
		t.Errorf("migrated_total{encrypted} = %v, want 2", got)
	}
	if got := s.metric(t, "trackline_recordings_plain_files"); got != 0 {
		t.Errorf("plain_files = %v, want 0", got)
	}

	// Nothing in the clear under the data directory; the erased customer's files gone.
	probes := [][]byte{plain[44+8000 : 44+8000+64], part[44+8000 : 44+8000+64]}
	var left []string
	filepath.WalkDir(s.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(recDir, p)
		if strings.HasPrefix(p, recDir) {
			left = append(left, filepath.ToSlash(rel))
		}
		b, _ := os.ReadFile(p)
		for _, probe := range probes {
			if bytes.Contains(b, probe) {
				t.Errorf("%s holds recorded audio in the clear", p)
			}
		}
		return nil
	})
	want := []string{customerID + "/2026/05/01/" + finished + ".wav.enc", customerID + "/2026/05/01/" + crashed + ".wav.enc"}
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Errorf("recording files %q, want %q", left, want)
	}

	s.Stop()
	s.Restart()
	if n := strings.Count(s.Logs(), "encrypted the plain recordings of an earlier build"); n != 1 {
		t.Errorf("%d migrations logged over two restarts, want 1 (the second start has nothing to do)", n)
	}
	if code, _, body := s.getRecording(t, finished, nil); code != 200 || !bytes.Equal(body, plain) {
		t.Errorf("after another restart: %d, %d bytes", code, len(body))
	}
	if strings.Contains(s.Logs(), caller) {
		t.Error("the logs hold the caller's number")
	}
}
