package recordings

import (
	"runtime"
	"testing"
)

// TestHotPathAllocs: taking, filling and submitting a chunk, and the worker writing it,
// allocate nothing once chunks are free.
func TestHotPathAllocs(t *testing.T) {
	r, _ := newTestRecorder(t, Options{Workers: 1, QueueLen: 512})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Abort()
	var i uint32
	allocs := testing.AllocsPerRun(200, func() {
		c := rec.NewChunk(i)
		c.L[0], c.R[0] = 0x80, 0x00
		if !rec.Submit(c) {
			t.Fatal("chunk dropped")
		}
		i++
		for len(rec.w.q) > 0 { // let the worker take it, so its write is counted too
			runtime.Gosched()
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per chunk, want 0", allocs)
	}
}

// TestFreeChunksOutlastCollections: a chunk given back is still there to take after
// garbage collections (a sync.Pool would have been emptied by the second), so the packet
// path does not allocate chunks after each collection; and no more than freeChunks are kept.
func TestFreeChunksOutlastCollections(t *testing.T) {
	r, _ := newTestRecorder(t, Options{Workers: 1})
	rec, err := r.Open("cust", "call", day)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Abort()
	// The same chunk comes back: counting the process's allocations instead would count
	// the collector's own (it failed so, with 4 allocations a round, under Go 1.26).
	c := rec.NewChunk(0)
	for range 5 {
		rec.Release(c)
		runtime.GC()
		runtime.GC()
		if got := rec.NewChunk(1); got != c {
			t.Fatal("a chunk given back was not there to take after two collections")
		}
	}
	rec.Release(c)

	for range freeChunks + 10 {
		rec.Release(new(Chunk))
	}
	if n := len(r.chunks); n != freeChunks {
		t.Errorf("%d free chunks kept, want at most %d", n, freeChunks)
	}
}
