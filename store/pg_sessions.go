package store

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sessions, the per-customer counters and the assignments on PostgreSQL (tables sessions,
// customer_stats, assignments: migrations/00001_init.sql). A new web session is writes that
// read nothing (PutEncodedSession and the lease, pg_lease.go), so a batch of them goes to
// the server in the committer's one pipeline; the sessions of a batch are one statement, and
// so are its new sessions' leases of a customer.

// --- sessions

const pgSessionColumns = `id, customer_id, created, channel, landing_page, referrer_host, utm_source, utm_medium,
	utm_campaign, utm_term, utm_content, gclid, gbraid, wbraid, ad_consent`

func (t *pgTx) scanSession(r pgx.Row) (Session, error) {
	var (
		s                 Session
		created           *time.Time
		landing, referrer []byte
		consent           string
	)
	if err := r.Scan(&s.ID, &s.CustomerID, &created, &s.Channel, &landing, &referrer, &s.UTMSource, &s.UTMMedium,
		&s.UTMCampaign, &s.UTMTerm, &s.UTMContent, &s.Gclid, &s.Gbraid, &s.Wbraid, &consent); err != nil {
		return Session{}, err
	}
	s.Created, s.AdConsent = pgTimeOf(created), Consent(consent)
	var err error
	if s.LandingPage, err = t.open("sessions.landing_page", s.CustomerID, s.ID, landing); err != nil {
		return Session{}, fmt.Errorf("session %s: landing page: %w", s.ID, err)
	}
	if s.ReferrerHost, err = t.open("sessions.referrer_host", s.CustomerID, s.ID, referrer); err != nil {
		return Session{}, fmt.Errorf("session %s: referrer: %w", s.ID, err)
	}
	return s, nil
}

func (t *pgTx) session(id string) (Session, error) {
	var s Session
	err := t.rowFn(`SELECT `+pgSessionColumns+` FROM sessions WHERE id = $1`+t.forUpdate(), []any{id},
		func(r pgx.Row) (err error) { s, err = t.scanSession(r); return err })
	return s, err
}

func (t *pgTx) putSession(s *Session) error {
	if !t.write {
		return errReadOnly
	}
	if t.abort != nil {
		return t.abort
	}
	landing, err := t.seal("sessions.landing_page", s.CustomerID, s.ID, s.LandingPage)
	if err != nil {
		return err
	}
	referrer, err := t.seal("sessions.referrer_host", s.CustomerID, s.ID, s.ReferrerHost)
	if err != nil {
		return err
	}
	row := &pgSessionRow{s: *s, landing: landing, referrer: referrer}
	if !s.Created.IsZero() {
		row.created = &row.s.Created
	}
	// Sent with the other sessions of the batch in one statement (sessionsStmt).
	t.mine = append(t.mine, pgStmt{fn: t.fn, sess: row})
	return nil
}

// pgSessionRow is a session kept for sessionsStmt (pgStmt.sess): its personal fields sealed.
type pgSessionRow struct {
	s                 Session
	created           *time.Time
	landing, referrer []byte
}

// pgSessionsInsert writes sessions, given as one array per column, in one statement.
const pgSessionsInsert = `INSERT INTO sessions (` + pgSessionColumns + `)
	SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::bytea[], $6::bytea[], $7::text[],
		$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])
	ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, created = excluded.created,
		channel = excluded.channel, landing_page = excluded.landing_page, referrer_host = excluded.referrer_host,
		utm_source = excluded.utm_source, utm_medium = excluded.utm_medium, utm_campaign = excluded.utm_campaign,
		utm_term = excluded.utm_term, utm_content = excluded.utm_content, gclid = excluded.gclid,
		gbraid = excluded.gbraid, wbraid = excluded.wbraid, ad_consent = excluded.ad_consent`

// sessionsStmt writes a run of sessions (in the order their functions put them) in one
// statement; a session put twice is written as put last.
func sessionsStmt(items []pgStmt) pgStmt {
	at := make(map[string]int, len(items))
	rows := make([]*pgSessionRow, 0, len(items))
	fn := items[0].fn
	for _, it := range items {
		if it.fn != fn {
			fn = -1 // a failure at the server blames no one function
		}
		if i, ok := at[it.sess.s.ID]; ok {
			rows[i] = it.sess
			continue
		}
		at[it.sess.s.ID] = len(rows)
		rows = append(rows, it.sess)
	}
	n := len(rows)
	var (
		ids, customers, channels, sources, mediums  = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		campaigns, terms, contents, gclids, gbraids = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		wbraids, consents                           = make([]string, n), make([]string, n)
		created                                     = make([]*time.Time, n)
		landings, referrers                         = make([][]byte, n), make([][]byte, n)
	)
	for i, r := range rows {
		s := &r.s
		ids[i], customers[i], created[i], channels[i], landings[i], referrers[i] = s.ID, s.CustomerID, r.created, s.Channel, r.landing, r.referrer
		sources[i], mediums[i], campaigns[i], terms[i], contents[i] = s.UTMSource, s.UTMMedium, s.UTMCampaign, s.UTMTerm, s.UTMContent
		gclids[i], gbraids[i], wbraids[i], consents[i] = s.Gclid, s.Gbraid, s.Wbraid, string(s.AdConsent)
	}
	return pgStmt{sql: pgSessionsInsert, fn: fn, args: []any{ids, customers, created, channels, landings, referrers,
		sources, mediums, campaigns, terms, contents, gclids, gbraids, wbraids, consents}}
}

func (t *pgTx) sessionsOf(customerID, before string, limit int) ([]Session, error) {
	q := `SELECT ` + pgSessionColumns + ` FROM sessions WHERE customer_id = $1 ORDER BY id DESC LIMIT $2`
	args := []any{customerID, max(limit, 0)}
	if before != "" {
		q = `SELECT ` + pgSessionColumns + ` FROM sessions WHERE customer_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2`
		args = append(args, before)
	}
	var out []Session
	err := t.query(q, args, func(r pgx.Rows) error {
		s, err := t.scanSession(r)
		out = append(out, s)
		return err
	})
	return out, err
}

// --- counters

func (t *pgTx) stats(customerID string) (CustomerStats, error) {
	var s CustomerStats
	var sessions, exhaustions int64
	err := t.row(`SELECT coalesce(sum(sessions_total), 0)::bigint, coalesce(sum(exhaustions), 0)::bigint,
			coalesce(max(peak_assigned), 0) FROM customer_stats WHERE customer_id = $1`,
		[]any{customerID}, &sessions, &exhaustions, &s.PeakAssigned)
	s.SessionsTotal, s.Exhaustions = uint64(sessions), uint64(exhaustions)
	return s, err
}

// pgStatsDelta is what a transaction adds to one customer's counters.
type pgStatsDelta struct {
	sessions, exhaustions int64
	peak                  int
}

// addStats adds to the counters in this committer's row. The additions of a transaction's writes
// are summed per customer and sent as one upsert each, before a read and at the commit, so
// that a batch of new sessions updates a customer's row once, not once per session.
func (t *pgTx) addStats(customerID string, sessions, exhaustions uint64, assigned int) error {
	if !t.write {
		return errReadOnly
	}
	if t.abort != nil {
		return t.abort
	}
	if t.mineStats == nil {
		t.mineStats = map[string]*pgStatsDelta{}
	}
	d := t.mineStats[customerID]
	if d == nil {
		d = &pgStatsDelta{}
		t.mineStats[customerID] = d
	}
	d.sessions += int64(sessions)
	d.exhaustions += int64(exhaustions)
	d.peak = max(d.peak, assigned)
	return nil
}

// mergeStats adds the running function's counters to the transaction's (it returned nil).
func (t *pgTx) mergeStats() {
	if len(t.mineStats) == 0 {
		return
	}
	if t.statsAdd == nil {
		t.statsAdd = map[string]*pgStatsDelta{}
	}
	for c, d := range t.mineStats {
		sum := t.statsAdd[c]
		if sum == nil {
			sum = &pgStatsDelta{}
			t.statsAdd[c] = sum
		}
		sum.sessions += d.sessions
		sum.exhaustions += d.exhaustions
		sum.peak = max(sum.peak, d.peak)
	}
}

// statsStmts empties m into upserts of this committer's rows, by customer in order (nodes lock
// the rows in one order: no deadlock between them).
func (t *pgTx) statsStmts(m map[string]*pgStatsDelta, fn int) []pgStmt {
	if len(m) == 0 {
		return nil
	}
	out := make([]pgStmt, 0, len(m))
	for _, c := range slices.Sorted(maps.Keys(m)) {
		d := m[c]
		out = append(out, pgStmt{fn: fn, sql: `INSERT INTO customer_stats AS s (customer_id, shard, sessions_total, exhaustions, peak_assigned)
			VALUES ($1, $2, $3, $4, greatest($5::integer, 0))
			ON CONFLICT (customer_id, shard) DO UPDATE SET sessions_total = s.sessions_total + excluded.sessions_total,
				exhaustions = s.exhaustions + excluded.exhaustions,
				peak_assigned = greatest(s.peak_assigned, excluded.peak_assigned)`,
			args: []any{c, t.shard, d.sessions, d.exhaustions, d.peak}})
	}
	clear(m)
	return out
}

// --- assignments

func (t *pgTx) putAssignment(a *Assignment) error {
	var cut any
	if !a.CutFrom.IsZero() {
		cut = a.CutFrom.UnixNano()
	}
	return t.exec(nil, `INSERT INTO assignments (customer_id, from_ns, number, session_id, until_ns, cut_from_ns)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (customer_id, from_ns, number, session_id) DO UPDATE SET until_ns = excluded.until_ns,
			cut_from_ns = excluded.cut_from_ns`,
		a.CustomerID, a.From.UnixNano(), a.Number, a.SessionID, a.Until.UnixNano(), cut)
}

// assignments walks a customer's assignments (of one number, if number is not "") that began
// in [from, to], oldest first, a page at a time, as Tx.Assignments.
func (t *pgTx) assignments(customerID, number string, from, to time.Time, fn func(Assignment) bool) error {
	where := `customer_id = $1`
	args := []any{customerID}
	if number != "" {
		args = append(args, number)
		where += fmt.Sprintf(` AND number = $%d`, len(args))
	}
	if from.After(time.Unix(0, 0)) {
		args = append(args, from.UnixNano())
		where += fmt.Sprintf(` AND from_ns >= $%d`, len(args))
	}
	if !to.IsZero() {
		args = append(args, to.UnixNano())
		where += fmt.Sprintf(` AND from_ns <= $%d`, len(args))
	}
	n := len(args)
	q := `SELECT from_ns, number, session_id, until_ns, cut_from_ns FROM assignments WHERE ` + where +
		fmt.Sprintf(` AND (from_ns, number, session_id) > ($%d, $%d, $%d) ORDER BY from_ns, number, session_id LIMIT %d`, n+1, n+2, n+3, pgPage)
	var after Assignment
	after.From = time.Unix(0, -1<<63)
	for {
		var page []Assignment
		err := t.query(q, append(args, after.From.UnixNano(), after.Number, after.SessionID), func(r pgx.Rows) error {
			a := Assignment{CustomerID: customerID}
			var fromNs, untilNs int64
			var cutNs *int64
			if err := r.Scan(&fromNs, &a.Number, &a.SessionID, &untilNs, &cutNs); err != nil {
				return err
			}
			a.From, a.Until = time.Unix(0, fromNs).UTC(), time.Unix(0, untilNs).UTC()
			if cutNs != nil {
				a.CutFrom = time.Unix(0, *cutNs).UTC()
			}
			page = append(page, a)
			return nil
		})
		if err != nil {
			return err
		}
		for _, a := range page {
			if !fn(a) {
				return nil
			}
		}
		if len(page) < pgPage {
			return nil
		}
		after = page[len(page)-1]
	}
}
