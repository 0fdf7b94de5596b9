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
// when the syncer is done; and one writer goroutine writes the endings queued meanwhile in
// one store transaction, as many as have queued while the last one committed.

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

// writeBatch writes the records of batch in one transaction; should that fail, each on its
// own, so that one record the store refuses does not take the others with it.
func (s *Switch) writeBatch(batch []*ending) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := s.db.Write(ctx, func(tx *store.Tx) error {
		for _, e := range batch {
			if err := putCall(tx, e.rec, e.recording); err != nil {
				return err
			}
		}
		return nil
	})
	cancel()
	for _, e := range batch {
		if err != nil && len(batch) > 1 {
			err1 := s.saveCall(&e.rec, e.recording)
			if err1 != nil {
				e.log.Error("complete call record", "err", err1)
			}
		} else if err != nil {
			e.log.Error("complete call record", "err", err)
		}
		s.counted(e.rec.CustomerID, e.log, e.disposition, e.status, e.rec.HangupBy, e.reason)
		s.callsWG.Done()
	}
}
