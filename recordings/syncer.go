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

// syncer finishes the recordings the workers ended, in batches: everything that ended while
// it finished the last batch is the next one. Like the store's group commit, a batch shares
// the file system's work: the files' writeback is started for all of them before the first
// fsync, so that one journal commit covers them, and each directory is fsynced once after
// all the batch's renames in it. It returns when syncq is closed and drained (Close).
func (r *Recorder) syncer() {
	defer close(r.syncDone)
	batch := make([]*Recording, 0, maxSyncBatch)
	var b syncBuffers
	gather := time.NewTimer(syncGather)
	for rec := range r.syncq {
		batch = append(batch[:0], rec)
		// Others end within a few milliseconds at any real call rate: waiting that long
		// for them makes each batch's directory fsyncs do for many more recordings. The
		// first of a batch waits at most syncGather longer for its file to be finished.
		gather.Reset(syncGather)
	fill:
		for len(batch) < maxSyncBatch {
			select {
			case rec, ok := <-r.syncq:
				if !ok {
					break fill
				}
				batch = append(batch, rec)
			case <-gather.C:
				break fill
			}
		}
		r.finishBatch(batch, &b)
		clear(batch)
	}
}

// syncBuffers are the syncer's scratch space, reused from batch to batch.
type syncBuffers struct {
	in, out [sealedChunk]byte
	plain   []byte
	hash    hash.Hash
	dirs    map[string]error
}

// finishBatch finishes each ended recording of recs (their files made and written): it seals
// the last chunk as the last, hashes the plain WAV by decrypting the file back, fsyncs,
// closes and renames the file and fsyncs its directory, then closes done. A recording whose
// finishing fails keeps the error in syncErr and stays a .part (or, when only the directory's
// fsync failed, is renamed but not known durable): Repair takes it at the next start.
func (r *Recorder) finishBatch(recs []*Recording, b *syncBuffers) {
	if b.hash == nil {
		b.hash = sha256.New()
		b.plain = make([]byte, 0, chunkBytes)
		b.dirs = make(map[string]error)
	}
	for _, rec := range recs {
		err := sealLastBuf(rec.f, rec.aead, rec.h, rec.end, &b.in, &b.out)
		if err == nil {
			rec.sum, rec.size, err = plainSum(rec.f, rec.aead, rec.h, rec.end, b)
		}
		if err == nil {
			startWriteback(rec.f)
		}
		rec.syncErr = err
	}
	for _, rec := range recs {
		if rec.syncErr == nil {
			rec.syncErr = rec.f.Sync()
		}
		if err := rec.f.Close(); rec.syncErr == nil {
			rec.syncErr = err
		}
		if rec.syncErr == nil {
			final := strings.TrimSuffix(rec.part, partSuffix)
			rec.syncErr = os.Rename(rec.part, final)
			if rec.syncErr == nil {
				b.dirs[filepath.Dir(final)] = nil
			}
		}
	}
	for dir := range b.dirs {
		b.dirs[dir] = fsutil.SyncDir(dir)
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
