package store

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL side of CopyTo (migrate.go): the ids of deleted customers, which on bbolt
// only PurgeCustomer writes.

func (t *pgTx) putPurged(id string, at time.Time) error {
	var ts any
	if !at.IsZero() {
		ts = at
	}
	return t.exec(nil, `INSERT INTO customers_purged (id, purged_at) VALUES ($1, coalesce($2, now()))
		ON CONFLICT (id) DO NOTHING`, id, ts)
}

func (t *pgTx) purgedIDs() ([]purgedID, error) {
	var out []purgedID
	err := t.query(`SELECT id, purged_at FROM customers_purged ORDER BY id`, nil, func(r pgx.Rows) error {
		var p purgedID
		if err := r.Scan(&p.ID, &p.At); err != nil {
			return err
		}
		p.At = p.At.UTC()
		out = append(out, p)
		return nil
	})
	return out, err
}

// The PostgreSQL side of the copy of calls, rollups, usage, the audit log and the
// lifecycle state: each record as it is, without what a write of the switch does with it
// (a call's usage, rollups and webhook events are copied as the source has them, since the
// source's counts also hold calls erased since).

// copyCall inserts a call as it is, its personal fields sealed.
func (t *pgTx) copyCall(c *Call) error {
	detail, err := pgCallDetail(c)
	if err != nil {
		return err
	}
	var sealed [3][]byte
	for i, f := range []struct{ column, v string }{{"calls.caller", c.Caller}, {"calls.landing_page", c.LandingPage}, {"calls.referrer_host", c.ReferrerHost}} {
		if sealed[i], err = t.seal(f.column, c.CustomerID, c.ID, f.v); err != nil {
			return err
		}
	}
	return t.exec(nil, `INSERT INTO calls (`+pgCallColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		c.ID, c.CustomerID, c.Dialled, sealed[0], c.CallerPseudonym, c.SessionID, c.Channel, c.Keyword,
		sealed[1], sealed[2], pgTime(c.Start), pgTime(c.Answer), pgTime(c.End),
		string(c.Disposition), c.RecordingID, c.Tags, detail)
}

// migrateUsage is one month of a customer's usage counters as the store keeps them.
type migrateUsage struct {
	CustomerID string `json:"customer_id"`
	Month      string `json:"month"`
	Calls      uint64 `json:"calls"`
	TalkMs     uint64 `json:"talk_ms"`
	Sessions   uint64 `json:"sessions"` // the frozen count; 0 until frozen
	Frozen     bool   `json:"frozen"`
}

func (t *pgTx) copyUsage(u migrateUsage) error {
	return t.exec(nil, `INSERT INTO usage_months (customer_id, month, calls, talk_ms, sessions, sessions_frozen)
		VALUES ($1, $2, $3, $4, $5, $6)`, u.CustomerID, u.Month, int64(u.Calls), int64(u.TalkMs), int64(u.Sessions), u.Frozen)
}

func (t *pgTx) allUsage() ([]migrateUsage, error) {
	var out []migrateUsage
	err := t.query(`SELECT customer_id, month, calls, talk_ms, sessions, sessions_frozen FROM usage_months ORDER BY customer_id, month`, nil,
		func(r pgx.Rows) error {
			var u migrateUsage
			var calls, talk, sessions int64
			err := r.Scan(&u.CustomerID, &u.Month, &calls, &talk, &sessions, &u.Frozen)
			u.Calls, u.TalkMs, u.Sessions = uint64(calls), uint64(talk), uint64(sessions)
			out = append(out, u)
			return err
		})
	return out, err
}

// copyRollupDay inserts a day of a customer's rollups: its channels' counts, its landing
// pages (sealed: pg_rollupnames.go) and keywords.
func (t *pgTx) copyRollupDay(customerID string, d *DayStats) error {
	for name, st := range d.Channels {
		hist := make([]int32, len(st.TalkHist))
		for i, n := range st.TalkHist {
			hist[i] = int32(n)
		}
		if err := t.exec(nil, `INSERT INTO rollup_channels (customer_id, day, channel, calls, answered, busy, missed,
				first_time, returning_calls, talk_seconds, talk_hist, recorded)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			customerID, d.Day, name, st.Calls, st.Answered, st.Busy, st.Missed, st.FirstTime, st.Returning,
			st.TalkSeconds, hist, st.Recorded); err != nil {
			return err
		}
	}
	for _, kn := range []struct {
		kind  byte
		names map[string]int
	}{{'l', d.Landing}, {'k', d.Keywords}} {
		for name, n := range kn.names {
			row, sealed, err := t.rollupNameRow(customerID, kn.kind, name, true)
			if err != nil {
				return fmt.Errorf("rollups of %s: %w", customerID, err)
			}
			if err := t.exec(nil, `INSERT INTO rollup_names (customer_id, day, kind, name, calls, sealed) VALUES ($1, $2, $3, $4, $5, $6)`,
				customerID, d.Day, string(kn.kind), row, n, sealed); err != nil {
				return err
			}
		}
	}
	return nil
}

// rollupCustomers lists the customers that have rollups.
func (t *pgTx) rollupCustomers() ([]string, error) {
	var out []string
	err := t.query(`SELECT customer_id FROM rollup_channels UNION SELECT customer_id FROM rollup_names ORDER BY 1`, nil,
		func(r pgx.Rows) error {
			var id string
			err := r.Scan(&id)
			out = append(out, id)
			return err
		})
	return out, err
}

// copyAudit inserts an audit entry under its id (time and seq) in the source.
func (t *pgTx) copyAudit(e *AuditEntry) error {
	b, err := hex.DecodeString(e.ID)
	if err != nil || len(b) != 16 {
		return fmt.Errorf("audit entry %q: malformed id", e.ID)
	}
	var counts []byte
	if len(e.Counts) > 0 {
		if counts, err = json.Marshal(e.Counts); err != nil {
			return fmt.Errorf("encode audit entry: %w", err)
		}
	}
	return t.exec(nil, `INSERT INTO audit_log (time_ns, seq, actor, action, customer_id, ids, counts) OVERRIDING SYSTEM VALUE
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:])), e.Actor, e.Action, e.CustomerID, e.IDs, counts)
}

// auditCopied has the audit log's sequence go on after the entries copied.
func (t *pgTx) auditCopied() error {
	return t.exec(nil, `SELECT setval(pg_get_serial_sequence('audit_log', 'seq'), (SELECT max(seq) FROM audit_log))
		WHERE EXISTS (SELECT 1 FROM audit_log)`)
}

func (t *pgTx) allCalls() ([]Call, error) {
	var out []Call
	err := t.query(`SELECT `+pgCallColumns+` FROM calls ORDER BY id`, nil, func(r pgx.Rows) error {
		c, err := t.scanCall(r)
		out = append(out, c)
		return err
	})
	return out, err
}

func (t *pgTx) allRecordings() ([]Recording, error) {
	var out []Recording
	err := t.query(`SELECT id, customer_id, call_id, path, duration_ns, size, sha256, created FROM recordings ORDER BY id`, nil,
		func(r pgx.Rows) error {
			var rec Recording
			var dur int64
			var created *time.Time
			err := r.Scan(&rec.ID, &rec.CustomerID, &rec.CallID, &rec.Path, &dur, &rec.Size, &rec.SHA256, &created)
			rec.Duration, rec.Created = time.Duration(dur), pgTimeOf(created)
			out = append(out, rec)
			return err
		})
	return out, err
}

func (t *pgTx) allTokens() ([]migrateToken, error) {
	var out []migrateToken
	err := t.query(`SELECT kind, hash, `+pgTokenColumns+` FROM tokens ORDER BY kind, hash`, nil, func(r pgx.Rows) error {
		var tok Token
		var kind int16
		var hash []byte
		var created *time.Time
		if err := r.Scan(&kind, &hash, &tok.ID, &tok.CustomerID, &tok.Label, &tok.Groups, &created, &tok.Hint); err != nil {
			return err
		}
		tok.Kind, tok.Created = TokenKind(kind), pgTimeOf(created)
		out = append(out, migrateToken{Hash: hex.EncodeToString(hash), Token: tok})
		return nil
	})
	return out, err
}

func (t *pgTx) stateKeys() ([]string, error) {
	var out []string
	err := t.query(`SELECT key FROM store_state WHERE key <> $1 ORDER BY key`, []any{pgStateCompactionDue}, func(r pgx.Rows) error {
		var k string
		err := r.Scan(&k)
		out = append(out, k)
		return err
	})
	return out, err
}

func (t *pgTx) setState(key string) error {
	return t.exec(nil, `INSERT INTO store_state (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`, key)
}
