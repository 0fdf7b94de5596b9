package recordings

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/internal/weedtest"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// The object store tests run against a real SeaweedFS server (internal/weedtest), one for
// the package's tests (started by the first that needs it, killed by TestMain), each test
// under an object prefix of its own.

var shared struct {
	once sync.Once
	dir  string
	s    *weedtest.Server
	err  error
}

// sharedWeed is the package's weed server.
func sharedWeed(t *testing.T) *weedtest.Server {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "recordings-weed-")
		if shared.err == nil {
			shared.s, shared.err = weedtest.Run(shared.dir)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		shared.s.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// objectEnv is a Recorder whose finished recordings go to a weed server, with a real store
// for the recordings' records.
type objectEnv struct {
	t      *testing.T
	weed   *weedtest.Server
	prefix string // this test's objects: <test name>/
	keys   *keyring.Keyring
	dir    string
	db     *store.DB
	rec    *Recorder
	objs   *Objects
	reg    *prometheus.Registry
}

func newObjectEnv(t *testing.T, weed *weedtest.Server, partSize int64) *objectEnv {
	t.Helper()
	e := &objectEnv{t: t, weed: weed, prefix: t.Name() + "/", keys: testKeys(t), dir: t.TempDir()}
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	state := t.TempDir()
	e.objs, e.reg = e.newObjects(state, weed.Endpoint, partSize)
	// Not newTestRecorder: its goroutine count at Close would include the HTTP client's
	// idle connections. Run's own exit is waited for (run).
	rec, err := New(Options{Dir: e.dir, Keys: e.keys}, WithFinished(e.objs.Enqueue))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	e.rec = rec
	return e
}

// newObjects makes an Objects on the env's tree, with short timings.
func (e *objectEnv) newObjects(state, endpoint string, partSize int64) (*Objects, *prometheus.Registry) {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	o, err := NewObjects(ObjectConfig{Endpoint: endpoint, Bucket: e.weed.Bucket, AccessKey: e.weed.AccessKey,
		SecretKey: e.weed.SecretKey, Prefix: e.prefix, PartSize: partSize, StateDir: state}, e.dir, e.keys, e.db, WithRegisterer(reg))
	if err != nil {
		e.t.Fatal(err)
	}
	o.firstDelay, o.backoff = 0, 200*time.Millisecond
	return o, reg
}

// run runs o until the test ends.
func (e *objectEnv) run(o *Objects) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); o.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

// record makes a finished recording of secs seconds of the test tones and, with withRecord,
// its record in the store, as the switch does after Finish.
func (e *objectEnv) record(callID string, secs int, withRecord bool) (Info, store.Recording) {
	e.t.Helper()
	r, err := e.rec.Open("cust1", callID, day)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range secs {
		syncWorker(r) // never drop a chunk for a full queue
		r.Submit(toneChunk(r, uint32(i), SamplesPerChunk))
	}
	info, err := r.Finish()
	if err != nil {
		e.t.Fatal(err)
	}
	sr := store.Recording{ID: callID, CustomerID: "cust1", CallID: callID, Path: info.Rel, Duration: info.Duration,
		Size: info.Size, SHA256: info.SHA256, Created: time.Now().UTC()}
	if withRecord {
		if err := e.db.Write(context.Background(), func(tx *store.Tx) error { return tx.PutRecording(&sr) }); err != nil {
			e.t.Fatal(err)
		}
	}
	return info, sr
}

// waitGone waits until the local file at path is gone.
func (e *objectEnv) waitGone(path string) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s still on disk after 60 s (pending %d)", filepath.Base(path), e.objs.Pending())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIdle waits until o has no upload queued (its metrics are updated with the queue).
func (e *objectEnv) waitIdle(o *Objects) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for o.Pending() > 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("uploads pending after 60 s: %d", o.Pending())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stat is the object of rel, or an error wrapping its absence.
func (e *objectEnv) stat(rel string) (minio.ObjectInfo, error) {
	return e.weed.Client(e.t).StatObject(context.Background(), e.weed.Bucket, e.prefix+rel, minio.StatObjectOptions{})
}

func TestObjectUploadServeDelete(t *testing.T) {
	weed := sharedWeed(t)
	e := newObjectEnv(t, weed, 5<<20)
	e.run(e.objs)
	files := Files{Dir: e.dir, Keys: e.keys, Objects: e.objs}

	// 200 s: 6.4 MB encrypted, two 5 MiB parts (a multipart upload, confirmed by its ETag).
	for _, tc := range []struct {
		name string
		secs int
	}{{"single part", 7}, {"multipart", 200}} {
		t.Run(tc.name, func(t *testing.T) {
			info, sr := e.record("call-"+strings.ReplaceAll(tc.name, " ", "-"), tc.secs, true)
			plain := plainWAV(t, e.keys, info.Path)
			enc, err := os.ReadFile(info.Path)
			if err != nil {
				t.Fatal(err)
			}
			e.waitGone(info.Path)
			oi, err := e.stat(info.Rel)
			if err != nil {
				t.Fatalf("no object after the local copy went: %v", err)
			}
			if oi.Size != int64(len(enc)) {
				t.Fatalf("object %d bytes, file was %d", oi.Size, len(enc))
			}
			if multi := strings.Contains(oi.ETag, "-"); multi != (tc.secs == 200) {
				t.Errorf("etag %s: multipart %v", oi.ETag, multi)
			}
			// The object is the file, byte for byte, and reads back as the same WAV.
			obj, err := weed.Client(t).GetObject(context.Background(), weed.Bucket, e.prefix+info.Rel, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(obj)
			obj.Close()
			if err != nil || !bytes.Equal(got, enc) {
				t.Fatalf("object differs from the file (%d bytes, %v)", len(got), err)
			}
			rd, err := files.Open(context.Background(), sr)
			if err != nil {
				t.Fatal(err)
			}
			all, err := io.ReadAll(rd)
			if err != nil || !bytes.Equal(all, plain) {
				t.Fatalf("object's WAV differs from the file's (%d of %d bytes, %v)", len(all), len(plain), err)
			}
			// A range across a chunk boundary, read after a seek (what a Range request does).
			off := int64(headerSize + chunkBytes - 100)
			if _, err := rd.Seek(off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			part := make([]byte, 300)
			if _, err := io.ReadFull(rd, part); err != nil || !bytes.Equal(part, plain[off:off+300]) {
				t.Fatalf("range at %d: %v", off, err)
			}
			rd.Close()

			// An unfinished multipart upload of the same object (a crash mid-upload) holds
			// ciphertext too: the erasure aborts it.
			core := minio.Core{Client: weed.Client(t)}
			uploadID, err := core.NewMultipartUpload(context.Background(), weed.Bucket, e.prefix+info.Rel, minio.PutObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := core.PutObjectPart(context.Background(), weed.Bucket, e.prefix+info.Rel, uploadID, 1,
				bytes.NewReader(enc), int64(len(enc)), minio.PutObjectPartOptions{}); err != nil {
				t.Fatal(err)
			}
			if n := incompleteUploads(t, weed, e.prefix); n != 1 {
				t.Fatalf("%d unfinished uploads, want 1", n)
			}

			// Erasure: the object goes, and the recording is gone for readers.
			if err := files.Remove(context.Background(), sr.Path); err != nil {
				t.Fatal(err)
			}
			if _, err := e.stat(info.Rel); minio.ToErrorResponse(err).Code != minio.NoSuchKey {
				t.Fatalf("object after erasure: %v", err)
			}
			if _, err := files.Open(context.Background(), sr); !errors.Is(err, ErrGone) {
				t.Fatalf("open after erasure: %v, want ErrGone", err)
			}
			if n := incompleteUploads(t, weed, e.prefix); n != 0 {
				t.Errorf("%d unfinished uploads after erasure", n)
			}
		})
	}
	e.waitIdle(e.objs)
	if got := metric(t, e.reg, "trackline_recording_uploads_pending"); got != 0 {
		t.Errorf("pending %v", got)
	}
	if got := metric(t, e.reg, "trackline_recording_upload_bytes_total"); got < 6.4e6 {
		t.Errorf("upload bytes %v", got)
	}
}

func TestObjectUploadsSurviveRestart(t *testing.T) {
	weed := sharedWeed(t)
	e := newObjectEnv(t, weed, 0)
	// The first Objects queues the recordings but never runs: the process "dies".
	var infos []Info
	for _, id := range []string{"r1", "r2", "r3"} {
		info, _ := e.record(id, 3, true)
		infos = append(infos, info)
	}
	if e.objs.Pending() != 3 {
		t.Fatalf("pending %d, want 3", e.objs.Pending())
	}
	// The next run finds them on disk.
	next, reg := e.newObjects(t.TempDir(), weed.Endpoint, 0)
	e.objs = next
	e.run(next)
	for _, info := range infos {
		e.waitGone(info.Path)
		if _, err := e.stat(info.Rel); err != nil {
			t.Errorf("%s: %v", info.CallID, err)
		}
	}
	e.waitIdle(next)
	if got := counterWith(t, reg, "trackline_recording_uploads_total", "uploaded"); got != 3 {
		t.Errorf("uploads_total{uploaded} %v, want 3", got)
	}

	// Retention's purge (the sweeper's Exporter.RemoveCustomer) deletes the objects too.
	if err := NewExporter(e.db, e.dir, e.keys, WithExportObjects(next)).RemoveCustomer("cust1"); err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if _, err := e.stat(info.Rel); minio.ToErrorResponse(err).Code != minio.NoSuchKey {
			t.Errorf("object %s after the customer's purge: %v", info.CallID, err)
		}
	}
}

func TestObjectOrphanNotUploaded(t *testing.T) {
	weed := sharedWeed(t)
	e := newObjectEnv(t, weed, 0)
	e.run(e.objs)
	// No record yet: the file waits (the switch writes the record after Finish).
	info, sr := e.record("norecord", 2, false)
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(info.Path); err != nil {
		t.Fatalf("file without a record yet: %v", err)
	}
	if _, err := e.stat(info.Rel); err == nil {
		t.Fatal("uploaded before its record exists")
	}
	// Its record comes: uploaded.
	if err := e.db.Write(context.Background(), func(tx *store.Tx) error { return tx.PutRecording(&sr) }); err != nil {
		t.Fatal(err)
	}
	e.waitGone(info.Path)
	if _, err := e.stat(info.Rel); err != nil {
		t.Fatal(err)
	}

	// A file whose record never comes (erased on another node) is shredded once old enough,
	// never uploaded.
	e.objs.mu.Lock()
	e.objs.orphan = time.Second
	e.objs.mu.Unlock()
	info2, _ := e.record("erased-elsewhere", 2, false)
	e.waitGone(info2.Path)
	if _, err := e.stat(info2.Rel); minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		t.Fatalf("orphan uploaded: %v", err)
	}
	e.waitIdle(e.objs)
	if got := counterWith(t, e.reg, "trackline_recording_uploads_total", "uploaded"); got != 1 {
		t.Errorf("uploaded %v, want 1", got)
	}
	if got := counterWith(t, e.reg, "trackline_recording_uploads_total", "orphaned"); got != 1 {
		t.Errorf("orphaned %v, want 1", got)
	}
}

func TestObjectDeleteRetried(t *testing.T) {
	weed := sharedWeed(t)
	e := newObjectEnv(t, weed, 0)
	e.run(e.objs)
	var infos []Info
	for _, id := range []string{"d1", "d2"} {
		info, _ := e.record(id, 2, true)
		e.waitGone(info.Path)
		infos = append(infos, info)
	}
	// An object store that cannot be reached: the customer's deletion fails, is kept on
	// disk, and a later run (another process, same state directory) completes it.
	state := t.TempDir()
	down, _ := e.newObjects(state, "127.0.0.1:1", 0)
	if err := down.Check(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Check of an unreachable store: %v", err)
	}
	if err := e.objs.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	other, _ := NewObjects(ObjectConfig{Endpoint: weed.Endpoint, Bucket: "no-such-bucket", AccessKey: weed.AccessKey,
		SecretKey: weed.SecretKey, StateDir: t.TempDir()}, e.dir, e.keys, nil)
	if err := other.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Check of a missing bucket: %v", err)
	}
	files := Files{Dir: e.dir, Keys: e.keys, Objects: down}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := files.RemoveCustomer(ctx, "cust1"); err == nil {
		t.Fatal("deletion against an unreachable store succeeded")
	}
	// Reading from it: ErrUnavailable (the API answers 503), not ErrGone.
	sr := store.Recording{ID: infos[0].CallID, CustomerID: "cust1", CallID: infos[0].CallID, Path: infos[0].Rel}
	if _, err := files.Open(ctx, sr); !errors.Is(err, ErrUnavailable) {
		t.Errorf("open from an unreachable store: %v, want ErrUnavailable", err)
	}
	if down.PendingDeletes() != 1 {
		t.Fatalf("pending deletes %d, want 1", down.PendingDeletes())
	}
	for _, info := range infos {
		if _, err := e.stat(info.Rel); err != nil {
			t.Fatalf("object %s: %v", info.CallID, err)
		}
	}
	up, reg := e.newObjects(state, weed.Endpoint, 0)
	if up.PendingDeletes() != 1 {
		t.Fatalf("the marker did not survive: %d", up.PendingDeletes())
	}
	e.run(up)
	deadline := time.Now().Add(30 * time.Second)
	for up.PendingDeletes() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, info := range infos {
		if _, err := e.stat(info.Rel); minio.ToErrorResponse(err).Code != minio.NoSuchKey {
			t.Errorf("object %s after the retried deletion: %v", info.CallID, err)
		}
	}
	if got := metric(t, reg, "trackline_recording_object_deletes_pending"); got != 0 {
		t.Errorf("deletes pending %v", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(state, "deletes")); len(entries) != 0 {
		t.Errorf("markers left: %v", entries)
	}
}

// incompleteUploads counts the unfinished multipart uploads under prefix.
func incompleteUploads(t *testing.T, weed *weedtest.Server, prefix string) int {
	t.Helper()
	n := 0
	for up := range weed.Client(t).ListIncompleteUploads(context.Background(), weed.Bucket, prefix, true) {
		if up.Err != nil {
			t.Fatal(up.Err)
		}
		n++
	}
	return n
}

// counterWith is the value of the counter name whose one label has value.
func counterWith(t *testing.T, reg *prometheus.Registry, name, value string) float64 {
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
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not registered", name, value)
	return 0
}

// BenchmarkObjectUpload measures uploads of 60-second recordings (1.9 MB encrypted each) to a
// SeaweedFS on loopback: confirmation and local removal included. b.N recordings are made
// first, then uploaded by Run, 1, 4 (the default) or 16 at a time; MB/s is of the encrypted
// files.
func BenchmarkObjectUpload(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("uploads=%d", n), func(b *testing.B) { benchmarkUpload(b, n) })
	}
}

func benchmarkUpload(b *testing.B, uploads int) {
	weed := weedtest.Start(b)
	keys := testKeys(b)
	dir := b.TempDir()
	o, err := NewObjects(ObjectConfig{Endpoint: weed.Endpoint, Bucket: weed.Bucket, AccessKey: weed.AccessKey,
		SecretKey: weed.SecretKey, StateDir: b.TempDir(), Uploads: uploads}, dir, keys, nil)
	if err != nil {
		b.Fatal(err)
	}
	o.firstDelay = 0
	rec, err := New(Options{Dir: dir, Keys: keys}, WithFinished(o.Enqueue))
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	var bytes int64
	for i := range b.N {
		r, err := rec.Open("cust1", fmt.Sprintf("bench-%d", i), day)
		if err != nil {
			b.Fatal(err)
		}
		for s := range 60 {
			syncWorker(r)
			r.Submit(toneChunk(r, uint32(s), SamplesPerChunk))
		}
		info, err := r.Finish()
		if err != nil {
			b.Fatal(err)
		}
		st, _ := os.Stat(info.Path)
		bytes += st.Size()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	go func() { o.Run(ctx); close(done) }()
	for o.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "recordings/s")
}
