package app

import (
	"sync"
	"time"
)

// limiter counts failed logins per account, in memory only (never written anywhere): after
// limitFailures within limitWindow, an account's logins are refused until the window has
// passed since its first failure. It holds at most limitAccounts accounts; when full, the
// oldest windows go first.
type limiter struct {
	mu       sync.Mutex
	failures map[string]*window
}

type window struct {
	start time.Time
	n     int
}

const (
	limitFailures = 5
	limitWindow   = 15 * time.Minute
	limitAccounts = 100_000
)

func newLimiter() *limiter { return &limiter{failures: map[string]*window{}} }

// blocked reports whether the account may not try now, and until when.
func (l *limiter) blocked(account string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.failures[account]
	if w == nil || now.Sub(w.start) >= limitWindow {
		return time.Time{}, false
	}
	return w.start.Add(limitWindow), w.n >= limitFailures
}

// fail counts a failed login of the account.
func (l *limiter) fail(account string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.failures[account]
	if w == nil || now.Sub(w.start) >= limitWindow {
		if len(l.failures) >= limitAccounts {
			l.evict(now)
		}
		w = &window{start: now}
		l.failures[account] = w
	}
	w.n++
}

// succeed forgets the account's failures.
func (l *limiter) succeed(account string) {
	l.mu.Lock()
	delete(l.failures, account)
	l.mu.Unlock()
}

// evict drops the windows that have passed, or, if none has, the oldest. Called under mu.
func (l *limiter) evict(now time.Time) {
	var oldest string
	var at time.Time
	for k, w := range l.failures {
		if now.Sub(w.start) >= limitWindow {
			delete(l.failures, k)
			continue
		}
		if oldest == "" || w.start.Before(at) {
			oldest, at = k, w.start
		}
	}
	if len(l.failures) >= limitAccounts {
		delete(l.failures, oldest)
	}
}
