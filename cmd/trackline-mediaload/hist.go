package main

import "math"

// Bucket layout of latencyHist, in µs: 1 µs wide below 2 ms, 10 µs wide below 20 ms, 1 ms
// wide below 1 s, then one overflow bucket.
const (
	fineEnd    = 2_000
	midStep    = 10
	midEnd     = 20_000
	coarseStep = 1_000
	coarseEnd  = 1_000_000

	nFine    = fineEnd
	nMid     = (midEnd - fineEnd) / midStep
	nCoarse  = (coarseEnd - midEnd) / coarseStep
	overflow = nFine + nMid + nCoarse
	nBuckets = overflow + 1
)

// latencyHist counts latencies in fixed buckets: adding one is a few instructions and never
// allocates. Not safe for concurrent use.
type latencyHist struct {
	counts [nBuckets]uint64
	n      uint64
	maxNs  int64
}

// bucketOf returns the bucket of a latency of us µs.
func bucketOf(us int64) int {
	switch {
	case us < 0:
		return 0
	case us < fineEnd:
		return int(us)
	case us < midEnd:
		return nFine + int((us-fineEnd)/midStep)
	case us < coarseEnd:
		return nFine + nMid + int((us-midEnd)/coarseStep)
	}
	return overflow
}

// bucketUpper is the exclusive upper edge of bucket i in µs; the overflow bucket has none
// (+Inf).
func bucketUpper(i int) float64 {
	switch {
	case i < nFine:
		return float64(i + 1)
	case i < nFine+nMid:
		return float64(fineEnd + (i-nFine+1)*midStep)
	case i < overflow:
		return float64(midEnd + (i-nFine-nMid+1)*coarseStep)
	}
	return math.Inf(1)
}

// add records one latency in ns; a negative one (clock trouble) counts as 0.
func (h *latencyHist) add(ns int64) {
	ns = max(ns, 0)
	h.counts[bucketOf(ns/1000)]++
	h.n++
	h.maxNs = max(h.maxNs, ns)
}

// merge adds o's counts to h.
func (h *latencyHist) merge(o *latencyHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.maxNs = max(h.maxNs, o.maxNs)
}

// quantile returns the q-quantile (0 < q <= 1) in µs, as the upper edge of the bucket that
// holds the sample of rank ceil(q·n), capped at the maximum: at least a fraction q of the
// samples are at or below it. 0 when empty.
func (h *latencyHist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	maxUs := float64(h.maxNs) / 1000
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return min(bucketUpper(i), maxUs)
		}
	}
	return maxUs
}

// maxUs is the largest latency recorded, in µs.
func (h *latencyHist) maxUs() float64 { return float64(h.maxNs) / 1000 }
