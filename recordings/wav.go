package recordings

import (
	"crypto/sha256"
	"encoding/binary"
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
	"github.com/trackline/trackline/store/keyring"
)

// The on-disk format: canonical 44-byte header, PCM, 2 channels, 8000 Hz, 16 bits.
const (
	headerSize  = 44
	sampleRate  = 8000
	channels    = 2
	frameSize   = channels * 2                             // bytes per stereo frame
	chunkFrames = sampleRate                               // frames per one-second chunk
	chunkBytes  = chunkFrames * frameSize                  // 32000 bytes on disk per second
	maxData     = (1<<32 - 1 - 36) / frameSize * frameSize // largest data size a RIFF header can state
	partSuffix  = ".part"
	wavSuffix   = ".wav"
)

// putHeader fills h with a canonical WAV header for dataLen bytes of stereo 8 kHz PCM16.
func putHeader(h *[headerSize]byte, dataLen int64) {
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(36+dataLen))
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)                   // fmt chunk size
	le.PutUint16(h[20:], 1)                    // PCM
	le.PutUint16(h[22:], channels)             //
	le.PutUint32(h[24:], sampleRate)           //
	le.PutUint32(h[28:], sampleRate*frameSize) // byte rate
	le.PutUint16(h[32:], frameSize)            // block align
	le.PutUint16(h[34:], 16)                   // bits per sample
	copy(h[36:], "data")
	le.PutUint32(h[40:], uint32(dataLen))
}

// durationOf is the play time of dataLen bytes of stereo 8 kHz PCM16.
func durationOf(dataLen int64) time.Duration {
	return time.Duration(dataLen/frameSize) * time.Second / sampleRate
}

// plainSHA256 is the hex sha256 of the plain WAV in the recording file at path, and its size.
func plainSHA256(keys *keyring.Keyring, path string) (string, int64, error) {
	r, err := Open(keys, path)
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Repair turns every *.wav.enc.part under dir, left by a crash (SIGKILL, power loss), into a
// valid .wav.enc and returns an Info for each. The audio kept is the longest run of chunks,
// from the first, that decrypt and authenticate (the chunks handed to the kernel before a
// SIGKILL all do; a torn or lost write after a power loss ends the run there); its last
// chunk is sealed again as the last. A .part shorter than its header gets a fresh header
// and no audio. The customer's key must be in keys. CustomerID and CallID come from the
// file's header (from the path, <customer>/<yyyy>/<mm>/<dd>/<call>.wav.enc.part, when the
// header is torn). Finished files are never touched; a .part whose .wav.enc already exists
// is left alone and reported as an error.
//
// Repair must not run on a directory a Recorder is writing to (use Recorder.Repair, which
// skips the recordings it has open). Failures of single files are joined into the error;
// the others are still repaired.
func Repair(dir string, keys *keyring.Keyring) ([]Info, error) {
	return repair(dir, keys, nil)
}

func repair(dir string, keys *keyring.Keyring, skip func(path string) bool) ([]Info, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("repair recordings: %w", err)
	}
	var infos []Info
	var errs []error
	walkErr := filepath.WalkDir(abs, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == abs {
				return err
			}
			errs = append(errs, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), encSuffix+partSuffix) {
			return nil
		}
		if skip != nil && skip(path) {
			return nil
		}
		info, err := repairFile(abs, keys, path)
		if err != nil {
			errs = append(errs, fmt.Errorf("repair %s: %w", path, err))
			return nil
		}
		infos = append(infos, info)
		return nil
	})
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	if err := errors.Join(errs...); err != nil {
		return infos, fmt.Errorf("repair recordings: %w", err)
	}
	return infos, nil
}

func repairFile(root string, keys *keyring.Keyring, part string) (Info, error) {
	final := strings.TrimSuffix(part, partSuffix)
	if _, err := os.Lstat(final); err == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrExists, final)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Info{}, err
	}
	info := infoFor(root, final)
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		return Info{}, err
	}
	if err := salvage(f, keys, info.CustomerID, info.CallID); err != nil {
		f.Close()
		return Info{}, err
	}
	if err := finalizeRecovered(f, part); err != nil {
		return Info{}, err
	}
	info.SHA256, info.Size, err = plainSHA256(keys, final)
	if err != nil {
		return Info{}, err
	}
	info.Duration = durationOf(info.Size - headerSize)
	return info, nil
}

// salvage makes the crashed recording f complete: the longest run of chunks that open is
// kept and its last chunk sealed as the last. customerID and callID come from the path:
// the header must name the same, and they make a new header when it is torn.
func salvage(f *os.File, keys *keyring.Keyring, customerID, callID string) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := make([]byte, encHeaderSize)
	if st.Size() < encHeaderSize {
		// The header never reached the disk whole: nothing can be decrypted, start afresh.
		if !fsutil.SafeID(customerID) || !fsutil.SafeID(callID) {
			return fmt.Errorf("%w: torn header and no ids in the path", ErrCorrupt)
		}
		key, err := keys.Lookup(customerID)
		if err != nil {
			return err
		}
		h = newHeader(customerID, callID)[:]
		aead, err := fileAEAD(key, h, callID)
		if err != nil {
			return err
		}
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.WriteAt(h, 0); err != nil {
			return err
		}
		return sealLast(f, aead, h, 0)
	}
	if _, err := f.ReadAt(h, 0); err != nil {
		return err
	}
	hc, hk, err := parseHeader(h)
	if err != nil {
		return err
	}
	if hc != customerID || hk != callID {
		return fmt.Errorf("%w: the header names %s/%s", ErrCorrupt, hc, hk)
	}
	key, err := keys.Lookup(customerID)
	if err != nil {
		return err
	}
	aead, err := fileAEAD(key, h, callID)
	if err != nil {
		return err
	}
	// Walk the chunks from the first while they open: unflagged ones while recording,
	// then possibly the flagged last one that Finish wrote before the crash.
	sealed, plain := make([]byte, sealedChunk), make([]byte, 0, chunkBytes)
	var nb [12]byte
	var dataLen int64
	for i := int64(0); ; i++ {
		off := encOffset(i)
		n := min(st.Size()-off, sealedChunk)
		if n < tagSize {
			break
		}
		if _, err := f.ReadAt(sealed[:n], off); err != nil {
			return err
		}
		if n == sealedChunk {
			if _, err := aead.Open(plain[:0], nonce(&nb, uint32(i), false), sealed, h); err == nil {
				dataLen += chunkBytes
				continue
			}
		}
		if _, err := aead.Open(plain[:0], nonce(&nb, uint32(i), true), sealed[:n], h); err == nil {
			// Finish had sealed the last chunk: the file is whole up to its end.
			return f.Truncate(off + n)
		}
		break
	}
	return sealLast(f, aead, h, dataLen)
}

// finalizeRecovered fsyncs and closes a repaired .part, renames it and fsyncs the directory.
func finalizeRecovered(f *os.File, part string) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	final := strings.TrimSuffix(part, partSuffix)
	if err := os.Rename(part, final); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(final))
}

// infoFor fills the names of an Info from a recording's path under root.
func infoFor(root, path string) Info {
	info := Info{Path: path, CallID: strings.TrimSuffix(filepath.Base(path), encSuffix)}
	if rel, err := filepath.Rel(root, path); err == nil {
		info.Rel = filepath.ToSlash(rel)
		if parts := strings.Split(info.Rel, "/"); len(parts) == 5 {
			info.CustomerID = parts[0]
		}
	}
	return info
}
