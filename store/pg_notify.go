package store

import (
	"context"
	"time"
)

// CustomerChanges delivers, until ctx ends, the id of each customer whose record, channels
// or numbers were changed in a shared store, by any node, as PostgreSQL notifies them at
// commit (migration 00004). It delivers "" when changes may have been missed (the listening
// connection was lost and made again, or the reader fell behind): the reader then reads
// everything again. On bbolt the store is one node's: the channel never delivers.
func (db *DB) CustomerChanges(ctx context.Context) <-chan string {
	out := make(chan string, 256)
	if db.pg == nil {
		return out
	}
	go db.pg.listen(ctx, "trackline_customers", out)
	return out
}

// listen holds one connection that LISTENs to channel and passes each notification's payload
// to out, waiting for the reader (the server queues what arrives meanwhile); after a lost
// connection it passes "" first.
func (s *pgStore) listen(ctx context.Context, channel string, out chan<- string) {
	backoff := 100 * time.Millisecond
	send := func(v string) bool {
		select {
		case out <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for first := true; ctx.Err() == nil; first = false {
		conn, err := s.pool.Acquire(ctx)
		if err == nil {
			if _, err = conn.Exec(ctx, "LISTEN "+channel); err != nil {
				conn.Conn().Close(context.WithoutCancel(ctx))
				conn.Release()
			}
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		// Listening again after a lost connection: what changed meanwhile is unknown.
		if !first && !send("") {
			conn.Conn().Close(context.WithoutCancel(ctx))
			conn.Release()
			return
		}
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err != nil || !send(n.Payload) {
				break
			}
		}
		// The connection listens: it must not go back to the pool as it is.
		conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
	}
}
