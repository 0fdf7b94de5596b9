package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Customers, channels and numbers on PostgreSQL (tables customers, customers_purged,
// channels, numbers: migrations/00001_init.sql).

// pgTime is a time as a timestamptz parameter: NULL for the zero time.
func pgTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// pgTimeOf is a scanned timestamptz: the zero time for NULL, else in UTC.
func pgTimeOf(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

// --- customers

// pgCustomerSettings is the part of a customer no query looks into: its jsonb column.
type pgCustomerSettings struct {
	AllowedOrigins      []string           `json:"allowed_origins,omitempty"`
	BusinessLines       []string           `json:"business_lines,omitempty"`
	DisplayNumbers      []string           `json:"display_numbers,omitempty"`
	DisplayFormat       string             `json:"display_format,omitempty"`
	RingTimeout         time.Duration      `json:"ring_timeout,omitzero"`
	MaxCallDuration     time.Duration      `json:"max_call_duration,omitzero"`
	Recording           RecordingPolicy    `json:"recording,omitzero"`
	Prompts             Prompts            `json:"prompts,omitzero"`
	NumberPrompts       map[string]Prompts `json:"number_prompts,omitempty"`
	PseudonymousCallers bool               `json:"pseudonymous_callers,omitempty"`
}

const pgCustomerColumns = `id, site_key, name, status, created, trial_ends, active_since, contract_ends,
	ended_at, retention_months, retention_action, settings`

func scanCustomer(row pgx.Row) (Customer, error) {
	var (
		c                                    Customer
		status, action                       string
		created, trial, since, ends, endedAt *time.Time
		settings                             []byte
	)
	if err := row.Scan(&c.ID, &c.SiteKey, &c.Name, &status, &created, &trial, &since, &ends, &endedAt,
		&c.RetentionMonths, &action, &settings); err != nil {
		return Customer{}, err
	}
	if err := c.Status.UnmarshalText([]byte(status)); err != nil {
		return Customer{}, fmt.Errorf("customer %q: %w", c.ID, err)
	}
	if err := c.RetentionAction.UnmarshalText([]byte(action)); err != nil {
		return Customer{}, fmt.Errorf("customer %q: %w", c.ID, err)
	}
	var s pgCustomerSettings
	if err := json.Unmarshal(settings, &s); err != nil {
		return Customer{}, fmt.Errorf("decode customer %q: %w", c.ID, err)
	}
	c.Created, c.TrialEnds, c.ActiveSince, c.ContractEnds, c.EndedAt =
		pgTimeOf(created), pgTimeOf(trial), pgTimeOf(since), pgTimeOf(ends), pgTimeOf(endedAt)
	c.AllowedOrigins, c.BusinessLines, c.DisplayNumbers, c.DisplayFormat = s.AllowedOrigins, s.BusinessLines, s.DisplayNumbers, s.DisplayFormat
	c.RingTimeout, c.MaxCallDuration, c.Recording, c.Prompts = s.RingTimeout, s.MaxCallDuration, s.Recording, s.Prompts
	c.NumberPrompts, c.PseudonymousCallers = s.NumberPrompts, s.PseudonymousCallers
	return c, nil
}

func (t *pgTx) customer(id string) (Customer, error) {
	var c Customer
	err := t.rowFn(`SELECT `+pgCustomerColumns+` FROM customers WHERE id = $1`+t.forUpdate(), []any{id},
		func(r pgx.Row) (err error) { c, err = scanCustomer(r); return err })
	return c, err
}

// rowFn runs a read of one row and scans it with scan; ErrNotFound without one.
func (t *pgTx) rowFn(sql string, args []any, scan func(pgx.Row) error) error {
	if err := t.beforeRead(); err != nil {
		return err
	}
	err := scan(t.conn.QueryRow(t.ctx, sql, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return t.readErr(err)
	}
	return nil
}

// createCustomer inserts a customer; ErrExists if the id or the site key is taken or the id
// was a deleted customer's. It answers that at once, as on bbolt; another node that takes
// the id or key between the check and the commit fails the write at its commit instead
// (the unique keys: pgError; the insert of a purged id inserts nothing).
func (t *pgTx) createCustomer(c *Customer) error {
	args, err := customerArgs(c)
	if err != nil {
		return err
	}
	var idTaken, keyTaken, purged bool
	if err := t.row(`SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1),
			EXISTS (SELECT 1 FROM customers WHERE site_key = $2),
			EXISTS (SELECT 1 FROM customers_purged WHERE id = $1)`, []any{c.ID, c.SiteKey}, &idTaken, &keyTaken, &purged); err != nil {
		return err
	}
	switch {
	case idTaken:
		return fmt.Errorf("customer %q: %w", c.ID, ErrExists)
	case purged:
		return fmt.Errorf("customer %q: the id of a deleted customer: %w", c.ID, ErrExists)
	case keyTaken:
		return fmt.Errorf("site key: %w", ErrExists)
	}
	id := c.ID
	return t.exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("customer %q: the id of a deleted customer: %w", id, ErrExists)
		}
		return nil
	}, `INSERT INTO customers (`+pgCustomerColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
		WHERE NOT EXISTS (SELECT 1 FROM customers_purged WHERE id = $1)`, args...)
}

// putCustomer writes a customer; ErrExists if another customer has its site key (at once,
// or at the commit if another node takes the key meanwhile).
func (t *pgTx) putCustomer(c *Customer) error {
	args, err := customerArgs(c)
	if err != nil {
		return err
	}
	var taken bool
	if err := t.row(`SELECT EXISTS (SELECT 1 FROM customers WHERE site_key = $1 AND id <> $2)`, []any{c.SiteKey, c.ID}, &taken); err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("site key: %w", ErrExists)
	}
	return t.exec(nil, `INSERT INTO customers (`+pgCustomerColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET site_key = excluded.site_key, name = excluded.name,
			status = excluded.status, created = excluded.created, trial_ends = excluded.trial_ends,
			active_since = excluded.active_since, contract_ends = excluded.contract_ends,
			ended_at = excluded.ended_at, retention_months = excluded.retention_months,
			retention_action = excluded.retention_action, settings = excluded.settings`, args...)
}

func customerArgs(c *Customer) ([]any, error) {
	settings, err := json.Marshal(pgCustomerSettings{
		AllowedOrigins: c.AllowedOrigins, BusinessLines: c.BusinessLines, DisplayNumbers: c.DisplayNumbers,
		DisplayFormat: c.DisplayFormat, RingTimeout: c.RingTimeout, MaxCallDuration: c.MaxCallDuration,
		Recording: c.Recording, Prompts: c.Prompts, NumberPrompts: c.NumberPrompts, PseudonymousCallers: c.PseudonymousCallers,
	})
	if err != nil {
		return nil, fmt.Errorf("encode customer %q: %w", c.ID, err)
	}
	return []any{c.ID, c.SiteKey, c.Name, c.Status.String(), pgTime(c.Created), pgTime(c.TrialEnds),
		pgTime(c.ActiveSince), pgTime(c.ContractEnds), pgTime(c.EndedAt), c.RetentionMonths,
		c.RetentionAction.String(), settings}, nil
}

func (t *pgTx) customers() ([]Customer, error) {
	var out []Customer
	err := t.query(`SELECT `+pgCustomerColumns+` FROM customers ORDER BY id`, nil, func(r pgx.Rows) error {
		c, err := scanCustomer(r)
		out = append(out, c)
		return err
	})
	return out, err
}

func (t *pgTx) purged(id string) (bool, error) {
	var yes bool
	err := t.row(`SELECT EXISTS (SELECT 1 FROM customers_purged WHERE id = $1)`, []any{id}, &yes)
	return yes, err
}

// --- channels

func (t *pgTx) putChannel(ch *Channel) error {
	var rules []byte
	if len(ch.Rules) > 0 {
		var err error
		if rules, err = json.Marshal(ch.Rules); err != nil {
			return fmt.Errorf("encode channel %q: %w", ch.ID, err)
		}
	}
	return t.exec(nil, `INSERT INTO channels (customer_id, id, name, ord, rules) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (customer_id, id) DO UPDATE SET name = excluded.name, ord = excluded.ord, rules = excluded.rules`,
		ch.CustomerID, ch.ID, ch.Name, ch.Order, rules)
}

func (t *pgTx) channels(customerID string) ([]Channel, error) {
	var out []Channel
	err := t.query(`SELECT id, name, ord, rules FROM channels WHERE customer_id = $1 ORDER BY ord, id`,
		[]any{customerID}, func(r pgx.Rows) error {
			ch := Channel{CustomerID: customerID}
			var rules []byte
			if err := r.Scan(&ch.ID, &ch.Name, &ch.Order, &rules); err != nil {
				return err
			}
			if rules != nil {
				if err := json.Unmarshal(rules, &ch.Rules); err != nil {
					return fmt.Errorf("decode channel %q: %w", ch.ID, err)
				}
			}
			out = append(out, ch)
			return nil
		})
	return out, err
}

// --- numbers

const pgNumberColumns = `e164, customer_id, kind, channel_id, state, quarantined_until, porting, created`

func scanNumber(r pgx.Row) (Number, error) {
	var (
		n              Number
		kind, state    string
		until, created *time.Time
	)
	if err := r.Scan(&n.E164, &n.CustomerID, &kind, &n.ChannelID, &state, &until, &n.Porting, &created); err != nil {
		return Number{}, err
	}
	if err := n.Kind.UnmarshalText([]byte(kind)); err != nil {
		return Number{}, fmt.Errorf("number %s: %w", n.E164, err)
	}
	if err := n.State.UnmarshalText([]byte(state)); err != nil {
		return Number{}, fmt.Errorf("number %s: %w", n.E164, err)
	}
	n.QuarantinedUntil, n.Created = pgTimeOf(until), pgTimeOf(created)
	return n, nil
}

func (t *pgTx) number(e164 string) (Number, error) {
	var n Number
	err := t.rowFn(`SELECT `+pgNumberColumns+` FROM numbers WHERE e164 = $1`+t.forUpdate(), []any{e164},
		func(r pgx.Row) (err error) { n, err = scanNumber(r); return err })
	return n, err
}

func (t *pgTx) hasNumber(e164 string) (bool, error) {
	var one int
	err := t.row(`SELECT 1 FROM numbers WHERE e164 = $1`+t.forUpdate(), []any{e164}, &one)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (t *pgTx) putNumber(n *Number) error {
	return t.exec(nil, `INSERT INTO numbers (`+pgNumberColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (e164) DO UPDATE SET customer_id = excluded.customer_id, kind = excluded.kind,
			channel_id = excluded.channel_id, state = excluded.state,
			quarantined_until = excluded.quarantined_until, porting = excluded.porting, created = excluded.created`,
		n.E164, n.CustomerID, n.Kind.String(), n.ChannelID, n.State.String(), pgTime(n.QuarantinedUntil), n.Porting, pgTime(n.Created))
}

// pgPage is how many rows a walk (Numbers, Assignments) reads at a time: fn may read the
// store between two rows, which a connection cannot while a result is open.
const pgPage = 1000

func (t *pgTx) numbers(fn func(Number) error) error {
	after := ""
	for {
		var page []Number
		err := t.query(`SELECT `+pgNumberColumns+` FROM numbers WHERE e164 > $1 ORDER BY e164 LIMIT `+fmt.Sprint(pgPage),
			[]any{after}, func(r pgx.Rows) error {
				n, err := scanNumber(r)
				page = append(page, n)
				return err
			})
		if err != nil {
			return err
		}
		for _, n := range page {
			if err := fn(n); err != nil {
				return err
			}
		}
		if len(page) < pgPage {
			return nil
		}
		after = page[len(page)-1].E164
	}
}

func (t *pgTx) deleteNumber(e164 string) error {
	if ok, err := t.hasNumber(e164); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("number %s: %w", e164, ErrNotFound)
		}
		return err
	}
	return t.exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("number %s: %w", e164, ErrNotFound)
		}
		return nil
	}, `DELETE FROM numbers WHERE e164 = $1`, e164)
}
