-- The lease state of each pool number, for nodes that share one pool (store/pg_lease.go):
-- which session holds the number and from when until when, so that a lease is decided in
-- the database, where every node sees it (SELECT ... FOR UPDATE SKIP LOCKED on the least
-- recently leased number), and not in one node's memory as on bbolt (package pool). The
-- assignments table keeps the history; these columns are its newest record per number.

-- +goose Up
ALTER TABLE numbers
	ADD COLUMN lease_session  text COLLATE "C" NOT NULL DEFAULT '',
	ADD COLUMN lease_from_ns  bigint NOT NULL DEFAULT 0,
	ADD COLUMN lease_until_ns bigint NOT NULL DEFAULT 0;
-- The pool's order: least recently leased first (a number never leased has 0), then by number.
CREATE INDEX numbers_lru ON numbers (customer_id, lease_until_ns, e164) WHERE kind = 'pool' AND state = 'available';
CREATE INDEX numbers_holder ON numbers (customer_id, lease_session) WHERE lease_session <> '';

-- +goose Down
DROP INDEX numbers_holder;
DROP INDEX numbers_lru;
ALTER TABLE numbers DROP COLUMN lease_until_ns, DROP COLUMN lease_from_ns, DROP COLUMN lease_session;
