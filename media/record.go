package media

import (
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/recordings"
)

const chunkSamples = 8000 // one second: a recordings.Chunk

// tap places each leg's audio into the recording's one-second chunks, at the position its
// RTP timestamp gives: each channel's timestamps are tied to the recording's clock by the
// first packet (and again after a new SSRC or a jump), so the channels stay aligned and loss,
// hold and silence suppression leave silence. It only copies bytes (A-law through a table
// into µ-law); decoding and disk writes happen in package recordings. Guarded by the
// session's mu.
type tap struct {
	r     *recordings.Recording
	start int64 // monotonic time of sample 0
	k     uint32
	cur   *recordings.Chunk // second k
	next  *recordings.Chunk // second k+1
	// done holds the chunks the window has left, until the loop hands them to the writers
	// in one go with every other session's (handOver): one wake-up of the writers per
	// hand-over rather than one per chunk.
	done []*recordings.Chunk
	ch   [2]struct {
		base, ssrc uint32
		ok         bool
	}
}

// maxSkew is how far a packet's timestamp may stray from the recording clock before the
// channel is re-anchored (a new talk spurt after hold, a clock jump).
const maxSkew = 2 * chunkSamples

func newTap(r *recordings.Recording, now int64) *tap {
	return &tap{r: r, start: now, cur: r.NewChunk(0), next: r.NewChunk(1)}
}

func (t *tap) clock(now int64) uint32 { return uint32((now - t.start) / 125_000) }

// write copies one packet's payload of side's channel.
func (t *tap) write(side int, ssrc, ts uint32, payload []byte, law g711.Law, now int64) {
	clock := t.clock(now)
	c := &t.ch[side]
	if !c.ok || c.ssrc != ssrc {
		c.base, c.ssrc, c.ok = ts-clock, ssrc, true
	}
	pos := ts - c.base
	if d := int32(pos - clock); d > maxSkew || d < -maxSkew {
		c.base, pos = ts-clock, clock
	}
	for len(payload) > 0 {
		chunk := t.chunk(pos / chunkSamples)
		off := pos % chunkSamples
		n := min(uint32(len(payload)), chunkSamples-off)
		if chunk != nil {
			dst := chunk.L[off : off+n]
			if side == callee {
				dst = chunk.R[off : off+n]
			}
			if law == g711.ALaw {
				for i, b := range payload[:n] {
					dst[i] = g711.ALawToULaw[b]
				}
			} else {
				copy(dst, payload[:n])
			}
		}
		payload = payload[n:]
		pos += n
	}
}

// chunk returns the chunk of second idx, moving the window forward as needed; nil when idx
// is already written (a packet later than the window).
func (t *tap) chunk(idx uint32) *recordings.Chunk {
	switch {
	case idx == t.k:
		return t.cur
	case idx == t.k+1:
		return t.next
	case idx < t.k:
		return nil
	}
	t.advance(idx)
	return t.next
}

// advance moves the window so that second idx is its later chunk.
func (t *tap) advance(idx uint32) {
	if idx == t.k+2 {
		t.done = append(t.done, t.cur)
		t.cur, t.k = t.next, t.k+1
		t.next = t.r.NewChunk(t.k + 1)
		return
	}
	// A jump: hand over both; the writer fills the gap with silence.
	t.done = append(t.done, t.cur, t.next)
	t.k = idx - 1
	t.cur, t.next = t.r.NewChunk(t.k), t.r.NewChunk(idx)
}

// flush hands over seconds the clock has left behind, so a silent call is written as it goes.
func (t *tap) flush(now int64) {
	if idx := t.clock(now) / chunkSamples; idx >= t.k+3 {
		t.advance(idx - 1)
	}
}

// handOver submits the chunks the window has left.
func (t *tap) handOver() {
	for i, c := range t.done {
		t.r.Submit(c)
		t.done[i] = nil
	}
	t.done = t.done[:0]
}

// tapEnd is a recording whose last chunks are handed over, to be finished off the loop.
type tapEnd struct{ r *recordings.Recording }

// close hands over the chunks up to now, the last one cut at the sample the call ended.
func (t *tap) close(now int64) *tapEnd {
	t.handOver()
	total := t.clock(now)
	last, n := total/chunkSamples, int(total%chunkSamples)
	for _, c := range []*recordings.Chunk{t.cur, t.next} {
		switch {
		case c.Index < last:
			t.r.Submit(c)
		case c.Index == last && n > 0:
			c.N = n
			t.r.Submit(c)
		default:
			t.r.Release(c)
		}
	}
	t.cur, t.next = nil, nil
	return &tapEnd{r: t.r}
}

func (e *tapEnd) finish() (recordings.Info, error) { return e.r.Finish() }
