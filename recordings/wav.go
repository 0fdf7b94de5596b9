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
// A dataLen of -1 writes the placeholder sizes used while recording (0xFFFFFFFF, the
// "unknown length" convention of streaming writers).
func putHeader(h *[headerSize]byte, dataLen int64) {
	riff, data := uint32(0xFFFFFFFF), uint32(0xFFFFFFFF)
	if dataLen >= 0 {
		riff, data = uint32(36+dataLen), uint32(dataLen)
	}
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], riff)
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)                   // fmt chunk size
	le.PutUint16(h[20:], 1)                    // PCM
	le.PutUint16(h[22:], channels)             //
	le.PutUint32(h[24:], sampleRate)           //
	le.PutUint32(h[28:], sampleRate*frameSize) // byte rate
	le.PutUint16(h[32:], frameSize)            // block align
	le.PutUint16(h[34:], 16)                   // bits per sample
	copy(h[36:], "data")
	le.PutUint32(h[40:], data)
}

// durationOf is the play time of dataLen bytes of stereo 8 kHz PCM16.
func durationOf(dataLen int64) time.Duration {
	return time.Duration(dataLen/frameSize) * time.Second / sampleRate
}

// finalize turns the open .part file f of dataLen data bytes into the finished .wav:
// header sizes fixed, length cut to header+data, fsync, close, rename, directory fsync.
// It closes f in every case.
func finalize(f *os.File, part string, dataLen int64) error {
	var h [headerSize]byte
	putHeader(&h, dataLen)
	_, err := f.WriteAt(h[:], 0)
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
		return err
	}
	final := strings.TrimSuffix(part, partSuffix)
	if err := os.Rename(part, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileSHA256 is the hex sha256 of the file at path, and its size.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Repair turns every *.wav.part under dir, left by a crash (SIGKILL, power loss), into a
// valid .wav and returns an Info for each. The audio is taken to be everything after the
// 44-byte header, cut down to whole stereo frames (a torn tail is truncated); a .part
// shorter than the header gets a fresh header and no audio. CustomerID and CallID come
// from the path (<customer>/<yyyy>/<mm>/<dd>/<call>.wav.part). Finished .wav files are
// never touched; a .part whose .wav already exists is left alone and reported as an error.
//
// Repair must not run on a directory a Recorder is writing to (use Recorder.Repair, which
// skips the recordings it has open). Failures of single files are joined into the error;
// the others are still repaired.
func Repair(dir string) ([]Info, error) {
	return repair(dir, nil)
}

func repair(dir string, skip func(path string) bool) ([]Info, error) {
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
		if !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), wavSuffix+partSuffix) {
			return nil
		}
		if skip != nil && skip(path) {
			return nil
		}
		info, err := repairFile(abs, path)
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

func repairFile(root, part string) (Info, error) {
	final := strings.TrimSuffix(part, partSuffix)
	if _, err := os.Lstat(final); err == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrExists, final)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Info{}, err
	}
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		return Info{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return Info{}, err
	}
	dataLen := max(st.Size()-headerSize, 0)
	dataLen = min(dataLen/frameSize*frameSize, maxData)
	if err := finalize(f, part, dataLen); err != nil {
		return Info{}, err
	}
	info := infoFor(root, final)
	info.Duration = durationOf(dataLen)
	info.SHA256, info.Size, err = fileSHA256(final)
	if err != nil {
		return Info{}, err
	}
	return info, nil
}

// infoFor fills the names of an Info from a recording's path under root.
func infoFor(root, path string) Info {
	info := Info{Path: path, CallID: strings.TrimSuffix(filepath.Base(path), wavSuffix)}
	if rel, err := filepath.Rel(root, path); err == nil {
		info.Rel = filepath.ToSlash(rel)
		if parts := strings.Split(info.Rel, "/"); len(parts) == 5 {
			info.CustomerID = parts[0]
		}
	}
	return info
}
