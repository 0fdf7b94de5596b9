package store

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

// Jobs that run once per cluster, not once per node (the retention sweep, ...).
//
// On bbolt the store is one node's own, so its jobs always run. On PostgreSQL the nodes share
// the database: a job runs under a session-level advisory lock, taken with
// pg_try_advisory_lock on a connection held for the job's length. A node that does not get
// the lock skips this run of the job (another node is running it); a node that dies loses
// its connection, and PostgreSQL releases the lock with the session, so the job is not
// stuck. A job must therefore bear being cut off halfway and run again, as the sweep does
// (each step is a transaction of its own and finds its work from the records).

// jobLockClass is the first key of trackline's job locks (pg_try_advisory_lock(int, int)):
// "tljb", apart from other users of advisory locks in the same database.
const jobLockClass = 0x746c6a62

// Exclusive runs fn unless another node of the cluster runs the job name at this moment, and
// reports whether it ran. On bbolt it always runs fn.
func (db *DB) Exclusive(ctx context.Context, name string, fn func(context.Context) error) (bool, error) {
	if db.pg == nil {
		return true, fn(ctx)
	}
	return db.pg.exclusive(ctx, name, fn)
}

func (s *pgStore) exclusive(ctx context.Context, name string, fn func(context.Context) error) (bool, error) {
	// The lock is held on a connection of its own, not one of the pool's: fn's reads and
	// writes take the pool's connections, and jobs holding pool connections while they wait
	// for others could take them all (the pool's default is 4 on two cores: the sweep, the
	// Google Ads round and the web app's prune at once, with the notifications' listener,
	// left the committer none).
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, fmt.Errorf("store: job %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	h := fnv.New32a()
	h.Write([]byte(name))
	key := int32(h.Sum32())
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", int32(jobLockClass), key).Scan(&got); err != nil {
		return false, fmt.Errorf("store: job %s: lock: %w", name, err)
	}
	if !got {
		return false, nil
	}
	// Closing the connection ends its session, which releases the lock (deferred above).
	return true, fn(ctx)
}
