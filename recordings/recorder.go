package recordings

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/internal/fsutil"
	"github.com/trackline/trackline/store/keyring"
)

// Defaults for Options.
const (
	DefaultWorkers     = 2
	DefaultQueueLen    = 256 // chunks per worker: at most 4 MB (16 KB a chunk) queued per worker
	DefaultMaxDuration = 12 * time.Hour
)

// maxChunks is the most one-second chunks a WAV file can hold (its sizes are 32-bit): ~37 h.
const maxChunks = maxData / chunkBytes

// Options configure a Recorder.
type Options struct {
	// Dir is the root of the recordings tree. It is created if missing. Required.
	Dir string
	// Keys holds the customers' keys; every recording is encrypted with its customer's.
	// Required.
	Keys *keyring.Keyring
	// Workers is the number of writer goroutines (default 2). Each owns a queue; a
	// recording always goes to the same worker so its chunks stay in order.
	Workers int
	// QueueLen is the number of chunks each worker's queue holds (default 256). When a
	// queue is full, Submit drops the chunk instead of waiting.
	QueueLen int
	// MaxDuration bounds one recording (default 12 h, at most ~37 h, the WAV size limit).
	// Chunks beyond it are dropped, so a bogus RTP timestamp jump cannot fill the disk.
	MaxDuration time.Duration
}

// Option configures New's seams.
type Option func(*seams)

type seams struct {
	reg      prometheus.Registerer
	log      *slog.Logger
	finished func(rel string)
}

// WithRegisterer registers the package's metrics on r; without it (or with nil) they are
// kept but not registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *seams) { s.reg = r } }

// WithFinished has fn called with the path (Info.Rel) of each recording once it is finished
// and durable, from the goroutine that finished it: fn must not block (Objects.Enqueue).
func WithFinished(fn func(rel string)) Option { return func(s *seams) { s.finished = fn } }

// WithLogger sets the logger of events that are not returned as errors; without it (or
// with nil) they are discarded.
func WithLogger(l *slog.Logger) Option { return func(s *seams) { s.log = l } }

// Recorder is the pool of writer goroutines and the recordings tree they write to.
// Its methods are safe for concurrent use.
type Recorder struct {
	dir       string
	keys      *keyring.Keyring
	log       *slog.Logger
	finished  func(rel string) // WithFinished; nil for none
	m         *metrics
	maxChunks uint32
	workers   []*worker
	rr        atomic.Uint32 // round-robin worker choice
	chunks    chunkPool
	silence   []byte // chunkBytes of PCM16 silence (zeros); read only

	quit      chan struct{} // closed by Close: workers drain their queue and exit
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	// ending orders FinishAsync's end markers before Close tells the writers to quit: read
	// locked while one is queued, locked by Close while it sets closed.
	ending sync.RWMutex

	mu    sync.Mutex
	open  map[*Recording]struct{} // recordings not yet finished, aborted or orphaned by Close
	parts map[string]struct{}     // their .part paths: a second Open of one call is refused

	// syncq takes the recordings the workers have ended to the syncer, which finishes them in
	// batches (syncer.go); syncDone is closed when the syncer has returned.
	syncq    chan *Recording
	syncDone chan struct{}

	dirMu sync.Mutex
	dirs  map[string]struct{} // day directories known to exist (mkdirSynced made or saw them)
}

// New creates the directory and starts the writer goroutines; they exit in Close.
func New(o Options, opts ...Option) (*Recorder, error) {
	var sm seams
	for _, opt := range opts {
		opt(&sm)
	}
	if o.Dir == "" {
		return nil, errors.New("new recorder: no directory")
	}
	if o.Keys == nil {
		return nil, errors.New("new recorder: no keyring")
	}
	if o.Workers < 0 || o.QueueLen < 0 || o.MaxDuration < 0 {
		return nil, fmt.Errorf("new recorder: negative workers (%d), queue length (%d) or max duration (%s)",
			o.Workers, o.QueueLen, o.MaxDuration)
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.QueueLen == 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.MaxDuration == 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	if sm.log == nil {
		sm.log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("new recorder: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("new recorder: %w", err)
	}
	r := &Recorder{
		dir:       dir,
		keys:      o.Keys,
		log:       sm.log,
		finished:  sm.finished,
		m:         newMetrics(),
		maxChunks: uint32(min(int64(o.MaxDuration/time.Second), maxChunks)),
		silence:   make([]byte, chunkBytes),
		quit:      make(chan struct{}),
		open:      make(map[*Recording]struct{}),
		parts:     make(map[string]struct{}),
		syncq:     make(chan *Recording, syncQueueLen),
		syncDone:  make(chan struct{}),
		dirs:      make(map[string]struct{}),
	}
	r.chunks = make(chunkPool, freeChunks)
	if err := r.m.register(sm.reg); err != nil {
		return nil, err
	}
	for range o.Workers {
		w := &worker{r: r, q: make(chan item, o.QueueLen), exited: make(chan struct{})}
		r.workers = append(r.workers, w)
		r.wg.Add(1)
		go w.run()
	}
	go r.syncer()
	return r, nil
}

// Dir is the absolute root of the recordings tree.
func (r *Recorder) Dir() string { return r.dir }

// Keys is the keyring the recordings are encrypted with.
func (r *Recorder) Keys() *keyring.Keyring { return r.keys }

// Close stops accepting chunks, lets every worker write what is queued, and stops the
// workers. Recordings still open are synced and closed but stay .wav.part files, for
// Repair at the next start; their Finish returns ErrClosed. Close is idempotent.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		r.ending.Lock() // no end marker is being queued (FinishAsync): the next sees closed
		r.mu.Lock()
		r.closed.Store(true)
		r.mu.Unlock()
		r.ending.Unlock()
		close(r.quit)
		r.wg.Wait()
		close(r.syncq) // the workers, the only senders, have returned
		<-r.syncDone

		r.mu.Lock()
		orphans := r.open
		r.open = nil
		r.mu.Unlock()
		var errs []error
		for rec := range orphans {
			r.m.active.Dec()
			if rec.f == nil { // its file was never made
				continue
			}
			err := rec.f.Sync()
			if cerr := rec.f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("close recording %s: %w", rec.callID, err))
			}
			r.log.Warn("recording left unfinished for repair", "customer", rec.customerID, "call_id", rec.callID)
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// Open starts the recording of one call, to be written to
// <Dir>/<customerID>/<yyyy>/<mm>/<dd>/<callID>.wav.enc.part (the UTC date of start), and
// makes the customer's key if it has none yet. Both ids must be 1 to 64 of [A-Za-z0-9_-]
// (ErrInvalidID); a call that already has a recording, finished or open, gets ErrExists.
//
// Open does no file system work but one Lstat: the recording's worker creates the file and
// writes its header before the first chunk, so that a call's setup does not wait on the
// file system. Should that fail, the chunks are dropped and Finish returns the error.
func (r *Recorder) Open(customerID, callID string, start time.Time) (*Recording, error) {
	if !fsutil.SafeID(customerID) {
		return nil, fmt.Errorf("open recording: customer id %q: %w", customerID, ErrInvalidID)
	}
	if !fsutil.SafeID(callID) {
		return nil, fmt.Errorf("open recording: call id %q: %w", callID, ErrInvalidID)
	}
	if r.closed.Load() {
		return nil, fmt.Errorf("open recording %s: %w", callID, ErrClosed)
	}
	key, err := r.keys.Get(customerID)
	if err != nil {
		return nil, fmt.Errorf("open recording %s: %w", callID, err)
	}
	h := newHeader(customerID, callID)
	aead, err := fileAEAD(key, h[:], callID)
	if err != nil {
		return nil, fmt.Errorf("open recording %s: %w", callID, err)
	}
	day := start.UTC()
	rel := filepath.Join(customerID, day.Format("2006"), day.Format("01"), day.Format("02"), callID+encSuffix)
	final := filepath.Join(r.dir, rel)
	part := final + partSuffix
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("open recording %s: %w", callID, ErrExists)
	}
	rec := &Recording{
		r:          r,
		w:          r.workers[int(r.rr.Add(1)-1)%len(r.workers)],
		customerID: customerID,
		callID:     callID,
		part:       part,
		rel:        filepath.ToSlash(rel),
		aead:       aead,
		h:          h[:],
		done:       make(chan struct{}),
	}
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		return nil, fmt.Errorf("open recording %s: %w", callID, ErrClosed)
	}
	if _, dup := r.parts[part]; dup {
		r.mu.Unlock()
		return nil, fmt.Errorf("open recording %s: %w", callID, ErrExists)
	}
	r.open[rec] = struct{}{}
	r.parts[part] = struct{}{}
	r.mu.Unlock()
	r.m.active.Inc()
	// Queued ahead of every chunk; waits for room (the owner goroutine may, the packet path
	// never calls Open). A worker that has exited leaves the file unmade: Finish says so.
	select {
	case rec.w.q <- item{op: opOpen, rec: rec}:
	case <-rec.w.exited:
	}
	return rec, nil
}

// create makes rec's .part file with its header: the worker's part of Open. A failure is
// kept in rec.err, and the recording's chunks are dropped.
func (r *Recorder) create(rec *Recording) {
	dir := filepath.Dir(rec.rel)
	if err := r.mkdirSynced(dir); err != nil {
		rec.err = err
		return
	}
	var f *os.File
	err := waitDescriptor(func() (err error) { // the syncer reads the last chunk back: O_RDWR
		f, err = os.OpenFile(rec.part, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		// The directory went since it was seen (an erasure removes a customer's tree):
		// forget it and make it again.
		r.forgetDirs()
		if err = r.mkdirSynced(dir); err == nil {
			f, err = os.OpenFile(rec.part, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		err = ErrExists
	}
	if err != nil {
		rec.err = err
		return
	}
	if _, err := f.Write(rec.h); err != nil {
		f.Close()
		os.Remove(rec.part)
		rec.err = err
		return
	}
	rec.f = f
	r.m.bytes.Add(encHeaderSize)
}

// release takes rec out of the open set; false means Close already orphaned it.
func (r *Recorder) release(rec *Recording) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.open[rec]; !ok {
		return false
	}
	delete(r.open, rec)
	delete(r.parts, rec.part)
	r.m.active.Dec()
	return true
}

// Repair runs the package's Repair on Dir, skipping the recordings this Recorder has
// open, and counts the files repaired. Call it at start, before calls are recorded.
func (r *Recorder) Repair() ([]Info, error) {
	r.mu.Lock()
	busy := make(map[string]bool, len(r.open))
	for rec := range r.open {
		busy[rec.part] = true
	}
	r.mu.Unlock()
	infos, err := repair(r.dir, r.keys, func(path string) bool { return busy[path] })
	r.m.repaired.Add(float64(len(infos)))
	return infos, err
}

// maxKnownDirs bounds the day directories the Recorder remembers; past it, it forgets them
// all (they are looked up again: one Mkdir each).
const maxKnownDirs = 4096

// mkdirSynced creates the directories of rel under the root that are missing, and fsyncs
// the parent of each one it creates, so that a finished recording's directory survives a
// power loss along with the file (the syncer only syncs the file's own directory). A
// directory it made or saw once is not looked at again.
func (r *Recorder) mkdirSynced(rel string) error {
	r.dirMu.Lock()
	_, known := r.dirs[rel]
	r.dirMu.Unlock()
	if known {
		return nil
	}
	if err := mkdirSynced(r.dir, rel); err != nil {
		return err
	}
	r.dirMu.Lock()
	if len(r.dirs) >= maxKnownDirs {
		clear(r.dirs)
	}
	r.dirs[rel] = struct{}{}
	r.dirMu.Unlock()
	return nil
}

// forgetDirs forgets the directories known to exist.
func (r *Recorder) forgetDirs() {
	r.dirMu.Lock()
	clear(r.dirs)
	r.dirMu.Unlock()
}

// mkdirSynced creates the directories of rel under root that are missing, and fsyncs the
// parent of each one it creates.
func mkdirSynced(root, rel string) error {
	dir := root
	for _, name := range strings.Split(filepath.ToSlash(rel), "/") {
		next := filepath.Join(dir, name)
		err := os.Mkdir(next, 0o750)
		switch {
		case err == nil:
			if err := fsutil.SyncDir(dir); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrExist):
			return err
		}
		dir = next
	}
	return nil
}
