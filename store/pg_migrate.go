package store

import (
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
