package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The webhooks on PostgreSQL: endpoints (this file), events (pg_outbox_events.go), and the
// deliveries (pg_outbox_deliveries.go), in the tables of migrations/00007_webhooks.sql. The
// operations keep the contracts of the bbolt ones (webhooks.go, events.go, outbox.go); what
// bbolt keeps in memory or indexes later is here in the rows themselves:
//
//   - A message's deliveries are inserted by the statement that inserts the message, in the
//     transaction of the record that caused it, to every enabled endpoint of the customer
//     that wants its type at that moment (INSERT ... SELECT from webhook_endpoints): there is
//     no deferred index (IndexOutbox has nothing to do).
//   - Whether a write makes events at all is decided from a cache of the enabled endpoints'
//     types per customer (pgOutbox.subs), so that the write of a call of a customer without
//     endpoints reads nothing more: the cache is dropped when a transaction changes
//     endpoints (at once, and at its commit) and when the poller sees that another node
//     changed some. An endpoint made on another node gets the events of the writes made
//     after this node learnt of it: within pgOutboxPoll.
//   - Several nodes deliver from one database: DueDeliveries claims the deliveries it answers
//     (claimed_by, claimed_until: a lease of pgClaimFor, or SetWebhookClaim's), with a conditional UPDATE that
//     another node's concurrent claim makes fail, so that no message is sent by two nodes at
//     once. A node that dies with attempts in flight leaves them to the others once the
//     lease ends.
//   - The workers learn of the deliveries made due by this node's commits at once (as on
//     bbolt: TakeDueEndpoints, OutboxSignal) and of other nodes' by polling (pgOutboxPoll):
//     one small query a poll, which also reads the count of the changes to endpoints
//     (EndpointsVersion). Polling, not LISTEN/NOTIFY: a NOTIFY in the call's transaction
//     takes PostgreSQL's lock on the notification queue from before the commit until after
//     it, which would make the commits of every node that writes events one at a time.

// pgOutboxPoll is how often a node looks for the deliveries other nodes made due and for
// changes to the endpoints.
const pgOutboxPoll = 250 * time.Millisecond

// pgClaimFor is how long a claim of DueDeliveries keeps the other nodes off a delivery, by
// default: an attempt (at most the workers' timeout, 10 s by default) and the write of its
// outcome. A node that dies with a claim leaves its delivery undelivered this long (then
// another node makes the attempt again: at least once); package integrations sets it from
// its timeout (SetWebhookClaim).
const pgClaimFor = time.Minute

func init() { pgImplemented["DB.SetWebhookClaim"] = true }

// SetWebhookClaim sets how long a claim of DueDeliveries keeps the other nodes off a
// delivery on PostgreSQL (at least a second; pgClaimFor until set). It must outlast an
// attempt and the write of its outcome, or another node may make the attempt too. On bbolt
// there are no claims (one process).
func (db *DB) SetWebhookClaim(d time.Duration) {
	if db.pg != nil {
		db.pg.outbox.claimFor.Store(int64(max(d, time.Second)))
	}
}

// pgOutbox is what a store on PostgreSQL keeps of the webhooks in memory.
type pgOutbox struct {
	// node names this handle's claims; tag is in the ids of its messages; seq counts them.
	node, tag string
	seq       atomic.Uint64
	// subs caches the enabled endpoints (nil: to be read); gen counts the times it was
	// dropped, so that a read made meanwhile is not kept.
	subs atomic.Pointer[pgSubs]
	gen  atomic.Uint64
	// changes is the count of webhook_endpoint_changes last seen (-1: not yet).
	changes atomic.Int64
	// pollEvery is the poller's interval (tests make it long); due are the fingerprints of
	// the endpoints that had deliveries due at the last poll.
	pollEvery atomic.Int64
	due       map[EndpointRef]int64
	// claimFor is the length of a claim (SetWebhookClaim).
	claimFor atomic.Int64
	done     chan struct{}
}

// pgSubs are the enabled endpoints of every customer, with the types they want.
type pgSubs map[string][]pgSub

type pgSub struct {
	id   string
	mask uint64
}

func newPgOutbox() *pgOutbox {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail
	}
	o := &pgOutbox{node: fmt.Sprintf("%x", b), due: map[EndpointRef]int64{}, done: make(chan struct{})}
	tag := make([]byte, 6)
	for i := range tag {
		tag[i] = crockford[b[i]&31]
	}
	o.tag = string(tag)
	o.changes.Store(-1)
	o.pollEvery.Store(int64(pgOutboxPoll))
	o.claimFor.Store(int64(pgClaimFor))
	return o
}

// newID makes the id of a message made at now: the shape of the bbolt ids (newMessageID):
// ten characters of milliseconds (never fewer than the last id's of this process), then
// this handle's tag (six) and its count of messages (ten), in Crockford base32. The ids of
// one process sort in the order they were made; those of two nodes by their time.
func (db *DB) pgNewMessageID(now time.Time) string {
	ms := min(max(now.UnixMilli(), 0), 1<<48-1)
	for {
		last := db.outbox.ms.Load()
		if ms <= last {
			ms = last
			break
		}
		if db.outbox.ms.CompareAndSwap(last, ms) {
			break
		}
	}
	seq := db.pg.outbox.seq.Add(1)
	var b [26]byte
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	copy(b[10:16], db.pg.outbox.tag)
	for i := 25; i >= 16; i-- {
		b[i] = crockford[seq&31]
		seq >>= 5
	}
	return string(b[:])
}

// dropSubs drops the cache of the enabled endpoints.
func (o *pgOutbox) dropSubs() {
	o.gen.Add(1)
	o.subs.Store(nil)
}

// subscribers answers the customer's enabled endpoints that want some of the types in mask
// (nil: none), reading the cache, or the table when it has none.
func (t *Tx) pgSubscribers(customerID string, mask uint64) ([]pgSub, error) {
	o := t.pg.s.outbox
	subs := o.subs.Load()
	if subs == nil {
		gen := o.gen.Load()
		m := pgSubs{}
		err := t.pg.query(`SELECT customer_id, id, types FROM webhook_endpoints WHERE enabled ORDER BY customer_id, id`, nil,
			func(r pgx.Rows) error {
				var c string
				var s pgSub
				var types int64
				if err := r.Scan(&c, &s.id, &types); err != nil {
					return err
				}
				s.mask = uint64(types)
				m[c] = append(m[c], s)
				return nil
			})
		if err != nil {
			return nil, err
		}
		subs = &m
		// Kept unless dropped meanwhile, or read after this transaction's own changes (which
		// may be rolled back).
		if !t.pg.endpointsChanged {
			o.subs.CompareAndSwap(nil, subs)
			if o.gen.Load() != gen {
				o.subs.Store(nil)
			}
		}
	}
	var out []pgSub
	for _, s := range (*subs)[customerID] {
		if s.mask&mask != 0 {
			out = append(out, s)
		}
	}
	return out, nil
}

// dueAfterCommit has the commit tell the workers that the endpoints have deliveries due.
func (t *Tx) pgDueAfterCommit(customerID string, endpoints ...string) {
	if len(endpoints) == 0 {
		return
	}
	db := t.db
	t.pg.afterCommit(func() {
		db.outbox.mu.Lock()
		for _, e := range endpoints {
			db.outbox.due[EndpointRef{customerID, e}] = struct{}{}
		}
		db.outbox.mu.Unlock()
		db.signalOutbox()
	})
}

// --- endpoints

// pgPutEndpoint is PutEndpoint's write on PostgreSQL, after the endpoint's check: the
// customer's row is locked, so that two nodes do not both add a customer's last endpoint.
func (t *Tx) pgPutEndpoint(e *Endpoint) error {
	var customer bool
	var n int
	var exists bool
	err := t.pg.row(`SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1 FOR UPDATE),
			(SELECT count(*) FROM webhook_endpoints WHERE customer_id = $1),
			EXISTS (SELECT 1 FROM webhook_endpoints WHERE customer_id = $1 AND id = $2)`,
		[]any{e.CustomerID, e.ID}, &customer, &n, &exists)
	if err != nil {
		return err
	}
	if !customer {
		return fmt.Errorf("webhook endpoint %q: customer %q: %w", e.ID, e.CustomerID, ErrNotFound)
	}
	if !exists && n >= MaxEndpoints {
		return fmt.Errorf("webhook endpoint %q: %w", e.ID, invalid("url", "a customer has at most %d endpoints", MaxEndpoints))
	}
	return nil
}

// pgPutEndpointRecord writes an endpoint's record (s: its secrets sealed or not, as
// putEndpoint made it).
func (t *Tx) pgPutEndpointRecord(e *Endpoint, s *storedEndpoint) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode webhook endpoint %q: %w", e.ID, err)
	}
	return t.pg.exec(nil, `INSERT INTO webhook_endpoints (customer_id, id, types, enabled, record) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (customer_id, id) DO UPDATE SET types = excluded.types, enabled = excluded.enabled, record = excluded.record`,
		e.CustomerID, e.ID, int64(e.mask()), e.Enabled(), raw)
}

// pgEndpointsChanged counts a change to the endpoints (every node reads them again) and
// drops the cache of the enabled ones, now and at the commit.
func (t *Tx) pgEndpointsChanged() error {
	if err := t.pg.exec(nil, `UPDATE webhook_endpoint_changes SET changes = changes + 1`); err != nil {
		return err
	}
	o, db := t.pg.s.outbox, t.db
	t.pg.endpointsChanged = true
	o.dropSubs()
	t.pg.afterCommit(func() {
		o.dropSubs()
		db.outbox.endpointsGen.Add(1)
		db.signalOutbox()
	})
	return nil
}

func (t *Tx) pgEndpoint(customerID, id string) (Endpoint, error) {
	var raw []byte
	err := t.pg.row(`SELECT record FROM webhook_endpoints WHERE customer_id = $1 AND id = $2`+t.pg.forUpdate(),
		[]any{customerID, id}, &raw)
	if errors.Is(err, ErrNotFound) {
		return Endpoint{}, fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Endpoint{}, err
	}
	return t.decodeEndpoint(compose(customerID, id), raw)
}

// pgEndpoints lists endpoints ordered by customer and id: one customer's, or (all) every
// customer's, leaving out those whose secret cannot be opened with skipSealed.
func (t *Tx) pgEndpoints(customerID string, all, skipSealed bool) ([]Endpoint, error) {
	q, args := `SELECT customer_id, id, record FROM webhook_endpoints WHERE customer_id = $1 ORDER BY id`, []any{customerID}
	if all {
		q, args = `SELECT customer_id, id, record FROM webhook_endpoints ORDER BY customer_id, id`, nil
	}
	var out []Endpoint
	err := t.pg.query(q, args, func(r pgx.Rows) error {
		var c, id string
		var raw []byte
		if err := r.Scan(&c, &id, &raw); err != nil {
			return err
		}
		e, err := t.decodeEndpoint(compose(c, id), raw)
		if skipSealed && errors.Is(err, ErrSecretSealed) {
			// Its customer's key is gone (an erasure): nothing of it is delivered.
			t.db.log.Warn("store skips a webhook endpoint whose secret cannot be opened", "err", err)
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// pgAllEndpoints is AllEndpoints on PostgreSQL.
func (db *DB) pgAllEndpoints() ([]Endpoint, error) {
	var out []Endpoint
	err := db.View(func(tx *Tx) (err error) { out, err = tx.pgEndpoints("", true, true); return err })
	return out, err
}

// pgDeleteEndpoint is DeleteEndpoint on PostgreSQL: marked as being deleted (no new
// messages), its deliveries deleted in statements of at most DefaultPurgeBatch rows, then
// its record.
func (db *DB) pgDeleteEndpoint(ctx context.Context, customerID, id string) error {
	if err := db.markEndpointDeleting(ctx, customerID, id); err != nil {
		return err
	}
	for {
		n := 0
		err := db.Write(ctx, func(tx *Tx) error {
			return tx.pg.exec(func(tag pgconn.CommandTag) error { n = int(tag.RowsAffected()); return nil },
				`DELETE FROM webhook_deliveries WHERE ctid = ANY (ARRAY (SELECT ctid FROM webhook_deliveries
					WHERE customer_id = $1 AND endpoint_id = $2 LIMIT $3))`, customerID, id, DefaultPurgeBatch)
		})
		if err != nil {
			return fmt.Errorf("delete the deliveries of webhook endpoint %q: %w", id, err)
		}
		if n < DefaultPurgeBatch {
			break
		}
	}
	return db.Write(ctx, func(tx *Tx) error {
		if err := tx.pg.exec(nil, `DELETE FROM webhook_endpoints WHERE customer_id = $1 AND id = $2`, customerID, id); err != nil {
			return err
		}
		return tx.endpointsChanged(customerID)
	})
}

// pgSealEndpointSecrets is SealEndpointSecrets on PostgreSQL (the sealer is set): the
// records that hold a secret in the clear, DefaultPurgeBatch a transaction. The clear
// secrets stay in dead row versions until VACUUM.
func (db *DB) pgSealEndpointSecrets(ctx context.Context) (int, error) {
	total := 0
	from := [2]string{"", ""}
	for {
		n, done := 0, false
		err := db.Write(ctx, func(tx *Tx) error {
			n, done = 0, true
			var recs []Endpoint
			err := tx.pg.query(`SELECT customer_id, id, record FROM webhook_endpoints
				WHERE (customer_id, id) > ($1, $2) AND (record ? 'secret' OR record ? 'previous_secret')
				ORDER BY customer_id, id LIMIT $3 FOR UPDATE`, []any{from[0], from[1], DefaultPurgeBatch + 1}, func(r pgx.Rows) error {
				var c, id string
				var raw []byte
				if err := r.Scan(&c, &id, &raw); err != nil {
					return err
				}
				e, err := tx.decodeEndpoint(compose(c, id), raw)
				if err != nil {
					return err
				}
				recs = append(recs, e)
				return nil
			})
			if err != nil {
				return err
			}
			if len(recs) > DefaultPurgeBatch {
				recs, done = recs[:DefaultPurgeBatch], false
			}
			for i := range recs {
				if err := tx.putEndpoint(&recs[i]); err != nil {
					return err
				}
				n++
			}
			if len(recs) > 0 {
				from = [2]string{recs[len(recs)-1].CustomerID, recs[len(recs)-1].ID}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("seal the webhook endpoints' secrets: %w", err)
		}
		total += n
		if done {
			return total, nil
		}
	}
}

// --- the poller

// startOutbox starts the poller; it exits when the store closes (pgStore.ctx), closing done.
// It looks every pgOutboxPoll whether pollEvery has passed since its last poll (tests make
// pollEvery long after the store is open). On its way out it lets go of this handle's claims
// (releaseClaims).
func (s *pgStore) startOutbox(db *DB) {
	go func() {
		defer close(s.outbox.done)
		ticker := time.NewTicker(pgOutboxPoll)
		defer ticker.Stop()
		var last time.Time
		for {
			select {
			case <-s.ctx.Done():
				if err := s.releaseClaims(); err != nil {
					db.log.Warn("store could not let go of its webhook claims: other nodes take them when they lapse", "err", err)
				}
				return
			case <-ticker.C:
			}
			if time.Since(last) < time.Duration(s.outbox.pollEvery.Load()) {
				continue
			}
			last = time.Now()
			if err := s.pollOutbox(db); err != nil && s.ctx.Err() == nil {
				db.log.Warn("store could not look at the webhook outbox", "err", err)
			}
		}
	}()
}

// releaseClaims ends the claims this handle holds on pending deliveries, so that a node
// stopped on purpose (a restart, a drain) leaves them to the others, or to itself started
// again, at once rather than when they lapse (SetWebhookClaim). The store closes after its
// dispatcher stopped (trackline serve waits for the webhooks' workers before it closes the
// store), so no attempt of these claims is in flight. A node that dies keeps its claims
// until they lapse.
func (s *pgStore) releaseClaims() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL
		WHERE state = 1 AND claimed_by = $1`, s.outbox.node)
	return err
}

// pollOutbox reads the count of the changes to endpoints, and which enabled endpoints have
// deliveries due that no node holds; it tells the workers of a change, and of an endpoint
// whose first due deliveries are not those it had at the last poll (its fingerprint: how
// many of the first hundred, and the greatest message among them).
func (s *pgStore) pollOutbox(db *DB) error {
	ctx, cancel := context.WithTimeout(s.ctx, pgTxTimeout)
	defer cancel()
	now := db.now().UnixNano()
	rows, err := s.pool.Query(ctx, `SELECT e.customer_id, e.id, d.n, d.last FROM webhook_endpoints e,
			LATERAL (SELECT count(*) AS n, max(seq) AS last FROM (SELECT d.msg_seq AS seq FROM webhook_deliveries d
				WHERE d.customer_id = e.customer_id AND d.endpoint_id = e.id AND d.state = 1 AND d.next_at <= $1
					AND (d.claimed_until IS NULL OR d.claimed_until <= $1)
				ORDER BY d.next_at, d.message_id LIMIT 100) f) d
		WHERE e.enabled AND d.n > 0`, now)
	if err != nil {
		return err
	}
	seen := map[EndpointRef]int64{}
	for rows.Next() {
		var ref EndpointRef
		var n, last int64
		if err := rows.Scan(&ref.CustomerID, &ref.EndpointID, &n, &last); err != nil {
			rows.Close()
			return err
		}
		seen[ref] = n<<32 ^ last
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var changes int64
	if err := s.pool.QueryRow(ctx, `SELECT changes FROM webhook_endpoint_changes`).Scan(&changes); err != nil {
		return err
	}
	o := s.outbox
	signal := false
	if last := o.changes.Swap(changes); last != changes {
		// Also at the first poll: changes made since the store opened may be in the count.
		o.dropSubs()
		db.outbox.endpointsGen.Add(1)
		signal = true
	}
	db.outbox.mu.Lock()
	for ref, fp := range seen {
		if o.due[ref] != fp {
			db.outbox.due[ref] = struct{}{}
			signal = true
		}
	}
	db.outbox.mu.Unlock()
	o.due = seen
	if signal {
		db.signalOutbox()
	}
	return nil
}
