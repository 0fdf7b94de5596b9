// Package rearm re-arms a timer for short, frequent waits at the cost of a timer's start,
// not of a scan of every timer the process has.
//
// The Go runtime keeps each P's timers in a heap. Resetting or stopping a timer the heap
// still holds does not move it: it is marked, and the earliest such mark makes the next
// look at that P's timers (the scheduler's, every time it finds no goroutine to run and
// when it steals work) walk the whole heap to put the marked ones in place
// (runtime.(*timers).adjust). A switch carries tens of thousands of timers (each call's
// transactions and contexts), so a timer reset every few hundred microseconds (the SIP
// drain's poll while datagrams come) made the scheduler walk them all as often: 6 % of the
// switch's CPU at 1,000 recorded calls a second (docs/benchmarks.md). A timer that has
// fired has left the heap, and starting it again only adds it. So a Timer that is still
// pending and due no later than asked is left as it is, and its receive may come before the
// time asked for: a caller treats it as a wake-up to look again.
package rearm

import "time"

// Timer is a reusable timer for waits of up to a few milliseconds. The zero value is ready
// to use. It is not safe for concurrent use.
type Timer struct {
	t  *time.Timer
	at time.Time // when t fires, while it is pending
}

// After returns the channel that receives when d has passed, or sooner: when the timer
// armed by an earlier call has not fired yet and is due by then, it is not touched, and
// the receive comes when it fires. A value the timer sent that nobody received is never
// received late (the timer is reset, which drops it, whenever it has fired).
func (r *Timer) After(d time.Duration) <-chan time.Time {
	now := time.Now()
	want := now.Add(d)
	switch {
	case r.t == nil:
		r.t = time.NewTimer(d)
	case now.Before(r.at) && !r.at.After(want):
		return r.t.C
	default:
		r.t.Reset(d)
	}
	r.at = want
	return r.t.C
}
