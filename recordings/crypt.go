package recordings

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/trackline/trackline/internal/fsutil"
	"github.com/trackline/trackline/store/keyring"
)

// The encrypted file (<call>.wav.enc) holds the WAV's audio, never its 44-byte header, which
// follows from the audio's length and is made again when the file is read:
//
//	header (176 bytes, in the clear, authenticated as every chunk's additional data)
//	  0   8  magic "TLREC\x00\x00\x01"
//	  8  32  salt: random, one per file
//	 40   4  plaintext bytes per chunk, big-endian (32000: one second of audio)
//	 44   1  length of the customer id, then the id, zero-padded to 64 bytes
//	109   1  length of the call id, then the id, zero-padded to 64 bytes
//	174   2  zero
//	chunk i at 176 + i*32016: AES-256-GCM of second i of the audio (32000 bytes, the last
//	  chunk fewer) and its 16-byte tag
//
// The file's key is HKDF-SHA256 of the customer's recording key (package keyring), the salt
// and the call id, so each file has a key of its own. Chunk i's nonce is the chunk index
// (big-endian, bytes 7-10) and a last-chunk flag (byte 11): the STREAM construction. A
// reordered, removed or appended chunk fails to open, and a file cut at a chunk boundary
// lacks its flagged last chunk, so truncation is found too (Open checks the last chunk).
// While a call is recorded every chunk is sealed without the flag; Finish (or Repair)
// seals the last one again with it, under its own nonce, so no nonce is used twice with
// different contents.
const (
	encMagic      = "TLREC\x00\x00\x01"
	encHeaderSize = 176
	saltSize      = 32
	tagSize       = 16
	sealedChunk   = chunkBytes + tagSize
	maxIDLen      = 64
	encSuffix     = ".wav.enc"
)

// newHeader makes the header of a new encrypted recording with a fresh salt.
func newHeader(customerID, callID string) *[encHeaderSize]byte {
	var h [encHeaderSize]byte
	copy(h[0:], encMagic)
	rand.Read(h[8 : 8+saltSize]) // never fails (crypto/rand, Go 1.24+)
	binary.BigEndian.PutUint32(h[40:], chunkBytes)
	h[44] = byte(len(customerID))
	copy(h[45:], customerID)
	h[109] = byte(len(callID))
	copy(h[110:], callID)
	return &h
}

// parseHeader checks a header and returns the ids it names.
func parseHeader(h []byte) (customerID, callID string, err error) {
	if len(h) < encHeaderSize || string(h[:8]) != encMagic {
		return "", "", fmt.Errorf("%w: not an encrypted recording", ErrCorrupt)
	}
	if binary.BigEndian.Uint32(h[40:]) != chunkBytes {
		return "", "", fmt.Errorf("%w: chunk size %d", ErrCorrupt, binary.BigEndian.Uint32(h[40:]))
	}
	cl, kl := int(h[44]), int(h[109])
	if cl > maxIDLen || kl > maxIDLen {
		return "", "", fmt.Errorf("%w: malformed header", ErrCorrupt)
	}
	customerID, callID = string(h[45:45+cl]), string(h[110:110+kl])
	if !fsutil.SafeID(customerID) || !fsutil.SafeID(callID) {
		return "", "", fmt.Errorf("%w: malformed header", ErrCorrupt)
	}
	return customerID, callID, nil
}

// fileAEAD is the cipher of the file with header h under key.
func fileAEAD(key *keyring.Key, h []byte, callID string) (cipher.AEAD, error) {
	k, err := key.FileKey(h[8:8+saltSize], callID)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// nonce of chunk i; last marks the file's last chunk.
func nonce(dst *[12]byte, i uint32, last bool) []byte {
	*dst = [12]byte{}
	binary.BigEndian.PutUint32(dst[7:], i)
	if last {
		dst[11] = 1
	}
	return dst[:]
}

// encOffset is where sealed chunk i starts in the file.
func encOffset(i int64) int64 { return encHeaderSize + i*sealedChunk }

// sealLast makes the file f a complete recording of dataLen audio bytes: chunk
// (dataLen-1)/chunkBytes, written unflagged and whole, is read back, cut to the audio it
// holds and sealed again as the last chunk; everything after it is cut off. With no audio
// the file gets one empty last chunk. The file is cut before the last chunk is written, so
// a crash in between leaves a file Repair reads up to the chunk before.
func sealLast(f *os.File, aead cipher.AEAD, h []byte, dataLen int64) error {
	return sealLastBuf(f, aead, h, dataLen, new([sealedChunk]byte), new([sealedChunk]byte))
}

// sealLastBuf is sealLast with the caller's buffers for the chunk read back and sealed again.
func sealLastBuf(f *os.File, aead cipher.AEAD, h []byte, dataLen int64, in, out *[sealedChunk]byte) error {
	var nb [12]byte
	if dataLen == 0 {
		if err := f.Truncate(encHeaderSize); err != nil {
			return err
		}
		_, err := f.WriteAt(aead.Seal(out[:0], nonce(&nb, 0, true), nil, h), encHeaderSize)
		return err
	}
	last := (dataLen - 1) / chunkBytes
	n := dataLen - last*chunkBytes
	sealed := in[:]
	if _, err := f.ReadAt(sealed, encOffset(last)); err != nil {
		return fmt.Errorf("read chunk %d: %w", last, err)
	}
	plain, err := aead.Open(sealed[:0], nonce(&nb, uint32(last), false), sealed, h)
	if err != nil {
		return fmt.Errorf("chunk %d: %w", last, ErrCorrupt)
	}
	if err := f.Truncate(encOffset(last)); err != nil {
		return err
	}
	_, err = f.WriteAt(aead.Seal(out[:0], nonce(&nb, uint32(last), true), plain[:n], h), encOffset(last))
	return err
}

// Reader reads a recording's plain WAV (44-byte header and audio) out of its encrypted file,
// decrypting one chunk at a time: Read and Seek (io.ReadSeeker) are what http.ServeContent
// and archive writers need. It is not safe for concurrent use.
type Reader struct {
	f          source
	aead       cipher.AEAD
	h          []byte // the file's header, every chunk's additional data
	customerID string
	callID     string
	modTime    time.Time
	wav        [headerSize]byte
	size       int64 // of the plain WAV
	chunks     int64
	lastLen    int64 // sealed length of the last chunk
	pos        int64
	cur        int64 // chunk in plain, -1 for none
	plain      []byte
	sealed     []byte
}

// Open opens a recording file for reading its plain WAV. keys must hold the key of the
// customer the file names; an error wrapping keyring.ErrNoKey means the key was destroyed
// (the customer was erased) and the file can never be read again. The file's last chunk is
// checked here, so a truncated or damaged end fails now (ErrCorrupt); a damaged chunk
// elsewhere fails the Read that reaches it.
func Open(keys *keyring.Keyring, path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := newReader(keys, f, st.Size(), st.ModTime())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open recording %s: %w", filepath.Base(path), err)
	}
	return r, nil
}

// source is what a Reader reads an encrypted recording from: a local file, or an object in
// the object store (object.go).
type source interface {
	io.ReaderAt
	io.Closer
}

// newReader reads the header and checks the last chunk of the encrypted recording of size
// bytes in f; it does not close f on error.
func newReader(keys *keyring.Keyring, f source, size int64, modTime time.Time) (*Reader, error) {
	h := make([]byte, encHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		return nil, fmt.Errorf("%w: no header", ErrCorrupt)
	}
	customerID, callID, err := parseHeader(h)
	if err != nil {
		return nil, err
	}
	key, err := keys.Lookup(customerID)
	if err != nil {
		return nil, err
	}
	aead, err := fileAEAD(key, h, callID)
	if err != nil {
		return nil, err
	}
	body := size - encHeaderSize
	if body < tagSize {
		return nil, fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	chunks := (body + sealedChunk - 1) / sealedChunk
	lastLen := body - (chunks-1)*sealedChunk
	if lastLen < tagSize {
		return nil, fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	dataLen := (chunks-1)*chunkBytes + lastLen - tagSize
	if dataLen > maxData {
		return nil, fmt.Errorf("%w: too long", ErrCorrupt)
	}
	r := &Reader{
		f: f, aead: aead, h: h, customerID: customerID, callID: callID, modTime: modTime,
		size: headerSize + dataLen, chunks: chunks, lastLen: lastLen, cur: -1,
		plain: make([]byte, 0, chunkBytes), sealed: make([]byte, sealedChunk),
	}
	putHeader(&r.wav, dataLen)
	if err := r.load(chunks - 1); err != nil {
		return nil, err
	}
	return r, nil
}

// load decrypts chunk i into r.plain.
func (r *Reader) load(i int64) error {
	if r.cur == i {
		return nil
	}
	n, last := int64(sealedChunk), i == r.chunks-1
	if last {
		n = r.lastLen
	}
	if _, err := r.f.ReadAt(r.sealed[:n], encOffset(i)); err != nil {
		return fmt.Errorf("read chunk %d: %w", i, err)
	}
	var nb [12]byte
	plain, err := r.aead.Open(r.plain[:0], nonce(&nb, uint32(i), last), r.sealed[:n], r.h)
	if err != nil {
		r.cur = -1
		return fmt.Errorf("chunk %d: %w", i, ErrCorrupt)
	}
	r.plain, r.cur = plain, i
	return nil
}

// Read reads the plain WAV.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.pos < r.size {
		if r.pos < headerSize {
			c := copy(p[n:], r.wav[r.pos:])
			n += c
			r.pos += int64(c)
			continue
		}
		d := r.pos - headerSize
		i := d / chunkBytes
		if err := r.load(i); err != nil {
			return n, err
		}
		c := copy(p[n:], r.plain[d-i*chunkBytes:])
		n += c
		r.pos += int64(c)
	}
	return n, nil
}

// Seek sets the offset in the plain WAV for the next Read (io.Seeker).
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.pos = offset
	return offset, nil
}

// Size is the length of the plain WAV in bytes.
func (r *Reader) Size() int64 { return r.size }

// ModTime is the file's modification time (when it was finished).
func (r *Reader) ModTime() time.Time { return r.modTime }

// CustomerID and CallID are the ids the file names in its header.
func (r *Reader) CustomerID() string { return r.customerID }

// CallID is the call the recording belongs to.
func (r *Reader) CallID() string { return r.callID }

// Duration is the play time of the audio.
func (r *Reader) Duration() time.Duration { return durationOf(r.size - headerSize) }

// Close closes the file (or the object).
func (r *Reader) Close() error { return r.f.Close() }
