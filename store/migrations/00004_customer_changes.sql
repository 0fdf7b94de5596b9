-- Notifications of changed customers, for the nodes that share this database: a change to a
-- customer, its channels or its numbers notifies 'trackline_customers' with the customer's
-- id at its commit (pg_notify; one notification per id and transaction), and every node that
-- listens (store.DB.CustomerChanges) reads that customer again. A change of a number's lease
-- columns alone (migration 00002) notifies nobody: leases are read from the rows themselves.
-- A number of no customer (held in quarantine) notifies the empty id: read everything.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION trackline_notify_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP <> 'INSERT' THEN
		PERFORM pg_notify('trackline_customers', coalesce(to_jsonb(OLD) ->> TG_ARGV[0], ''));
	END IF;
	IF TG_OP <> 'DELETE' THEN
		PERFORM pg_notify('trackline_customers', coalesce(to_jsonb(NEW) ->> TG_ARGV[0], ''));
	END IF;
	RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER customers_notify AFTER INSERT OR UPDATE OR DELETE ON customers
	FOR EACH ROW EXECUTE FUNCTION trackline_notify_customer('id');
CREATE TRIGGER channels_notify AFTER INSERT OR UPDATE OR DELETE ON channels
	FOR EACH ROW EXECUTE FUNCTION trackline_notify_customer('customer_id');
CREATE TRIGGER numbers_notify AFTER INSERT OR DELETE OR UPDATE OF customer_id, kind, channel_id, state, quarantined_until, porting ON numbers
	FOR EACH ROW EXECUTE FUNCTION trackline_notify_customer('customer_id');

-- +goose Down
DROP TRIGGER numbers_notify ON numbers;
DROP TRIGGER channels_notify ON channels;
DROP TRIGGER customers_notify ON customers;
DROP FUNCTION trackline_notify_customer();
