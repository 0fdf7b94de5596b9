package sip

import (
	"math"
	rtmetrics "runtime/metrics"
	"time"
)

// schedProbe reads how long the switch's goroutines waited to run: the Go scheduler's
// histogram of the time goroutines spent runnable before they ran (runtime/metrics
// /sched/latencies:seconds), per interval. Every message the switch handles past its socket
// (a business line's answer, the caller's ACK, a BYE, the end of a recording) is a goroutine
// that waits there when the switch has more work than cores; the socket's queue does not
// show that wait once the datagrams are read. Not safe for concurrent use.
type schedProbe struct {
	s    []rtmetrics.Sample
	prev []uint64
	cur  []uint64
}

const schedLatencies = "/sched/latencies:seconds"

func newSchedProbe() *schedProbe {
	p := &schedProbe{s: []rtmetrics.Sample{{Name: schedLatencies}}}
	rtmetrics.Read(p.s)
	if p.s[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		return nil // not this runtime's
	}
	p.prev = append([]uint64(nil), p.s[0].Value.Float64Histogram().Counts...)
	return p
}

// read is the q-quantile (0..1) of the waits since the last read, and how many goroutines
// ran; 0, 0 when none did.
func (p *schedProbe) read(q float64) (time.Duration, uint64) {
	rtmetrics.Read(p.s)
	h := p.s[0].Value.Float64Histogram()
	p.cur = append(p.cur[:0], h.Counts...)
	var n uint64
	for i := range p.cur {
		if i < len(p.prev) {
			p.cur[i] -= p.prev[i]
		}
		n += p.cur[i]
	}
	p.prev = append(p.prev[:0], h.Counts...)
	if n == 0 {
		return 0, 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i, c := range p.cur {
		seen += c
		if seen >= rank && c > 0 {
			// The bucket's lower bound: a wait at least this long (Buckets[i] to Buckets[i+1]).
			lo := h.Buckets[i]
			if math.IsInf(lo, -1) || lo < 0 {
				lo = 0
			}
			return time.Duration(lo * float64(time.Second)), n
		}
	}
	return 0, n
}
