package sip

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// The probe reads the scheduler's waits since its last read: goroutines that outnumber the
// cores wait for one, some for a scheduling quantum or more; then nothing waits long.
func TestSchedProbe(t *testing.T) {
	p := newSchedProbe()
	if p == nil {
		t.Fatal("no /sched/latencies:seconds in this runtime")
	}
	cpu := processCPU()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) + 3 {
		wg.Go(func() {
			// Yields every 5 ms: runnable again, behind the others.
			last := time.Now()
			for end := last.Add(100 * time.Millisecond); time.Now().Before(end); {
				if time.Since(last) > 5*time.Millisecond {
					runtime.Gosched()
					last = time.Now()
				}
			}
		})
	}
	wg.Wait()
	longest, n := p.read(1)
	if n == 0 || longest < time.Millisecond {
		t.Errorf("after busy goroutines outnumbering the cores: longest wait %v of %d; want 1 ms or more", longest, n)
	}
	if used := processCPU() - cpu; used < 100*time.Millisecond {
		t.Errorf("the process's CPU grew by %v over 100 ms of %d busy goroutines", used, runtime.GOMAXPROCS(0)+3)
	}
	if w, _ := p.read(0.5); w > 50*time.Millisecond {
		t.Errorf("median wait of an idle interval = %v", w)
	}
}
