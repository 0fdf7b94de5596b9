package rearm

import (
	"testing"
	"time"

	"github.com/trackline/trackline/internal/cputime"
)

// received reports whether ch receives within d.
func received(ch <-chan time.Time, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestAfter(t *testing.T) {
	var r Timer
	if !received(r.After(time.Millisecond), 5*time.Second) {
		t.Fatal("the first wait of 1 ms did not end")
	}
	// A pending timer due sooner than asked is kept: the receive comes when it fires.
	ch := r.After(10 * time.Millisecond)
	if ch2 := r.After(time.Hour); ch2 != ch || !received(ch2, 5*time.Second) {
		t.Fatal("a wait of an hour after a pending one of 10 ms did not end with it")
	}
	// A pending timer due later than asked is reset to the time asked.
	r.After(time.Hour)
	if !received(r.After(time.Millisecond), 5*time.Second) {
		t.Fatal("a wait of 1 ms after a pending one of an hour did not end")
	}
	// A fire nobody received is not received by the next wait.
	r.After(time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if received(r.After(time.Hour), 100*time.Millisecond) {
		t.Fatal("a wait of an hour received the fire of an earlier wait")
	}
}

// BenchmarkWokenWaits waits 50 µs the way the SIP drain does while datagrams come: each
// wait is begun once and cut short by another goroutine's wake-up, then waited out, with
// 20,000 other timers pending (a switch's calls' timers): reset is a time.Timer reset each
// time (as the drain's was), rearm a Timer. It reports the process's CPU time per wait.
// b.N is the waits.
func BenchmarkWokenWaits(b *testing.B) {
	const d = 50 * time.Microsecond
	// setup starts the pending timers from the benchmark's goroutine, so that they are in
	// the heap of the P it runs on, as a switch's are in every P's, and the goroutine that
	// wakes it.
	setup := func(b *testing.B) chan struct{} {
		for range 20_000 {
			o := time.AfterFunc(time.Hour, func() {})
			b.Cleanup(func() { o.Stop() })
		}
		wake, done := make(chan struct{}), make(chan struct{})
		go func() {
			for {
				select {
				case wake <- struct{}{}:
				case <-done:
					return
				}
			}
		}()
		b.Cleanup(func() { close(done) })
		return wake
	}
	b.Run("reset", func(b *testing.B) {
		wake := setup(b)
		t := time.NewTimer(d)
		c0 := cputime.Process()
		for range b.N {
			t.Reset(d)
			select {
			case <-wake:
			case <-t.C:
			}
			t.Reset(d)
			<-t.C
		}
		b.ReportMetric(float64(cputime.Process()-c0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/wait")
	})
	b.Run("rearm", func(b *testing.B) {
		wake := setup(b)
		var r Timer
		c0 := cputime.Process()
		for range b.N {
			select {
			case <-wake:
			case <-r.After(d):
			}
			<-r.After(d)
		}
		b.ReportMetric(float64(cputime.Process()-c0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/wait")
	})
}
