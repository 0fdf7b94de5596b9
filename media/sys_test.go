package media

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

// scheduled is what loopScheduling did on a thread of its own.
type scheduled struct {
	how  string
	err  error
	attr *unix.SchedAttr
}

// scheduleThread runs loopScheduling(prio) on a new locked thread, after pre (if any) has
// run on that thread, and reports the thread's scheduling. The goroutine ends locked, so the
// thread ends with it and its scheduling touches nothing else.
func scheduleThread(t *testing.T, prio int, pre func() error) scheduled {
	t.Helper()
	ch := make(chan scheduled, 1)
	go func() {
		runtime.LockOSThread()
		if pre != nil {
			if err := pre(); err != nil {
				ch <- scheduled{err: err}
				return
			}
		}
		var s scheduled
		s.how, s.err = loopScheduling(prio)
		a, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			s.err = err
		}
		s.attr = a
		ch <- s
	}()
	s := <-ch
	if s.attr == nil {
		t.Fatalf("scheduling a thread: %v", s.err)
	}
	return s
}

// hasCapSysNice says whether this thread may raise its scheduling priority beyond
// RLIMIT_RTPRIO.
func hasCapSysNice() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_NICE) != 0
}

// dropCapSysNice removes CAP_SYS_NICE from the calling thread's effective set.
func dropCapSysNice() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Effective &^= 1 << unix.CAP_SYS_NICE
	return unix.Capset(&hdr, &data[0])
}

func rtprioLimit(t *testing.T) int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_RTPRIO, &rl); err != nil {
		t.Fatal(err)
	}
	return int(min(rl.Cur, 99))
}

func wantSlice(t *testing.T, s scheduled) {
	t.Helper()
	if s.how != schedSlice || s.attr.Policy != unix.SCHED_NORMAL || s.attr.Runtime != uint64(loopSlice) {
		t.Errorf("got %q, policy %d, runtime %d ns; want the %v slice under SCHED_OTHER", s.how, s.attr.Policy, s.attr.Runtime, loopSlice)
	}
	if s.attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK == 0 {
		t.Errorf("sched_flags %#x: the slice would pass to threads this one creates", s.attr.Flags)
	}
}

// TestLoopScheduling: a loop's thread gets SCHED_FIFO at the configured priority where the
// process may use it (RLIMIT_RTPRIO or CAP_SYS_NICE), and otherwise the short slice with the
// refusal as the error; without a priority, the slice. Neither passes to new threads.
func TestLoopScheduling(t *testing.T) {
	const prio = 5
	allowed := rtprioLimit(t) >= prio || hasCapSysNice()

	t.Run("priority", func(t *testing.T) {
		s := scheduleThread(t, prio, nil)
		if !allowed {
			wantSlice(t, s)
			if !errors.Is(s.err, unix.EPERM) {
				t.Errorf("err = %v, want EPERM", s.err)
			}
			return
		}
		if s.how != schedRealtime || s.err != nil || s.attr.Policy != unix.SCHED_FIFO || s.attr.Priority != prio {
			t.Errorf("got %q (%v), policy %d priority %d; want SCHED_FIFO at %d", s.how, s.err, s.attr.Policy, s.attr.Priority, prio)
		}
		if s.attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK == 0 {
			t.Errorf("sched_flags %#x: real-time priority would pass to threads this one creates", s.attr.Flags)
		}
	})
	t.Run("refused", func(t *testing.T) {
		if rtprioLimit(t) >= prio {
			t.Skipf("RLIMIT_RTPRIO allows priority %d without CAP_SYS_NICE; the priority case covers it", prio)
		}
		s := scheduleThread(t, prio, dropCapSysNice)
		wantSlice(t, s)
		if !errors.Is(s.err, unix.EPERM) {
			t.Errorf("err = %v, want EPERM", s.err)
		}
	})
	t.Run("none", func(t *testing.T) {
		s := scheduleThread(t, -1, nil)
		wantSlice(t, s)
		if s.err != nil {
			t.Errorf("err = %v", s.err)
		}
	})
	// A policy set from outside (chrt) stays: SCHED_BATCH needs no privilege.
	t.Run("external", func(t *testing.T) {
		s := scheduleThread(t, prio, func() error {
			return unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH}, 0)
		})
		if s.how != schedExternal || s.err != nil || s.attr.Policy != unix.SCHED_BATCH {
			t.Errorf("got %q (%v), policy %d; want SCHED_BATCH left alone", s.how, s.err, s.attr.Policy)
		}
	})
	t.Run("external real-time", func(t *testing.T) {
		if !allowed {
			t.Skipf("RLIMIT_RTPRIO < %d and no CAP_SYS_NICE: no real-time policy to start from", prio)
		}
		s := scheduleThread(t, prio, func() error {
			return unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_RR, Priority: 3}, 0)
		})
		if s.how != schedRealtime || s.err != nil || s.attr.Policy != unix.SCHED_RR || s.attr.Priority != 3 {
			t.Errorf("got %q (%v), policy %d priority %d; want SCHED_RR at 3 left alone", s.how, s.err, s.attr.Policy, s.attr.Priority)
		}
	})
}

// TestLoopsRealtimeGauge: trackline_media_loops_realtime counts the loops that got their
// priority.
func TestLoopsRealtimeGauge(t *testing.T) {
	allowed := rtprioLimit(t) >= DefaultRealtimePriority || hasCapSysNice()
	f := newFixture(t, Config{}, recordingCustomer())
	want := 0.0
	if allowed {
		want = float64(len(f.e.loops)) // one per core by default
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(f.e.m.realtime) != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(f.e.m.realtime); got != want {
		t.Errorf("trackline_media_loops_realtime = %v, want %v", got, want)
	}
}
