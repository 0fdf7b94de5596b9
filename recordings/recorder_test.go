package recordings

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/store/keyring"
)

// day is a start time whose local date (2 May, CEST) differs from its UTC date (1 May).
var day = time.Date(2026, 5, 2, 1, 30, 0, 0, time.FixedZone("CEST", 2*3600))

// newTestRecorder starts a Recorder on a temporary directory (unless o.Dir is set) with a
// fresh registry, and checks at cleanup that Close stops every goroutine it started.
func newTestRecorder(t testing.TB, o Options) (*Recorder, *prometheus.Registry) {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Keys == nil {
		o.Keys = testKeys(t)
	}
	reg := prometheus.NewRegistry()
	before := runtime.NumGoroutine()
	r, err := New(o, WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("goroutines leaked: %d before New, %d after Close", before, n)
		}
	})
	return r, reg
}

// testKeys is a keyring in a temporary directory.
func testKeys(t testing.TB) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// metric is the value of a counter or gauge, or a histogram's sample count.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// Test signals: a 440 Hz tone on the caller's channel, a quieter 1000 Hz one on the
// business line's, both continuous over the whole call (sample n of the call).
const (
	freqL, ampL = 440, 8000
	freqR, ampR = 1000, 3000
)

func toneSample(freq, amp float64, n int) int16 {
	return int16(amp * math.Sin(2*math.Pi*freq*float64(n)/sampleRate))
}

// toneChunk is second index of the test signals, with n valid samples (the rest silence).
func toneChunk(rec *Recording, index uint32, n int) *Chunk {
	c := rec.NewChunk(index)
	c.N = n
	for i := range n {
		s := int(index)*SamplesPerChunk + i
		c.L[i] = g711.EncodeULaw(toneSample(freqL, ampL, s))
		c.R[i] = g711.EncodeULaw(toneSample(freqR, ampR, s))
	}
	return c
}

// wantL and wantR are what the file must hold at sample n of the call for the test signals:
// the µ-law value decoded, exactly.
func wantL(n int) int16 { return g711.ULawToLinear[g711.EncodeULaw(toneSample(freqL, ampL, n))] }
func wantR(n int) int16 { return g711.ULawToLinear[g711.EncodeULaw(toneSample(freqR, ampR, n))] }

// wavFile is a stereo recording read back by readWAV.
type wavFile struct {
	size int64
	L, R []int16
}

// plainWAV is the plain WAV of the recording file at path, read through Open.
func plainWAV(t *testing.T, keys *keyring.Keyring, path string) []byte {
	t.Helper()
	r, err := Open(keys, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != r.Size() {
		t.Fatalf("read %d bytes, Size says %d", len(b), r.Size())
	}
	return b
}

// readWAV decrypts a recording and checks every header field of the canonical layout,
// independently of the package's WAV code.
func readWAV(t *testing.T, keys *keyring.Keyring, path string) wavFile {
	t.Helper()
	b := plainWAV(t, keys, path)
	if len(b) < 44 {
		t.Fatalf("%s: %d bytes, shorter than a WAV header", path, len(b))
	}
	le := binary.LittleEndian
	u16 := func(off int) int { return int(le.Uint16(b[off:])) }
	u32 := func(off int) int { return int(le.Uint32(b[off:])) }
	checks := []struct {
		field     string
		got, want any
	}{
		{"RIFF id", string(b[0:4]), "RIFF"},
		{"RIFF size", u32(4), len(b) - 8},
		{"WAVE id", string(b[8:12]), "WAVE"},
		{"fmt id", string(b[12:16]), "fmt "},
		{"fmt size", u32(16), 16},
		{"format", u16(20), 1},
		{"channels", u16(22), 2},
		{"sample rate", u32(24), 8000},
		{"byte rate", u32(28), 32000},
		{"block align", u16(32), 4},
		{"bits per sample", u16(34), 16},
		{"data id", string(b[36:40]), "data"},
		{"data size", u32(40), len(b) - 44},
		{"whole frames", (len(b) - 44) % 4, 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %s = %v, want %v", path, c.field, c.got, c.want)
		}
	}
	w := wavFile{size: int64(len(b))}
	for off := 44; off+4 <= len(b); off += 4 {
		w.L = append(w.L, int16(le.Uint16(b[off:])))
		w.R = append(w.R, int16(le.Uint16(b[off+2:])))
	}
	return w
}

func rms(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(s)))
}

// plainHash is the hex sha256 of the recording's plain WAV.
func plainHash(t *testing.T, keys *keyring.Keyring, path string) string {
	t.Helper()
	sum := sha256.Sum256(plainWAV(t, keys, path))
	return hex.EncodeToString(sum[:])
}

// syncWorker returns once rec's worker handled everything queued before the call.
func syncWorker(rec *Recording) {
	done := make(chan struct{})
	rec.w.q <- item{op: opSync, done: done}
	<-done
}

// pauseWorker blocks rec's worker until the returned function is called.
func pauseWorker(rec *Recording) (resume func()) {
	done, release := make(chan struct{}), make(chan struct{})
	rec.w.q <- item{op: opSync, done: done, release: release}
	<-done
	return func() { close(release) }
}

func TestRecordingStereoWAV(t *testing.T) {
	r, reg := newTestRecorder(t, Options{})
	rec, err := r.Open("cust-1", "call_1", day)
	if err != nil {
		t.Fatal(err)
	}
	if got := metric(t, reg, "trackline_recordings_active"); got != 1 {
		t.Errorf("active = %v while open, want 1", got)
	}
	part := filepath.Join(r.Dir(), "cust-1", "2026", "05", "01", "call_1.wav.enc.part")
	syncWorker(rec) // the worker makes the file, ahead of the first chunk
	if _, err := os.Stat(part); err != nil {
		t.Fatalf("no .part while recording: %v", err)
	}
	for i := range uint32(3) {
		if !rec.Submit(toneChunk(rec, i, SamplesPerChunk)) {
			t.Fatalf("chunk %d dropped", i)
		}
	}
	rec.Submit(toneChunk(rec, 3, 4000)) // the call's last, partial second
	syncWorker(rec)                     // written before Finish: Finish seals the last again
	info, err := rec.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if rec.sealedLast {
		t.Error("the worker sealed the last chunk as the last, though it was written before Finish")
	}

	const frames = 3*SamplesPerChunk + 4000
	wantInfo := Info{
		CustomerID: "cust-1",
		CallID:     "call_1",
		Path:       filepath.Join(r.Dir(), "cust-1", "2026", "05", "01", "call_1.wav.enc"),
		Rel:        "cust-1/2026/05/01/call_1.wav.enc",
		Duration:   3500 * time.Millisecond,
		Size:       44 + frames*4,
		SHA256:     info.SHA256, // checked below
	}
	if info != wantInfo {
		t.Errorf("Info = %+v\nwant   %+v", info, wantInfo)
	}
	if !filepath.IsAbs(info.Path) {
		t.Errorf("Path %q is not absolute", info.Path)
	}
	if _, err := os.Stat(part); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf(".part still there after Finish: %v", err)
	}
	if got := plainHash(t, r.Keys(), info.Path); got != info.SHA256 {
		t.Errorf("SHA256 = %s, file hashes to %s", info.SHA256, got)
	}

	w := readWAV(t, r.Keys(), info.Path)
	if len(w.L) != frames {
		t.Fatalf("%d frames, want %d", len(w.L), frames)
	}
	for n := range frames {
		if w.L[n] != wantL(n) || w.R[n] != wantR(n) {
			t.Fatalf("frame %d = (%d, %d), want (%d, %d)", n, w.L[n], w.R[n], wantL(n), wantR(n))
		}
	}
	// Each channel carries its own signal at its own level.
	if l, r := rms(w.L), rms(w.R); math.Abs(l-ampL/math.Sqrt2) > 0.05*ampL || math.Abs(r-ampR/math.Sqrt2) > 0.05*ampR {
		t.Errorf("RMS L = %.0f, R = %.0f; want about %.0f and %.0f", l, r, ampL/math.Sqrt2, ampR/math.Sqrt2)
	}

	for name, want := range map[string]float64{
		"trackline_recordings_active":              0,
		"trackline_recordings_written_total":       1,
		"trackline_recording_bytes_total":          encHeaderSize + 4*sealedChunk, // the last chunk is written whole, then cut
		"trackline_recording_dropped_chunks_total": 0,
		"trackline_recording_write_seconds":        4,
	} {
		if got := metric(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestChunkPlacement checks where chunks land: gaps become silence, late, duplicate and
// invalid chunks are dropped and counted, and only the last chunk's N sets the length.
func TestChunkPlacement(t *testing.T) {
	type sub struct {
		index uint32
		n     int
	}
	full := SamplesPerChunk
	tests := []struct {
		name        string
		chunks      []sub
		tone        []bool // per second of the file: the test signals, else silence
		frames      int
		wantDropped int64
	}{
		{"in order", []sub{{0, full}, {1, full}}, []bool{true, true}, 2 * full, 0},
		{"gap of two seconds", []sub{{0, full}, {3, full}}, []bool{true, false, false, true}, 4 * full, 0},
		{"starts late", []sub{{2, 100}}, []bool{false, false, true}, 2*full + 100, 0},
		{"out of order", []sub{{0, full}, {2, full}, {1, full}}, []bool{true, false, true}, 3 * full, 1},
		{"duplicate", []sub{{0, full}, {1, full}, {1, full}}, []bool{true, true}, 2 * full, 1},
		{"short chunk not last", []sub{{0, 10}, {1, full}}, []bool{true, true}, 2 * full, 0},
		{"invalid N", []sub{{0, full}, {1, 0}, {1, full + 1}, {1, -1}}, []bool{true}, full, 3},
		{"beyond max duration", []sub{{0, full}, {4, full}}, []bool{true}, full, 1},
		{"all dropped", []sub{{0, 0}}, nil, 0, 1},
		{"nothing submitted", nil, nil, 0, 0},
	}
	r, reg := newTestRecorder(t, Options{MaxDuration: 4 * time.Second})
	var dropped int64
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := r.Open("cust", "call-"+string(rune('a'+i)), day)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.chunks {
				c := toneChunk(rec, s.index, min(max(s.n, 0), full))
				c.N = s.n
				if !rec.Submit(c) {
					t.Fatalf("chunk %d not queued", s.index)
				}
			}
			info, err := rec.Finish()
			if err != nil {
				t.Fatal(err)
			}
			dropped += info.Dropped
			if info.Dropped != tt.wantDropped {
				t.Errorf("Dropped = %d, want %d", info.Dropped, tt.wantDropped)
			}
			if want := time.Duration(tt.frames) * time.Second / sampleRate; info.Duration != want {
				t.Errorf("Duration = %s, want %s", info.Duration, want)
			}
			w := readWAV(t, r.Keys(), info.Path)
			if len(w.L) != tt.frames {
				t.Fatalf("%d frames, want %d", len(w.L), tt.frames)
			}
			// The valid part of each submitted chunk holds the tone; everything else is 0.
			valid := make(map[int]int) // second -> valid samples of the chunk written there
			for _, s := range tt.chunks {
				if sec := int(s.index); sec < len(tt.tone) && tt.tone[sec] {
					valid[sec] = max(valid[sec], s.n)
				}
			}
			for n := range tt.frames {
				sec, i := n/full, n%full
				wl, wr := int16(0), int16(0)
				if i < valid[sec] {
					wl, wr = wantL(n), wantR(n)
				}
				if w.L[n] != wl || w.R[n] != wr {
					t.Fatalf("second %d sample %d = (%d, %d), want (%d, %d)", sec, i, w.L[n], w.R[n], wl, wr)
				}
			}
		})
	}
	if got := metric(t, reg, "trackline_recording_dropped_chunks_total"); got != float64(dropped) {
		t.Errorf("dropped_chunks_total = %v, want %d", got, dropped)
	}
}

func TestSubmitQueueFull(t *testing.T) {
	r, reg := newTestRecorder(t, Options{Workers: 1, QueueLen: 4})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	resume := pauseWorker(rec)

	// With the worker stuck, four chunks fill the queue; the next two must be dropped at
	// once, not wait for room.
	results := make(chan []bool, 1)
	go func() {
		var ok []bool
		for i := range uint32(6) {
			ok = append(ok, rec.Submit(toneChunk(rec, i, SamplesPerChunk)))
		}
		results <- ok
	}()
	select {
	case ok := <-results:
		want := []bool{true, true, true, true, false, false}
		for i := range want {
			if ok[i] != want[i] {
				t.Errorf("Submit(chunk %d) = %v, want %v", i, ok[i], want[i])
			}
		}
	case <-time.After(5 * time.Second):
		resume()
		t.Fatal("Submit blocked on a full queue")
	}
	if got := metric(t, reg, "trackline_recording_dropped_chunks_total"); got != 2 {
		t.Errorf("dropped_chunks_total = %v, want 2", got)
	}

	resume()
	info, err := rec.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if info.Dropped != 2 || info.Duration != 4*time.Second {
		t.Errorf("Dropped = %d, Duration = %s; want 2, 4s", info.Dropped, info.Duration)
	}
	if w := readWAV(t, r.Keys(), info.Path); len(w.L) != 4*SamplesPerChunk || w.L[3*SamplesPerChunk+1] != wantL(3*SamplesPerChunk+1) {
		t.Errorf("file does not hold the four queued seconds")
	}

	// Once finished, a chunk is dropped at Submit.
	if rec.Submit(rec.NewChunk(4)) {
		t.Error("Submit after Finish queued the chunk")
	}
	if _, err := rec.Finish(); !errors.Is(err, ErrDone) {
		t.Errorf("second Finish: %v, want ErrDone", err)
	}
}

func TestWriteError(t *testing.T) {
	r, reg := newTestRecorder(t, Options{})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	rec.Submit(toneChunk(rec, 0, SamplesPerChunk))
	syncWorker(rec)
	// The disk fails: the worker's writes go to a read-only descriptor from now on.
	rw := rec.f
	ro, err := os.Open(rec.part)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rec.f = ro
	rec.Submit(toneChunk(rec, 1, SamplesPerChunk))
	rec.Submit(toneChunk(rec, 2, SamplesPerChunk))
	syncWorker(rec)
	rec.f = rw // the disk recovers for Finish

	info, err := rec.Finish()
	if err == nil {
		t.Fatal("Finish after a write error: no error")
	}
	if info.Duration != time.Second || info.Dropped != 2 {
		t.Errorf("Duration = %s, Dropped = %d; want the 1s before the error, 2", info.Duration, info.Dropped)
	}
	if w := readWAV(t, r.Keys(), info.Path); len(w.L) != SamplesPerChunk || w.L[100] != wantL(100) {
		t.Error("the audio before the error is not in the finished file")
	}
	if got := metric(t, reg, "trackline_recording_dropped_chunks_total"); got != 2 {
		t.Errorf("dropped_chunks_total = %v, want 2", got)
	}
}

func TestAbort(t *testing.T) {
	r, reg := newTestRecorder(t, Options{})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	rec.Submit(toneChunk(rec, 0, SamplesPerChunk))
	rec.Abort()
	rec.Abort() // idempotent
	entries, err := os.ReadDir(filepath.Join(r.Dir(), "cust", "2026", "05", "01"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("files left after Abort: %v", entries)
	}
	if _, err := rec.Finish(); !errors.Is(err, ErrDone) {
		t.Errorf("Finish after Abort: %v, want ErrDone", err)
	}
	if got := metric(t, reg, "trackline_recordings_active"); got != 0 {
		t.Errorf("active = %v, want 0", got)
	}
	// The call id is free again.
	rec, err = r.Open("cust", "call", day)
	if err != nil {
		t.Fatalf("Open after Abort: %v", err)
	}
	rec.Abort()
}

func TestOpenRejectsUnsafeIDs(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	for _, bad := range []string{"", "../x", "a/b", `a\b`, ".", "..", "a b", "a.b", "café", "a\x00b", "call\n", strings.Repeat("a", 65)} {
		t.Run("customer "+bad, func(t *testing.T) {
			if _, err := r.Open(bad, "call", day); !errors.Is(err, ErrInvalidID) {
				t.Errorf("Open(%q, call) = %v, want ErrInvalidID", bad, err)
			}
		})
		t.Run("call "+bad, func(t *testing.T) {
			if _, err := r.Open("cust", bad, day); !errors.Is(err, ErrInvalidID) {
				t.Errorf("Open(cust, %q) = %v, want ErrInvalidID", bad, err)
			}
		})
	}
	if entries, _ := os.ReadDir(r.Dir()); len(entries) != 0 {
		t.Errorf("rejected ids created %v", entries)
	}
	rec, err := r.Open("Cust_01-x", strings.Repeat("a", 64), day)
	if err != nil {
		t.Fatalf("safe ids rejected: %v", err)
	}
	rec.Abort()
}

func TestOpenExisting(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open("cust", "call", day); !errors.Is(err, ErrExists) {
		t.Errorf("Open while recording: %v, want ErrExists", err)
	}
	if _, err := rec.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open("cust", "call", day); !errors.Is(err, ErrExists) {
		t.Errorf("Open after Finish: %v, want ErrExists", err)
	}
}

func TestClose(t *testing.T) {
	r, reg := newTestRecorder(t, Options{})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint32(2) {
		rec.Submit(toneChunk(rec, i, SamplesPerChunk))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Close drained the queue into the .part and left it for Repair.
	part := filepath.Join(r.Dir(), "cust", "2026", "05", "01", "call.wav.enc.part")
	if st, err := os.Stat(part); err != nil || st.Size() != encHeaderSize+2*sealedChunk {
		t.Fatalf("after Close: .part %v, %v; want %d bytes", st, err, encHeaderSize+2*sealedChunk)
	}
	if rec.Submit(rec.NewChunk(2)) {
		t.Error("Submit after Close queued the chunk")
	}
	if _, err := rec.Finish(); !errors.Is(err, ErrClosed) {
		t.Errorf("Finish after Close: %v, want ErrClosed", err)
	}
	if _, err := r.Open("cust", "other", day); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: %v, want ErrClosed", err)
	}
	if got := metric(t, reg, "trackline_recordings_active"); got != 0 {
		t.Errorf("active = %v, want 0", got)
	}
}

func TestRepair(t *testing.T) {
	r, reg := newTestRecorder(t, Options{})
	dayDir := filepath.Join(r.Dir(), "cust", "2026", "05", "01")

	// A finished recording, which Repair must not touch.
	done, err := r.Open("cust", "finished", day)
	if err != nil {
		t.Fatal(err)
	}
	done.Submit(toneChunk(done, 0, SamplesPerChunk))
	doneInfo, err := done.Finish()
	if err != nil {
		t.Fatal(err)
	}
	doneBytes, _ := os.ReadFile(doneInfo.Path)

	// A crash: three and a half seconds written, the file closed without Finish, and a
	// torn 3-byte tail from a write cut short.
	crashed, err := r.Open("cust", "crashed", day)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint32(3) {
		crashed.Submit(toneChunk(crashed, i, SamplesPerChunk))
	}
	crashed.Submit(toneChunk(crashed, 3, 4000))
	syncWorker(crashed)
	crashed.f.Close()
	tail, err := os.OpenFile(crashed.part, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	tail.Write([]byte{1, 2, 3})
	tail.Close()

	// A crash right after the file was created: shorter than its header.
	if err := os.MkdirAll(filepath.Join(r.Dir(), "other", "2026", "04", "30"), 0o750); err != nil {
		t.Fatal(err)
	}
	tiny := filepath.Join(r.Dir(), "other", "2026", "04", "30", "tiny.wav.enc.part")
	if err := os.WriteFile(tiny, []byte(encMagic[:6]), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Keys().Get("other"); err != nil { // Open made it before the crash
		t.Fatal(err)
	}

	// The Recorder's Repair skips what it has open: only the tiny one is repaired.
	infos, err := r.Repair()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].CallID != "tiny" || infos[0].CustomerID != "other" || infos[0].Duration != 0 {
		t.Fatalf("Recorder.Repair = %+v, want only other/tiny, empty", infos)
	}
	if w := readWAV(t, r.Keys(), infos[0].Path); w.size != 44 {
		t.Errorf("repaired tiny file is %d bytes, want 44", w.size)
	}
	if got := metric(t, reg, "trackline_recordings_repaired_total"); got != 1 {
		t.Errorf("repaired_total = %v, want 1", got)
	}

	// After restart (the Recorder forgot it), the package func repairs the crashed one.
	r.release(crashed)
	infos, err = Repair(r.Dir(), r.Keys())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("Repair = %+v, want the crashed recording", infos)
	}
	info := infos[0]
	// The last chunk is on disk whole (its silent tail included); the torn bytes are cut.
	const frames = 4 * SamplesPerChunk
	want := Info{
		CustomerID: "cust",
		CallID:     "crashed",
		Path:       filepath.Join(dayDir, "crashed.wav.enc"),
		Rel:        "cust/2026/05/01/crashed.wav.enc",
		Duration:   4 * time.Second,
		Size:       44 + frames*4,
		SHA256:     info.SHA256,
	}
	if info != want {
		t.Errorf("Info = %+v\nwant   %+v", info, want)
	}
	if got := plainHash(t, r.Keys(), info.Path); got != info.SHA256 {
		t.Errorf("SHA256 = %s, file hashes to %s", info.SHA256, got)
	}
	w := readWAV(t, r.Keys(), info.Path)
	if len(w.L) != frames {
		t.Fatalf("%d frames, want %d", len(w.L), frames)
	}
	for n := range 3*SamplesPerChunk + 4000 {
		if w.L[n] != wantL(n) || w.R[n] != wantR(n) {
			t.Fatalf("frame %d = (%d, %d), want (%d, %d)", n, w.L[n], w.R[n], wantL(n), wantR(n))
		}
	}

	if b, _ := os.ReadFile(doneInfo.Path); !bytes.Equal(b, doneBytes) {
		t.Error("Repair changed a finished recording")
	}
	filepath.WalkDir(r.Dir(), func(path string, d fs.DirEntry, err error) error {
		if strings.HasSuffix(path, ".part") {
			t.Errorf("%s left after Repair", path)
		}
		return nil
	})
	if infos, err := Repair(r.Dir(), r.Keys()); err != nil || len(infos) != 0 {
		t.Errorf("second Repair = %v, %v; want nothing to do", infos, err)
	}
}

func TestRepairKeepsPartWhenWAVExists(t *testing.T) {
	dir := t.TempDir()
	wav := filepath.Join(dir, "c", "2026", "05", "01", "x.wav.enc")
	os.MkdirAll(filepath.Dir(wav), 0o750)
	os.WriteFile(wav, []byte("finished"), 0o640)
	os.WriteFile(wav+".part", make([]byte, 100), 0o640)
	infos, err := Repair(dir, testKeys(t))
	if !errors.Is(err, ErrExists) || len(infos) != 0 {
		t.Errorf("Repair = %v, %v; want ErrExists and nothing repaired", infos, err)
	}
	if b, _ := os.ReadFile(wav); string(b) != "finished" {
		t.Error("Repair overwrote a finished recording")
	}
	if _, err := os.Stat(wav + ".part"); err != nil {
		t.Errorf(".part removed: %v", err)
	}
}

func TestNewOptions(t *testing.T) {
	keys := testKeys(t)
	if _, err := New(Options{Keys: keys}); err == nil {
		t.Error("New without Dir: no error")
	}
	if _, err := New(Options{Dir: t.TempDir()}); err == nil {
		t.Error("New without Keys: no error")
	}
	if _, err := New(Options{Dir: t.TempDir(), Keys: keys, Workers: -1}); err == nil {
		t.Error("New with -1 workers: no error")
	}
	// The metric names are fixed; registering twice on one registry must fail cleanly.
	r, reg := newTestRecorder(t, Options{Workers: 3})
	if len(r.workers) != 3 || cap(r.workers[0].q) != DefaultQueueLen {
		t.Errorf("%d workers with queues of %d, want 3 of %d", len(r.workers), cap(r.workers[0].q), DefaultQueueLen)
	}
	if _, err := New(Options{Dir: t.TempDir(), Keys: keys}, WithRegisterer(reg)); err == nil {
		t.Error("second Recorder on the same registry: no error")
	}
}

// BenchmarkSubmitWrite measures chunks through a worker into a real file: the writer's
// throughput (MB/s of PCM16 on disk) and allocations per chunk (must be 0).
func BenchmarkSubmitWrite(b *testing.B) {
	r, _ := newTestRecorder(b, Options{Workers: 1, QueueLen: 64, Dir: b.TempDir()})
	const perFile = 256 // 8 MB files, so the benchmark does not fill the disk
	open := func() *Recording {
		rec, err := r.Open("bench", "call", day) // the name is free again after Abort
		if err != nil {
			b.Fatal(err)
		}
		return rec
	}
	rec := open()
	tmpl := toneChunk(rec, 0, SamplesPerChunk)
	b.SetBytes(chunkBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%perFile == 0 {
			syncWorker(rec)
			b.StopTimer()
			rec.Abort()
			rec = open()
			b.StartTimer()
		}
		for len(rec.w.q) == cap(rec.w.q) { // back-pressure, so no chunk is dropped
			runtime.Gosched()
		}
		c := rec.NewChunk(uint32(i % perFile))
		c.L, c.R = tmpl.L, tmpl.R
		if !rec.Submit(c) {
			b.Fatal("chunk dropped")
		}
	}
	syncWorker(rec)
	b.StopTimer()
	rec.Abort()
}

func BenchmarkNewChunk(b *testing.B) {
	r, _ := newTestRecorder(b, Options{Dir: b.TempDir()})
	rec, err := r.Open("bench", "call", day)
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Abort()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rec.Release(rec.NewChunk(uint32(i)))
	}
}
