package media

import (
	"math/rand/v2"
	"sync"
)

// ports hands out RTP/RTCP port pairs (RTP even, RTCP the odd port above) from a range.
//
// A pair is drawn at random from the free pairs, so that the ports of the next call cannot be
// told from those of the last (a scan of the range finds nothing to aim at). A released pair
// first rests in a queue of up to a quarter of the range, first in first out, so that stray
// packets of an old call do not reach a new one; it is drawn from again once it leaves the
// queue, or at once when nothing else is free.
type ports struct {
	mu    sync.Mutex
	first int     // lowest (even) RTP port
	n     int     // pairs in the range
	free  []int32 // pairs to draw from
	rest  []int32 // ring of released pairs, oldest at restHead
	restHead,
	restN int
}

func newPorts(lo, hi int) *ports {
	if lo%2 != 0 {
		lo++
	}
	pairs := (hi - lo + 1) / 2
	p := &ports{first: lo, n: pairs, free: make([]int32, pairs), rest: make([]int32, max(1, pairs/4))}
	for i := range p.free {
		p.free[i] = int32(i)
	}
	return p
}

// pairs is the size of the range in pairs.
func (p *ports) pairs() int { return p.n }

// take returns a free pair index, or false when none is left.
func (p *ports) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		if p.restN == 0 {
			return 0, false
		}
		p.unrest()
	}
	k := rand.IntN(len(p.free)) // ChaCha8, seeded by the runtime from the system's randomness
	i := p.free[k]
	last := len(p.free) - 1
	p.free[k] = p.free[last]
	p.free = p.free[:last]
	return int(i), true
}

// unrest moves the pair that rested longest to the free pairs. Called under mu.
func (p *ports) unrest() {
	p.free = append(p.free, p.rest[p.restHead])
	p.restHead = (p.restHead + 1) % len(p.rest)
	p.restN--
}

// put returns a pair: it rests before it is drawn again.
func (p *ports) put(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.restN == len(p.rest) {
		p.unrest()
	}
	p.rest[(p.restHead+p.restN)%len(p.rest)] = int32(i)
	p.restN++
}

// available is the number of free pairs, resting ones included.
func (p *ports) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free) + p.restN
}

// port is the RTP port of pair i.
func (p *ports) port(i int) int { return p.first + 2*i }
