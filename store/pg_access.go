package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Tokens and the audit log on PostgreSQL (tables tokens, audit_log:
// migrations/00003_access.sql).

// --- tokens

func (t *pgTx) putToken(hash [32]byte, tok *Token) error {
	if _, _, err := tok.Kind.buckets(); err != nil {
		return err
	}
	var taken bool
	if err := t.row(`SELECT EXISTS (SELECT 1 FROM tokens WHERE kind = $1 AND (hash = $2 OR (customer_id = $3 AND id = $4)))`,
		[]any{int(tok.Kind), hash[:], tok.CustomerID, tok.ID}, &taken); err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("%v: %w", tok.Kind, ErrExists)
	}
	return t.exec(nil, `INSERT INTO tokens (kind, hash, customer_id, id, label, groups, created, hint)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		int(tok.Kind), hash[:], tok.CustomerID, tok.ID, tok.Label, tok.Groups, pgTime(tok.Created), tok.Hint)
}

const pgTokenColumns = `id, customer_id, label, groups, created, hint`

func scanToken(k TokenKind, r pgx.Row) (Token, error) {
	tok := Token{Kind: k}
	var created *time.Time
	if err := r.Scan(&tok.ID, &tok.CustomerID, &tok.Label, &tok.Groups, &created, &tok.Hint); err != nil {
		return Token{}, err
	}
	tok.Created = pgTimeOf(created)
	return tok, nil
}

func (t *pgTx) tokenByHash(k TokenKind, hash [32]byte) (Token, error) {
	if _, _, err := k.buckets(); err != nil {
		return Token{Kind: k}, err
	}
	var tok Token
	err := t.rowFn(`SELECT `+pgTokenColumns+` FROM tokens WHERE kind = $1 AND hash = $2`, []any{int(k), hash[:]},
		func(r pgx.Row) (err error) { tok, err = scanToken(k, r); return err })
	if err != nil {
		return Token{Kind: k}, err
	}
	return tok, nil
}

func (t *pgTx) tokensOf(k TokenKind, customerID string) ([]Token, error) {
	if _, _, err := k.buckets(); err != nil {
		return nil, err
	}
	var out []Token
	err := t.query(`SELECT `+pgTokenColumns+` FROM tokens WHERE kind = $1 AND customer_id = $2 ORDER BY id`,
		[]any{int(k), customerID}, func(r pgx.Rows) error {
			tok, err := scanToken(k, r)
			out = append(out, tok)
			return err
		})
	return out, err
}

func (t *pgTx) deleteToken(k TokenKind, customerID, id string) error {
	if _, _, err := k.buckets(); err != nil {
		return err
	}
	var one int
	err := t.row(`SELECT 1 FROM tokens WHERE kind = $1 AND customer_id = $2 AND id = $3 FOR UPDATE`, []any{int(k), customerID, id}, &one)
	if err == ErrNotFound {
		return fmt.Errorf("%v %q: %w", k, id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	return t.exec(nil, `DELETE FROM tokens WHERE kind = $1 AND customer_id = $2 AND id = $3`, int(k), customerID, id)
}

// --- audit log

func (t *pgTx) appendAudit(e *AuditEntry) error {
	var counts []byte
	if len(e.Counts) > 0 {
		var err error
		if counts, err = json.Marshal(e.Counts); err != nil {
			return fmt.Errorf("encode audit entry: %w", err)
		}
	}
	return t.exec(nil, `INSERT INTO audit_log (time_ns, actor, action, customer_id, ids, counts) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.Time.UnixNano(), e.Actor, e.Action, e.CustomerID, e.IDs, counts)
}

// auditID is an entry's id: its bbolt key in hex, time and seq in 8 bytes each.
func auditID(timeNs, seq int64) string {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(timeNs))
	return hex.EncodeToString(binary.BigEndian.AppendUint64(k, uint64(seq)))
}

func (t *pgTx) auditLog(f AuditFilter) ([]AuditEntry, string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	where := `true`
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.CustomerID != "" {
		where += ` AND customer_id = ` + arg(f.CustomerID)
	}
	if f.Before != "" {
		b, err := hex.DecodeString(f.Before)
		if err != nil || len(b) != 16 {
			return nil, "", fmt.Errorf("malformed audit cursor %q", f.Before)
		}
		where += fmt.Sprintf(` AND (time_ns, seq) < (%s, %s)`, arg(int64(binary.BigEndian.Uint64(b))), arg(int64(binary.BigEndian.Uint64(b[8:]))))
	}
	if !f.To.IsZero() {
		where += ` AND time_ns < ` + arg(f.To.UnixNano())
	}
	if !f.From.IsZero() {
		where += ` AND time_ns >= ` + arg(f.From.UnixNano())
	}
	var out []AuditEntry
	err := t.query(`SELECT time_ns, seq, actor, action, customer_id, ids, counts FROM audit_log WHERE `+where+
		` ORDER BY time_ns DESC, seq DESC LIMIT `+arg(limit), args, func(r pgx.Rows) error {
		var e AuditEntry
		var timeNs, seq int64
		var counts []byte
		if err := r.Scan(&timeNs, &seq, &e.Actor, &e.Action, &e.CustomerID, &e.IDs, &counts); err != nil {
			return err
		}
		if counts != nil {
			if err := json.Unmarshal(counts, &e.Counts); err != nil {
				return fmt.Errorf("decode audit entry %s: %w", auditID(timeNs, seq), err)
			}
		}
		e.ID, e.Time = auditID(timeNs, seq), time.Unix(0, timeNs).UTC()
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(out) == limit {
		return out, out[len(out)-1].ID, nil
	}
	return out, "", nil
}

// pruneAudit deletes the entries before `before`, oldest first, batch per write.
func (db *DB) pgPruneAudit(ctx context.Context, before time.Time, batch int) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		err := db.Write(ctx, func(tx *Tx) error {
			return tx.pg.exec(func(tag pgconn.CommandTag) error { n = tag.RowsAffected(); return nil },
				`DELETE FROM audit_log WHERE (time_ns, seq) IN
					(SELECT time_ns, seq FROM audit_log WHERE time_ns < $1 ORDER BY time_ns, seq LIMIT $2)`,
				before.UnixNano(), batch)
		})
		if err != nil {
			return total, fmt.Errorf("prune audit log: %w", err)
		}
		total += int(n)
		if int(n) < batch {
			return total, nil
		}
	}
}
