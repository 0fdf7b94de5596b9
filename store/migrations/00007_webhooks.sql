-- The webhooks on PostgreSQL (store/webhooks.go, outbox.go, events.go on bbolt; the
-- operations are in store/pg_outbox*.go): the customers' endpoints, their messages (the
-- events, written in the transaction of the record that caused them), the deliveries of the
-- messages to the endpoints with their attempts, and when each customer's last
-- number.pool_exhausted event was written. Times that an attempt's result names
-- (DeliveryResult.Scheduled) or a message id holds are Unix nanoseconds (bigint), so that
-- they compare exactly as on bbolt.

-- +goose Up
CREATE TABLE webhook_endpoints (
	customer_id text COLLATE "C" NOT NULL,
	id          text COLLATE "C" NOT NULL,
	-- the event types it wants (EventType.bit) and whether it gets them (Endpoint.Enabled):
	-- what the write of an event selects its deliveries by
	types       bigint NOT NULL,
	enabled     boolean NOT NULL,
	-- the record as bbolt keeps it (storedEndpoint): the secrets sealed with the customer's
	-- key when the store has a SecretSealer (webhooksecrets.go), in the clear otherwise
	record      jsonb NOT NULL,
	PRIMARY KEY (customer_id, id)
);

-- One row, counting the changes to endpoints: every node reads it (pg_outbox.go's poller)
-- and reads the endpoints again when it moved (DB.EndpointsVersion).
CREATE TABLE webhook_endpoint_changes (
	one     boolean PRIMARY KEY DEFAULT true CHECK (one),
	changes bigint NOT NULL
);
INSERT INTO webhook_endpoint_changes (changes) VALUES (0);

CREATE TABLE webhook_messages (
	customer_id text COLLATE "C" NOT NULL,
	id          text COLLATE "C" NOT NULL,  -- time-ordered (pgOutbox.newID)
	-- the order of the commits of one subject's messages: they reach an endpoint in it
	seq         bigint GENERATED ALWAYS AS IDENTITY,
	type        text NOT NULL,
	subject     text COLLATE "C" NOT NULL DEFAULT '', -- the call of a call's events
	created     bigint NOT NULL,            -- Unix ns
	at          bigint NOT NULL,            -- the event's timestamp, Unix ns
	-- the payload's data (JSON), sealed (store/pg_seal.go: it may hold the caller's number);
	-- NULL when ref names the message of the same write that holds it
	data        bytea,
	ref         text COLLATE "C",
	PRIMARY KEY (customer_id, id)
);
CREATE INDEX webhook_messages_subject ON webhook_messages (customer_id, subject, id) WHERE subject <> '';
CREATE INDEX webhook_messages_ref ON webhook_messages (customer_id, ref) WHERE ref IS NOT NULL;

-- A message's way to one endpoint: pending (state 1) from the message's write until it is
-- delivered (2) or failed (3). A pending one is due at next_at unless an earlier pending
-- delivery of its subject to the endpoint waits (msg_seq). claimed_by/claimed_until are a
-- node's lease on an attempt in flight (DueDeliveries): no other node takes it meanwhile.
CREATE TABLE webhook_deliveries (
	customer_id   text COLLATE "C" NOT NULL,
	endpoint_id   text COLLATE "C" NOT NULL,
	message_id    text COLLATE "C" NOT NULL,
	msg_seq       bigint NOT NULL,
	subject       text COLLATE "C" NOT NULL DEFAULT '',
	state         smallint NOT NULL,
	next_at       bigint,                   -- Unix ns; pending only
	attempt_count integer NOT NULL DEFAULT 0,
	attempts      jsonb NOT NULL DEFAULT '[]', -- the last MaxAttemptsKept, oldest first
	failed_reason text NOT NULL DEFAULT '',
	claimed_by    text,
	claimed_until bigint,                   -- Unix ns
	PRIMARY KEY (customer_id, endpoint_id, message_id)
) WITH (fillfactor = 70); -- room on each page: a claim changes no indexed column (a HOT update)
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (customer_id, endpoint_id, next_at, message_id) WHERE state = 1;
CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (customer_id, endpoint_id, subject, msg_seq)
	WHERE state = 1 AND subject <> '';
CREATE INDEX webhook_deliveries_message ON webhook_deliveries (customer_id, message_id);

-- When a customer's last number.pool_exhausted event was written (Unix ns): one per
-- PoolExhaustedEvery.
CREATE TABLE webhook_pool_exhausted (
	customer_id text COLLATE "C" PRIMARY KEY,
	at          bigint NOT NULL
);

-- +goose Down
DROP TABLE webhook_pool_exhausted;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_messages;
DROP TABLE webhook_endpoint_changes;
DROP TABLE webhook_endpoints;
