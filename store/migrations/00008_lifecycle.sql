-- The store's lifecycle state on PostgreSQL (store/pg_lifecycle.go), and the landing pages of
-- the daily rollups sealed like the calls' (store/pg_rollupnames.go).
--
-- store_state holds what bbolt keeps in its meta bucket besides the schema version (goose
-- keeps that here): 'compaction_due', set (n counts the marks) in the transaction that
-- deletes personal data (DeleteCall, PurgeCustomer, ...) and cleared by Compact, which on
-- PostgreSQL is a VACUUM of the store's tables, unless marked again meanwhile;
-- 'callers_indexed', set once IndexCallers gave every call its caller's pseudonym.

-- +goose Up
CREATE TABLE store_state (
	key   text COLLATE "C" PRIMARY KEY,
	n     bigint NOT NULL DEFAULT 1,
	since timestamptz NOT NULL DEFAULT now()
);

-- A landing page's row (kind 'l') names it by a keyed hash of it (its identity: the same
-- page, the same row), and keeps the page itself sealed here with the customer's key, so
-- that no landing page is in a row, a dead row version or the WAL in plain text. Rows
-- written before (and by a store without keys) keep the name in plain text and this NULL.
ALTER TABLE rollup_names ADD COLUMN sealed bytea;

-- +goose Down
ALTER TABLE rollup_names DROP COLUMN sealed;
DROP TABLE store_state;
