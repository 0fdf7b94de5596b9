-- Calls, recordings, the monthly usage and the daily rollups (store/calls.go,
-- callers.go, rollups.go, lifecycle.go's usage). store/pg_calls.go holds the operations.

-- +goose Up
CREATE TABLE calls (
	id               text COLLATE "C" PRIMARY KEY, -- time-ordered (pool.NewID)
	customer_id      text COLLATE "C" NOT NULL,
	dialled          text NOT NULL,
	caller           bytea,                          -- personal: sealed
	caller_pseudonym text COLLATE "C" NOT NULL DEFAULT '',
	session_id       text COLLATE "C" NOT NULL DEFAULT '',
	channel          text NOT NULL DEFAULT '',
	keyword          text NOT NULL DEFAULT '',
	landing_page     bytea,                          -- personal: sealed
	referrer_host    bytea,                          -- personal: sealed
	start            timestamptz,
	answer           timestamptz,
	ended            timestamptz,                    -- NULL while the call is in progress
	disposition      text NOT NULL DEFAULT '',
	recording_id     text COLLATE "C" NOT NULL DEFAULT '',
	tags             text[],
	-- the rest of the record (lines, times, media statistics, annotations): pgCallDetail
	detail           jsonb NOT NULL
);
CREATE INDEX calls_customer ON calls (customer_id, id);
CREATE INDEX calls_active ON calls (customer_id, id) WHERE ended IS NULL;
CREATE INDEX calls_caller ON calls (customer_id, caller_pseudonym, id) WHERE caller_pseudonym <> '';
CREATE INDEX calls_session ON calls (customer_id, session_id) WHERE session_id <> '';

CREATE TABLE recordings (
	id          text COLLATE "C" PRIMARY KEY,
	customer_id text COLLATE "C" NOT NULL,
	call_id     text COLLATE "C" NOT NULL,
	path        text NOT NULL,
	duration_ns bigint NOT NULL,
	size        bigint NOT NULL,
	sha256      text NOT NULL,
	created     timestamptz
);
CREATE INDEX recordings_customer ON recordings (customer_id, id);

-- Usage per customer and month (lifecycle.go): calls and talk time, counted as calls are
-- written (erased calls still count); the sessions are counted from the sessions until the
-- month's count is frozen (FreezeSessionCounts), then kept here.
CREATE TABLE usage_months (
	customer_id     text COLLATE "C" NOT NULL,
	month           text NOT NULL, -- yyyy-mm
	calls           bigint NOT NULL DEFAULT 0,
	talk_ms         bigint NOT NULL DEFAULT 0,
	sessions        bigint NOT NULL DEFAULT 0,
	sessions_frozen boolean NOT NULL DEFAULT false,
	PRIMARY KEY (customer_id, month)
);

-- Daily rollups (rollups.go): per customer, UTC day and channel, what its completed calls
-- came to; and per day the calls by landing page ('l') and by keyword ('k'), at most
-- MaxRollupKeys names a day and kind, the others under '(other)'.
CREATE TABLE rollup_channels (
	customer_id  text COLLATE "C" NOT NULL,
	day          date NOT NULL,
	channel      text NOT NULL,
	calls        integer NOT NULL DEFAULT 0,
	answered     integer NOT NULL DEFAULT 0,
	busy         integer NOT NULL DEFAULT 0,
	missed       integer NOT NULL DEFAULT 0,
	first_time   integer NOT NULL DEFAULT 0,
	returning_calls integer NOT NULL DEFAULT 0,
	talk_seconds double precision NOT NULL DEFAULT 0,
	talk_hist    integer[] NOT NULL DEFAULT array_fill(0, ARRAY[24]),
	recorded     integer NOT NULL DEFAULT 0,
	PRIMARY KEY (customer_id, day, channel)
);
-- Landing pages are sealed with the customer's key since migration 00008 (a keyed hash
-- names the row, store/pg_rollupnames.go).
CREATE TABLE rollup_names (
	customer_id text COLLATE "C" NOT NULL,
	day         date NOT NULL,
	kind        text NOT NULL CHECK (kind IN ('l', 'k')),
	name        text NOT NULL,
	calls       integer NOT NULL,
	PRIMARY KEY (customer_id, day, kind, name)
);

-- +goose Down
DROP TABLE rollup_names;
DROP TABLE rollup_channels;
DROP TABLE usage_months;
DROP TABLE recordings;
DROP TABLE calls;
