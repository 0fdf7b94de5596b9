package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Node liveness on PostgreSQL (migration 00010): a node that dies and never comes back
// would leave the records of the calls it held open for ever (a node completes its own open
// calls when it starts again, sip.Switch.RecoverRecords). Each node writes its row in
// cluster_nodes at start and every NodeHeartbeat (RunHeartbeat); the retention sweep, which
// one node runs at a time, ends the open calls of every node unseen for longer than
// LostNodeAfter (EndLostCalls). A node of a build without heartbeats has no row and is
// never taken for lost; nor are calls without a node (bbolt's, migrated).

func init() {
	for _, name := range []string{"DB.RunHeartbeat", "DB.Heartbeat", "DB.Nodes", "DB.EndLostCalls"} {
		pgImplemented[name] = true
	}
}

// NodeHeartbeat is how often a node writes that it is alive.
const NodeHeartbeat = 10 * time.Second

// LostNodeAfter is how long a node may go unseen before its open calls are ended as lost:
// far above a heartbeat's interval and a database restart's pause, so that a node that only
// lost PostgreSQL for a while (its calls go on: cmd/trackline/storewatch.go) keeps them.
const LostNodeAfter = 5 * time.Minute

// LostEndReason is the EndReason of a call ended because its node was lost.
const LostEndReason = "node lost"

// NodeSeen is a node and when it was last seen.
type NodeSeen struct {
	ID   string
	Seen time.Time
}

// RunHeartbeat writes that node is alive at once and then every NodeHeartbeat, until ctx
// ends; a failed write is logged at debug level (the store watcher reports an unreachable
// database) and made again at the next beat. On bbolt it returns at once: one node.
func (db *DB) RunHeartbeat(ctx context.Context, node string) {
	if db.pg == nil || node == "" {
		return
	}
	t := time.NewTicker(NodeHeartbeat)
	defer t.Stop()
	for {
		if err := db.Heartbeat(ctx, node); err != nil && ctx.Err() == nil {
			db.log.Debug("store could not write the node's heartbeat", "node", node, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Heartbeat writes once that node is alive now (RunHeartbeat's beat). On bbolt it does
// nothing.
func (db *DB) Heartbeat(ctx context.Context, node string) error {
	if db.pg == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, pgTxTimeout)
	defer cancel()
	// seen never goes back (a beat delayed past a later one).
	_, err := db.pg.pool.Exec(ctx, `INSERT INTO cluster_nodes (node_id, seen) VALUES ($1, $2)
		ON CONFLICT (node_id) DO UPDATE SET seen = greatest(cluster_nodes.seen, excluded.seen)`,
		node, db.now().UnixNano())
	return err
}

// Nodes lists the nodes that wrote heartbeats, by id, with when each was last seen (none on
// bbolt).
func (db *DB) Nodes(ctx context.Context) ([]NodeSeen, error) {
	if db.pg == nil {
		return nil, nil
	}
	return db.nodesUnseenSince(ctx, time.Unix(0, 1<<62))
}

// nodesUnseenSince lists the nodes last seen before t.
func (db *DB) nodesUnseenSince(ctx context.Context, t time.Time) ([]NodeSeen, error) {
	ctx, cancel := context.WithTimeout(ctx, pgTxTimeout)
	defer cancel()
	rows, err := db.pg.pool.Query(ctx, `SELECT node_id, seen FROM cluster_nodes WHERE seen < $1 ORDER BY node_id`, t.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NodeSeen, error) {
		var n NodeSeen
		var seen int64
		err := r.Scan(&n.ID, &seen)
		n.Seen = timeOf(seen)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	return out, nil
}

// EndLostCalls ends the open calls of the nodes unseen since before now-after: each ends at
// the time its node was last seen (or its start, if later), as failed (answered, if it was),
// hung up by the switch, with EndReason LostEndReason; its events go out as any call's end.
// A call its node ended meanwhile is left as it is. It answers the lost nodes that had open
// calls and the calls ended. On bbolt there is nothing to do (the one node ends its own when
// it starts).
func (db *DB) EndLostCalls(ctx context.Context, now time.Time, after time.Duration) ([]NodeSeen, []string, error) {
	if db.pg == nil {
		return nil, nil, nil
	}
	lost, err := db.nodesUnseenSince(ctx, now.Add(-after))
	if err != nil || len(lost) == 0 {
		return nil, nil, err
	}
	seen := make(map[string]time.Time, len(lost))
	for _, n := range lost {
		seen[n.ID] = n.Seen
	}
	var open []Call
	if err := db.View(func(tx *Tx) error {
		return tx.ActiveCalls(func(c Call) bool {
			if _, ok := seen[c.Node]; ok {
				open = append(open, c)
			}
			return true
		})
	}); err != nil {
		return nil, nil, err
	}
	var ended []string
	had := map[string]bool{}
	for len(open) > 0 {
		batch := open[:min(len(open), DefaultPurgeBatch)]
		open = open[len(batch):]
		var done, doneNodes []string
		err := db.Write(ctx, func(tx *Tx) error {
			done, doneNodes = done[:0], doneNodes[:0]
			for _, o := range batch {
				c, err := tx.Call(o.ID)
				if err != nil || !c.End.IsZero() {
					continue // gone, or ended by its node meanwhile
				}
				c.End, c.EndReason, c.HangupBy = seen[c.Node], LostEndReason, PartySwitch
				if c.End.Before(c.Start) {
					c.End = c.Start
				}
				if c.Disposition == "" {
					c.Disposition = DispFailed
					if !c.Answer.IsZero() {
						c.Disposition = DispAnswered
					}
				}
				if err := tx.PutCall(&c); err != nil {
					return err
				}
				done, doneNodes = append(done, c.ID), append(doneNodes, c.Node)
			}
			return nil
		})
		if err != nil {
			return nil, ended, err
		}
		ended = append(ended, done...)
		for _, n := range doneNodes {
			had[n] = true
		}
	}
	var nodes []NodeSeen
	for _, n := range lost {
		if had[n.ID] {
			nodes = append(nodes, n)
		}
	}
	return nodes, ended, nil
}
