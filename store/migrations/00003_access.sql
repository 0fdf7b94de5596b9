-- Tokens (by the SHA-256 of the secret; the secret is never stored) and the audit log
-- (store/access.go). store/pg_access.go holds the operations.

-- +goose Up
CREATE TABLE tokens (
	kind        smallint NOT NULL CHECK (kind > 0), -- store.TokenKind: 1 API, 2 agent
	hash        bytea NOT NULL CHECK (length(hash) = 32),
	customer_id text COLLATE "C" NOT NULL,
	id          text COLLATE "C" NOT NULL,
	label       text NOT NULL DEFAULT '',
	groups      text[],
	created     timestamptz,
	hint        text NOT NULL DEFAULT '',
	PRIMARY KEY (kind, hash),
	CONSTRAINT tokens_customer_id_key UNIQUE (kind, customer_id, id)
);

-- Append-only: entries are inserted, and deleted by the log's retention (PruneAudit) only.
-- An entry's id is its key on bbolt: time (Unix ns) and seq, 8 bytes each, in hex.
CREATE TABLE audit_log (
	time_ns     bigint NOT NULL,
	seq         bigint GENERATED ALWAYS AS IDENTITY,
	actor       text NOT NULL,
	action      text NOT NULL,
	customer_id text COLLATE "C" NOT NULL DEFAULT '',
	ids         text[],
	counts      jsonb,
	PRIMARY KEY (time_ns, seq)
);
CREATE INDEX audit_log_customer ON audit_log (customer_id, time_ns, seq) WHERE customer_id <> '';

-- +goose StatementBegin
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit log is append-only';
END $$;
-- +goose StatementEnd
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- +goose Down
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE tokens;
