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
	reg prometheus.Registerer
	log *slog.Logger
}

// WithRegisterer registers the package's metrics on r; without it (or with nil) they are
// kept but not registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *seams) { s.reg = r } }

// WithLogger sets the logger of events that are not returned as errors; without it (or
// with nil) they are discarded.
func WithLogger(l *slog.Logger) Option { return func(s *seams) { s.log = l } }

// Recorder is the pool of writer goroutines and the recordings tree they write to.
// Its methods are safe for concurrent use.
type Recorder struct {
	dir       string
	keys      *keyring.Keyring
	log       *slog.Logger
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

	mu   sync.Mutex
	open map[*Recording]struct{} // recordings not yet finished, aborted or orphaned by Close
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
		m:         newMetrics(),
		maxChunks: uint32(min(int64(o.MaxDuration/time.Second), maxChunks)),
		silence:   make([]byte, chunkBytes),
		quit:      make(chan struct{}),
		open:      make(map[*Recording]struct{}),
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
		r.mu.Lock()
		r.closed.Store(true)
		r.mu.Unlock()
		close(r.quit)
		r.wg.Wait()

		r.mu.Lock()
		orphans := r.open
		r.open = nil
		r.mu.Unlock()
		var errs []error
		for rec := range orphans {
			r.m.active.Dec()
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

// Open starts the recording of one call: it creates
// <Dir>/<customerID>/<yyyy>/<mm>/<dd>/<callID>.wav.enc.part (the UTC date of start) with
// the file's header, and makes the customer's key if it has none yet. Both ids must be 1
// to 64 of [A-Za-z0-9_-] (ErrInvalidID); a call that already has a recording gets ErrExists.
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
	if err := mkdirSynced(r.dir, filepath.Dir(rel)); err != nil {
		return nil, fmt.Errorf("open recording %s: %w", callID, err)
	}
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("open recording %s: %w", callID, ErrExists)
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640) // Finish reads the last chunk back
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open recording %s: %w", callID, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("open recording %s: %w", callID, err)
	}
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		os.Remove(part)
		return nil, fmt.Errorf("open recording %s: %w", callID, err)
	}
	rec := &Recording{
		r:          r,
		w:          r.workers[int(r.rr.Add(1)-1)%len(r.workers)],
		customerID: customerID,
		callID:     callID,
		part:       part,
		rel:        filepath.ToSlash(rel),
		f:          f,
		aead:       aead,
		h:          h[:],
		done:       make(chan struct{}),
	}
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		f.Close()
		os.Remove(part)
		return nil, fmt.Errorf("open recording %s: %w", callID, ErrClosed)
	}
	r.open[rec] = struct{}{}
	r.mu.Unlock()
	r.m.active.Inc()
	r.m.bytes.Add(encHeaderSize)
	return rec, nil
}

// release takes rec out of the open set; false means Close already orphaned it.
func (r *Recorder) release(rec *Recording) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.open[rec]; !ok {
		return false
	}
	delete(r.open, rec)
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

// mkdirSynced creates the directories of rel under root that are missing, and fsyncs the
// parent of each one it creates, so that a finished recording's directory survives a
// power loss along with the file (Finish only syncs the file's own directory).
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
