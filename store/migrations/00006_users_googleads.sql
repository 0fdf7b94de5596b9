-- The web app's users, their invitations and sessions (store/users.go), and the customers'
-- Google Ads settings and calls' upload states (store/googleads.go). store/pg_users.go and
-- store/pg_googleads.go hold the operations.
--
-- An invitation and an app session are found by the SHA-256 of a secret only their holder
-- has (the link's token, the cookie's id): the secret itself is never stored, as on bbolt.
-- Their expiry is Unix nanoseconds, as bbolt's index keys it, so that PruneAppSessions and
-- TakeInvitation draw the line where bbolt does.

-- +goose Up
CREATE TABLE users (
	id            text COLLATE "C" PRIMARY KEY,
	customer_id   text COLLATE "C" NOT NULL DEFAULT '', -- '' for an operator
	email         text COLLATE "C" NOT NULL,            -- lower-cased (Go's strings.ToLower)
	name          text NOT NULL DEFAULT '',
	role          text NOT NULL,
	password_hash text NOT NULL DEFAULT '',              -- argon2id PHC string: a hash
	totp_secret   bytea,
	created       timestamptz,
	CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_customer ON users (customer_id, email);

-- One invitation per user: a new one replaces the user's earlier one.
CREATE TABLE invitations (
	hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
	user_id    text COLLATE "C" NOT NULL,
	expires_ns bigint NOT NULL,
	CONSTRAINT invitations_user_key UNIQUE (user_id)
);

CREATE TABLE app_sessions (
	hash        bytea PRIMARY KEY CHECK (length(hash) = 32),
	user_id     text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL DEFAULT '', -- the customer looked at; '' none
	csrf        text NOT NULL DEFAULT '',
	created     timestamptz,
	expires_ns  bigint NOT NULL
);
CREATE INDEX app_sessions_user ON app_sessions (user_id);
CREATE INDEX app_sessions_expiry ON app_sessions (expires_ns);
CREATE INDEX app_sessions_customer ON app_sessions (customer_id) WHERE customer_id <> '';

-- A customer's settings. The OAuth2 client secret and refresh token arrive sealed with the
-- customer's key (integrations/googleads): the store never sees them in the clear.
CREATE TABLE googleads_settings (
	customer_id       text COLLATE "C" PRIMARY KEY,
	ads_customer_id   text NOT NULL,
	conversion_action text NOT NULL,
	client_id         text NOT NULL DEFAULT '',
	sealed_secrets    bytea,
	disabled          boolean NOT NULL DEFAULT false,
	created           timestamptz,
	updated           timestamptz,
	-- the login customer id, conversion name, currency, time zone and rule: pgAdsDetail
	detail            jsonb NOT NULL
);

-- A call's upload state; it goes with the call (DeleteCall) and with the customer.
CREATE TABLE googleads_uploads (
	customer_id  text COLLATE "C" NOT NULL,
	call_id      text COLLATE "C" NOT NULL,
	state        text NOT NULL CHECK (state <> ''),
	reason       text NOT NULL DEFAULT '',
	error        text NOT NULL DEFAULT '',
	attempts     integer NOT NULL DEFAULT 0,
	next_attempt timestamptz,
	value        double precision NOT NULL DEFAULT 0,
	currency     text NOT NULL DEFAULT '',
	updated      timestamptz,
	PRIMARY KEY (customer_id, call_id)
);

-- +goose Down
DROP TABLE googleads_uploads;
DROP TABLE googleads_settings;
DROP TABLE app_sessions;
DROP TABLE invitations;
DROP TABLE users;
