-- The first schema of the PostgreSQL store: customers, channels, numbers, sessions, the
-- per-customer counters and the assignments (leases). The store's operations on them are in
-- store/pg_*.go. Conventions:
--   * ids and other keys are text COLLATE "C": they sort by their bytes, as bbolt's keys do,
--     whatever the database's locale (SessionsOf pages by id);
--   * no foreign keys: as on bbolt, a record may name a customer that is not (or no longer)
--     there, and PurgeCustomer deletes a customer's records in bounded steps of its own;
--   * times are timestamptz (microseconds), NULL for a zero time.Time; the assignments keep
--     theirs as Unix nanoseconds, since a record's start names it (cut_from_ns);
--   * personal fields are bytea holding a sealed value (store/pg_seal.go): a format byte,
--     then the value: 1 is AES-256-GCM under the customer's key, 0 plain text (no keys);
--   * what no query selects, orders or constrains by stays in one jsonb column per record.

-- +goose Up
CREATE TABLE customers (
	id               text COLLATE "C" PRIMARY KEY,
	site_key         text COLLATE "C" NOT NULL CHECK (site_key <> ''),
	name             text NOT NULL,
	status           text NOT NULL,
	created          timestamptz,
	trial_ends       timestamptz,
	active_since     timestamptz,
	contract_ends    timestamptz,
	ended_at         timestamptz,
	retention_months integer NOT NULL DEFAULT 0,
	retention_action text NOT NULL DEFAULT '',
	-- lines, display numbers, prompts, the recording policy, limits (pgCustomerSettings)
	settings         jsonb NOT NULL,
	CONSTRAINT customers_site_key_key UNIQUE (site_key)
);
CREATE INDEX customers_status ON customers (status);

-- The ids of deleted customers: never given again (CreateCustomer).
CREATE TABLE customers_purged (
	id        text COLLATE "C" PRIMARY KEY,
	purged_at timestamptz NOT NULL
);

CREATE TABLE channels (
	customer_id text COLLATE "C" NOT NULL,
	id          text COLLATE "C" NOT NULL,
	name        text NOT NULL,
	ord         integer NOT NULL,
	rules       jsonb,
	PRIMARY KEY (customer_id, id)
);

CREATE TABLE numbers (
	e164              text COLLATE "C" PRIMARY KEY,
	-- '' for a number held in quarantine after its customer's data was deleted
	customer_id       text COLLATE "C" NOT NULL,
	kind              text NOT NULL,
	channel_id        text COLLATE "C" NOT NULL DEFAULT '',
	state             text NOT NULL,
	quarantined_until timestamptz,
	porting           boolean NOT NULL DEFAULT false,
	created           timestamptz
);
CREATE INDEX numbers_customer ON numbers (customer_id, e164);

CREATE TABLE sessions (
	id            text COLLATE "C" PRIMARY KEY,
	customer_id   text COLLATE "C" NOT NULL,
	created       timestamptz,
	channel       text NOT NULL,
	landing_page  bytea, -- personal: sealed
	referrer_host bytea, -- personal: sealed
	utm_source    text NOT NULL DEFAULT '',
	utm_medium    text NOT NULL DEFAULT '',
	utm_campaign  text NOT NULL DEFAULT '',
	utm_term      text NOT NULL DEFAULT '',
	utm_content   text NOT NULL DEFAULT '',
	gclid         text NOT NULL DEFAULT '',
	gbraid        text NOT NULL DEFAULT '',
	wbraid        text NOT NULL DEFAULT '',
	ad_consent    text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_customer ON sessions (customer_id, id);

-- A customer's counters, in pgStatsShards rows: each node adds to its own row, so that the
-- nodes do not queue for one row lock; a read sums them (the peak is their maximum).
CREATE TABLE customer_stats (
	customer_id    text COLLATE "C" NOT NULL,
	shard          smallint NOT NULL,
	sessions_total bigint NOT NULL DEFAULT 0,
	exhaustions    bigint NOT NULL DEFAULT 0,
	peak_assigned  integer NOT NULL DEFAULT 0,
	PRIMARY KEY (customer_id, shard)
);

-- Leases of pool numbers to sessions (store/assignments.go explains CutFrom and the spans).
CREATE TABLE assignments (
	customer_id text COLLATE "C" NOT NULL,
	from_ns     bigint NOT NULL,
	number      text COLLATE "C" NOT NULL,
	session_id  text COLLATE "C" NOT NULL,
	until_ns    bigint NOT NULL,
	cut_from_ns bigint,
	PRIMARY KEY (customer_id, from_ns, number, session_id)
);
CREATE INDEX assignments_number ON assignments (customer_id, number, from_ns);
CREATE INDEX assignments_session ON assignments (session_id);

-- +goose Down
DROP TABLE assignments;
DROP TABLE customer_stats;
DROP TABLE sessions;
DROP TABLE numbers;
DROP TABLE channels;
DROP TABLE customers_purged;
DROP TABLE customers;
