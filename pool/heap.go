package pool

// numberHeap is a min-heap of pool numbers keyed by the end of their last lease (never-leased
// numbers first), ties broken by number so the order is deterministic.
type numberHeap []*number

func (h numberHeap) less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.leaseUntil.Equal(b.leaseUntil) {
		return a.leaseUntil.Before(b.leaseUntil)
	}
	return a.n.E164 < b.n.E164
}

func (h numberHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h *numberHeap) push(n *number) {
	n.heapIdx = len(*h)
	*h = append(*h, n)
	h.up(n.heapIdx)
}

func (h *numberHeap) remove(i int) {
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	n := (*h)[last]
	(*h)[last] = nil
	*h = (*h)[:last]
	n.heapIdx = -1
	if i != last {
		h.fix(i)
	}
}

func (h numberHeap) min() *number {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

func (h numberHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h numberHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h numberHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}
