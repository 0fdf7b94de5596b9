-- A pool number's lease columns (migration 00002) change with every new session: indexed,
-- each change left a dead entry at the low end of numbers_lru (the old lease_until_ns) that
-- only a VACUUM removes, and the lease's ordered scan walked all of them: at thousands of
-- sessions a second, thousands of dead entries a second, and a lease that cost more the
-- longer the load lasted (store/pg_lease.go, docs/benchmarks.md "The session rate on
-- PostgreSQL"). Without an index on them, a lease's update is a heap-only tuple update (HOT):
-- no index entry at all, and the old version pruned within its page. The pool's order is
-- found by reading the customer's numbers (numbers_customer) once per batch of new sessions,
-- and a session's own number through its assignments (assignments_session). fillfactor
-- leaves a page room for the new versions.

-- +goose Up
DROP INDEX numbers_lru;
DROP INDEX numbers_holder;
ALTER TABLE numbers SET (fillfactor = 50);

-- +goose Down
ALTER TABLE numbers RESET (fillfactor);
CREATE INDEX numbers_lru ON numbers (customer_id, lease_until_ns, e164) WHERE kind = 'pool' AND state = 'available';
CREATE INDEX numbers_holder ON numbers (customer_id, lease_session) WHERE lease_session <> '';
