package recordings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/trackline/trackline/internal/fsutil"
)

// Deleting objects. An erasure or a retention purge cannot wait for an object store that is
// down, and must not forget what it owes: each deletion is first written as a marker file
// under StateDir/deletes (fsynced), then tried at once; the marker goes when the object
// store confirms, and Run retries the ones left with backoff, across restarts. The caller
// still gets the first attempt's error, so an erasure says it is not complete.

// Remove deletes the object of the recording at rel (a record's Path). No object is not an
// error. A nil *Objects does nothing.
func (o *Objects) Remove(ctx context.Context, rel string) error {
	if o == nil {
		return nil
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return fmt.Errorf("remove object %q: %w", rel, ErrInvalidID)
	}
	o.dequeue(rel)
	return o.delete(ctx, &deletion{Key: o.Key(rel)})
}

// RemoveCustomer deletes every object of the customer (all under Prefix + customerID + "/").
// A nil *Objects does nothing.
func (o *Objects) RemoveCustomer(ctx context.Context, customerID string) error {
	if o == nil {
		return nil
	}
	if !fsutil.SafeID(customerID) {
		return fmt.Errorf("remove objects of %q: %w", customerID, ErrInvalidID)
	}
	o.mu.Lock()
	for rel := range o.queue {
		if strings.HasPrefix(rel, customerID+"/") {
			delete(o.queue, rel)
		}
	}
	o.mu.Unlock()
	return o.delete(ctx, &deletion{Key: o.Key(customerID + "/"), Prefix: true})
}

// dequeue forgets a pending upload of rel (its file is being erased).
func (o *Objects) dequeue(rel string) {
	o.mu.Lock()
	if u, ok := o.queue[rel]; ok && !u.running {
		delete(o.queue, rel)
	}
	o.mu.Unlock()
}

// delete writes d's marker, tries it once and, if that fails, leaves it to Run.
func (o *Objects) delete(ctx context.Context, d *deletion) error {
	sum := sha256.Sum256([]byte(fmt.Sprint(d.Prefix, "\x00", d.Key)))
	d.marker = filepath.Join(o.deletes, hex.EncodeToString(sum[:16])+".json")
	o.mu.Lock()
	if cur, ok := o.pendDel[d.marker]; ok {
		d = cur // one marker per deletion; a running attempt is joined by trying again
	} else {
		b, _ := json.Marshal(d)
		if err := writeFileSynced(d.marker, b); err != nil {
			o.mu.Unlock()
			return fmt.Errorf("remove object %s: keep the deletion: %w", d.Key, err)
		}
		o.pendDel[d.marker] = d
	}
	o.mu.Unlock()
	err := o.deleteNow(ctx, d)
	o.finishDeletion(d, err)
	if err != nil {
		return fmt.Errorf("remove object %s (kept to retry): %w", d.Key, err)
	}
	return nil
}

// deleteNow deletes d's object, or every object under its prefix, and the parts of any
// multipart upload of them left unfinished (a crash mid-upload leaves them, ciphertext of a
// recording, until aborted).
func (o *Objects) deleteNow(ctx context.Context, d *deletion) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if !d.Prefix {
		err := o.client.RemoveObject(ctx, o.bucket, d.Key, minio.RemoveObjectOptions{})
		if isNotFound(err) {
			err = nil
		}
		return errors.Join(err, o.abortUploads(ctx, d.Key, false))
	}
	errs := []error{o.abortUploads(ctx, d.Key, true)}
	for obj := range o.client.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: d.Key, Recursive: true}) {
		if obj.Err != nil {
			errs = append(errs, obj.Err)
			break
		}
		if err := o.client.RemoveObject(ctx, o.bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// abortUploads aborts the unfinished multipart uploads of the object key, or of every
// object under it with prefix.
func (o *Objects) abortUploads(ctx context.Context, key string, prefix bool) error {
	var errs []error
	for up := range o.client.ListIncompleteUploads(ctx, o.bucket, key, prefix) {
		if up.Err != nil {
			if !isNotFound(up.Err) {
				errs = append(errs, up.Err)
			}
			break
		}
		if !prefix && up.Key != key {
			continue
		}
		if err := o.client.RemoveIncompleteUpload(ctx, o.bucket, up.Key); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finishDeletion records the outcome of an attempt: done, the marker goes; failed, the next
// attempt waits longer.
func (o *Objects) finishDeletion(d *deletion, err error) {
	if err == nil {
		if rerr := os.Remove(d.marker); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		} else {
			fsutil.SyncDir(o.deletes)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		delete(o.pendDel, d.marker)
		o.m.deletes.WithLabelValues("deleted").Inc()
		return
	}
	d.attempts++
	d.due = o.now().Add(o.backoffAfter(d.attempts))
	o.m.deletes.WithLabelValues("failed").Inc()
}

// runDeletion is Run's retry of a deletion left by a failed attempt or an earlier run.
func (o *Objects) runDeletion(ctx context.Context, d *deletion) {
	err := o.deleteNow(ctx, d)
	if ctx.Err() != nil && err != nil {
		o.mu.Lock()
		d.running = false
		o.mu.Unlock()
		return
	}
	if err != nil {
		o.log.Warn("object deletion failed; retrying", "key", d.Key, "attempt", d.attempts+1, "err", err)
	}
	o.finishDeletion(d, err)
	o.mu.Lock()
	d.running = false
	o.mu.Unlock()
}

// loadDeletions reads the markers an earlier run left: they are due at once.
func (o *Objects) loadDeletions() error {
	entries, err := os.ReadDir(o.deletes)
	if err != nil {
		return err
	}
	now := o.now()
	for _, e := range entries {
		path := filepath.Join(o.deletes, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			os.Remove(path) // a temporary file of an interrupted write
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		d := &deletion{marker: path, due: now}
		if err := json.Unmarshal(b, d); err != nil || d.Key == "" {
			o.log.Error("unreadable object deletion marker left as it is", "file", path)
			continue
		}
		o.pendDel[path] = d
	}
	return nil
}

// writeFileSynced writes a marker durably: a temporary file, fsynced, renamed into place,
// the directory fsynced.
func writeFileSynced(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}
