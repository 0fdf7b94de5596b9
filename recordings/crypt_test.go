package recordings

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trackline/trackline/store/keyring"
)

// recordTone records seconds of the test signals (the last one n samples long) and returns
// the finished recording.
func recordTone(t *testing.T, r *Recorder, customer, call string, seconds uint32, n int) Info {
	t.Helper()
	rec, err := r.Open(customer, call, day)
	if err != nil {
		t.Fatal(err)
	}
	for i := range seconds {
		c := SamplesPerChunk
		if i == seconds-1 {
			c = n
		}
		if !rec.Submit(toneChunk(rec, i, c)) {
			t.Fatalf("chunk %d dropped", i)
		}
	}
	info, err := rec.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestFileFormat decrypts a recording by the layout documented in crypt.go, with nothing
// of the package but the key derivation, and checks that no audio is stored in the clear.
func TestFileFormat(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	info := recordTone(t, r, "cust", "call-1", 3, 4000)
	raw, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	plain := plainWAV(t, r.Keys(), info.Path)

	h := raw[:176]
	if string(h[:8]) != "TLREC\x00\x00\x01" || binary.BigEndian.Uint32(h[40:]) != 32000 ||
		string(h[45:45+int(h[44])]) != "cust" || string(h[110:110+int(h[109])]) != "call-1" {
		t.Fatalf("header % x", h)
	}
	key, err := r.Keys().Lookup("cust")
	if err != nil {
		t.Fatal(err)
	}
	fk, err := key.FileKey(h[8:40], "call-1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(fk)
	gcm, _ := cipher.NewGCM(block)
	sizes := []int{32016, 32016, 16016} // three chunks, the last holding 4000 frames
	if len(raw) != 176+32016*2+16016 {
		t.Fatalf("file is %d bytes, want %d", len(raw), 176+32016*2+16016)
	}
	var audio []byte
	off := 176
	for i, n := range sizes {
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint32(nonce[7:], uint32(i))
		if i == len(sizes)-1 {
			nonce[11] = 1
		}
		p, err := gcm.Open(nil, nonce, raw[off:off+n], h)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		audio = append(audio, p...)
		off += n
	}
	if !bytes.Equal(audio, plain[44:]) {
		t.Error("the chunks decrypted by hand differ from what Open reads")
	}
	// No run of 32 bytes of the audio is in the file.
	for i := 0; i+32 <= len(audio); i += 997 {
		if bytes.Contains(raw, audio[i:i+32]) {
			t.Fatalf("audio at %d is stored in the clear", i)
		}
	}
	// A second recording of the same audio has another salt, so other bytes.
	other := recordTone(t, r, "cust", "call-2", 3, 4000)
	raw2, _ := os.ReadFile(other.Path)
	if bytes.Equal(raw[8:40], raw2[8:40]) || bytes.Equal(raw[176:176+64], raw2[176:176+64]) {
		t.Error("two recordings share a salt or ciphertext")
	}
	if other.SHA256 != info.SHA256 {
		t.Error("the same audio gave two plain hashes")
	}
}

// TestTamper: every change to a file is found, at Open or at the Read of the chunk changed.
func TestTamper(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	info := recordTone(t, r, "cust", "call", 4, SamplesPerChunk)
	orig, _ := os.ReadFile(info.Path)
	chunk := func(i int) []byte { return orig[176+i*32016 : 176+(i+1)*32016] }
	tests := []struct {
		name     string
		change   func([]byte) []byte
		openFail bool
	}{
		{"bit flipped in chunk 1", func(b []byte) []byte { b[176+32016+100] ^= 1; return b }, false},
		{"tag of chunk 2 changed", func(b []byte) []byte { b[176+3*32016-1] ^= 0x80; return b }, false},
		{"chunks 1 and 2 swapped", func(b []byte) []byte {
			c1, c2 := bytes.Clone(chunk(1)), bytes.Clone(chunk(2))
			copy(b[176+32016:], c2)
			copy(b[176+2*32016:], c1)
			return b
		}, false},
		{"last chunk removed", func(b []byte) []byte { return b[:176+3*32016] }, true},
		{"last chunk cut short", func(b []byte) []byte { return b[:len(b)-5] }, true},
		{"chunk appended", func(b []byte) []byte { return append(b, chunk(0)...) }, true},
		{"salt changed", func(b []byte) []byte { b[9] ^= 1; return b }, true},
		{"call id changed", func(b []byte) []byte { b[110] = 'x'; return b }, true},
		{"header only", func(b []byte) []byte { return b[:176] }, true},
		{"not a recording", func(b []byte) []byte { return append([]byte("RIFF"), b[4:]...) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.wav.enc")
			if err := os.WriteFile(path, tt.change(bytes.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			rd, err := Open(r.Keys(), path)
			if tt.openFail {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open = %v; the damage is not in the last chunk", err)
			}
			defer rd.Close()
			if _, err := io.ReadAll(rd); !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadAll = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestReaderSeek: reads at any offset (Range requests) give the bytes of a whole read.
func TestReaderSeek(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	info := recordTone(t, r, "cust", "call", 3, 1234)
	whole := plainWAV(t, r.Keys(), info.Path)
	rd, err := Open(r.Keys(), info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if rd.Size() != int64(len(whole)) || rd.Size() != info.Size || rd.CustomerID() != "cust" || rd.CallID() != "call" ||
		rd.Duration() != info.Duration {
		t.Fatalf("Size %d CustomerID %q CallID %q Duration %s", rd.Size(), rd.CustomerID(), rd.CallID(), rd.Duration())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	offsets := []int64{0, 1, 43, 44, 45, 32043, 32044, 32045, 64044, int64(len(whole)) - 1}
	for range 40 {
		offsets = append(offsets, rng.Int64N(int64(len(whole))))
	}
	buf := make([]byte, 70000)
	for _, off := range offsets {
		n := 1 + rng.IntN(len(buf))
		if _, err := rd.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadFull(rd, buf[:n])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read %d at %d: %v", n, off, err)
		}
		if want := whole[off:min(off+int64(n), int64(len(whole)))]; !bytes.Equal(buf[:got], want) {
			t.Fatalf("read %d at %d: %d bytes differ from the whole read", n, off, got)
		}
	}
	if pos, _ := rd.Seek(-10, io.SeekEnd); pos != int64(len(whole))-10 {
		t.Errorf("Seek(-10, End) = %d", pos)
	}
	if _, err := rd.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek to -1: no error")
	}
	rd.Seek(0, io.SeekEnd)
	if n, err := rd.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, EOF", n, err)
	}
}

// TestDestroyedKey: a copy of a recording (a backup) cannot be read once the customer's key
// is destroyed, and a new key for the customer does not open it either.
func TestDestroyedKey(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	info := recordTone(t, r, "cust", "call", 2, SamplesPerChunk)
	backup := filepath.Join(t.TempDir(), "backup.wav.enc")
	b, _ := os.ReadFile(info.Path)
	os.WriteFile(backup, b, 0o600)
	plainWAV(t, r.Keys(), backup) // readable before

	if err := r.Keys().Destroy("cust"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(r.Keys(), backup); !errors.Is(err, keyring.ErrNoKey) {
		t.Errorf("Open of the backup after Destroy = %v, want ErrNoKey", err)
	}
	if _, err := r.Keys().Get("cust"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(r.Keys(), backup); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of the backup with a new key = %v, want ErrCorrupt", err)
	}
}

// crashed returns a recording of seconds whole chunks left as a .part, as a SIGKILL leaves
// it: the worker wrote the chunks, the file was never finished.
func crashed(t *testing.T, r *Recorder, call string, seconds uint32) *Recording {
	t.Helper()
	rec, err := r.Open("cust", call, day)
	if err != nil {
		t.Fatal(err)
	}
	for i := range seconds {
		rec.Submit(toneChunk(rec, i, SamplesPerChunk))
	}
	syncWorker(rec)
	rec.f.Close()
	r.release(rec)
	return rec
}

func TestRepairCases(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	// Finish sealed the last chunk, then the process died before the rename.
	inFinish := crashed(t, r, "in-finish", 4)
	f, _ := os.OpenFile(inFinish.part, os.O_RDWR, 0)
	if err := sealLast(f, inFinish.aead, inFinish.h, 3*chunkBytes+2000*frameSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Power loss: chunk 2 of 4 never reached the disk (zeros), chunk 3 did.
	lost := crashed(t, r, "lost-write", 4)
	f, _ = os.OpenFile(lost.part, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 500), encOffset(2)+1000)
	f.Close()
	// No whole chunk: the first write was torn.
	torn := crashed(t, r, "torn", 1)
	os.Truncate(torn.part, encHeaderSize+1000)

	infos, err := Repair(r.Dir(), r.Keys())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Duration{}
	for _, in := range infos {
		got[in.CallID] = in.Duration
		plainWAV(t, r.Keys(), in.Path)
		if in.SHA256 != plainHash(t, r.Keys(), in.Path) {
			t.Errorf("%s: SHA256 is not the plain WAV's", in.CallID)
		}
	}
	want := map[string]time.Duration{"in-finish": 3250 * time.Millisecond, "lost-write": 2 * time.Second, "torn": 0}
	for call, d := range want {
		if got[call] != d {
			t.Errorf("%s repaired to %s, want %s", call, got[call], d)
		}
	}
	if len(infos) != len(want) {
		t.Errorf("repaired %d, want %d: %+v", len(infos), len(want), infos)
	}
	w := readWAV(t, r.Keys(), filepath.Join(r.Dir(), "cust", "2026", "05", "01", "lost-write.wav.enc"))
	for n := range 2 * SamplesPerChunk {
		if w.L[n] != wantL(n) || w.R[n] != wantR(n) {
			t.Fatalf("lost-write frame %d = (%d, %d), want (%d, %d)", n, w.L[n], w.R[n], wantL(n), wantR(n))
		}
	}
}

func TestRepairRefuses(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	// The customer's key is gone: the file cannot be read, so it stays as it is.
	noKey := crashed(t, r, "no-key", 2)
	before, _ := os.ReadFile(noKey.part)
	if err := r.Keys().Destroy("cust"); err != nil {
		t.Fatal(err)
	}
	infos, err := Repair(r.Dir(), r.Keys())
	if !errors.Is(err, keyring.ErrNoKey) || len(infos) != 0 {
		t.Errorf("Repair without the key = %+v, %v; want ErrNoKey", infos, err)
	}
	if after, _ := os.ReadFile(noKey.part); !bytes.Equal(before, after) {
		t.Error("Repair changed a file it could not read")
	}
	os.Remove(noKey.part)

	// A file moved to another call's name.
	moved := crashed(t, r, "moved", 1)
	other := filepath.Join(filepath.Dir(moved.part), "elsewhere.wav.enc.part")
	os.Rename(moved.part, other)
	if infos, err := Repair(r.Dir(), r.Keys()); !errors.Is(err, ErrCorrupt) || len(infos) != 0 {
		t.Errorf("Repair of a moved file = %+v, %v; want ErrCorrupt", infos, err)
	}
}

func TestRemove(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	a := recordTone(t, r, "cust", "a", 1, SamplesPerChunk)
	b := recordTone(t, r, "cust", "b", 1, SamplesPerChunk)
	part := crashed(t, r, "a-part", 1) // a .part of another call stays
	// A stale .part beside a's finished file goes with it.
	os.WriteFile(a.Path+partSuffix, []byte("stale"), 0o640)
	if err := Remove(r.Dir(), a.Rel); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a.Path, a.Path + partSuffix} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Remove: %v", p, err)
		}
	}
	for _, p := range []string{b.Path, part.part} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v; Remove took another recording's file", p, err)
		}
	}
	if err := Remove(r.Dir(), a.Rel); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
	for _, bad := range []string{"../x.wav.enc", "/etc/passwd", "cust/2026/05/01/b.wav.part", "cust/2026/05/01/b.txt", ""} {
		if err := Remove(r.Dir(), bad); err == nil {
			t.Errorf("Remove(%q): no error", bad)
		}
	}

	// RemoveCall finds a call's file by its start date, also when it began the day before.
	ci := recordTone(t, r, "cust", "c", 1, SamplesPerChunk) // recorded on 2026-05-01 (UTC)
	if err := RemoveCall(r.Dir(), "cust", "c", day.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ci.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemoveCall left %s: %v", ci.Path, err)
	}
	if err := RemoveCall(r.Dir(), "cust", "../c", day); !errors.Is(err, ErrInvalidID) {
		t.Errorf("RemoveCall(../c) = %v, want ErrInvalidID", err)
	}

	if err := RemoveCustomer(r.Dir(), "cust"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "cust")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("customer tree after RemoveCustomer: %v", err)
	}
	if err := RemoveCustomer(r.Dir(), "cust"); err != nil {
		t.Errorf("second RemoveCustomer = %v", err)
	}
	if err := RemoveCustomer(r.Dir(), ".."); !errors.Is(err, ErrInvalidID) {
		t.Errorf("RemoveCustomer(..) = %v, want ErrInvalidID", err)
	}
}

// BenchmarkReadPlain decrypts a one-minute recording whole, as the API streams it and as
// Finish hashes it: MB/s of plain WAV.
func BenchmarkReadPlain(b *testing.B) {
	r, _ := newTestRecorder(b, Options{Dir: b.TempDir()})
	rec, err := r.Open("bench", "call", day)
	if err != nil {
		b.Fatal(err)
	}
	for i := range uint32(60) {
		for len(rec.w.q) == cap(rec.w.q) {
			time.Sleep(time.Millisecond)
		}
		rec.Submit(rec.NewChunk(i))
	}
	info, err := rec.Finish()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size)
	b.ReportAllocs()
	for b.Loop() {
		rd, err := Open(r.Keys(), info.Path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rd); err != nil {
			b.Fatal(err)
		}
		rd.Close()
	}
}
