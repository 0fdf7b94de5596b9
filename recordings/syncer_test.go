package recordings

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Many recordings ending at once are finished in batches: each is a complete, decryptable
// file whose hash and size are those of its plain WAV, and no .part is left.
func TestFinishConcurrentBatches(t *testing.T) {
	r, reg := newTestRecorder(t, Options{Workers: 3})
	const n = 60
	recs := make([]*Recording, n)
	for i := range recs {
		rec, err := r.Open("cust", fmt.Sprintf("call-%02d", i), day)
		if err != nil {
			t.Fatal(err)
		}
		for k := range uint32(i % 3) {
			rec.Submit(toneChunk(rec, k, SamplesPerChunk))
		}
		if i%3 != 0 {
			rec.Submit(toneChunk(rec, uint32(i%3), 1000+i))
		}
		recs[i] = rec
	}
	infos := make([]Info, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Go(func() { infos[i], errs[i] = rec.Finish() })
	}
	wg.Wait()
	for i, info := range infos {
		if errs[i] != nil {
			t.Fatalf("Finish %d: %v", i, errs[i])
		}
		want := time.Duration(0)
		if i%3 != 0 {
			want = time.Duration(i%3)*time.Second + time.Duration(1000+i)*time.Second/SamplesPerChunk
		}
		if info.Duration != want {
			t.Errorf("recording %d: Duration %s, want %s", i, info.Duration, want)
		}
		plain := plainWAV(t, r.Keys(), info.Path)
		if int64(len(plain)) != info.Size || plainHash(t, r.Keys(), info.Path) != info.SHA256 {
			t.Errorf("recording %d: Size %d and SHA256 are not those of the plain WAV (%d bytes)", i, info.Size, len(plain))
		}
	}
	parts, _ := filepath.Glob(filepath.Join(r.Dir(), "cust", "*", "*", "*", "*.part"))
	if len(parts) != 0 {
		t.Errorf(".part files left: %v", parts)
	}
	if got := metric(t, reg, "trackline_recordings_written_total"); got != n {
		t.Errorf("written_total = %v, want %d", got, n)
	}
}

// A day directory removed after it was first used (an erasure) is made again.
func TestOpenAfterDirectoryRemoved(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	first, err := r.Open("cust", "first", day)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(r.Dir(), "cust")); err != nil {
		t.Fatal(err)
	}
	second, err := r.Open("cust", "second", day)
	if err != nil {
		t.Fatal(err)
	}
	second.Submit(toneChunk(second, 0, SamplesPerChunk))
	info, err := second.Finish()
	if err != nil {
		t.Fatalf("Finish after the directory went: %v", err)
	}
	if w := readWAV(t, r.Keys(), info.Path); len(w.L) != SamplesPerChunk {
		t.Errorf("%d samples, want %d", len(w.L), SamplesPerChunk)
	}
}

// A file that cannot be made (its directory is a file) drops the chunks, and Finish says why.
func TestOpenFileFails(t *testing.T) {
	r, reg := newTestRecorder(t, Options{})
	if err := os.WriteFile(filepath.Join(r.Dir(), "cust"), []byte("not a directory"), 0o640); err != nil {
		t.Fatal(err)
	}
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	rec.Submit(toneChunk(rec, 0, SamplesPerChunk))
	if _, err := rec.Finish(); err == nil || errors.Is(err, ErrDone) {
		t.Fatalf("Finish of a recording whose file could not be made: %v, want the cause", err)
	}
	if got := metric(t, reg, "trackline_recording_dropped_chunks_total"); got != 1 {
		t.Errorf("dropped_chunks_total = %v, want 1", got)
	}
	if got := metric(t, reg, "trackline_recordings_active"); got != 0 {
		t.Errorf("active = %v, want 0", got)
	}
	if _, err := os.Stat(rec.part); err == nil {
		t.Error("a .part was made")
	}
}

// FinishAsync hands each recording's outcome to its function once, from the syncer, the
// same as Finish's: recordings whose ends were queued while the syncer was held up are all
// finished (complete, decryptable, hashed), and the caller never waited for an fsync.
func TestFinishAsync(t *testing.T) {
	r, reg := newTestRecorder(t, Options{Workers: 2})
	const n = 20
	recs := make([]*Recording, n)
	for i := range recs {
		rec, err := r.Open("cust", fmt.Sprintf("async-%02d", i), day)
		if err != nil {
			t.Fatal(err)
		}
		rec.Submit(toneChunk(rec, 0, SamplesPerChunk))
		rec.Submit(toneChunk(rec, 1, 100+i))
		recs[i] = rec
	}
	// Hold both writers: the ends queue behind them, so FinishAsync cannot have waited.
	resume := []func(){pauseWorker(recs[0])}
	if recs[1].w != recs[0].w {
		resume = append(resume, pauseWorker(recs[1]))
	}
	type outcome struct {
		i    int
		info Info
		err  error
	}
	got := make(chan outcome, 2*n)
	for i, rec := range recs {
		rec.FinishAsync(func(info Info, err error) { got <- outcome{i, info, err} })
	}
	select {
	case o := <-got:
		t.Fatalf("recording %d finished while its writer was held: %v", o.i, o.err)
	default:
	}
	for _, f := range resume {
		f()
	}
	seen := make(map[int]bool)
	for range n {
		var o outcome
		select {
		case o = <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d recordings finished", len(seen), n)
		}
		if seen[o.i] {
			t.Fatalf("recording %d: its function was called twice", o.i)
		}
		seen[o.i] = true
		if o.err != nil {
			t.Fatalf("recording %d: %v", o.i, o.err)
		}
		if want := time.Second + time.Duration(100+o.i)*time.Second/SamplesPerChunk; o.info.Duration != want {
			t.Errorf("recording %d: Duration %s, want %s", o.i, o.info.Duration, want)
		}
		if plainHash(t, r.Keys(), o.info.Path) != o.info.SHA256 {
			t.Errorf("recording %d: SHA256 is not that of the plain WAV", o.i)
		}
	}
	if got := metric(t, reg, "trackline_recordings_written_total"); got != n {
		t.Errorf("written_total = %v, want %d", got, n)
	}
	// A second end gives ErrDone, at once.
	var err error
	recs[0].FinishAsync(func(_ Info, e error) { err = e })
	if !errors.Is(err, ErrDone) {
		t.Errorf("FinishAsync after FinishAsync: %v, want ErrDone", err)
	}
	select {
	case o := <-got:
		t.Errorf("recording %d: an outcome after all were given", o.i)
	default:
	}
}

// FinishAsync while the Recorder closes: every recording's function is called once, either
// with the finished file (its end was queued before the writers were told to quit) or,
// when its end came after, finished on the caller's goroutine once the writer has exited;
// none is left without an outcome or hangs.
func TestFinishAsyncDuringClose(t *testing.T) {
	r, _ := newTestRecorder(t, Options{Workers: 2})
	const n = 40
	recs := make([]*Recording, n)
	for i := range recs {
		rec, err := r.Open("cust", fmt.Sprintf("closing-%02d", i), day)
		if err != nil {
			t.Fatal(err)
		}
		rec.Submit(toneChunk(rec, 0, 800))
		recs[i] = rec
	}
	var calls sync.Map
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Go(func() {
			rec.FinishAsync(func(info Info, err error) {
				if _, dup := calls.LoadOrStore(i, err); dup {
					t.Errorf("recording %d: its function was called twice", i)
				}
			})
		})
		if i == n/2 {
			wg.Go(func() { r.Close() })
		}
	}
	wg.Wait()
	r.Close() // returns once the syncer has finished what was handed to it
	for i := range n {
		v, ok := calls.Load(i)
		if !ok {
			t.Fatalf("recording %d: no outcome", i)
		}
		if err, _ := v.(error); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("recording %d: %v", i, err)
		}
	}
}

// A finished recording holds no descriptor while it waits for its fsync: with the syncer's
// durable stage held (the first recording's function blocks in it), the recordings that end
// after it are sealed and their files closed, and once the stage goes on they are finished,
// complete and decryptable. Before, each kept its file open until its batch was synced.
func TestFinishedFilesClosedBeforeSync(t *testing.T) {
	r, _ := newTestRecorder(t, Options{Workers: 2})
	const n = 30
	recs := make([]*Recording, n)
	for i := range recs {
		rec, err := r.Open("cust", fmt.Sprintf("held-%02d", i), day)
		if err != nil {
			t.Fatal(err)
		}
		rec.Submit(toneChunk(rec, 0, SamplesPerChunk))
		rec.Submit(toneChunk(rec, 1, 200+i))
		recs[i] = rec
	}
	entered, release := make(chan struct{}), make(chan struct{})
	errs := make(chan error, n)
	recs[0].FinishAsync(func(_ Info, err error) {
		close(entered)
		<-release // holds the syncer's durable stage
		errs <- err
	})
	<-entered
	sums := make([]string, n)
	paths := make([]string, n)
	for i, rec := range recs[1:] {
		rec.FinishAsync(func(info Info, err error) {
			sums[i+1], paths[i+1] = info.SHA256, info.Path
			errs <- err
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		open := openFilesUnder(t, r.Dir())
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("%d recording files still open while their fsync waits", open)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("recordings not finished after the syncer went on")
		}
	}
	for i := 1; i < n; i++ {
		if plainHash(t, r.Keys(), paths[i]) != sums[i] {
			t.Errorf("recording %d: SHA256 is not that of the plain WAV", i)
		}
	}
}

// openFilesUnder counts the process's descriptors open on files under dir.
func openFilesUnder(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// waitDescriptor tries again while descriptors run out, and only then.
func TestWaitDescriptor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fails []error // what open returns on its first calls; then nil
		calls int
		err   error
	}{
		{"at once", nil, 1, nil},
		{"EMFILE twice", []error{unix.EMFILE, &os.PathError{Op: "open", Path: "x", Err: unix.EMFILE}}, 3, nil},
		{"ENFILE", []error{unix.ENFILE}, 2, nil},
		{"another error", []error{unix.EACCES}, 1, unix.EACCES},
		{"never a descriptor", slicesRepeat(unix.EMFILE, 100), 12, unix.EMFILE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			start := time.Now()
			err := waitDescriptor(func() error {
				calls++
				if calls <= len(tc.fails) {
					return tc.fails[calls-1]
				}
				return nil
			})
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || calls != tc.calls {
				t.Errorf("err %v after %d calls, want %v after %d", err, calls, tc.err, tc.calls)
			}
			if tc.name == "never a descriptor" && time.Since(start) < 2*time.Second {
				t.Errorf("gave up after %s, want about 2 s", time.Since(start))
			}
		})
	}
}

func slicesRepeat(e error, n int) []error {
	s := make([]error, n)
	for i := range s {
		s[i] = e
	}
	return s
}

// TestLastChunkSealedByWorker: chunks still queued when the call's owner finishes the
// recording (FinishAsync right after the packet path's last Submit, as calls end) are
// written by the worker with the last one sealed as the last and cut to its samples, so the
// syncer does not read it back to seal it again; the file is the same WAV as by the other
// path (TestRecordingStereoWAV), and a chunk that comes after it is dropped.
func TestLastChunkSealedByWorker(t *testing.T) {
	r, reg := newTestRecorder(t, Options{Workers: 1})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	syncWorker(rec)
	resume := pauseWorker(rec) // the chunks and the end wait in the worker's queue
	rec.Submit(toneChunk(rec, 0, SamplesPerChunk))
	rec.Submit(toneChunk(rec, 1, 100))
	type result struct {
		info Info
		err  error
	}
	got := make(chan result, 1)
	rec.FinishAsync(func(info Info, err error) { got <- result{info, err} })
	resume()
	res := <-got
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !rec.sealedLast {
		t.Error("the last chunk was not sealed as the last by the worker")
	}
	const frames = SamplesPerChunk + 100
	if res.info.Duration != time.Second+100*time.Second/SamplesPerChunk || res.info.Size != 44+frames*4 {
		t.Errorf("Duration %v, Size %d; want 1.0125s and %d", res.info.Duration, res.info.Size, 44+frames*4)
	}
	if h := plainHash(t, r.Keys(), res.info.Path); h != res.info.SHA256 {
		t.Errorf("SHA256 = %s, the file hashes to %s", res.info.SHA256, h)
	}
	w := readWAV(t, r.Keys(), res.info.Path)
	if len(w.L) != frames {
		t.Fatalf("%d frames, want %d", len(w.L), frames)
	}
	for n := range frames {
		if w.L[n] != wantL(n) || w.R[n] != wantR(n) {
			t.Fatalf("frame %d = (%d, %d), want (%d, %d)", n, w.L[n], w.R[n], wantL(n), wantR(n))
		}
	}
	st, err := os.Stat(res.info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(encHeaderSize + sealedChunk + 100*4 + tagSize); st.Size() != want {
		t.Errorf("file of %d bytes, want %d (nothing after the last chunk)", st.Size(), want)
	}
	if got, want := metric(t, reg, "trackline_recording_bytes_total"), float64(encHeaderSize+sealedChunk+100*4+tagSize); got != want {
		t.Errorf("bytes written %v, want %v: the last chunk written once, cut", got, want)
	}

	// A chunk that comes after the last (the owner broke the rule that the packet path
	// stops first) is dropped rather than written after it.
	rec2, err := r.Open("cust", "call2", day)
	if err != nil {
		t.Fatal(err)
	}
	syncWorker(rec2)
	resume = pauseWorker(rec2)
	rec2.Submit(toneChunk(rec2, 0, 100))
	rec2.state.Store(stateDone) // as Finish does
	resume()
	syncWorker(rec2) // chunk 0 written as the last
	c := toneChunk(rec2, 1, 100)
	rec2.queued.Add(1) // a Submit that passed its check before the state changed
	rec2.w.q <- item{op: opChunk, rec: rec2, c: c}
	syncWorker(rec2)
	if !rec2.sealedLast || rec2.next != 1 || rec2.dropped.Load() != 1 {
		t.Errorf("sealedLast %v, next %d, dropped %d; want true, 1, 1", rec2.sealedLast, rec2.next, rec2.dropped.Load())
	}
	rec2.state.Store(stateOpen)
	rec2.Abort()
}

// TestFinishDoesNotReplace: a finished recording never replaces a file of its final name
// made since its Open looked (another recorder on the same tree): its Finish fails with
// ErrExists, the file stays as it was and the .part stays for Repair.
func TestFinishDoesNotReplace(t *testing.T) {
	r, _ := newTestRecorder(t, Options{})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	syncWorker(rec) // the .part and its directory are made
	final := strings.TrimSuffix(rec.part, partSuffix)
	if err := os.WriteFile(final, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec.Submit(toneChunk(rec, 0, 100))
	if _, err := rec.Finish(); !errors.Is(err, ErrExists) {
		t.Errorf("Finish = %v, want ErrExists", err)
	}
	if b, err := os.ReadFile(final); err != nil || string(b) != "someone else's" {
		t.Errorf("the other file now holds %q (%v)", b, err)
	}
	if _, err := os.Stat(rec.part); err != nil {
		t.Errorf("the .part is gone: %v", err)
	}
}
