package media

import "sync"

// ports hands out RTP/RTCP port pairs (RTP even, RTCP the odd port above) from a range,
// first in first out, so a released pair rests as long as possible before it is reused and
// stray packets of an old call do not reach a new one.
type ports struct {
	mu    sync.Mutex
	first int     // lowest (even) RTP port
	free  []int32 // ring of free pair indexes
	head  int
	n     int // free pairs in the ring
}

func newPorts(lo, hi int) *ports {
	if lo%2 != 0 {
		lo++
	}
	pairs := (hi - lo + 1) / 2
	p := &ports{first: lo, free: make([]int32, pairs), n: pairs}
	for i := range p.free {
		p.free[i] = int32(i)
	}
	return p
}

// pairs is the size of the range in pairs.
func (p *ports) pairs() int { return len(p.free) }

// take returns a free pair index, or false when none is left.
func (p *ports) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return 0, false
	}
	i := p.free[p.head]
	p.head = (p.head + 1) % len(p.free)
	p.n--
	return int(i), true
}

// put returns a pair to the back of the ring.
func (p *ports) put(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free[(p.head+p.n)%len(p.free)] = int32(i)
	p.n++
}

// available is the number of free pairs.
func (p *ports) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// port is the RTP port of pair i.
func (p *ports) port(i int) int { return p.first + 2*i }
