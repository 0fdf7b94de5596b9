package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/trackline/trackline/internal/fsutil"
)

// Shared keys: the nodes of a cluster keep their customers' keys as objects in an
// S3-compatible bucket (WithObjects), not in their keys directories and never in the shared
// database: PostgreSQL's WAL, replicas and backups would keep a key that was destroyed.
//
//   - An object holds what a key file holds, always sealed with the master key (a cluster
//     requires one), so the bucket and its backups never hold a secret in the clear:
//     <prefix><customer>.key.
//   - Making a key is create-if-absent: a PUT with If-None-Match: * (RFC 9110 §13.1.2).
//     Two nodes that make one customer's key at once send two PUTs; the object store
//     takes one and refuses the other (412), whose node then reads and uses the one that
//     was taken. Check refuses an object store that ignores the condition.
//   - Each node caches the keys it read. Destroying a key deletes its object; the other
//     nodes drop their copy when they hear of the customer's change (Forget, from the
//     store's change notifications) or, at the latest, at their next revalidation (Run
//     asks for every cached key's object every revalidate interval and drops the ones gone).
//   - A key file in the keys directory (a node that kept its keys in files before) is the
//     customer's key: when the bucket has none for that customer, the file's secret is put
//     there (create-if-absent, as above), so moving a node to shared keys keeps every key;
//     a destruction removes the file too.
//   - A destruction is first written as a marker in the keys directory (destroy/<customer>,
//     fsynced), then tried; the marker goes when the object store confirms, else Run
//     retries it with backoff, across restarts. While a marker is there, this node answers
//     no key for that customer and makes none.

// Timing of shared keys.
const (
	sharedRequestTimeout = 10 * time.Second // one request to the object store
	defaultRevalidate    = 30 * time.Second
	maxDestroyBackoff    = 5 * time.Minute
	destroyDir           = "destroy"
)

var (
	// ErrDestroying: the customer's key is being destroyed and the object store has not
	// confirmed it yet (it wraps ErrNoKey for Lookup's callers).
	ErrDestroying = errors.New("key destruction not confirmed by the object store yet")
	// ErrObjectStore: the object store that keeps the shared keys did not answer as it should.
	ErrObjectStore = errors.New("key object store")
	// ErrUnconditional: the object store ignores If-None-Match on a PUT (Check).
	ErrUnconditional = errors.New("object store ignores If-None-Match on PUT")
)

// Objects is the S3-compatible bucket that keeps a cluster's keys.
type Objects struct {
	Endpoint  string // host[:port]
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	Secure    bool   // TLS
	Prefix    string // object names start with it; default "keys/"
	// Revalidate is how often Run checks that the cached keys still exist (default 30 s).
	Revalidate time.Duration
	// Transport is the HTTP transport to the endpoint (default: minio-go's).
	Transport http.RoundTripper
}

// WithObjects keeps the keys in the bucket of o instead of the keys directory, which then
// holds only the destructions not yet confirmed. It requires WithMasterKey.
func WithObjects(o Objects) Option {
	return func(k *Keyring) error {
		if o.Endpoint == "" || o.Bucket == "" {
			return errors.New("shared keys: endpoint and bucket are required")
		}
		if o.Prefix == "" {
			o.Prefix = "keys/"
		}
		if o.Revalidate <= 0 {
			o.Revalidate = defaultRevalidate
		}
		client, err := minio.New(o.Endpoint, &minio.Options{
			Creds: credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""), Secure: o.Secure,
			Region: o.Region, Transport: o.Transport, MaxRetries: 3,
		})
		if err != nil {
			return fmt.Errorf("shared keys: %w", err)
		}
		k.shared = &sharedKeys{client: client, bucket: o.Bucket, prefix: o.Prefix, revalidate: o.Revalidate,
			locks: make(map[string]*sync.Mutex), pending: make(map[string]*pendingDestroy)}
		return nil
	}
}

// sharedKeys is the object store side of a Keyring.
type sharedKeys struct {
	client     *minio.Client
	bucket     string
	prefix     string
	revalidate time.Duration
	// unconditional leaves If-None-Match out of the PUTs: the tests' object store that
	// ignores it.
	unconditional bool

	// locks serialises the work on one customer's key (fetch, create, destroy) on this
	// node; guarded by Keyring.mu. One per customer seen, never removed (small).
	locks   map[string]*sync.Mutex
	pending map[string]*pendingDestroy // by customer; guarded by Keyring.mu
}

// pendingDestroy is a destruction not yet confirmed by the object store.
type pendingDestroy struct {
	attempts int
	due      time.Time
}

// Shared tells whether the keys are kept in an object store (WithObjects).
func (k *Keyring) Shared() bool { return k.shared != nil }

// openShared checks the options and loads the destructions an earlier run left.
func (k *Keyring) openShared() error {
	if k.master == nil {
		return errors.New("shared keys need a master key: the bucket must never hold a key in the clear")
	}
	dir := filepath.Join(k.dir, destroyDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fsutil.SafeID(e.Name()) {
			k.shared.pending[e.Name()] = &pendingDestroy{}
		} else {
			os.Remove(filepath.Join(dir, e.Name())) // a temporary file of an interrupted write
		}
	}
	return nil
}

func (s *sharedKeys) object(customerID string) string { return s.prefix + customerID + fileSuffix }

// lock takes customerID's lock; k.mu must not be held. It answers the unlock.
func (k *Keyring) lock(customerID string) func() {
	k.mu.Lock()
	l, ok := k.shared.locks[customerID]
	if !ok {
		l = new(sync.Mutex)
		k.shared.locks[customerID] = l
	}
	k.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// cached answers the cached key, or nil; and whether its destruction is pending.
func (k *Keyring) cached(customerID string) (*Key, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, pending := k.shared.pending[customerID]
	return k.keys[customerID], pending
}

// getShared is Get and Lookup (create false) with shared keys.
func (k *Keyring) getShared(customerID string, create bool) (*Key, error) {
	if key, pending := k.cached(customerID); pending {
		return nil, fmt.Errorf("key of %s: %w (%w)", customerID, ErrNoKey, ErrDestroying)
	} else if key != nil {
		return key, nil
	}
	unlock := k.lock(customerID)
	defer unlock()
	if key, pending := k.cached(customerID); pending {
		return nil, fmt.Errorf("key of %s: %w (%w)", customerID, ErrNoKey, ErrDestroying)
	} else if key != nil {
		return key, nil // another goroutine fetched it meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedRequestTimeout)
	defer cancel()
	secret, err := k.fetch(ctx, customerID)
	if errors.Is(err, ErrNoKey) {
		// A key file of the keys directory (the node ran with keys in files before): it is
		// the customer's key, and goes to the object store as it is.
		if local, lerr := k.read(customerID); lerr == nil {
			secret, err = k.putShared(ctx, customerID, local)
		} else if !errors.Is(lerr, ErrNoKey) {
			err = lerr
		} else if create {
			secret, err = k.createShared(ctx, customerID)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", customerID, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.remember(customerID, secret)
}

// fetch reads and opens the customer's key object; ErrNoKey if there is none.
func (k *Keyring) fetch(ctx context.Context, customerID string) ([]byte, error) {
	s := k.shared
	obj, err := s.client.GetObject(ctx, s.bucket, s.object(customerID), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrObjectStore, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, int64(sealedSize)+1))
	if isNoSuchKey(err) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrObjectStore, err)
	}
	return k.decode(customerID, b)
}

// createShared makes a new secret and puts it if the customer has no key object yet; if
// another node's was put first, that one is read and answered.
func (k *Keyring) createShared(ctx context.Context, customerID string) ([]byte, error) {
	secret := make([]byte, secretSize)
	rand.Read(secret) // never fails (crypto/rand, Go 1.24+)
	return k.putShared(ctx, customerID, secret)
}

// putShared puts secret as the customer's key object if it has none yet, and answers the key
// the object store holds then: secret, or another node's put first.
func (k *Keyring) putShared(ctx context.Context, customerID string, secret []byte) ([]byte, error) {
	s := k.shared
	b := k.encode(customerID, secret)
	for attempt := 0; ; attempt++ {
		opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
		if !s.unconditional {
			opts.SetMatchETagExcept("*") // If-None-Match: *
		}
		_, err := s.client.PutObject(ctx, s.bucket, s.object(customerID), bytes.NewReader(b), int64(len(b)), opts)
		if err == nil {
			return secret, nil
		}
		if !isConditionFailed(err) {
			return nil, fmt.Errorf("%w: put: %w", ErrObjectStore, err)
		}
		// Another node's key was put first (412), or a put of it is in progress (409):
		// read it.
		theirs, ferr := k.fetch(ctx, customerID)
		if !errors.Is(ferr, ErrNoKey) || attempt >= 5 {
			return theirs, ferr
		}
		// Put and then deleted meanwhile (a destruction on another node): make ours.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// destroyShared is Destroy with shared keys: the marker, then the deletion.
func (k *Keyring) destroyShared(customerID string) error {
	unlock := k.lock(customerID)
	defer unlock()
	k.mu.Lock()
	delete(k.keys, customerID)
	_, pending := k.shared.pending[customerID]
	k.mu.Unlock()
	if !pending {
		marker := filepath.Join(k.dir, destroyDir, customerID)
		if err := writeSynced(marker, []byte(customerID)); err != nil {
			return fmt.Errorf("destroy key of %s: keep the destruction: %w", customerID, err)
		}
		k.mu.Lock()
		k.shared.pending[customerID] = &pendingDestroy{}
		k.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedRequestTimeout)
	defer cancel()
	if err := k.deleteShared(ctx, customerID); err != nil {
		return fmt.Errorf("destroy key of %s (kept to retry): %w", customerID, err)
	}
	return nil
}

// deleteShared deletes the customer's key object and, once the object store confirms, the
// marker. The customer's lock is held.
func (k *Keyring) deleteShared(ctx context.Context, customerID string) error {
	s := k.shared
	err := s.client.RemoveObject(ctx, s.bucket, s.object(customerID), minio.RemoveObjectOptions{})
	if isNoSuchKey(err) {
		err = nil
	}
	if err == nil {
		// Deleted, or absent: confirm with a read, so an object store that answered a
		// deletion it did not do is not believed.
		_, err = s.client.StatObject(ctx, s.bucket, s.object(customerID), minio.StatObjectOptions{})
		if isNoSuchKey(err) {
			err = nil
		} else if err == nil {
			err = errors.New("the key object is still there after its deletion")
		}
	}
	if err == nil {
		// A key file left from keys in files would bring the key back at its next use.
		err = k.destroyFile(customerID)
	}
	if err == nil {
		rerr := os.Remove(filepath.Join(k.dir, destroyDir, customerID))
		if rerr == nil || errors.Is(rerr, fs.ErrNotExist) {
			rerr = fsutil.SyncDir(filepath.Join(k.dir, destroyDir))
		}
		err = rerr
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		delete(k.shared.pending, customerID)
		return nil
	}
	if p := k.shared.pending[customerID]; p != nil {
		p.attempts++
		p.due = time.Now().Add(min(maxDestroyBackoff, time.Second<<min(p.attempts-1, 16)))
	}
	return fmt.Errorf("%w: delete: %w", ErrObjectStore, err)
}

// Forget drops the cached key of the customer (its record changed on another node: its key
// may have been destroyed there); the next use reads it again.
func (k *Keyring) Forget(customerID string) {
	k.mu.Lock()
	delete(k.keys, customerID)
	k.mu.Unlock()
}

// ForgetAll drops every cached key.
func (k *Keyring) ForgetAll() {
	k.mu.Lock()
	clear(k.keys)
	k.mu.Unlock()
}

// PendingDestroys is how many destructions the object store has not confirmed yet.
func (k *Keyring) PendingDestroys() int {
	if k.shared == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.shared.pending)
}

// Run keeps the shared keys true until ctx ends: every revalidate interval it drops the
// cached keys whose objects are gone (destroyed on another node), and it retries the
// destructions left unconfirmed. With keys in the directory it returns at once.
func (k *Keyring) Run(ctx context.Context) {
	if k.shared == nil {
		return
	}
	t := time.NewTicker(min(k.shared.revalidate, time.Second))
	defer t.Stop()
	next := time.Now().Add(k.shared.revalidate)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.retryDestroys(ctx)
		if now := time.Now(); now.After(next) {
			k.revalidate(ctx)
			next = now.Add(k.shared.revalidate)
		}
	}
}

// retryDestroys tries the due destructions again.
func (k *Keyring) retryDestroys(ctx context.Context) {
	now := time.Now()
	var due []string
	k.mu.Lock()
	for id, p := range k.shared.pending {
		if !p.due.After(now) {
			due = append(due, id)
		}
	}
	k.mu.Unlock()
	for _, id := range due {
		unlock := k.lock(id)
		rctx, cancel := context.WithTimeout(ctx, sharedRequestTimeout)
		k.deleteShared(rctx, id) // an error is counted in its backoff; the next try is due later
		cancel()
		unlock()
	}
}

// revalidate drops the cached keys whose objects no longer exist: one listing of the
// prefix (a request per 1,000 keys), not a request per key. A listing that fails changes
// nothing; a key dropped by a listing that began before it was put is read again at its
// next use.
func (k *Keyring) revalidate(ctx context.Context) {
	s := k.shared
	ctx, cancel := context.WithTimeout(ctx, sharedRequestTimeout)
	defer cancel()
	present := make(map[string]bool)
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix}) {
		if obj.Err != nil {
			return
		}
		if id, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, s.prefix), fileSuffix); ok {
			present[id] = true
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id := range k.keys {
		if !present[id] {
			delete(k.keys, id)
		}
	}
}

// Check asks the object store of shared keys whether the bucket exists and whether it honours
// If-None-Match: * on a PUT (without it two nodes could make two keys for one customer): a
// probe object is put twice, the second must be refused, then deleted. With keys in the
// directory it checks nothing.
func (k *Keyring) Check(ctx context.Context) error {
	s := k.shared
	if s == nil {
		return nil
	}
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrObjectStore, s.client.EndpointURL().Host, err)
	}
	if !ok {
		return fmt.Errorf("%w %s: bucket %q does not exist", ErrObjectStore, s.client.EndpointURL().Host, s.bucket)
	}
	var id [8]byte
	rand.Read(id[:])
	name := s.prefix + ".probe-" + hex.EncodeToString(id[:])
	put := func() error {
		opts := minio.PutObjectOptions{DisableMultipart: true}
		if !s.unconditional {
			opts.SetMatchETagExcept("*")
		}
		_, err := s.client.PutObject(ctx, s.bucket, name, bytes.NewReader([]byte("probe")), 5, opts)
		return err
	}
	defer s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, name, minio.RemoveObjectOptions{})
	if err := put(); err != nil {
		return fmt.Errorf("%w: put a probe: %w", ErrObjectStore, err)
	}
	err = put()
	if err == nil {
		return fmt.Errorf("%w %s: %w, so two nodes could make two keys for one customer; use one that honours it (AWS S3, MinIO, SeaweedFS)",
			ErrObjectStore, s.client.EndpointURL().Host, ErrUnconditional)
	}
	if !isConditionFailed(err) {
		return fmt.Errorf("%w: put a probe again: %w", ErrObjectStore, err)
	}
	return nil
}

// isNoSuchKey tells whether err is the object store's "no such object".
func isNoSuchKey(err error) bool {
	if err == nil {
		return false
	}
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound
}

// isConditionFailed tells whether err is a refused conditional write: 412 (the object
// exists) or 409 (S3's ConditionalRequestConflict: another conditional write of it is in
// progress).
func isConditionFailed(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusPreconditionFailed || r.StatusCode == http.StatusConflict ||
		strings.EqualFold(r.Code, "PreconditionFailed") || strings.EqualFold(r.Code, "ConditionalRequestConflict")
}
