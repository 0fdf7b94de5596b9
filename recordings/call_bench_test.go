package recordings

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/cputime"
)

// BenchmarkRecordedCall is one recorded call's whole recording, as the switch makes it at
// the end of a 1 s call: Open at the answer, the tap's two chunks (a full second and a few
// samples of the next) submitted at the BYE, FinishAsync right after, and the writers and
// the syncer on a real file system (the create, the chunks' writes, the seal, the hash,
// the fsync, the rename and the directory's fsync). Up to inflight calls are in progress
// at once, as at a call rate. Besides ns/op (wall time, paced by fsync latency) it reports
// the process's CPU per call (cpu-µs/op: user and system time from getrusage, every
// goroutine and system call of the recording counted, the benchmark's own loop too) and
// allocations per call.
func BenchmarkRecordedCall(b *testing.B) {
	r, _ := newTestRecorder(b, Options{Dir: b.TempDir()})
	const inflight = 256
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	var failed sync.Once
	start := time.Now()
	b.ReportAllocs()
	cpu0 := cputime.Process()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		sem <- struct{}{}
		wg.Add(1)
		rec, err := r.Open("bench", fmt.Sprintf("call%d", i), start)
		if err != nil {
			b.Fatal(err)
		}
		c0 := rec.NewChunk(0)
		c1 := rec.NewChunk(1)
		c1.N = 160 // 20 ms into the second second
		rec.Submit(c0)
		rec.Submit(c1)
		rec.FinishAsync(func(_ Info, err error) {
			if err != nil {
				failed.Do(func() { b.Error(err) })
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}
