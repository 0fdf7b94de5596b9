package recordings

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trackline/trackline/internal/fsutil"
	"golang.org/x/sys/unix"
)

// syncQueueLen bounds the ended recordings waiting for the syncer; maxSyncBatch is the most
// it finishes at once.
const (
	syncQueueLen = 4096
	maxSyncBatch = 256
	syncGather   = 5 * time.Millisecond // how long a batch waits for more
)

// syncer finishes the recordings the workers ended, in two stages. The first (sealer) takes
// each as it ends: it seals the last chunk, hashes the plain WAV, starts the writeback and
// closes the file, so that a finished call holds no descriptor while it waits for an fsync.
// The second (here) makes them durable in batches: everything the sealer passed on while the
// last batch was synced is the next one. Like the store's group commit, a batch shares the
// file system's work: the files' writeback was started before the first fsync, so that one
// journal commit covers them, and each directory is fsynced once after all the batch's
// renames in it. The sealer returns when syncq is closed and drained (Close), the syncer
// when the sealer has returned and what it passed on is finished.
//
// Before, a file stayed open until its batch was synced: when the fsyncs fell behind (500
// calls a second with the disclaimer, on 2 busy cores) 2,700 finished recordings held a
// descriptor each and recordings were lost to "too many open files".
func (r *Recorder) syncer() {
	defer close(r.syncDone)
	sealed := make(chan *Recording, syncQueueLen)
	go r.sealer(sealed)
	batch := make([]*Recording, 0, maxSyncBatch)
	var b syncBuffers
	gather := time.NewTimer(syncGather)
	for rec := range sealed {
		batch = append(batch[:0], rec)
		// Others end within a few milliseconds at any real call rate: waiting that long
		// for them makes each batch's directory fsyncs do for many more recordings. The
		// first of a batch waits at most syncGather longer for its file to be finished.
		gather.Reset(syncGather)
	fill:
		for len(batch) < maxSyncBatch {
			select {
			case rec, ok := <-sealed:
				if !ok {
					break fill
				}
				batch = append(batch, rec)
			case <-gather.C:
				break fill
			}
		}
		r.syncBatch(batch, &b)
		clear(batch)
	}
}

// sealer is the syncer's first stage: it seals and closes each recording the workers hand
// over, in the order they come, and passes it on. It closes out when syncq is closed and
// drained.
func (r *Recorder) sealer(out chan<- *Recording) {
	defer close(out)
	var b syncBuffers
	for rec := range r.syncq {
		r.seal(rec, &b)
		out <- rec
	}
}

// syncBuffers are the syncer's scratch space, reused from batch to batch.
type syncBuffers struct {
	in, out [sealedChunk]byte
	plain   []byte
	hash    hash.Hash
	dirs    map[string]error
}

func (b *syncBuffers) init() {
	if b.hash == nil {
		b.hash = sha256.New()
		b.plain = make([]byte, 0, chunkBytes)
		b.dirs = make(map[string]error)
	}
}

// syncPath fsyncs the file at path through a read-only descriptor of its own.
func syncPath(path string) error {
	var f *os.File
	err := waitDescriptor(func() (err error) { f, err = os.Open(path); return err })
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// waitDescriptor runs open, a call that takes a descriptor, again while it fails because the
// process (EMFILE) or the system (ENFILE) has none free, with doubling waits from 1 ms, about
// 2 s in all: the writers and the syncer are off every call's path, and descriptors come back
// as calls end, so a recording waits for one rather than be lost to "too many open files".
func waitDescriptor(open func() error) error {
	for wait := time.Millisecond; ; wait *= 2 {
		err := open()
		if err == nil || !fsutil.OutOfDescriptors(err) || wait > 2*time.Second {
			return err
		}
		time.Sleep(wait)
	}
}

// finishBatch finishes each ended recording of recs (their files made and written) on the
// calling goroutine: seal, then syncBatch. For a recording no worker hands to the syncer.
func (r *Recorder) finishBatch(recs []*Recording, b *syncBuffers) {
	for _, rec := range recs {
		r.seal(rec, b)
	}
	r.syncBatch(recs, b)
}

// seal seals the last chunk of an ended recording (its file made and written) as the last,
// unless its worker did (sealedLast), hashes the plain WAV by decrypting the file back,
// starts the file's writeback and closes the file. A failure is kept in syncErr.
func (r *Recorder) seal(rec *Recording, b *syncBuffers) {
	b.init()
	var err error
	if !rec.sealedLast || rec.err != nil {
		err = sealLastBuf(rec.f, rec.aead, rec.h, rec.end, &b.in, &b.out)
	}
	if err == nil {
		rec.sum, rec.size, err = plainSum(rec.f, rec.aead, rec.h, rec.end, b)
	}
	if err == nil {
		startWriteback(rec.f)
	}
	if cerr := rec.f.Close(); err == nil {
		err = cerr
	}
	rec.syncErr = err
}

// syncBatch makes each sealed recording of recs durable: it opens the file again (read-only,
// for just that), fsyncs and closes it, renames it and fsyncs its directory, then closes done.
// An fsync through a descriptor opened after the writes still reports their writeback
// errors: the kernel reports an error not yet seen to a descriptor opened after it. A
// recording whose finishing fails keeps the error in syncErr and stays a .part (or, when only
// the directory's fsync failed, is renamed but not known durable): Repair takes it at the
// next start.
func (r *Recorder) syncBatch(recs []*Recording, b *syncBuffers) {
	b.init()
	for _, rec := range recs {
		if rec.syncErr == nil {
			rec.syncErr = syncPath(rec.part)
		}
		if rec.syncErr == nil {
			final := strings.TrimSuffix(rec.part, partSuffix)
			rec.syncErr = renameNoReplace(rec.part, final)
			if rec.syncErr == nil {
				b.dirs[filepath.Dir(final)] = nil
			}
		}
	}
	for dir := range b.dirs {
		b.dirs[dir] = waitDescriptor(func() error { return fsutil.SyncDir(dir) })
	}
	for _, rec := range recs {
		if rec.syncErr == nil {
			rec.syncErr = b.dirs[filepath.Dir(strings.TrimSuffix(rec.part, partSuffix))]
		}
		if rec.syncErr != nil {
			rec.syncErr = fmt.Errorf("finish file: %w", rec.syncErr)
		} else if r.finished != nil {
			r.finished(rec.rel) // durable: the object store may take it (WithFinished)
		}
		rec.closeDone()
	}
	clear(b.dirs)
}

// plainSum is the hex sha256 of the plain WAV that the recording file f of dataLen audio
// bytes (finished: its last chunk sealed as the last) reads as, and the WAV's size. It
// decrypts every chunk, as Open and Read would.
func plainSum(f *os.File, aead cipher.AEAD, h []byte, dataLen int64, b *syncBuffers) (string, int64, error) {
	b.hash.Reset()
	var wav [headerSize]byte
	putHeader(&wav, dataLen)
	b.hash.Write(wav[:])
	var nb [12]byte
	chunks := max(1, (dataLen+chunkBytes-1)/chunkBytes)
	for i := range chunks {
		n := int64(chunkBytes)
		last := i == chunks-1
		if last {
			n = dataLen - i*chunkBytes
		}
		sealed := b.in[:n+tagSize]
		if _, err := f.ReadAt(sealed, encOffset(i)); err != nil {
			return "", 0, fmt.Errorf("read chunk %d: %w", i, err)
		}
		plain, err := aead.Open(b.plain[:0], nonce(&nb, uint32(i), last), sealed, h)
		if err != nil {
			return "", 0, fmt.Errorf("chunk %d: %w", i, ErrCorrupt)
		}
		b.hash.Write(plain)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(b.hash.Sum(sum[:0])), headerSize + dataLen, nil
}

// startWriteback starts writing f's dirty pages out without waiting (sync_file_range(2)
// SYNC_FILE_RANGE_WRITE), so that the batch's fsyncs find the data on its way and the
// file system can allocate and commit the batch's blocks together. Failing that, fsync
// does all the work; no error.
func startWriteback(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE) })
	}
}
