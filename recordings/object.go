package recordings

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/trackline/trackline/internal/fsutil"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Object storage of finished recordings. The files are uploaded as they are on disk
// (encrypted with the customer's key: the bucket never holds audio in the clear) under
// Prefix + the recording's path in the tree (Info.Rel, store.Recording.Path), so any node
// finds a recording's object from its record alone, and the local copy is shredded once the
// object is confirmed. Where a recording is: on the disk of the node that made it until the
// upload is confirmed, in the bucket after. Readers try the local file first, then the
// object (Files.Open).
//
// What survives a restart: the local files themselves are the upload queue. A finished
// .wav.enc in the tree has not been confirmed uploaded (a confirmed one is removed), so
// Run scans the tree at start and every rescanEvery for them. Deletions of objects are
// kept as durable markers in StateDir/deletes until the object store confirms them.

// Defaults and bounds of ObjectConfig.
const (
	DefaultUploads  = 4
	DefaultPartSize = 16 << 20
	minPartSize     = 5 << 20 // S3's least multipart part
)

// Timing of the uploader; variables of Objects so that tests can shorten them.
const (
	firstUploadDelay = 2 * time.Second  // a just finished recording's record is written after Finish
	maxBackoff       = 5 * time.Minute  // between two attempts of one upload or deletion
	rescanEvery      = 10 * time.Minute // the tree is scanned again for files the queue lost
	orphanAfter      = time.Hour        // a file whose record is missing this long was erased
	requestTimeout   = 5 * time.Minute  // one upload or deletion attempt
)

// ObjectConfig configures the object store of finished recordings.
type ObjectConfig struct {
	Endpoint  string // host[:port]
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	Secure    bool   // TLS
	Prefix    string // object names start with it
	Uploads   int    // concurrent uploads (default 4)
	PartSize  int64  // multipart part size in bytes (default 16 MiB, at least 5 MiB)
	// StateDir holds the deletions not yet confirmed by the object store. Required; not
	// inside the recordings tree.
	StateDir string
	// Transport is the HTTP transport to the endpoint (default: minio-go's).
	Transport http.RoundTripper
}

// RecordingLookup reads recording records; *store.DB is one.
type RecordingLookup interface {
	// Recording reads one recording; an error wrapping store.ErrNotFound if there is none.
	Recording(id string) (store.Recording, error)
}

// Objects moves the finished recordings of the tree under dir to an S3-compatible bucket,
// reads them back and deletes them. Its methods are safe for concurrent use; a nil *Objects
// is no object store (every method a no-op, Open finds nothing).
type Objects struct {
	client   *minio.Client
	bucket   string
	prefix   string
	dir      string
	keys     *keyring.Keyring
	db       RecordingLookup
	log      *slog.Logger
	m        *objectMetrics
	partSize int64
	uploads  int
	deletes  string // StateDir/deletes

	// timing (tests shorten it)
	firstDelay, backoff, rescan, orphan time.Duration
	now                                 func() time.Time

	mu      sync.Mutex
	queue   map[string]*upload // by rel: files waiting for (or in) an upload
	pendDel map[string]*deletion
	wake    chan struct{}
}

// upload is one local file in the upload queue.
type upload struct {
	rel      string
	since    time.Time // the file's modification time: when it was finished
	due      time.Time
	attempts int
	running  bool
}

// deletion is one unconfirmed deletion, kept in a marker file.
type deletion struct {
	Key      string `json:"key"` // an object's name, or with Prefix every object under it
	Prefix   bool   `json:"prefix"`
	marker   string // its file
	due      time.Time
	attempts int
	running  bool
}

// NewObjects connects (lazily: nothing is sent yet) to the object store of c for the
// recordings tree under dir, encrypted with keys. db, when not nil, is asked whether a
// recording's record still exists before and after its upload (an erasure elsewhere removed
// it: the file and the object go). The Recorder hands it finished recordings through
// WithFinished(o.Enqueue); Run uploads them.
func NewObjects(c ObjectConfig, dir string, keys *keyring.Keyring, db RecordingLookup, opts ...Option) (*Objects, error) {
	var sm seams
	for _, opt := range opts {
		opt(&sm)
	}
	if sm.log == nil {
		sm.log = slog.New(slog.DiscardHandler)
	}
	if c.Endpoint == "" || c.Bucket == "" || c.StateDir == "" || dir == "" || keys == nil {
		return nil, errors.New("object store: endpoint, bucket, state directory, recordings directory and keys are required")
	}
	if c.Uploads == 0 {
		c.Uploads = DefaultUploads
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.Uploads < 0 || c.PartSize < minPartSize {
		return nil, fmt.Errorf("object store: uploads %d, part size %d: out of range", c.Uploads, c.PartSize)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	client, err := minio.New(c.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure:    c.Secure,
		Region:    c.Region,
		Transport: c.Transport,
		// A few quick retries inside one attempt; Run retries uploads and deletions with
		// its own backoff, and a reader waits on them.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	o := &Objects{
		client: client, bucket: c.Bucket, prefix: c.Prefix, dir: abs, keys: keys, db: db, log: sm.log,
		m: newObjectMetrics(), partSize: c.PartSize, uploads: c.Uploads,
		deletes:    filepath.Join(c.StateDir, "deletes"),
		firstDelay: firstUploadDelay, backoff: maxBackoff, rescan: rescanEvery, orphan: orphanAfter, now: time.Now,
		queue: make(map[string]*upload), pendDel: make(map[string]*deletion), wake: make(chan struct{}, 1),
	}
	if err := os.MkdirAll(o.deletes, 0o700); err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	if err := o.loadDeletions(); err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	if err := o.m.register(sm.reg, o); err != nil {
		return nil, err
	}
	return o, nil
}

// Check asks the object store whether the bucket exists: the credentials, the endpoint and
// the bucket name are all checked by that one request.
func (o *Objects) Check(ctx context.Context) error {
	ok, err := o.client.BucketExists(ctx, o.bucket)
	if err != nil {
		return fmt.Errorf("object store %s: %w: %w", o.client.EndpointURL().Host, ErrUnavailable, err)
	}
	if !ok {
		return fmt.Errorf("object store %s: bucket %q does not exist", o.client.EndpointURL().Host, o.bucket)
	}
	return nil
}

// Key is the object name of the recording at rel (slash-separated, under the tree).
func (o *Objects) Key(rel string) string { return o.prefix + rel }

// Bucket is the bucket the recordings go to.
func (o *Objects) Bucket() string { return o.bucket }

// Enqueue queues the finished recording at rel for upload, without blocking: what the
// Recorder calls once a recording is durable on disk (WithFinished). The first attempt waits
// a moment for the recording's record.
func (o *Objects) Enqueue(rel string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	if _, ok := o.queue[rel]; !ok {
		now := o.now()
		o.queue[rel] = &upload{rel: rel, since: now, due: now.Add(o.firstDelay)}
	}
	o.mu.Unlock()
	o.poke()
}

func (o *Objects) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run uploads the queued recordings, Uploads at a time, retrying failed ones with
// exponential backoff, and retries the unconfirmed deletions, until ctx is done; then it
// waits for the attempts in flight (cancelled with ctx) and returns. It scans the tree for
// finished recordings not yet uploaded at start and every rescan interval. Run it once,
// after Repair and MigratePlain.
func (o *Objects) Run(ctx context.Context) {
	if o == nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, o.uploads)
	delSem := make(chan struct{}, 2)
	nextScan := time.Time{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := o.now()
		if !now.Before(nextScan) {
			if err := o.scan(); err != nil {
				o.log.Error("scan recordings for upload", "err", err)
			}
			nextScan = now.Add(o.rescan)
		}
		next := nextScan
		o.mu.Lock()
		for _, u := range o.queue {
			if u.running {
				continue
			}
			if u.due.After(now) {
				next = minTime(next, u.due)
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // every slot busy: a finishing upload pokes
			}
			u.running = true
			wg.Add(1)
			go func(u *upload) {
				defer wg.Done()
				o.runUpload(ctx, u)
				<-sem
				o.poke()
			}(u)
		}
		for _, d := range o.pendDel {
			if d.running {
				continue
			}
			if d.due.After(now) {
				next = minTime(next, d.due)
				continue
			}
			select {
			case delSem <- struct{}{}:
			default:
				continue
			}
			d.running = true
			wg.Add(1)
			go func(d *deletion) {
				defer wg.Done()
				o.runDeletion(ctx, d)
				<-delSem
				o.poke()
			}(d)
		}
		o.mu.Unlock()
		timer.Reset(max(next.Sub(o.now()), time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-timer.C:
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// backoffAfter is the wait after the n-th failed attempt: 1 s doubling up to the maximum.
func (o *Objects) backoffAfter(n int) time.Duration {
	d := time.Second << min(n-1, 20)
	return min(d, o.backoff)
}

// scan queues every finished recording of the tree (a .wav.enc) not queued yet.
func (o *Objects) scan() error {
	var found []*upload
	err := filepath.WalkDir(o.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (an erasure)
			}
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), encSuffix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, err := filepath.Rel(o.dir, path)
		if err != nil {
			return nil
		}
		found = append(found, &upload{rel: filepath.ToSlash(rel), since: info.ModTime()})
		return nil
	})
	now := o.now()
	o.mu.Lock()
	for _, u := range found {
		if _, ok := o.queue[u.rel]; !ok {
			u.due = now
			o.queue[u.rel] = u
		}
	}
	o.mu.Unlock()
	return err
}

// uploadOutcome is what became of one upload attempt.
type uploadOutcome int

const (
	outcomeUnknown  uploadOutcome = iota
	outcomeUploaded               // confirmed, local file removed
	outcomeGone                   // the local file is gone (erased, or uploaded by an earlier run)
	outcomeWait                   // the recording's record is not there yet: try again later
	outcomeOrphaned               // the record is gone for good: file and object removed
	outcomeFailed                 // try again later
)

func (o *Objects) runUpload(ctx context.Context, u *upload) {
	actx, cancel := context.WithTimeout(ctx, requestTimeout)
	outcome, size, err := o.uploadFile(actx, u.rel)
	cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	u.running = false
	switch outcome {
	case outcomeUploaded, outcomeGone, outcomeOrphaned:
		delete(o.queue, u.rel)
	case outcomeWait:
		u.attempts++
		u.due = o.now().Add(o.backoffAfter(u.attempts))
	default:
		u.attempts++
		u.due = o.now().Add(o.backoffAfter(u.attempts))
		if ctx.Err() == nil {
			o.log.Warn("recording upload failed; retrying", "rel", u.rel, "attempt", u.attempts, "err", err)
		}
	}
	switch outcome {
	case outcomeUploaded:
		o.m.uploads.WithLabelValues("uploaded").Inc()
		o.m.bytes.Add(float64(size))
	case outcomeOrphaned:
		o.m.uploads.WithLabelValues("orphaned").Inc()
		o.log.Info("recording without a record removed, not uploaded", "rel", u.rel)
	case outcomeFailed:
		if ctx.Err() == nil {
			o.m.uploads.WithLabelValues("failed").Inc()
		}
	}
}

// uploadFile makes one attempt at the file rel: checks that its record names it (when a
// lookup is set), uploads it, confirms the stored object (its size, and its ETag against
// the MD5 of what was read, or else a read back), checks that neither the file nor the
// record went meanwhile (an erasure: the object it made is deleted), then shreds the file.
func (o *Objects) uploadFile(ctx context.Context, rel string) (uploadOutcome, int64, error) {
	path := filepath.Join(o.dir, filepath.FromSlash(rel))
	customerID, callID, ok := splitRel(rel)
	if !ok {
		return outcomeGone, 0, nil // not a recording of the layout: left alone, never uploaded
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return outcomeGone, 0, nil
	}
	if err != nil {
		return outcomeFailed, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return outcomeFailed, 0, err
	}
	if o.db != nil {
		switch known, err := o.recorded(customerID, callID, rel); {
		case err != nil:
			return outcomeFailed, 0, err
		case !known && o.now().Sub(st.ModTime()) < o.orphanAge():
			return outcomeWait, 0, nil
		case !known:
			f.Close()
			return outcomeOrphaned, 0, o.removeBoth(ctx, rel)
		}
	}
	sums, err := o.sums(f, st.Size())
	if err != nil {
		return outcomeFailed, 0, err
	}
	key := o.Key(rel)
	_, err = o.client.PutObject(ctx, o.bucket, key, io.NewSectionReader(f, 0, st.Size()), st.Size(), minio.PutObjectOptions{
		ContentType:    "application/octet-stream",
		PartSize:       uint64(o.partSize),
		SendContentMd5: true,
		UserMetadata:   map[string]string{"sha256": sums.sha256},
	})
	if err == nil {
		err = o.confirm(ctx, key, st.Size(), sums)
	}
	// An erasure of this recording may have run during the upload: its local file went (it
	// shreds the file, then deletes the object, which was not there yet), or its record.
	if gone := !o.sameFile(path, st); gone || err == nil && o.db != nil {
		known, lerr := true, error(nil)
		if !gone {
			known, lerr = o.recorded(customerID, callID, rel)
		}
		if lerr != nil {
			return outcomeFailed, 0, lerr
		}
		if gone || !known {
			f.Close()
			return outcomeOrphaned, 0, o.removeBoth(ctx, rel)
		}
	}
	if err != nil {
		return outcomeFailed, 0, err
	}
	f.Close()
	if err := Remove(o.dir, rel); err != nil {
		return outcomeFailed, 0, fmt.Errorf("uploaded; remove local copy: %w", err)
	}
	return outcomeUploaded, st.Size(), nil
}

// orphanAge is how long a file may wait for its record before it counts as erased.
func (o *Objects) orphanAge() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.orphan
}

// splitRel reads the customer and call ids out of a recording's path in the tree
// (<customer>/<yyyy>/<mm>/<dd>/<call>.wav.enc).
func splitRel(rel string) (customerID, callID string, ok bool) {
	parts := strings.Split(rel, "/")
	if len(parts) != 5 || !strings.HasSuffix(parts[4], encSuffix) {
		return "", "", false
	}
	customerID, callID = parts[0], strings.TrimSuffix(parts[4], encSuffix)
	return customerID, callID, fsutil.SafeID(customerID) && fsutil.SafeID(callID)
}

// recorded tells whether the call's recording record exists and names the file rel.
func (o *Objects) recorded(customerID, callID, rel string) (bool, error) {
	rec, err := o.db.Recording(callID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return rec.CustomerID == customerID && rec.Path == rel, nil
}

// sameFile tells whether path is still the file st describes.
func (o *Objects) sameFile(path string, st fs.FileInfo) bool {
	now, err := os.Stat(path)
	return err == nil && os.SameFile(now, st)
}

// removeBoth shreds the local file rel and deletes its object (durably queued if that fails).
func (o *Objects) removeBoth(ctx context.Context, rel string) error {
	return errors.Join(Remove(o.dir, rel), o.Remove(ctx, rel))
}

// fileSums are the digests an upload is confirmed with.
type fileSums struct {
	md5    string // hex MD5 of the file: the ETag of a single-part upload
	multi  string // the ETag of a multipart upload in partSize parts (MD5 of the parts' MD5s, "-" count)
	sha256 string // hex SHA-256 of the file
}

// sums reads the file once for its digests.
func (o *Objects) sums(f *os.File, size int64) (fileSums, error) {
	whole, sh := md5.New(), sha256.New()
	var partSums []byte
	r := io.NewSectionReader(f, 0, size)
	for off := int64(0); off < size || off == 0; off += o.partSize {
		part := md5.New()
		n, err := io.Copy(io.MultiWriter(whole, sh, part), io.LimitReader(r, o.partSize))
		if err != nil {
			return fileSums{}, err
		}
		partSums = part.Sum(partSums)
		if n < o.partSize {
			break
		}
	}
	parts := (size + o.partSize - 1) / o.partSize
	multi := md5.Sum(partSums)
	return fileSums{
		md5:    hex.EncodeToString(whole.Sum(nil)),
		multi:  fmt.Sprintf("%s-%d", hex.EncodeToString(multi[:]), parts),
		sha256: hex.EncodeToString(sh.Sum(nil)),
	}, nil
}

// errUnconfirmed: the stored object is not the file that was uploaded.
var errUnconfirmed = errors.New("stored object differs from the file")

// confirm checks the stored object against the file: its size, and its ETag where the
// object store reports the MD5 form (of the whole file, or of its parts); an object whose
// ETag is another (server-side encryption with keys of its own, a store that hashes
// otherwise, or a damaged upload) is read back and its SHA-256 compared.
func (o *Objects) confirm(ctx context.Context, key string, size int64, sums fileSums) error {
	info, err := o.client.StatObject(ctx, o.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("confirm upload: %w", err)
	}
	if info.Size != size {
		return fmt.Errorf("confirm upload: %d bytes stored of %d: %w", info.Size, size, errUnconfirmed)
	}
	etag := strings.ToLower(strings.Trim(info.ETag, `"`))
	if etag == sums.md5 || etag == sums.multi {
		return nil
	}
	obj, err := o.client.GetObject(ctx, o.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("confirm upload: %w", err)
	}
	defer obj.Close()
	h := sha256.New()
	if _, err := io.Copy(h, obj); err != nil {
		return fmt.Errorf("confirm upload: read back: %w", err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sums.sha256 {
		return fmt.Errorf("confirm upload: read back: %w", errUnconfirmed)
	}
	return nil
}

// Pending is how many recordings wait for their upload.
func (o *Objects) Pending() int {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue)
}

// PendingDeletes is how many deletions wait for the object store's confirmation.
func (o *Objects) PendingDeletes() int {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pendDel)
}

// oldestPending is the age of the oldest recording waiting for its upload (0 for none).
func (o *Objects) oldestPending() time.Duration {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var oldest time.Time
	for _, u := range o.queue {
		if oldest.IsZero() || u.since.Before(oldest) {
			oldest = u.since
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return o.now().Sub(oldest)
}

// Open opens the object of rec for reading its plain WAV: ErrGone when there is none or its
// customer's key was destroyed.
func (o *Objects) Open(ctx context.Context, rec store.Recording) (*Reader, error) {
	if o == nil {
		return nil, fmt.Errorf("recording %s: %w", rec.ID, ErrGone)
	}
	if !filepath.IsLocal(filepath.FromSlash(rec.Path)) {
		return nil, fmt.Errorf("recording %s: path %q: %w", rec.ID, rec.Path, ErrInvalidID)
	}
	key := o.Key(rec.Path)
	info, err := o.client.StatObject(ctx, o.bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return nil, fmt.Errorf("recording %s: %w", rec.ID, ErrGone)
	}
	if err != nil {
		return nil, fmt.Errorf("recording %s: %w: %w", rec.ID, ErrUnavailable, err)
	}
	src := &objectSource{ctx: ctx, o: o, key: key, etag: info.ETag}
	r, err := newReader(o.keys, src, info.Size, info.LastModified)
	if errors.Is(err, keyring.ErrNoKey) {
		src.Close()
		return nil, fmt.Errorf("recording %s: %w", rec.ID, ErrGone)
	}
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("recording %s: object: %w", rec.ID, err)
	}
	if r.CustomerID() != rec.CustomerID || r.CallID() != rec.CallID {
		r.Close()
		return nil, fmt.Errorf("recording %s: the object is another call's: %w", rec.ID, ErrCorrupt)
	}
	return r, nil
}

// isNotFound tells whether err is the object store's "no such object".
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	resp := minio.ToErrorResponse(err)
	return resp.Code == minio.NoSuchKey || resp.StatusCode == http.StatusNotFound
}

// objectSource reads an object at offsets, as a Reader asks for its chunks: a read at the
// offset where the last one ended continues that response's body; any other opens a ranged
// GET from there to the end. Each GET must match the ETag seen at open, so an object
// replaced meanwhile fails rather than mixes. Not safe for concurrent use (nor is Reader).
type objectSource struct {
	ctx  context.Context
	o    *Objects
	key  string
	etag string
	body *minio.Object
	pos  int64
}

func (s *objectSource) ReadAt(p []byte, off int64) (int, error) {
	if s.body == nil || off != s.pos {
		if s.body != nil {
			s.body.Close()
			s.body = nil
		}
		var opts minio.GetObjectOptions
		if off > 0 { // SetRange(0, 0) would be the first byte only
			if err := opts.SetRange(off, 0); err != nil {
				return 0, err
			}
		}
		if err := opts.SetMatchETag(s.etag); err != nil {
			return 0, err
		}
		obj, err := s.o.client.GetObject(s.ctx, s.o.bucket, s.key, opts)
		if err != nil {
			return 0, err
		}
		s.body, s.pos = obj, off
	}
	n, err := io.ReadFull(s.body, p)
	s.pos += int64(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	if err != nil {
		s.body.Close()
		s.body = nil
	}
	return n, err
}

func (s *objectSource) Close() error {
	if s.body != nil {
		err := s.body.Close()
		s.body = nil
		return err
	}
	return nil
}
