-- The nodes of a cluster and when each was last seen (store/pg_nodes.go): every node writes
-- its row at start and every NodeHeartbeat; the retention sweep (one node a run) ends the
-- open calls of a node unseen for longer than LostNodeAfter, as lost, at the time it was
-- last seen. Times are Unix nanoseconds of the nodes' clocks.

-- +goose Up
CREATE TABLE cluster_nodes (
	node_id text COLLATE "C" PRIMARY KEY,
	seen    bigint NOT NULL
);

-- +goose Down
DROP TABLE cluster_nodes;
