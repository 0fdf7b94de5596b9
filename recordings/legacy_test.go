package recordings

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// legacyFixture is a recordings tree and a real bbolt store as a build before encryption at
// rest left them, with customer "cust".
type legacyFixture struct {
	r   *Recorder
	reg *prometheus.Registry
	db  *store.DB
}

var callStart = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

func newLegacyFixture(t testing.TB) *legacyFixture {
	t.Helper()
	r, reg := newTestRecorder(t, Options{})
	db, err := store.Open(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Write(context.Background(), func(tx *store.Tx) error {
		return tx.CreateCustomer(&store.Customer{ID: "cust", Name: "Cust BV", Status: store.StatusActive, SiteKey: "cust-site"})
	}); err != nil {
		t.Fatal(err)
	}
	return &legacyFixture{r: r, reg: reg, db: db}
}

// oldHeader is the WAV header the builds before encryption wrote, independently of
// putHeader: canonical for dataLen, or with sizes 0xFFFFFFFF while recording (dataLen -1).
func oldHeader(dataLen int64) []byte {
	riff, data := uint32(0xFFFFFFFF), uint32(0xFFFFFFFF)
	if dataLen >= 0 {
		riff, data = uint32(36+dataLen), uint32(dataLen)
	}
	le := binary.LittleEndian
	h := []byte("RIFF....WAVEfmt ")
	le.PutUint32(h[4:], riff)
	h = le.AppendUint32(h, 16)
	h = le.AppendUint16(h, 1)        // PCM
	h = le.AppendUint16(h, 2)        // stereo
	h = le.AppendUint32(h, 8000)     // Hz
	h = le.AppendUint32(h, 8000*2*2) // bytes a second
	h = le.AppendUint16(h, 4)        // block align
	h = le.AppendUint16(h, 16)       // bits
	h = append(h, "data"...)
	return le.AppendUint32(h, data)
}

// oldRecording writes a recording of the test signals as the builds before encryption did:
// the header with placeholder sizes, then every second as a whole 32000-byte PCM16 chunk at
// 44 + k*32000 (the last one n samples of tone, the rest silence). finished: Finish fixed
// the header and cut the file to its audio and renamed it to .wav; otherwise the process
// died, leaving the .wav.part. It answers the file's path and the plain WAV it holds once
// finished or repaired (a repaired one keeps its last chunk whole).
func oldRecording(t testing.TB, dir, customer, call string, seconds uint32, n int, finished bool) (string, []byte) {
	t.Helper()
	silence := uint16(g711.ULawToLinear[g711.ULawSilence])
	audio := make([]byte, int(seconds)*chunkBytes)
	for s := range int(seconds) * SamplesPerChunk {
		l, r := silence, silence
		if s < int(seconds-1)*SamplesPerChunk+n {
			l, r = uint16(wantL(s)), uint16(wantR(s))
		}
		binary.LittleEndian.PutUint16(audio[4*s:], l)
		binary.LittleEndian.PutUint16(audio[4*s+2:], r)
	}
	day := callStart.Format("2006/01/02")
	path := filepath.Join(dir, customer, filepath.FromSlash(day), call+".wav.part")
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(oldHeader(-1), audio...), 0o640); err != nil {
		t.Fatal(err)
	}
	if !finished {
		return path, append(oldHeader(int64(len(audio))), audio...)
	}
	dataLen := int64(seconds-1)*chunkBytes + int64(n)*4
	plain := append(oldHeader(dataLen), audio[:dataLen]...)
	final := strings.TrimSuffix(path, ".part")
	if err := os.WriteFile(path, plain, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, final); err != nil {
		t.Fatal(err)
	}
	return final, plain
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putCall stores an ended call of cust; with a plain recording's record (as the old builds
// wrote it: the file's path, size and sha256) when plain is not nil.
func (f *legacyFixture) putCall(t testing.TB, customer, id string, plain []byte) {
	t.Helper()
	err := f.db.Write(context.Background(), func(tx *store.Tx) error {
		c := store.Call{ID: id, CustomerID: customer, Dialled: "+31850000001", Start: callStart,
			Answer: callStart.Add(time.Second), End: callStart.Add(time.Minute), Disposition: "answered"}
		if plain != nil {
			rec := store.Recording{ID: id, CustomerID: customer, CallID: id,
				Path:     customer + "/" + callStart.Format("2006/01/02") + "/" + id + ".wav",
				Duration: durationOf(int64(len(plain)) - 44), Size: int64(len(plain)), SHA256: sha(plain), Created: c.End}
			if err := tx.PutRecording(&rec); err != nil {
				return err
			}
			c.RecordingID = id
		}
		return tx.PutCall(&c)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// recordingFiles lists the files under the recordings tree, relative to it.
func recordingFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// labelled is the value of a counter with one label.
func labelled(t *testing.T, reg *prometheus.Registry, name, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not registered", name, value)
	return 0
}

// checkEncrypted checks that the call's recording record names its .wav.enc, that the file
// decrypts to plain, and that the record's size and sha256 are the plain WAV's.
func (f *legacyFixture) checkEncrypted(t *testing.T, id string, plain []byte) store.Recording {
	t.Helper()
	rec, err := f.db.Recording(id)
	if err != nil {
		t.Fatal(err)
	}
	if want := "cust/2026/05/01/" + id + ".wav.enc"; rec.Path != want {
		t.Errorf("record Path = %q, want %q", rec.Path, want)
	}
	if rec.Size != int64(len(plain)) || rec.SHA256 != sha(plain) || rec.Duration != durationOf(int64(len(plain))-44) {
		t.Errorf("record size %d sha %s duration %s; want %d %s %s", rec.Size, rec.SHA256, rec.Duration,
			len(plain), sha(plain), durationOf(int64(len(plain))-44))
	}
	rc, err := Opener(f.r.Dir(), f.r.Keys())(rec)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if got := plainWAV(t, f.r.Keys(), filepath.Join(f.r.Dir(), filepath.FromSlash(rec.Path))); !bytes.Equal(got, plain) {
		t.Errorf("%s decrypts to %d bytes (sha %s), want the plain recording's %d (sha %s)",
			rec.Path, len(got), sha(got), len(plain), sha(plain))
	}
	return rec
}

func TestMigratePlain(t *testing.T) {
	f := newLegacyFixture(t)
	dir := f.r.Dir()
	// A finished recording with its record; a crash's .wav.part whose call was completed
	// at the next start but not linked; a recording whose call record is gone; and two of
	// a customer that was erased.
	_, finished := oldRecording(t, dir, "cust", "finished", 3, 2500, true)
	f.putCall(t, "cust", "finished", finished)
	_, crashed := oldRecording(t, dir, "cust", "crashed", 2, 1000, false)
	f.putCall(t, "cust", "crashed", nil)
	_, unlinked := oldRecording(t, dir, "cust", "unlinked", 1, 8000, true)
	oldRecording(t, dir, "gone", "erased", 1, 100, true)
	oldRecording(t, dir, "gone", "erased-part", 1, 100, false)
	if _, err := f.r.Keys().Lookup("cust"); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("cust has a key before the migration: %v", err)
	}

	st, err := f.r.MigratePlain(context.Background(), f.db)
	if err != nil {
		t.Fatal(err)
	}
	if want := (MigrateStats{Encrypted: 3, Repaired: 1, Unlinked: 1, Removed: 2}); st != want {
		t.Errorf("MigratePlain = %+v, want %+v", st, want)
	}

	// Only encrypted files are left, no byte of audio in the clear.
	want := []string{"cust/2026/05/01/crashed.wav.enc", "cust/2026/05/01/finished.wav.enc", "cust/2026/05/01/unlinked.wav.enc"}
	if got := recordingFiles(t, dir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files after the migration: %q, want %q", got, want)
	}
	probe := finished[44+16000 : 44+16000+64]
	for _, name := range want {
		if b, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name))); bytes.Contains(b, probe) {
			t.Errorf("%s holds audio in the clear", name)
		}
	}

	// The finished recording: same size and sha256 (ETag) as before, now of the plain WAV
	// that the encrypted file holds.
	f.checkEncrypted(t, "finished", finished)
	// The crash: repaired as the old build repaired it, given a record, linked to its call.
	rec := f.checkEncrypted(t, "crashed", crashed)
	if c, err := f.db.Call("crashed"); err != nil || c.RecordingID != "crashed" {
		t.Errorf("call crashed: RecordingID %q, %v; want it linked", c.RecordingID, err)
	}
	if w := readWAV(t, f.r.Keys(), filepath.Join(dir, filepath.FromSlash(rec.Path))); len(w.L) != 2*SamplesPerChunk ||
		w.L[SamplesPerChunk+999] != wantL(SamplesPerChunk+999) || w.R[SamplesPerChunk+999] != wantR(SamplesPerChunk+999) {
		t.Errorf("repaired recording: %d frames, want %d with the tone", len(w.L), 2*SamplesPerChunk)
	}
	// No call to link: kept, encrypted, with no record.
	if _, err := f.db.Recording("unlinked"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a record was made for a recording without a call: %v", err)
	}
	if got := plainWAV(t, f.r.Keys(), filepath.Join(dir, "cust/2026/05/01/unlinked.wav.enc")); !bytes.Equal(got, unlinked) {
		t.Error("the unlinked recording does not decrypt to its plain file")
	}
	// The erased customer got no key.
	if _, err := f.r.Keys().Lookup("gone"); !errors.Is(err, keyring.ErrNoKey) {
		t.Errorf("a key was made for the erased customer: %v", err)
	}

	for result, want := range map[string]float64{"encrypted": 3, "removed": 2, "failed": 0} {
		if got := labelled(t, f.reg, "trackline_recordings_migrated_total", result); got != want {
			t.Errorf("migrated_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got := metric(t, f.reg, "trackline_recordings_plain_files"); got != 0 {
		t.Errorf("plain_files = %v, want 0", got)
	}

	// A second run finds nothing to do and changes nothing.
	before := map[string][]byte{}
	for _, name := range want {
		before[name], _ = os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	}
	recBefore, _ := f.db.Recording("finished")
	st, err = f.r.MigratePlain(context.Background(), f.db)
	if err != nil || st != (MigrateStats{}) {
		t.Errorf("second MigratePlain = %+v, %v; want nothing done", st, err)
	}
	for _, name := range want {
		if b, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name))); !bytes.Equal(b, before[name]) {
			t.Errorf("second run rewrote %s", name)
		}
	}
	if recAfter, _ := f.db.Recording("finished"); recAfter != recBefore {
		t.Errorf("second run changed the record: %+v, was %+v", recAfter, recBefore)
	}
}

// TestMigratePlainAfterCrash starts from what a SIGKILL leaves at each step of a migration
// and checks that the next run ends with the encrypted file and its record, nothing plain.
func TestMigratePlainAfterCrash(t *testing.T) {
	const rel = "cust/2026/05/01/call.wav"
	cases := []struct {
		name string
		// crash makes the state a SIGKILL leaves, from the old recording at plain.
		crash func(t *testing.T, f *legacyFixture, plain, enc string)
		// kept: the encrypted file left by the crash is the one kept (not made again).
		kept bool
	}{
		{"while encrypting", func(t *testing.T, f *legacyFixture, plain, enc string) {
			if _, _, err := encryptPlain(f.r.Keys(), plain, enc+".tmp", "cust", "call"); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(enc+".tmp", 40000); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"encrypted file in place, record not updated", func(t *testing.T, f *legacyFixture, plain, enc string) {
			if _, _, err := encryptPlain(f.r.Keys(), plain, enc, "cust", "call"); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"record updated, plain file not removed", func(t *testing.T, f *legacyFixture, plain, enc string) {
			if _, _, err := encryptPlain(f.r.Keys(), plain, enc, "cust", "call"); err != nil {
				t.Fatal(err)
			}
			f.pointAt(t, rel+".enc")
		}, true},
		{"while shredding the plain file", func(t *testing.T, f *legacyFixture, plain, enc string) {
			if _, _, err := encryptPlain(f.r.Keys(), plain, enc, "cust", "call"); err != nil {
				t.Fatal(err)
			}
			f.pointAt(t, rel+".enc")
			if err := os.Rename(plain, plain+".shred"); err != nil {
				t.Fatal(err)
			}
			sh, err := os.OpenFile(plain+".shred", os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			sh.WriteAt(make([]byte, 50000), 0)
			sh.Close()
		}, true},
		{"record updated, its encrypted file damaged since", func(t *testing.T, f *legacyFixture, plain, enc string) {
			if _, _, err := encryptPlain(f.r.Keys(), plain, enc, "cust", "call"); err != nil {
				t.Fatal(err)
			}
			f.pointAt(t, rel+".enc")
			if err := os.Truncate(enc, 1000); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newLegacyFixture(t)
			plainPath, plain := oldRecording(t, f.r.Dir(), "cust", "call", 2, 3000, true)
			f.putCall(t, "cust", "call", plain)
			enc := strings.TrimSuffix(plainPath, ".wav") + ".wav.enc"
			tc.crash(t, f, plainPath, enc)
			left, _ := os.ReadFile(enc)

			st, err := f.r.MigratePlain(context.Background(), f.db)
			if err != nil {
				t.Fatal(err)
			}
			if st.Failed != 0 || st.Removed != 0 {
				t.Errorf("MigratePlain = %+v", st)
			}
			f.checkEncrypted(t, "call", plain)
			if got := recordingFiles(t, f.r.Dir()); len(got) != 1 || got[0] != rel+".enc" {
				t.Errorf("files: %q, want only %s.enc", got, rel)
			}
			if now, _ := os.ReadFile(enc); tc.kept != bytes.Equal(now, left) {
				t.Errorf("encrypted file kept = %v, want %v", bytes.Equal(now, left), tc.kept)
			}
			if st, err := f.r.MigratePlain(context.Background(), f.db); err != nil || st != (MigrateStats{}) {
				t.Errorf("second MigratePlain = %+v, %v; want nothing done", st, err)
			}
		})
	}
}

// pointAt sets the path of call's recording record, as a migration's record update does.
func (f *legacyFixture) pointAt(t *testing.T, rel string) {
	t.Helper()
	if err := f.db.Write(context.Background(), func(tx *store.Tx) error {
		rec, err := tx.Recording("call")
		if err != nil {
			return err
		}
		rec.Path = rel
		return tx.PutRecording(&rec)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMigratePlainRefuses: a plain file that does not match its record, or is not a WAV of
// this format, is left as it is (and its record), counted and reported.
func TestMigratePlainRefuses(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, f *legacyFixture, plain string)
	}{
		{"audio changed since its record", func(t *testing.T, f *legacyFixture, plain string) {
			b, _ := os.ReadFile(plain)
			b[1000] ^= 1
			os.WriteFile(plain, b, 0o640)
		}},
		{"not the header of this format", func(t *testing.T, f *legacyFixture, plain string) {
			b, _ := os.ReadFile(plain)
			binary.LittleEndian.PutUint32(b[24:], 16000) // 16 kHz
			os.WriteFile(plain, b, 0o640)
			f.db.Write(context.Background(), func(tx *store.Tx) error { // the record agrees
				rec, _ := tx.Recording("call")
				rec.SHA256 = sha(b)
				return tx.PutRecording(&rec)
			})
		}},
		{"its record names another file", func(t *testing.T, f *legacyFixture, plain string) {
			f.pointAt(t, "cust/2026/05/02/call.wav")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newLegacyFixture(t)
			plainPath, plain := oldRecording(t, f.r.Dir(), "cust", "call", 1, 8000, true)
			f.putCall(t, "cust", "call", plain)
			tc.change(t, f, plainPath)
			before, _ := os.ReadFile(plainPath)
			recBefore, _ := f.db.Recording("call")

			st, err := f.r.MigratePlain(context.Background(), f.db)
			if !errors.Is(err, ErrCorrupt) || st != (MigrateStats{Failed: 1}) {
				t.Errorf("MigratePlain = %+v, %v; want one failure, ErrCorrupt", st, err)
			}
			if now, _ := os.ReadFile(plainPath); !bytes.Equal(now, before) {
				t.Error("the plain file was changed")
			}
			if rec, _ := f.db.Recording("call"); rec != recBefore {
				t.Errorf("record changed to %+v", rec)
			}
			if got := recordingFiles(t, f.r.Dir()); len(got) != 1 {
				t.Errorf("files: %q, want only the plain one", got)
			}
			if got := metric(t, f.reg, "trackline_recordings_plain_files"); got != 1 {
				t.Errorf("plain_files = %v, want 1", got)
			}
			if got := labelled(t, f.reg, "trackline_recordings_migrated_total", "failed"); got != 1 {
				t.Errorf("migrated_total{failed} = %v, want 1", got)
			}
		})
	}
}

// TestRemovePlain: erasure reaches a plain recording a migration left, and zeroes every
// byte of it before removing it.
func TestRemovePlain(t *testing.T) {
	dir := t.TempDir()
	plainPath, _ := oldRecording(t, dir, "cust", "call", 1, 8000, true)
	partPath, _ := oldRecording(t, dir, "cust", "crashed", 1, 8000, false)
	// A second name for each file's data: it sees what shredding wrote.
	for _, p := range []string{plainPath, partPath} {
		if err := os.Link(p, p+"-seen"); err != nil {
			t.Fatal(err)
		}
	}
	if err := Remove(dir, "cust/2026/05/01/call.wav"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveCall(dir, "cust", "crashed", callStart); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plainPath, partPath} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s not removed: %v", filepath.Base(p), err)
		}
		b, _ := os.ReadFile(p + "-seen")
		if len(b) == 0 || !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("%s: its %d bytes were not all zeroed", filepath.Base(p), len(b))
		}
	}
}

// BenchmarkMigratePlain migrates one plain one-minute recording per iteration (encrypt,
// fsync, decrypt to verify, record update, zero and remove the plain file): MB/s of plain
// WAV.
func BenchmarkMigratePlain(b *testing.B) {
	f := newLegacyFixture(b)
	var plain []byte
	for i := range b.N {
		id := "call-" + strconv.Itoa(i)
		_, plain = oldRecording(b, f.r.Dir(), "cust", id, 60, SamplesPerChunk, true)
		f.putCall(b, "cust", id, plain)
	}
	b.SetBytes(int64(len(plain)))
	b.ResetTimer()
	st, err := f.r.MigratePlain(context.Background(), f.db)
	if err != nil || st.Encrypted != b.N {
		b.Fatalf("MigratePlain = %+v, %v", st, err)
	}
}
