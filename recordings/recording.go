package recordings

import (
	"crypto/cipher"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/trackline/trackline/g711"
)

// SamplesPerChunk is the length of a Chunk: one second at 8000 Hz.
const SamplesPerChunk = 8000

// Chunk is one second (8000 samples) of both channels, µ-law, aligned in time.
type Chunk struct {
	Index uint32                // second number since the recording started (0, 1, 2, ...)
	N     int                   // valid samples, 8000 except in a call's last chunk (0 < N <= 8000)
	L, R  [SamplesPerChunk]byte // L = caller, R = business line; µ-law; untouched samples are silence 0xFF
}

// Info describes a finished (or repaired) recording file. Size and SHA256 are of the plain
// WAV that Open reads (and the API serves), not of the encrypted file, which is 176 bytes
// plus 16 bytes a second larger and whose hash would change with nothing but its salt.
type Info struct {
	CustomerID string
	CallID     string
	Path       string        // absolute path of the .wav.enc
	Rel        string        // path relative to the Recorder's Dir, slash-separated
	Duration   time.Duration // play time of the audio
	Size       int64         // plain WAV size in bytes, header included
	SHA256     string        // hex sha256 of the plain WAV
	Dropped    int64         // chunks dropped while recording (0 for a repaired file)
}

// Recording states (Recording.state).
const (
	stateOpen uint32 = iota
	stateDone        // Finish or Abort called
)

// Recording is one call's recording in progress. NewChunk and Submit may be called from
// the packet path; Finish and Abort block and belong to the call's owner goroutine, after
// the packet path stopped submitting.
type Recording struct {
	r          *Recorder
	w          *worker
	customerID string
	callID     string
	part       string // absolute path of the .wav.enc.part
	rel        string // slash-separated path of the final .wav.enc relative to Dir
	f          *os.File
	aead       cipher.AEAD // the file's cipher
	h          []byte      // the file's header: every chunk's additional data

	state   atomic.Uint32
	aborted atomic.Bool // the worker skips the chunks still queued
	dropped atomic.Int64
	handed  atomic.Bool   // the worker handed the ended recording to the syncer
	queued  atomic.Uint32 // chunks Submit put in the worker's queue

	// Owned by the worker (f, from its opOpen) until it hands the recording to the syncer,
	// then by the syncer until it closes done; read by Finish after that. A worker that
	// ends an aborted or unmade recording closes done itself.
	next  uint32 // index of the next chunk expected
	end   int64  // audio bytes written, as the last chunk's N counts them
	ended bool   // the end op was handled: later chunks are dropped
	err   error  // first error making or writing the file; later chunks are dropped
	done  chan struct{}
	taken uint32 // chunks the worker took from its queue (queued counts them in)
	// sealedLast: the worker wrote the file's last chunk sealed as the last (it knew no
	// chunk could follow), so the syncer need not read it back and seal it again; later
	// chunks are dropped.
	sealedLast bool

	// Set by the syncer (syncer.go), read by Finish after done.
	sum     string // hex sha256 of the plain WAV
	size    int64  // plain WAV size
	syncErr error  // finishing the file failed: it stays a .part for Repair

	// then gets the outcome when done is closed (FinishAsync); nil for Finish. Set before
	// the end marker is queued, read by the goroutine that closes done.
	then func(Info, error)
}

// NewChunk returns a chunk for second index from the Recorder's free chunks, both channels
// silence (0xFF) and N = 8000. It does not allocate in steady state, garbage collections
// included (chunkPool).
func (rec *Recording) NewChunk(index uint32) *Chunk {
	c := rec.r.chunks.get()
	c.Index, c.N = index, SamplesPerChunk
	c.L[0] = g711.ULawSilence // doubling copies fill the rest
	for n := 1; n < len(c.L); n *= 2 {
		copy(c.L[n:], c.L[:n])
	}
	c.R = c.L
	return c
}

// Release gives back to the free chunks a chunk that will not be submitted; the caller must
// not touch it afterwards.
func (rec *Recording) Release(c *Chunk) {
	if c != nil {
		rec.r.chunks.put(c)
	}
}

// Submit queues c to this recording's worker without blocking, and hands c over: the
// caller must not touch it afterwards. When the worker's queue is full (or the recording
// or Recorder is closed) the chunk is dropped, counted and returned to the free chunks, and
// Submit returns false. It takes no mutex and never waits (its channel operations do not
// block), so it is safe on a locked OS thread that must not block.
func (rec *Recording) Submit(c *Chunk) bool {
	if c == nil {
		return false
	}
	if rec.state.Load() == stateOpen && !rec.r.closed.Load() {
		rec.queued.Add(1) // before the worker can take it: see worker.isLast
		select {
		case rec.w.q <- item{op: opChunk, rec: rec, c: c}:
			return true
		default:
			rec.queued.Add(^uint32(0))
		}
	}
	rec.drop(c)
	return false
}

// drop counts a chunk that will not be written and returns it to the free chunks.
func (rec *Recording) drop(c *Chunk) {
	rec.dropped.Add(1)
	rec.r.m.dropped.Inc()
	rec.r.chunks.put(c)
}

// Finish waits until the recording's queued chunks are written and the file is finished:
// the last chunk sealed as the last, the file fsynced, renamed from .wav.enc.part to
// .wav.enc and its directory fsynced, and the plain WAV hashed (decrypting the file back,
// which also proves it decrypts). The syncer does that for many recordings at once
// (syncer.go), so they share the file system's journal commits. A recording whose chunks
// were all dropped still becomes a valid (empty or silence-filled) WAV. After a write error
// the file is still finished with the audio written before it, and Info is returned
// together with the error. Finish after Finish or Abort gives ErrDone; after the
// Recorder's Close, ErrClosed (the .part stays for Repair).
func (rec *Recording) Finish() (Info, error) {
	if !rec.state.CompareAndSwap(stateOpen, stateDone) {
		return Info{}, fmt.Errorf("finish recording %s: %w", rec.callID, ErrDone)
	}
	if !rec.r.release(rec) {
		return Info{}, fmt.Errorf("finish recording %s: %w", rec.callID, ErrClosed)
	}
	if !rec.stop() && rec.f != nil {
		// The worker exited (Close) before it took the end marker: finish here.
		rec.finishHere()
	}
	return rec.result()
}

// FinishAsync is Finish without the wait: it queues the recording's end behind its chunks
// and returns, and fn gets what Finish would have returned, once, when the file is finished
// (or could not be): from the syncer's goroutine, or a writer's when there is nothing to
// finish. So a call's goroutine can end at the call's end while its recording waits for a
// batch's fsync, without holding its stack that long. fn must not block: it runs in the
// syncer, between batches' work; hand slow work (a store write) to another goroutine. fn
// runs on the caller's goroutine, before FinishAsync returns, only when the recording was
// finished or aborted already (ErrDone) or the Recorder is closing: then FinishAsync waits
// for its writer to exit and finishes the file itself, as Finish does. Like Finish, it
// waits for room in the writer's queue.
func (rec *Recording) FinishAsync(fn func(Info, error)) {
	if !rec.state.CompareAndSwap(stateOpen, stateDone) {
		fn(Info{}, fmt.Errorf("finish recording %s: %w", rec.callID, ErrDone))
		return
	}
	if !rec.r.release(rec) {
		fn(Info{}, fmt.Errorf("finish recording %s: %w", rec.callID, ErrClosed))
		return
	}
	// Under ending's read lock the writer cannot be told to quit: the end marker, once
	// queued, is in its queue before it drains that queue and exits (Recorder.Close).
	rec.r.ending.RLock()
	if !rec.r.closed.Load() {
		rec.then = fn
		rec.w.q <- item{op: opEnd, rec: rec}
		rec.r.ending.RUnlock()
		return
	}
	rec.r.ending.RUnlock()
	// Closing: the writer drains its queue (this recording's chunks too) and exits without
	// the end marker; finish the file here once it has.
	<-rec.w.exited
	if rec.f != nil {
		rec.finishHere()
	}
	fn(rec.result())
}

// finishHere finishes the file on the calling goroutine, when no writer will hand it to
// the syncer (it exited).
func (rec *Recording) finishHere() {
	rec.ended = true
	var b syncBuffers
	rec.r.finishBatch([]*Recording{rec}, &b)
}

// closeDone marks the recording done with and gives FinishAsync's function the outcome.
// Called once, by the goroutine that owns the recording then (its writer, or the syncer).
func (rec *Recording) closeDone() {
	close(rec.done)
	if fn := rec.then; fn != nil {
		rec.then = nil
		fn(rec.result())
	}
}

// result is the outcome of a recording done with (after done): what Finish returns.
func (rec *Recording) result() (Info, error) {
	if rec.f == nil {
		err := rec.err
		if err == nil {
			err = ErrClosed
		}
		return Info{}, fmt.Errorf("finish recording %s: %w", rec.callID, err)
	}
	if rec.syncErr != nil {
		return Info{}, fmt.Errorf("finish recording %s: %w", rec.callID, rec.syncErr)
	}
	info := Info{
		CustomerID: rec.customerID,
		CallID:     rec.callID,
		Path:       rec.part[:len(rec.part)-len(partSuffix)],
		Rel:        rec.rel,
		Duration:   durationOf(rec.end),
		Size:       rec.size,
		SHA256:     rec.sum,
		Dropped:    rec.dropped.Load(),
	}
	rec.r.m.written.Inc()
	if rec.err != nil {
		return info, fmt.Errorf("finish recording %s: audio after %s lost: %w", rec.callID, info.Duration, rec.err)
	}
	return info, nil
}

// Abort discards the recording: queued chunks are skipped and the .part is removed. It is
// for a call that turns out not to be recorded. Abort after Finish or Abort does nothing.
func (rec *Recording) Abort() {
	if !rec.state.CompareAndSwap(stateOpen, stateDone) {
		return
	}
	rec.aborted.Store(true)
	if rec.r.release(rec) {
		rec.stop()
		if rec.f != nil {
			rec.f.Close()
		}
	} // else Close closed the file already.
	os.Remove(rec.part)
}

// stop hands the worker the end marker behind the queued chunks and waits until the
// recording is done with: finished by the syncer, or (aborted, or its file unmade) released
// by the worker. It returns false when the worker exited (Close) without taking the marker:
// the worker no longer touches rec, and nothing finished it.
func (rec *Recording) stop() bool {
	select {
	case rec.w.q <- item{op: opEnd, rec: rec}:
	case <-rec.w.exited:
		return false
	}
	select {
	case <-rec.done:
		return true
	case <-rec.w.exited:
	}
	if rec.handed.Load() { // the syncer finishes what the workers handed it before it returns
		<-rec.done
		return true
	}
	select {
	case <-rec.done:
		return true
	default:
		return false
	}
}

// freeChunks is the most free chunks a Recorder keeps: 16 MB. In steady state the writers
// give back a chunk for each one the packet path takes, so a few suffice; the bound only
// caps what a peak of calls leaves behind.
const freeChunks = 1024

// chunkPool holds free chunks. Unlike a sync.Pool, which every garbage collection empties,
// it keeps them across collections: the packet loop, which takes a chunk per call-second,
// then never allocates one, so it never zeroes 16 KB or does the collector's marking work
// (an assist) while datagrams wait. Both ends never block.
type chunkPool chan *Chunk

// get returns a free chunk, or a new one when none is free; its contents are undefined.
func (p chunkPool) get() *Chunk {
	select {
	case c := <-p:
		return c
	default:
		return new(Chunk)
	}
}

// put keeps c for reuse, or leaves it to the collector when freeChunks are kept already.
func (p chunkPool) put(c *Chunk) {
	select {
	case p <- c:
	default:
	}
}
