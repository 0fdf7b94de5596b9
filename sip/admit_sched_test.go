package sip

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/cputime"
)

// The probe reads the scheduler's waits since its last read: goroutines that outnumber the
// cores wait for one, some for a scheduling quantum or more; then nothing waits long. The
// goroutines spin until the process has used 150 ms of CPU, however busy the machine is.
func TestSchedProbe(t *testing.T) {
	p := newSchedProbe()
	if p == nil {
		t.Fatal("no /sched/latencies:seconds in this runtime")
	}
	cpu := cputime.Process()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) + 3 {
		wg.Go(func() {
			// Yields every 5 ms: runnable again, behind the others.
			for last := time.Now(); !stop.Load(); {
				if time.Since(last) > 5*time.Millisecond {
					runtime.Gosched()
					last = time.Now()
				}
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for cputime.Process()-cpu < 150*time.Millisecond && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if used := cputime.Process() - cpu; used < 150*time.Millisecond {
		t.Fatalf("the process's CPU grew by %v in 20 s of %d busy goroutines", used, runtime.GOMAXPROCS(0)+3)
	}
	longest, n := p.read(1)
	if n == 0 || longest < time.Millisecond {
		t.Errorf("after busy goroutines outnumbering the cores: longest wait %v of %d; want 1 ms or more", longest, n)
	}
	if w, _ := p.read(0.5); w > 50*time.Millisecond {
		t.Errorf("median wait of an idle interval = %v", w)
	}
}
