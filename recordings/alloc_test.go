//go:build !race

// The race detector makes sync.Pool drop items on purpose, so allocation counts only hold
// without it.

package recordings

import (
	"runtime"
	"testing"
)

// TestHotPathAllocs: taking, filling and submitting a chunk, and the worker writing it,
// allocate nothing once the pool is warm.
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
