package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The webhooks' messages and deliveries on PostgreSQL (see pg_outbox.go): reading them,
// handing due deliveries to the workers (claimed: several nodes deliver from one
// database), recording attempts, replays, the queue's stats, the retention's pruning and a
// caller's export and erasure.

// Delivery states as stored (the DeliveryState values).
const (
	pgPending   = int16(DeliveryPending)
	pgDelivered = int16(DeliveryDelivered)
	pgFailed    = int16(DeliveryFailed)
)

// pgMessageColumns read a message with its data (its own, or that of the message of its
// write that holds it: o) from webhook_messages m.
const pgMessageColumns = `m.id, m.type, m.subject, m.created, m.at, coalesce(m.data, o.data), coalesce(m.ref, m.id)`

const pgMessageFrom = ` FROM webhook_messages m
	LEFT JOIN webhook_messages o ON o.customer_id = m.customer_id AND o.id = m.ref`

// pgWaiting is true for a pending delivery d that waits for an earlier pending delivery of
// its subject to its endpoint. (w.subject <> ” lets the planner use the partial index
// webhook_deliveries_subject.)
var pgWaiting = pgWaitingOf("d")

// pgWaitingOf is pgWaiting of the delivery named alias.
func pgWaitingOf(alias string) string {
	return strings.ReplaceAll(`(d.subject <> '' AND EXISTS (SELECT 1 FROM webhook_deliveries w
	WHERE w.customer_id = d.customer_id AND w.endpoint_id = d.endpoint_id AND w.state = 1
		AND w.subject <> '' AND w.subject = d.subject AND w.msg_seq < d.msg_seq))`, "d.", alias+".")
}

// scanMessage reads the columns of pgMessageColumns into a message of the customer.
func (t *pgTx) scanMessage(customerID string, r pgx.Row) (Message, error) {
	var id, typ, subject, owner string
	var created, at int64
	var data []byte
	if err := r.Scan(&id, &typ, &subject, &created, &at, &data, &owner); err != nil {
		return Message{}, err
	}
	m := Message{ID: id, CustomerID: customerID, Type: EventType(typ), Subject: subject, Created: timeOf(created)}
	if data == nil {
		return m, fmt.Errorf("webhook message %q: the message %q with its data: %w", id, owner, ErrNotFound)
	}
	d, err := t.open("webhook_messages.data", customerID, owner, data)
	if err != nil {
		return m, fmt.Errorf("webhook message %q: %w", id, err)
	}
	m.Payload = envelopeJSON(m.Type, id, time.Unix(0, at), []byte(d))
	return m, nil
}

func (t *Tx) pgMessage(customerID, id string) (Message, error) {
	var m Message
	err := t.pg.rowFn(`SELECT `+pgMessageColumns+pgMessageFrom+` WHERE m.customer_id = $1 AND m.id = $2`, []any{customerID, id},
		func(r pgx.Row) (err error) { m, err = t.pg.scanMessage(customerID, r); return err })
	if errors.Is(err, ErrNotFound) && m.ID == "" {
		return Message{}, fmt.Errorf("webhook message %q: %w", id, ErrNotFound)
	}
	return m, err
}

func (t *Tx) pgMessages(customerID string, from, to time.Time, limit int) ([]Message, error) {
	var out []Message
	if limit <= 0 {
		return nil, nil
	}
	lo := string(idTimePrefix(max(from.UnixMilli(), 0)))
	err := t.pg.query(`SELECT `+pgMessageColumns+pgMessageFrom+` WHERE m.customer_id = $1 AND m.id >= $2 ORDER BY m.id LIMIT $3`,
		[]any{customerID, lo, limit}, func(r pgx.Rows) error {
			m, err := t.pg.scanMessage(customerID, r)
			if err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	if err != nil {
		return nil, err
	}
	if !to.IsZero() {
		if i := slices.IndexFunc(out, func(m Message) bool { return !m.Created.Before(to) }); i >= 0 {
			out = out[:i]
		}
	}
	return out, nil
}

// pgDeliveryColumns read a delivery d with its message's type (m) and whether it waits.
var pgDeliveryColumns = `d.message_id, coalesce(m.type, ''), d.subject, d.state, d.next_at, d.attempt_count, d.attempts,
	d.failed_reason, d.state = 1 AND ` + pgWaiting

func scanDelivery(customerID, endpointID string, r pgx.Row) (Delivery, error) {
	d := Delivery{CustomerID: customerID, EndpointID: endpointID}
	var typ string
	var state int16
	var next *int64
	var attempts []byte
	var waiting bool
	if err := r.Scan(&d.MessageID, &typ, &d.Subject, &state, &next, &d.AttemptCount, &attempts, &d.FailedReason, &waiting); err != nil {
		return d, err
	}
	d.Type, d.State = EventType(typ), DeliveryState(state)
	if err := json.Unmarshal(attempts, &d.Attempts); err != nil {
		return d, fmt.Errorf("decode webhook delivery %q: %w", d.MessageID, err)
	}
	if len(d.Attempts) == 0 {
		d.Attempts = nil
	}
	if d.State == DeliveryPending && next != nil && !waiting {
		d.Next = timeOf(*next)
	}
	return d, nil
}

func (t *Tx) pgDeliveries(customerID, endpointID, before string, limit int) ([]Delivery, string, error) {
	if limit <= 0 {
		return nil, "", nil
	}
	var out []Delivery
	err := t.pg.query(`SELECT `+pgDeliveryColumns+` FROM webhook_deliveries d
		LEFT JOIN webhook_messages m ON m.customer_id = d.customer_id AND m.id = d.message_id
		WHERE d.customer_id = $1 AND d.endpoint_id = $2 AND ($3 = '' OR d.message_id < $3)
		ORDER BY d.message_id DESC LIMIT $4`, []any{customerID, endpointID, before, limit + 1}, func(r pgx.Rows) error {
		d, err := scanDelivery(customerID, endpointID, r)
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(out) > limit {
		return out[:limit], out[limit-1].MessageID, nil
	}
	return out, "", nil
}

// pgDueDeliveries is DueDeliveries on PostgreSQL: one statement claims the endpoint's first
// due deliveries (pgClaimDue), which skip may leave out; when they are not enough to say
// when the next is due, pgNextDue reads on. skip is asked after the rows are read, so the
// caller must not let go of a delivery (its outcome committed) during the call: package
// integrations' dispatcher calls it under the lock that its release takes.
func (db *DB) pgDueDeliveries(customerID, endpointID string, now time.Time, limit int, skip func(string) bool) ([]DueDelivery, time.Time, error) {
	s := db.pg
	ctx, cancel := context.WithTimeout(s.ctx, pgTxTimeout)
	defer cancel()
	nowNS := now.UnixNano()
	claimed, err := db.pgClaimDue(ctx, customerID, endpointID, nowNS, limit+pgClaimAhead)
	if err != nil {
		return nil, time.Time{}, err
	}
	var out []DueDelivery
	var next time.Time
	for _, d := range claimed {
		switch {
		case skip(d.ID):
		case len(out) < limit:
			out = append(out, d)
		case next.IsZero():
			next = d.Scheduled
		}
	}
	if !next.IsZero() {
		return out, next, nil
	}
	afterNext, afterID := int64(-1<<63), ""
	if n := len(claimed); n > 0 {
		afterNext, afterID = claimed[n-1].Scheduled.UnixNano(), claimed[n-1].ID
	}
	next, err = db.pgNextDue(ctx, customerID, endpointID, nowNS, afterNext, afterID, skip)
	return out, next, err
}

// pgClaimAhead is how many due deliveries DueDeliveries claims beyond its limit: those its
// skip may leave out (the node's attempts in flight), and the next ones, which this node
// answers on its next call (another node takes them once the claim lapses).
const pgClaimAhead = 4

// pgClaimDue claims for this node at most n of the endpoint's deliveries due at now, the
// earliest due first, that do not wait for their subject and that no other node holds, and
// answers them with their messages. The rows are chosen FOR UPDATE SKIP LOCKED (a row another
// node is claiming, or whose outcome is being written, is passed over; one claimed by another
// node meanwhile is checked again on its new version, and left), so that a delivery is handed
// to one node at a time. Rows this node claimed before are answered again (their claim
// written again only when half of it has passed): its workers' skip leaves out those in
// flight. The claim's commit is not waited for on disk
// (synchronous_commit off): a claim lost in a crash only lets a delivery be taken again.
func (db *DB) pgClaimDue(ctx context.Context, customerID, endpointID string, nowNS int64, n int) ([]DueDelivery, error) {
	s := db.pg
	claimFor := s.outbox.claimFor.Load()
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL synchronous_commit TO off`)
	b.Queue(`WITH c AS (
			SELECT c.customer_id, c.endpoint_id, c.message_id, c.next_at, c.attempt_count, c.claimed_by, c.claimed_until
			FROM webhook_deliveries c
			WHERE c.customer_id = $1 AND c.endpoint_id = $2 AND c.state = 1 AND c.next_at <= $3
				AND (c.claimed_until IS NULL OR c.claimed_until <= $3 OR c.claimed_by = $4) AND NOT `+pgWaitingOf("c")+`
			ORDER BY c.next_at, c.message_id LIMIT $6 FOR UPDATE SKIP LOCKED),
		u AS (UPDATE webhook_deliveries d SET claimed_by = $4, claimed_until = $5 FROM c
			WHERE d.customer_id = c.customer_id AND d.endpoint_id = c.endpoint_id AND d.message_id = c.message_id
				AND NOT (c.claimed_by IS NOT DISTINCT FROM $4 AND c.claimed_until > $7))
		SELECT c.next_at, c.attempt_count, `+pgMessageColumns+` FROM c
			JOIN webhook_messages m ON m.customer_id = c.customer_id AND m.id = c.message_id
			LEFT JOIN webhook_messages o ON o.customer_id = m.customer_id AND o.id = m.ref`,
		customerID, endpointID, nowNS, s.outbox.node, nowNS+claimFor, n, nowNS+claimFor/2)
	b.Queue(`COMMIT`)
	var out []DueDelivery
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, b)
	err = func() error {
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		p := &pgTx{s: s, db: db, ctx: ctx}
		for rows.Next() {
			var at int64
			var attempts int
			var id, typ, subject, owner string
			var created, evAt int64
			var data []byte
			if err := rows.Scan(&at, &attempts, &id, &typ, &subject, &created, &evAt, &data, &owner); err != nil {
				return err
			}
			m := Message{ID: id, CustomerID: customerID, Type: EventType(typ), Subject: subject, Created: timeOf(created)}
			if data == nil {
				return fmt.Errorf("webhook message %q: the message %q with its data: %w", id, owner, ErrNotFound)
			}
			d, err := p.open("webhook_messages.data", customerID, owner, data)
			if err != nil {
				return fmt.Errorf("webhook message %q: %w", id, err)
			}
			m.Payload = envelopeJSON(m.Type, id, time.Unix(0, evAt), []byte(d))
			out = append(out, DueDelivery{Message: m, EndpointID: endpointID, Scheduled: timeOf(at), Attempts: attempts})
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		_, err = br.Exec()
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A failed batch leaves the connection in a failed transaction: end it.
		conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	slices.SortFunc(out, func(a, b DueDelivery) int {
		if c := a.Scheduled.Compare(b.Scheduled); c != 0 {
			return c
		}
		return cmpString(a.ID, b.ID)
	})
	return out, nil
}

// pgNextDue answers when the endpoint's first pending delivery after (afterNext, afterID)
// that skip does not leave out, that does not wait for its subject and that no other node
// holds is due (zero: none).
func (db *DB) pgNextDue(ctx context.Context, customerID, endpointID string, nowNS, afterNext int64, afterID string, skip func(string) bool) (time.Time, error) {
	s := db.pg
	const page = 32
	for {
		rows, err := s.pool.Query(ctx, `SELECT d.message_id, d.next_at FROM webhook_deliveries d
			WHERE d.customer_id = $1 AND d.endpoint_id = $2 AND d.state = 1
				AND (d.claimed_until IS NULL OR d.claimed_until <= $3 OR d.claimed_by = $4)
				AND (d.next_at, d.message_id) > ($5, $6) AND NOT `+pgWaiting+`
			ORDER BY d.next_at, d.message_id LIMIT $7`,
			customerID, endpointID, nowNS, s.outbox.node, afterNext, afterID, page)
		if err != nil {
			return time.Time{}, fmt.Errorf("store: postgres: %w", err)
		}
		n := 0
		var next time.Time
		for rows.Next() {
			n++
			var id string
			var at int64
			if err := rows.Scan(&id, &at); err != nil {
				rows.Close()
				return time.Time{}, err
			}
			afterNext, afterID = at, id
			if next.IsZero() && !skip(id) {
				next = timeOf(at)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return time.Time{}, fmt.Errorf("store: postgres: %w", err)
		}
		if !next.IsZero() || n < page {
			return next, nil
		}
	}
}

// pgRecordDelivery is RecordDelivery on PostgreSQL (r is checked): one statement keeps the
// attempt, and settles or reschedules the delivery (ending the claim) if it is still the one
// due at r.Scheduled.
func (t *Tx) pgRecordDelivery(r *DeliveryResult) error {
	attempt, err := json.Marshal([]Attempt{r.Attempt})
	if err != nil {
		return fmt.Errorf("encode webhook attempt: %w", err)
	}
	state := pgPending
	var next any
	switch r.Outcome {
	case OutcomeDelivered:
		state = pgDelivered
	case OutcomeFailed, OutcomeGone:
		state = pgFailed
	case OutcomeRetry:
		next = r.Next.UnixNano()
	}
	if err := t.pg.exec(nil, `UPDATE webhook_deliveries SET attempt_count = attempt_count + 1,
			attempts = CASE WHEN jsonb_array_length(attempts) >= $5 THEN attempts - 0 ELSE attempts END || $4::jsonb,
			state = CASE WHEN state = 1 AND next_at = $6 THEN $7 ELSE state END,
			next_at = CASE WHEN state = 1 AND next_at = $6 THEN $8 ELSE next_at END,
			claimed_by = CASE WHEN state = 1 AND next_at = $6 THEN NULL ELSE claimed_by END,
			claimed_until = CASE WHEN state = 1 AND next_at = $6 THEN NULL ELSE claimed_until END
		WHERE customer_id = $1 AND endpoint_id = $2 AND message_id = $3`,
		r.CustomerID, r.EndpointID, r.MessageID, attempt, MaxAttemptsKept, r.Scheduled.UnixNano(), state, next); err != nil {
		return err
	}
	// Settled, the next message of its subject is due: the workers look again.
	t.pgDueAfterCommit(r.CustomerID, r.EndpointID)
	if r.Outcome == OutcomeGone {
		err := t.SetEndpointDisabled(r.CustomerID, r.EndpointID, true, "gone", r.Attempt.Time)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// pgFailPending is FailPending on PostgreSQL.
func (db *DB) pgFailPending(ctx context.Context, customerID, endpointID, reason string) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := db.Write(ctx, func(tx *Tx) error {
			return tx.pg.exec(func(tag pgconn.CommandTag) error { n = int(tag.RowsAffected()); return nil },
				`UPDATE webhook_deliveries SET state = 3, next_at = NULL, failed_reason = $3, claimed_by = NULL, claimed_until = NULL
				WHERE customer_id = $1 AND endpoint_id = $2 AND message_id = ANY (ARRAY (SELECT message_id FROM webhook_deliveries
					WHERE customer_id = $1 AND endpoint_id = $2 AND state = 1 ORDER BY message_id LIMIT $4)) AND state = 1`,
				customerID, endpointID, reason, DefaultPurgeBatch)
		})
		if err != nil {
			return total, fmt.Errorf("fail the pending webhook deliveries of %q: %w", endpointID, err)
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// pgReplayMessage is ReplayMessage on PostgreSQL, for an enabled endpoint e.
func (t *Tx) pgReplayMessage(e *Endpoint, customerID, messageID string) error {
	var typ, subject string
	var seq int64
	err := t.pg.row(`SELECT type, subject, seq FROM webhook_messages WHERE customer_id = $1 AND id = $2`,
		[]any{customerID, messageID}, &typ, &subject, &seq)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("webhook message %q: %w", messageID, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if !e.Subscribes(EventType(typ)) {
		return fmt.Errorf("webhook message %q: %w", messageID, invalid("message_id", "the endpoint does not subscribe to %s", typ))
	}
	// Pending again (its attempts kept), due now; a claim in flight stays, and its outcome no
	// longer settles it (its Scheduled is not next_at).
	if err := t.pg.exec(nil, `INSERT INTO webhook_deliveries (customer_id, endpoint_id, message_id, msg_seq, subject, state, next_at)
		VALUES ($1, $2, $3, $4, $5, 1, $6)
		ON CONFLICT (customer_id, endpoint_id, message_id) DO UPDATE SET state = 1, next_at = excluded.next_at, failed_reason = ''`,
		customerID, e.ID, messageID, seq, subject, t.now().UnixNano()); err != nil {
		return err
	}
	t.pgDueAfterCommit(customerID, e.ID)
	return nil
}

// pgReplaySince is ReplaySince on PostgreSQL, for an enabled endpoint e.
func (db *DB) pgReplaySince(ctx context.Context, e *Endpoint, since time.Time) (int, error) {
	from := string(idTimePrefix(max(since.UnixMilli(), 0)))
	hi := string(idTimePrefix(db.now().UnixMilli() + 1))
	types := make([]string, len(e.EventTypes))
	for i, typ := range e.EventTypes {
		types[i] = string(typ)
	}
	total := 0
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var ids []string
		var last string
		err := db.View(func(tx *Tx) error {
			return tx.pg.query(`SELECT id, type = ANY ($5) FROM webhook_messages WHERE customer_id = $1 AND id < $3
					AND (id > $2 OR ($4 AND id = $2)) ORDER BY id LIMIT $6`,
				[]any{e.CustomerID, from, hi, first, types, DefaultPurgeBatch}, func(r pgx.Rows) error {
					var id string
					var wanted bool
					if err := r.Scan(&id, &wanted); err != nil {
						return err
					}
					last = id
					if wanted {
						ids = append(ids, id)
					}
					return nil
				})
		})
		if err != nil {
			return total, err
		}
		if len(ids) > 0 {
			err = db.Write(ctx, func(tx *Tx) error {
				for _, id := range ids {
					if err := tx.ReplayMessage(e.CustomerID, e.ID, id); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += len(ids)
		}
		if last == "" {
			return total, nil
		}
		from, first = last, false
	}
}

// pgOutboxStats is OutboxStats on PostgreSQL: the pending deliveries, and the oldest
// message id among them.
func (db *DB) pgOutboxStats() (OutboxStats, error) {
	var st OutboxStats
	err := db.View(func(tx *Tx) error {
		var oldest *string
		if err := tx.pg.row(`SELECT count(*), min(message_id) FROM webhook_deliveries WHERE state = 1`, nil, &st.Pending, &oldest); err != nil {
			return err
		}
		if oldest != nil {
			if ms, ok := idTime([]byte(*oldest)); ok {
				st.Oldest = time.UnixMilli(ms).UTC()
			}
		}
		return nil
	})
	return st, err
}

// pgPruneWebhookMessages is PruneWebhookMessages on PostgreSQL: per statement at most batch
// messages that hold their data (made before `before`), each with the messages of its write
// that refer to it, unless one of them has a pending delivery; their deliveries go with them.
func (db *DB) pgPruneWebhookMessages(ctx context.Context, customerID string, before time.Time, batch int) (int, error) {
	hi := string(idTimePrefix(max(before.UnixMilli(), 0)))
	from := ""
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n, scanned int
		var last *string
		err := db.Write(ctx, func(tx *Tx) error {
			return tx.pg.rowFn(`WITH o AS (
					SELECT id FROM webhook_messages WHERE customer_id = $1 AND id > $2 AND id < $3 AND ref IS NULL
					ORDER BY id LIMIT $4),
				k AS (SELECT o.id FROM o WHERE NOT EXISTS (SELECT 1 FROM webhook_messages g
					JOIN webhook_deliveries d ON d.customer_id = g.customer_id AND d.message_id = g.id AND d.state = 1
					WHERE g.customer_id = $1 AND (g.id = o.id OR g.ref = o.id))),
				dm AS (DELETE FROM webhook_messages g USING k WHERE g.customer_id = $1 AND (g.id = k.id OR g.ref = k.id)
					RETURNING g.id),
				dd AS (DELETE FROM webhook_deliveries d USING dm WHERE d.customer_id = $1 AND d.message_id = dm.id)
				SELECT (SELECT count(*) FROM dm), (SELECT count(*) FROM o), (SELECT max(id) FROM o)`,
				[]any{customerID, from, hi, batch}, func(r pgx.Row) error { return r.Scan(&n, &scanned, &last) })
		})
		if err != nil {
			return total, fmt.Errorf("prune the webhook messages of %q: %w", customerID, err)
		}
		total += n
		if scanned < batch || last == nil {
			return total, nil
		}
		from = *last
	}
}

// pgWebhookMessagesOf is WebhookMessagesOf on PostgreSQL.
func (db *DB) pgWebhookMessagesOf(customerID string, subjects []string) ([]SentMessage, error) {
	out := []SentMessage{}
	err := db.View(func(tx *Tx) error {
		var ids []string
		at := map[string]int{}
		err := tx.pg.query(`SELECT `+pgMessageColumns+pgMessageFrom+` WHERE m.customer_id = $1 AND m.subject = ANY ($2)
			ORDER BY array_position($2, m.subject), m.id`, []any{customerID, subjects}, func(r pgx.Rows) error {
			m, err := tx.pg.scanMessage(customerID, r)
			if err != nil {
				return err
			}
			at[m.ID] = len(out)
			ids = append(ids, m.ID)
			out = append(out, SentMessage{Message: m, Deliveries: []SentDelivery{}})
			return nil
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		return tx.pg.query(`SELECT d.message_id, d.endpoint_id, e.record ->> 'url', d.state, d.attempt_count, d.attempts -> -1
			FROM webhook_deliveries d JOIN webhook_endpoints e ON e.customer_id = d.customer_id AND e.id = d.endpoint_id
			WHERE d.customer_id = $1 AND d.message_id = ANY ($2) ORDER BY d.endpoint_id`, []any{customerID, ids}, func(r pgx.Rows) error {
			var id string
			var sd SentDelivery
			var state int16
			var last []byte
			if err := r.Scan(&id, &sd.EndpointID, &sd.URL, &state, &sd.AttemptCount, &last); err != nil {
				return err
			}
			sd.State = DeliveryState(state)
			if last != nil {
				var a Attempt
				if err := json.Unmarshal(last, &a); err != nil {
					return fmt.Errorf("decode webhook attempt: %w", err)
				}
				sd.LastAttempt, sd.LastStatus = a.Time, a.Status
			}
			i := at[id]
			out[i].Deliveries = append(out[i].Deliveries, sd)
			return nil
		})
	})
	return out, err
}

// deleteWebhookSubject deletes the customer's messages of a subject (a call's events) with
// their deliveries (a caller's erasure: DeleteCall).
func (t *pgTx) deleteWebhookSubject(customerID, subject string) error {
	if err := t.exec(nil, `DELETE FROM webhook_deliveries WHERE customer_id = $1 AND message_id IN
			(SELECT id FROM webhook_messages WHERE customer_id = $1 AND subject = $2 AND $2 <> '')`, customerID, subject); err != nil {
		return err
	}
	return t.exec(nil, `DELETE FROM webhook_messages WHERE customer_id = $1 AND subject = $2 AND $2 <> ''`, customerID, subject)
}
