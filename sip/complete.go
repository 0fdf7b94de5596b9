package sip

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trackline/trackline/store"
)

// Completing the records of recorded calls off their goroutines.
//
// A recorded call's record is completed together with its recording (one write: the
// recording and the call that names it, so the call.completed and recording.ready events
// come in the transaction that causes them). The recording is durable only once the
// recordings' syncer has fsynced and renamed its file, in a batch with other calls' files,
// which takes milliseconds to tens of milliseconds. Waiting for it on the call's goroutine
// kept that goroutine, its stack and everything it reaches for that long after the BYE:
// at 1,000 calls a second, thousands of goroutines and a hundred megabytes of stacks that
// grew and shrank with the disk's latency (docs/benchmarks.md). So the call's goroutine
// hands its completed record over (an ending) and ends; the recording's outcome joins it
// when the syncer is done; and one writer goroutine hands the endings queued meanwhile to
// the store at once, whose committer writes them in one transaction.

// ending is a recorded call's completed record on its way to the store. Two parts complete
// it, in either order: the call's goroutine (the record) and the recording's outcome (from
// the syncer's goroutine); the last of them queues it (Switch.ended).
type ending struct {
	rec         store.Call
	recording   *store.Recording // nil: the recording could not be finished
	log         *slog.Logger
	disposition store.Disposition
	status      int
	reason      string
	parts       atomic.Int32 // parts still to come
}

// endings is the queue of endings to write, and whether its writer goroutine runs.
type endings struct {
	mu      sync.Mutex
	queue   []*ending
	running bool
	wg      sync.WaitGroup // the writer goroutine
}

// maxEndingBatch is the most endings one transaction writes.
const maxEndingBatch = 256

// ended is one part of e done; the last queues e for the writer, starting it if it is not
// running. It never blocks: the syncer calls it.
func (s *Switch) ended(e *ending) {
	if e.parts.Add(-1) != 0 {
		return
	}
	q := &s.endings
	q.mu.Lock()
	q.queue = append(q.queue, e)
	start := !q.running
	q.running = true
	if start {
		q.wg.Add(1)
	}
	q.mu.Unlock()
	if start {
		go s.writeEndings()
	}
}

// writeEndings writes the queued endings, a batch a transaction, until the queue is empty;
// then it returns. Each ending written is counted and released from callsWG.
func (s *Switch) writeEndings() {
	q := &s.endings
	defer q.wg.Done()
	var batch []*ending
	for {
		q.mu.Lock()
		n := min(len(q.queue), maxEndingBatch)
		if n == 0 {
			q.running = false
			q.queue = nil
			q.mu.Unlock()
			return
		}
		batch = append(batch[:0], q.queue[:n]...)
		clear(q.queue[:n])
		q.queue = q.queue[n:]
		q.mu.Unlock()
		s.writeBatch(batch)
		clear(batch)
	}
}

// writeBatch queues the records of batch to the store at once and then waits for them: its
// committer writes them in one transaction with whatever else is queued, and a record it
// refuses fails alone (store.DB.Write's group commit), so nothing here batches or retries.
func (s *Switch) writeBatch(batch []*ending) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pending := make([]store.Pending, len(batch))
	errs := make([]error, len(batch))
	for i, e := range batch {
		rec, recording := e.rec, e.recording
		pending[i], errs[i] = s.db.Enqueue(ctx, func(tx *store.Tx) error { return putCall(tx, rec, recording) })
	}
	for i, e := range batch {
		if errs[i] == nil {
			errs[i] = pending[i].Wait()
		}
		if errs[i] != nil {
			e.log.Error("complete call record", "err", errs[i])
		}
		s.counted(e.rec.CustomerID, e.log, e.disposition, e.status, e.rec.HangupBy, e.reason)
		s.callsWG.Done()
	}
}
