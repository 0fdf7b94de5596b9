package recordings

import (
	"encoding/binary"
	"time"

	"github.com/trackline/trackline/g711"
)

type opKind uint8

const (
	opUnknown opKind = iota
	opOpen           // create rec's file (Recorder.create)
	opChunk          // write c
	opEnd            // no more chunks for rec: mark it ended, hand it to the syncer (or, aborted, close rec.done)
	opSync           // close done, then wait for release if set (tests and benchmarks)
)

// item is one queue entry; sent by value so queueing allocates nothing.
type item struct {
	op      opKind
	rec     *Recording
	c       *Chunk
	done    chan struct{}
	release chan struct{}
}

// worker owns one queue and writes the chunks of the recordings assigned to it, in order.
type worker struct {
	r      *Recorder
	q      chan item
	exited chan struct{} // closed when run returns
	buf    [chunkBytes]byte
	sealed [sealedChunk]byte
	nonce  [12]byte
}

// run handles items until the Recorder closes, then drains what is queued and returns.
func (w *worker) run() {
	defer w.r.wg.Done()
	defer close(w.exited)
	for {
		select {
		case it := <-w.q:
			w.handle(it)
		case <-w.r.quit:
			for {
				select {
				case it := <-w.q:
					w.handle(it)
				default:
					return
				}
			}
		}
	}
}

func (w *worker) handle(it item) {
	switch it.op {
	case opOpen:
		w.r.create(it.rec)
	case opChunk:
		it.rec.taken++
		w.write(it.rec, it.c)
	case opEnd:
		rec := it.rec
		rec.ended = true
		if rec.aborted.Load() || rec.f == nil {
			rec.closeDone() // nothing to finish: Abort removes the file, Finish reports rec.err
			return
		}
		rec.handed.Store(true)
		w.r.syncq <- rec // the syncer never waits for a worker: this wait is short
	case opSync:
		close(it.done)
		if it.release != nil {
			<-it.release
		}
	}
}

// write encrypts chunk c of rec and puts it at its place in the file: first silence for any
// seconds missing since the last chunk, so that a dropped chunk does not shift later audio.
// Every chunk is sealed whole (32000 bytes) and without the last-chunk flag; Finish cuts and
// flags the last one.
func (w *worker) write(rec *Recording, c *Chunk) {
	if rec.aborted.Load() {
		w.r.chunks.put(c)
		return
	}
	if rec.ended || rec.sealedLast || rec.err != nil || rec.f == nil || c.Index < rec.next || c.Index >= w.r.maxChunks ||
		c.N <= 0 || c.N > SamplesPerChunk {
		rec.drop(c)
		return
	}
	last := isLast(rec)
	start := time.Now()
	var written int
	for ; rec.next < c.Index; rec.next++ {
		n, err := rec.f.WriteAt(w.seal(rec, rec.next, w.r.silence, false), encOffset(int64(rec.next)))
		written += n
		if err != nil {
			rec.err = err
			break
		}
		rec.end = int64(rec.next+1) * chunkBytes
	}
	if rec.err == nil {
		decode(&w.buf, c)
		plain := w.buf[:]
		if last {
			plain = plain[:c.N*frameSize] // cut and flagged now, as Finish would seal it
		}
		n, err := rec.f.WriteAt(w.seal(rec, c.Index, plain, last), encOffset(int64(c.Index)))
		written += n
		if err != nil {
			rec.err = err
		} else {
			rec.next = c.Index + 1
			rec.end = int64(c.Index)*chunkBytes + int64(c.N)*frameSize
			rec.sealedLast = last
		}
	}
	w.r.m.bytes.Add(float64(written))
	w.r.m.writeSeconds.Observe(time.Since(start).Seconds())
	if rec.err != nil {
		rec.drop(c) // its audio did not make it to the file
		return
	}
	w.r.chunks.put(c)
}

// isLast tells whether the chunk the worker has just taken for rec is its recording's last:
// the recording is finished or aborted (Finish, FinishAsync or Abort ran, which the owner does
// only after the packet path stopped submitting, so every Submit counted in queued happened
// before) and the worker has taken every chunk queued. Then the chunk is sealed as the last
// at once, and the syncer does not read it back to seal it again (sealLast). A chunk that
// races Finish against that rule is dropped, not written after the last (sealedLast).
func isLast(rec *Recording) bool {
	return rec.state.Load() == stateDone && rec.taken == rec.queued.Load()
}

// seal encrypts the plain audio of second i of rec into the worker's buffer; last flags it
// as the recording's last chunk.
func (w *worker) seal(rec *Recording, i uint32, plain []byte, last bool) []byte {
	return rec.aead.Seal(w.sealed[:0], nonce(&w.nonce, i, last), plain, rec.h)
}

// decode expands both µ-law channels of c into interleaved little-endian PCM16 frames.
func decode(buf *[chunkBytes]byte, c *Chunk) {
	tab := &g711.ULawToLinear
	for i := range SamplesPerChunk {
		l, r := uint16(tab[c.L[i]]), uint16(tab[c.R[i]])
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(l)|uint32(r)<<16)
	}
}
