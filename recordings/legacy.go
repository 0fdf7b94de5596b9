package recordings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trackline/trackline/internal/fsutil"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Builds before encryption at rest wrote each recording in the clear, as the plain WAV that
// Open now reads out of a .wav.enc:
//
//	<Dir>/<customer>/<yyyy>/<mm>/<dd>/<call>.wav       finished: the canonical 44-byte header
//	<Dir>/<customer>/<yyyy>/<mm>/<dd>/<call>.wav.part  being written, or left by a crash: a
//	                                                   header with sizes 0xFFFFFFFF, then
//	                                                   second k of the audio at 44 + k*32000
//
// and a store.Recording whose Path named the .wav, whose Size and SHA256 were those of the
// whole file: the same bytes, so the same values, as Size and SHA256 of the plain WAV of an
// encrypted recording. MigratePlain turns them into encrypted recordings. Its own files:
//
//	<call>.wav.enc.tmp  the encrypted file being written; renamed to .wav.enc once verified
//	<call>.wav.shred    a migrated plain file being zeroed and removed
const (
	tmpSuffix   = ".tmp"
	shredSuffix = ".shred"
)

// MigrateStats counts what MigratePlain did.
type MigrateStats struct {
	// Encrypted: plain recordings now encrypted, with their records naming the .wav.enc.
	Encrypted int
	// Repaired: of those, the .wav.part files of a crash, repaired first as the builds that
	// wrote them did, and linked to their call.
	Repaired int
	// Unlinked: of those, the ones with no call record to link them to (kept, encrypted, as
	// Repair keeps the recordings of erased calls).
	Unlinked int
	// Removed: plain files of customers that no longer exist, shredded.
	Removed int
	// Failed: plain files left as they were; the error says why.
	Failed int
}

// MigratePlain encrypts the recordings that builds before encryption at rest left in the
// clear under Dir, and points their records in db at the encrypted files. Run it at start,
// after Repair and before calls are recorded or the API serves.
//
// For each <call>.wav, and each <call>.wav.part (first repaired as those builds repaired
// it: header sizes fixed, the audio cut to whole frames, renamed to .wav), of a customer
// that exists in db:
//
//  1. the plain WAV is encrypted with the customer's key (made if it has none yet) into
//     <call>.wav.enc.tmp, its sha256 taken on the way; the file is fsynced, then decrypted
//     again and its sha256 compared, and compared with the record's SHA256 when it has one;
//  2. the .tmp is renamed to <call>.wav.enc and the directory fsynced;
//  3. the store.Recording's Path names the .wav.enc, and its Size and SHA256 are those of
//     the plain WAV (unchanged for a finished file); a repaired .part gets a record, linked
//     to its call, as RecoverRecordings links a repaired recording;
//  4. the plain file is renamed to <call>.wav.shred, its every byte overwritten with zeros
//     and fsynced, and removed.
//
// A SIGKILL at any point leaves the plain file with the old record, or the encrypted file
// with the new record, and the next run finishes the work: a .tmp or .shred left over is
// removed; a .wav.enc left next to a plain file the record still names is made again; a
// plain file next to the .wav.enc its record names (and that decrypts to the record's
// sha256) is shredded. A second run finds nothing to do.
//
// The plain files of a customer that is not in db (erased, or deleted at the end of its
// retention) are shredded: their data must not exist. A plain file that does not match its
// record (another customer or call, another path, another sha256), or is not a canonical
// WAV of this format, is left as it is and counted as failed; so is a .wav.part next to a
// .wav or .wav.enc of the same call. Files outside the layout are not touched. Failures of
// single files are joined into the error; the others are still migrated. The counts go to
// the Recorder's metrics (trackline_recordings_migrated_total, and
// trackline_recordings_plain_files for the plain files left).
func (r *Recorder) MigratePlain(ctx context.Context, db *store.DB) (MigrateStats, error) {
	m := migration{dir: r.dir, keys: r.keys, db: db}
	err := m.run(ctx)
	r.m.migrated.WithLabelValues("encrypted").Add(float64(m.st.Encrypted))
	r.m.migrated.WithLabelValues("removed").Add(float64(m.st.Removed))
	r.m.migrated.WithLabelValues("failed").Add(float64(m.st.Failed))
	r.m.plain.Set(float64(m.left))
	return m.st, err
}

// migration is one run of MigratePlain.
type migration struct {
	dir  string
	keys *keyring.Keyring
	db   *store.DB
	st   MigrateStats
	left int // plain files still there at the end
}

func (m *migration) run(ctx context.Context) error {
	var plain []string // .wav and .wav.part files, in walk order
	var errs []error
	walkErr := filepath.WalkDir(m.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == m.dir {
				return err
			}
			errs = append(errs, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		name := d.Name()
		switch {
		case strings.HasSuffix(name, encSuffix+tmpSuffix), strings.HasSuffix(name, wavSuffix+shredSuffix):
			// Left by a run cut short: the .tmp was never renamed into place (nothing
			// names it), the .shred's recording is encrypted and its record updated.
			if err := shred(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
			}
		case strings.HasSuffix(name, wavSuffix), strings.HasSuffix(name, wavSuffix+partSuffix):
			if _, _, ok := m.ids(path); ok {
				plain = append(plain, path)
			}
		}
		return nil
	})
	if walkErr != nil {
		return fmt.Errorf("migrate plain recordings: %w", walkErr)
	}
	for i, path := range plain {
		if err := ctx.Err(); err != nil {
			m.left += len(plain) - i
			errs = append(errs, err)
			break
		}
		if err := m.file(ctx, path); err != nil {
			m.st.Failed++
			m.left++
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("migrate plain recordings: %w", err)
	}
	return nil
}

// ids are the customer and call a plain file belongs to, by its path in the layout.
func (m *migration) ids(path string) (customerID, callID string, ok bool) {
	rel, err := filepath.Rel(m.dir, path)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 5 {
		return "", "", false
	}
	callID = strings.TrimSuffix(strings.TrimSuffix(parts[4], partSuffix), wavSuffix)
	return parts[0], callID, fsutil.SafeID(parts[0]) && fsutil.SafeID(callID)
}

// rel is path relative to the recordings directory, slash-separated, as records name files.
func (m *migration) rel(path string) string {
	rel, _ := filepath.Rel(m.dir, path) // path is under m.dir: the walk found it there
	return filepath.ToSlash(rel)
}

// owner is what the store holds of a recording's customer, record and call.
type owner struct {
	customer bool
	rec      *store.Recording
	call     *store.Call
}

func (m *migration) owner(customerID, callID string) (owner, error) {
	var o owner
	err := m.db.View(func(tx *store.Tx) error {
		_, err := tx.Customer(customerID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		o.customer = true
		if rec, err := tx.Recording(callID); err == nil {
			o.rec = &rec
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if c, err := tx.Call(callID); err == nil {
			o.call = &c
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	return o, err
}

// file migrates one plain .wav or .wav.part.
func (m *migration) file(ctx context.Context, path string) error {
	customerID, callID, _ := m.ids(path)
	o, err := m.owner(customerID, callID)
	if err != nil {
		return err
	}
	if !o.customer {
		if err := shred(path); err != nil {
			return err
		}
		if err := fsutil.SyncDir(filepath.Dir(path)); err != nil {
			return err
		}
		m.st.Removed++
		return nil
	}
	repaired := false
	if strings.HasSuffix(path, partSuffix) {
		if path, err = m.repairPlain(path); err != nil {
			return err
		}
		repaired = true
	}
	enc := strings.TrimSuffix(path, wavSuffix) + encSuffix
	relPlain, relEnc := m.rel(path), m.rel(enc)
	if rec := o.rec; rec != nil {
		if rec.CustomerID != customerID || rec.CallID != callID {
			return fmt.Errorf("%w: its record is of %s/%s", ErrCorrupt, rec.CustomerID, rec.CallID)
		}
		if rec.Path != relPlain && rec.Path != relEnc {
			return fmt.Errorf("%w: its record names another file, %s", ErrCorrupt, rec.Path)
		}
		if rec.Path == relEnc && rec.SHA256 != "" {
			// A run was cut short after the record was updated: the encrypted file is the
			// recording, if it still decrypts to what the record says.
			if sum, size, err := encSum(m.keys, enc, customerID, callID); err == nil && sum == rec.SHA256 && size == rec.Size {
				if err := shredPlain(path); err != nil {
					return err
				}
				m.st.Encrypted++
				return nil
			}
		}
	}
	if c := o.call; c != nil && c.CustomerID != customerID {
		return fmt.Errorf("%w: its call is of customer %s", ErrCorrupt, c.CustomerID)
	}

	// 1. Encrypt into the .tmp and verify it.
	tmp := enc + tmpSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	sum, size, err := encryptPlain(m.keys, path, tmp, customerID, callID)
	if err == nil {
		var gotSum string
		var gotSize int64
		gotSum, gotSize, err = encSum(m.keys, tmp, customerID, callID)
		if err == nil && (gotSum != sum || gotSize != size) {
			err = fmt.Errorf("%w: the encrypted file does not decrypt to the plain one", ErrCorrupt)
		}
	}
	if err == nil && o.rec != nil && o.rec.SHA256 != "" && o.rec.SHA256 != sum {
		err = fmt.Errorf("%w: its sha256 is not its record's", ErrCorrupt)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// 2. Into place.
	if err := os.Rename(tmp, enc); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := fsutil.SyncDir(filepath.Dir(enc)); err != nil {
		return err
	}
	// 3. The record.
	now := time.Now().UTC()
	linked := false
	err = m.db.Write(ctx, func(tx *store.Tx) error {
		linked = false
		rec, err := tx.Recording(callID)
		switch {
		case err == nil:
		case !errors.Is(err, store.ErrNotFound):
			return err
		default:
			c, err := tx.Call(callID)
			if errors.Is(err, store.ErrNotFound) {
				return nil // no call to link it to: the file is kept, encrypted
			}
			if err != nil {
				return err
			}
			rec = store.Recording{ID: callID, CustomerID: customerID, CallID: callID, Created: now}
			c.RecordingID = rec.ID
			if err := tx.PutCall(&c); err != nil {
				return err
			}
		}
		rec.Path, rec.Size, rec.SHA256 = relEnc, size, sum
		rec.Duration = durationOf(size - headerSize)
		linked = true
		return tx.PutRecording(&rec)
	})
	if err != nil {
		return fmt.Errorf("update its record: %w", err)
	}
	// 4. The plain file goes.
	if err := shredPlain(path); err != nil {
		return err
	}
	m.st.Encrypted++
	if repaired {
		m.st.Repaired++
	}
	if !linked {
		m.st.Unlinked++
	}
	return nil
}

// repairPlain makes a plain .wav.part that a crash left a finished .wav, as the builds that
// wrote it did: the audio is everything after the 44-byte header, cut to whole stereo
// frames; the header gets its sizes; the file is fsynced and renamed. A .part whose call
// has a .wav or .wav.enc already is left alone (ErrExists).
func (m *migration) repairPlain(part string) (string, error) {
	final := strings.TrimSuffix(part, partSuffix)
	enc := strings.TrimSuffix(final, wavSuffix) + encSuffix
	for _, p := range []string{final, enc} {
		if _, err := os.Lstat(p); err == nil {
			return "", fmt.Errorf("%w: %s", ErrExists, filepath.Base(p))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return "", err
	}
	dataLen := min(max(st.Size()-headerSize, 0)/frameSize*frameSize, maxData)
	var h [headerSize]byte
	putHeader(&h, dataLen)
	_, err = f.WriteAt(h[:], 0)
	if err == nil {
		err = f.Truncate(headerSize + dataLen)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(part, final); err != nil {
		return "", err
	}
	return final, fsutil.SyncDir(filepath.Dir(final))
}

// encryptPlain writes the plain WAV at src, which must be a canonical WAV of this format
// (44-byte header, stereo 8 kHz PCM16), encrypted for customerID and callID into the new
// file dst, fsynced. It answers the sha256 and size of src.
func encryptPlain(keys *keyring.Keyring, src, dst, customerID, callID string) (string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return "", 0, err
	}
	dataLen := st.Size() - headerSize
	if dataLen < 0 || dataLen%frameSize != 0 || dataLen > maxData {
		return "", 0, fmt.Errorf("%w: %d bytes is no stereo 8 kHz PCM16 WAV", ErrCorrupt, st.Size())
	}
	var h, want [headerSize]byte
	if _, err := io.ReadFull(in, h[:]); err != nil {
		return "", 0, err
	}
	putHeader(&want, dataLen)
	if h != want {
		return "", 0, fmt.Errorf("%w: not the WAV header of this format", ErrCorrupt)
	}
	key, err := keys.Get(customerID)
	if err != nil {
		return "", 0, err
	}
	eh := newHeader(customerID, callID)
	aead, err := fileAEAD(key, eh[:], callID)
	if err != nil {
		return "", 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return "", 0, err
	}
	sum := sha256.New()
	sum.Write(h[:])
	_, err = out.Write(eh[:])
	plain, sealed := make([]byte, chunkBytes), make([]byte, 0, sealedChunk)
	var nb [12]byte
	chunks := max((dataLen+chunkBytes-1)/chunkBytes, 1) // no audio: one empty last chunk
	for i := int64(0); i < chunks && err == nil; i++ {
		n := min(dataLen-i*chunkBytes, chunkBytes)
		if _, err = io.ReadFull(in, plain[:n]); err != nil {
			break
		}
		sum.Write(plain[:n])
		sealed = aead.Seal(sealed[:0], nonce(&nb, uint32(i), i == chunks-1), plain[:n], eh[:])
		_, err = out.Write(sealed)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(sum.Sum(nil)), st.Size(), nil
}

// encSum is the sha256 and size of the plain WAV in the encrypted file at path, which must
// be the recording of customerID and callID.
func encSum(keys *keyring.Keyring, path, customerID, callID string) (string, int64, error) {
	r, err := Open(keys, path)
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	if r.CustomerID() != customerID || r.CallID() != callID {
		return "", 0, fmt.Errorf("%w: the file is another call's", ErrCorrupt)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// shredPlain removes a plain recording whose encrypted copy is in place and named by its
// record: renamed to .shred first (so that a crash never leaves a half-zeroed file under
// the recording's name), then zeroed, fsynced and removed.
func shredPlain(path string) error {
	dir, dead := filepath.Dir(path), path+shredSuffix
	if err := os.Rename(path, dead); err != nil {
		return err
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	if err := shred(dead); err != nil {
		return err
	}
	return fsutil.SyncDir(dir)
}
