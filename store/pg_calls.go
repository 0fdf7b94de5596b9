package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// Calls, recordings, the calls' usage counters and the daily rollups on PostgreSQL (tables
// calls, recordings, usage_months, rollup_channels, rollup_names: migrations/00005_calls.sql).
//
// A call's columns are what the store selects or orders by (the customer, the caller's
// pseudonym, the session, the channel, the times, the disposition, the recording, the tags)
// and its personal fields, sealed (pg_seal.go): the caller, the landing page, the referrer. The
// rest of the record is its detail (jsonb).
//
// A call's write makes the webhooks' events of its change as on bbolt (pg_outbox_events.go).
// A deletion marks the compaction due (DeleteCall); what it leaves on disk, and the lifecycle
// (FreezeSessionCounts, IndexCallers, PurgeCustomer), are pg_lifecycle.go's.

const pgCallColumns = `id, customer_id, dialled, caller, caller_pseudonym, session_id, channel, keyword,
	landing_page, referrer_host, start, answer, ended, disposition, recording_id, tags, detail`

func (t *pgTx) scanCall(r pgx.Row) (Call, error) {
	var (
		c                         Call
		caller, landing, referrer []byte
		start, answer, ended      *time.Time
		detail                    []byte
		tags                      []string
	)
	var id, customer, dialled, pseudonym, session, channel, keyword, disposition, recording string
	if err := r.Scan(&id, &customer, &dialled, &caller, &pseudonym, &session, &channel, &keyword,
		&landing, &referrer, &start, &answer, &ended, &disposition, &recording, &tags, &detail); err != nil {
		return Call{}, err
	}
	if err := json.Unmarshal(detail, &c); err != nil {
		return Call{}, fmt.Errorf("decode call %q: %w", id, err)
	}
	c.ID, c.CustomerID, c.Dialled, c.CallerPseudonym, c.SessionID = id, customer, dialled, pseudonym, session
	c.Channel, c.Keyword, c.Disposition, c.RecordingID, c.Tags = channel, keyword, Disposition(disposition), recording, tags
	c.Start, c.Answer, c.End = pgTimeOf(start), pgTimeOf(answer), pgTimeOf(ended)
	var err error
	if c.Caller, err = t.open("calls.caller", customer, id, caller); err == nil {
		if c.LandingPage, err = t.open("calls.landing_page", customer, id, landing); err == nil {
			c.ReferrerHost, err = t.open("calls.referrer_host", customer, id, referrer)
		}
	}
	if err != nil {
		return Call{}, fmt.Errorf("call %q: %w", id, err)
	}
	return c, nil
}

// pgCallDetail is the detail of c: its record without what has a column (those are cleared;
// the columns are what is read back).
func pgCallDetail(c *Call) ([]byte, error) {
	d := *c
	d.ID, d.CustomerID, d.Dialled, d.Caller, d.CallerPseudonym, d.SessionID = "", "", "", "", "", ""
	d.Channel, d.Keyword, d.LandingPage, d.ReferrerHost, d.Disposition, d.RecordingID, d.Tags = "", "", "", "", "", "", nil
	d.Start, d.Answer, d.End = time.Time{}, time.Time{}, time.Time{}
	raw, err := json.Marshal(&d)
	if err != nil {
		return nil, fmt.Errorf("encode call %q: %w", c.ID, err)
	}
	return raw, nil
}

func (t *pgTx) call(id string) (Call, error) {
	var c Call
	err := t.rowFn(`SELECT `+pgCallColumns+` FROM calls WHERE id = $1`+t.forUpdate(), []any{id},
		func(r pgx.Row) (err error) { c, err = t.scanCall(r); return err })
	return c, err
}

// putCall is Tx.PutCall (see there): the record, its usage and, when it completes the call,
// its rollups. It reads the stored record (locked) for the call's transition and its
// annotations, which it keeps.
func (t *pgTx) putCall(c *Call) error {
	stored, err := t.call(c.ID)
	isNew := errors.Is(err, ErrNotFound)
	if err != nil && !isNew {
		return err
	}
	open := !isNew && stored.End.IsZero()
	hadRecording := stored.RecordingID != ""
	if !isNew {
		a := annotation{LeadStatus: stored.LeadStatus, Tags: stored.Tags, Value: stored.Value, Note: stored.Note, Updated: stored.Updated}
		if !a.of(c) {
			kept := *c
			a.to(&kept)
			c = &kept
		}
	}
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
	if err := t.exec(nil, `INSERT INTO calls (`+pgCallColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT (id) DO UPDATE SET dialled = excluded.dialled, caller = excluded.caller,
			session_id = excluded.session_id, channel = excluded.channel, keyword = excluded.keyword,
			landing_page = excluded.landing_page, referrer_host = excluded.referrer_host, start = excluded.start,
			answer = excluded.answer, ended = excluded.ended, disposition = excluded.disposition,
			recording_id = excluded.recording_id, tags = excluded.tags, detail = excluded.detail`,
		c.ID, c.CustomerID, c.Dialled, sealed[0], c.CallerPseudonym, c.SessionID, c.Channel, c.Keyword,
		sealed[1], sealed[2], pgTime(c.Start), pgTime(c.Answer), pgTime(c.End),
		string(c.Disposition), c.RecordingID, c.Tags, detail); err != nil {
		return err
	}
	// The usage counters count a call once, in the month it started, and its talk time when
	// it ends (lifecycle.go).
	var calls int64
	var talk time.Duration
	if isNew {
		calls = 1
	}
	if !c.End.IsZero() && (isNew || open) {
		talk = time.Duration(c.TalkSeconds * float64(time.Second))
	}
	if calls > 0 || talk > 0 {
		if err := t.exec(nil, `INSERT INTO usage_months AS u (customer_id, month, calls, talk_ms) VALUES ($1, $2, $3, $4)
			ON CONFLICT (customer_id, month) DO UPDATE SET calls = u.calls + excluded.calls, talk_ms = u.talk_ms + excluded.talk_ms`,
			c.CustomerID, Month(c.Start), calls, talk.Milliseconds()); err != nil {
			return err
		}
	}
	switch {
	case !c.End.IsZero() && (isNew || open):
		if err := t.rollupCall(c); err != nil {
			return err
		}
	case !c.End.IsZero() && c.RecordingID != "" && !hadRecording && storable(c.Start):
		if err := t.exec(nil, `UPDATE rollup_channels SET recorded = recorded + 1 WHERE customer_id = $1 AND day = $2 AND channel = $3`,
			c.CustomerID, dayOf(c.Start), c.Channel); err != nil {
			return err
		}
	}
	// The webhooks' events of the call's change (pg_outbox_events.go).
	tr := callTransition{isNew: isNew, open: open, hadAnswer: !stored.Answer.IsZero(), hadRecording: hadRecording}
	return (&Tx{pg: t, db: t.db}).pgCallEvents(c, tr)
}

// pgRollupCounts is what a completed call adds to its channel's rollup of the day (and
// unrollCall takes away): one of answered, busy or missed; the talk histogram's bucket,
// counted from 1 as SQL arrays are (0: none); recorded; the talk time.
func pgRollupCounts(c *Call) (answered, busy, missed, hist, recorded int, talk float64) {
	switch c.Disposition {
	case DispAnswered:
		answered, talk, hist = 1, c.TalkSeconds, talkBucket(c.TalkSeconds)+1
	case DispBusy:
		busy = 1
	default:
		missed = 1
	}
	if math.IsNaN(talk) || math.IsInf(talk, 0) {
		talk = 0
	}
	if c.RecordingID != "" {
		recorded = 1
	}
	return
}

// rollupCall counts a completed call in its customer's rollups of the day it started, as
// rollups.go's: all in statements, none read back. Returning is decided in SQL: the customer
// has a call of the same pseudonym with a lower id.
func (t *pgTx) rollupCall(c *Call) error {
	if !storable(c.Start) {
		return nil
	}
	day := dayOf(c.Start)
	answered, busy, missed, hist, recorded, talk := pgRollupCounts(c)
	if err := t.exec(nil, `INSERT INTO rollup_channels AS r (customer_id, day, channel, calls, answered, busy, missed,
			first_time, returning_calls, talk_seconds, talk_hist, recorded)
		SELECT $1, $2, $3, 1, $4, $5, $6, f.nfirst, f.nret, $7,
			CASE WHEN $8::int > 0 THEN array_fill(0, ARRAY[$8::int - 1]) || 1 || array_fill(0, ARRAY[24 - $8::int]) ELSE array_fill(0, ARRAY[24]) END, $9
		FROM (SELECT (p AND NOT ret)::int AS nfirst, (p AND ret)::int AS nret FROM (SELECT $10::text <> '' AS p,
			EXISTS (SELECT 1 FROM calls WHERE customer_id = $1 AND caller_pseudonym = $10 AND $10::text <> '' AND id < $11) AS ret) q) f
		ON CONFLICT (customer_id, day, channel) DO UPDATE SET calls = r.calls + 1, answered = r.answered + excluded.answered,
			busy = r.busy + excluded.busy, missed = r.missed + excluded.missed, first_time = r.first_time + excluded.first_time,
			returning_calls = r.returning_calls + excluded.returning_calls, talk_seconds = r.talk_seconds + excluded.talk_seconds,
			talk_hist = (SELECT array_agg(a + b ORDER BY i) FROM unnest(r.talk_hist, excluded.talk_hist) WITH ORDINALITY AS x(a, b, i)),
			recorded = r.recorded + excluded.recorded`,
		c.CustomerID, day, c.Channel, answered, busy, missed, talk, hist, recorded, c.CallerPseudonym, c.ID); err != nil {
		return err
	}
	if name := rollupName(c.LandingPage, true); name != "" {
		if err := t.rollupCount(c.CustomerID, day, 'l', name); err != nil {
			return err
		}
	}
	if name := rollupName(c.Keyword, false); name != "" {
		return t.rollupCount(c.CustomerID, day, 'k', name)
	}
	return nil
}

// deleteCall is Tx.DeleteCall: the call and its recording's record, taken out of the
// rollups first (whether it counted as a returning caller's is read from the calls, which
// still hold it), with its webhooks' messages and their deliveries.
func (t *pgTx) deleteCall(id string) (Call, Recording, error) {
	c, err := t.call(id)
	if err != nil {
		return Call{}, Recording{}, fmt.Errorf("call %q: %w", id, err)
	}
	var rec Recording
	if c.RecordingID != "" {
		rec, err = t.recording(c.RecordingID)
		switch {
		case err == nil:
			if err := t.exec(nil, `DELETE FROM recordings WHERE id = $1`, rec.ID); err != nil {
				return Call{}, Recording{}, err
			}
		case !errors.Is(err, ErrNotFound):
			return Call{}, Recording{}, err
		}
	}
	if err := t.unrollCall(&c); err != nil {
		return Call{}, Recording{}, err
	}
	// Its Google Ads upload state goes too: it may quote Google's error about its click.
	if err := t.deleteCallUpload(c.CustomerID, c.ID); err != nil {
		return Call{}, Recording{}, err
	}
	// Its webhooks' messages go with it (a caller's erasure), as on bbolt.
	if err := t.deleteWebhookSubject(c.CustomerID, c.ID); err != nil {
		return Call{}, Recording{}, err
	}
	return c, rec, t.exec(nil, `DELETE FROM calls WHERE id = $1`, c.ID)
}

// unrollCall takes a completed call out of its customer's rollups of the day: rollupCall
// undone, as rollups.go's. Counts do not go below zero; a channel without calls, and a
// landing page or keyword without calls, lose their rows.
func (t *pgTx) unrollCall(c *Call) error {
	if !storable(c.Start) || c.End.IsZero() {
		return nil
	}
	day := dayOf(c.Start)
	answered, busy, missed, hist, recorded, talk := pgRollupCounts(c)
	if err := t.exec(nil, `UPDATE rollup_channels SET calls = greatest(calls - 1, 0),
			answered = greatest(answered - $4, 0), busy = greatest(busy - $5, 0), missed = greatest(missed - $6, 0),
			talk_seconds = greatest(talk_seconds - $7, 0),
			talk_hist = CASE WHEN $8::int > 0 THEN talk_hist[:$8::int - 1] || greatest(talk_hist[$8::int] - 1, 0) || talk_hist[$8::int + 1:] ELSE talk_hist END,
			recorded = greatest(recorded - $9, 0),
			first_time = greatest(first_time - f.nfirst, 0), returning_calls = greatest(returning_calls - f.nret, 0)
		FROM (SELECT (p AND NOT ret)::int AS nfirst, (p AND ret)::int AS nret FROM (SELECT $10::text <> '' AS p,
			EXISTS (SELECT 1 FROM calls WHERE customer_id = $1 AND caller_pseudonym = $10 AND $10::text <> '' AND id < $11) AS ret) q) f
		WHERE customer_id = $1 AND day = $2 AND channel = $3`,
		c.CustomerID, day, c.Channel, answered, busy, missed, talk, hist, recorded, c.CallerPseudonym, c.ID); err != nil {
		return err
	}
	if err := t.exec(nil, `DELETE FROM rollup_channels WHERE customer_id = $1 AND day = $2 AND channel = $3 AND calls = 0`,
		c.CustomerID, day, c.Channel); err != nil {
		return err
	}
	for _, n := range []struct {
		kind byte
		name string
	}{{'l', rollupName(c.LandingPage, true)}, {'k', rollupName(c.Keyword, false)}} {
		if n.name == "" {
			continue
		}
		// A landing page's row is named by its identity (pg_rollupnames.go).
		row, _, err := t.rollupNameRow(c.CustomerID, n.kind, n.name, false)
		if err != nil {
			return fmt.Errorf("rollups of %s: %w", c.CustomerID, err)
		}
		n.name = row
		if err := t.exec(nil, `UPDATE rollup_names SET calls = calls - 1 WHERE customer_id = $1 AND day = $2 AND kind = $3 AND name =
				CASE WHEN EXISTS (SELECT 1 FROM rollup_names WHERE customer_id = $1 AND day = $2 AND kind = $3 AND name = $4) THEN $4 ELSE $5 END`,
			c.CustomerID, day, string(n.kind), n.name, RollupOther); err != nil {
			return err
		}
		if err := t.exec(nil, `DELETE FROM rollup_names WHERE customer_id = $1 AND day = $2 AND kind = $3 AND calls <= 0`,
			c.CustomerID, day, string(n.kind)); err != nil {
			return err
		}
	}
	return nil
}

// rollupCount adds a call to a landing page's or keyword's count of the day, under
// RollupOther once the day has MaxRollupKeys names of the kind. Two nodes that add the
// day's last names at once may each see room: a day can hold a few names more.
// A landing page's row is named by its identity and holds the page sealed
// (pg_rollupnames.go).
func (t *pgTx) rollupCount(customerID string, day time.Time, kind byte, name string) error {
	row, sealed, err := t.rollupNameRow(customerID, kind, name, true)
	if err != nil {
		return fmt.Errorf("rollups of %s: %w", customerID, err)
	}
	return t.exec(nil, `INSERT INTO rollup_names AS r (customer_id, day, kind, name, calls, sealed)
		SELECT $1, $2, $3, n.name, 1, CASE WHEN n.name = $4 THEN $7::bytea END FROM (SELECT CASE
			WHEN EXISTS (SELECT 1 FROM rollup_names WHERE customer_id = $1 AND day = $2 AND kind = $3 AND name = $4) THEN $4
			WHEN (SELECT count(*) FROM rollup_names WHERE customer_id = $1 AND day = $2 AND kind = $3 AND name <> $5) < $6 THEN $4
			ELSE $5 END AS name) n
		ON CONFLICT (customer_id, day, kind, name) DO UPDATE SET calls = r.calls + 1`,
		customerID, day, string(kind), row, RollupOther, MaxRollupKeys, sealed)
}

func (t *pgTx) rollups(customerID string, from, to time.Time) ([]DayStats, error) {
	first, end := dayOf(from), dayOf(to)
	if end.Before(to) {
		end = end.AddDate(0, 0, 1)
	}
	if customerID == "" || !first.Before(end) {
		return nil, nil
	}
	first, end = clampDay(first), clampDay(end)
	var out []DayStats
	byDay := map[time.Time]int{}
	dayStats := func(d time.Time) *DayStats {
		d = d.UTC()
		i, ok := byDay[d]
		if !ok {
			i = len(out)
			byDay[d] = i
			out = append(out, DayStats{Day: d, Channels: map[string]*ChannelStats{}, Landing: map[string]int{}, Keywords: map[string]int{}})
		}
		return &out[i]
	}
	err := t.query(`SELECT day, channel, calls, answered, busy, missed, first_time, returning_calls, talk_seconds, talk_hist, recorded
		FROM rollup_channels WHERE customer_id = $1 AND day >= $2 AND day < $3 ORDER BY day, channel`,
		[]any{customerID, first, end}, func(r pgx.Rows) error {
			var day time.Time
			var name string
			var hist []int32
			st := new(ChannelStats)
			if err := r.Scan(&day, &name, &st.Calls, &st.Answered, &st.Busy, &st.Missed, &st.FirstTime, &st.Returning,
				&st.TalkSeconds, &hist, &st.Recorded); err != nil {
				return err
			}
			for i := range min(len(hist), len(st.TalkHist)) {
				st.TalkHist[i] = int(hist[i])
			}
			dayStats(day).Channels[name] = st
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = t.query(`SELECT day, kind, name, calls, sealed FROM rollup_names WHERE customer_id = $1 AND day >= $2 AND day < $3 ORDER BY day`,
		[]any{customerID, first, end}, func(r pgx.Rows) error {
			var day time.Time
			var kind, name string
			var n int
			var sealed []byte
			if err := r.Scan(&day, &kind, &name, &n, &sealed); err != nil {
				return err
			}
			name, err := t.rollupNameOf(customerID, name, sealed)
			if err != nil {
				return fmt.Errorf("rollups of %s: %w", customerID, err)
			}
			d := dayStats(day)
			if kind == "k" {
				d.Keywords[name] = n
			} else {
				d.Landing[name] = n
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	// A day of names only (its channels' rows gone) sorts in by its day.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Day.Before(out[j-1].Day); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// updateCall writes the annotations of a stored call (AnnotateCall): its tags and detail.
func (t *pgTx) updateCall(c *Call) error {
	detail, err := pgCallDetail(c)
	if err != nil {
		return err
	}
	return t.exec(nil, `UPDATE calls SET tags = $2, detail = $3 WHERE id = $1`, c.ID, c.Tags, detail)
}

// calls is Tx.Calls in SQL: the filter is the WHERE clause, newest first by id. Unlike
// bbolt's walk, a page is never cut short by the number of records examined.
func (t *pgTx) calls(f CallFilter) ([]Call, string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultCallLimit
	}
	where := `true`
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.CustomerID != "" {
		where += ` AND customer_id = ` + arg(f.CustomerID)
	}
	// Starts are kept to the microsecond: a bound within one is rounded up to the next, so
	// that a call that started at that microsecond counts as having started before it.
	if !f.From.IsZero() {
		where += ` AND start >= ` + arg(ceilMicro(f.From))
	}
	if !f.To.IsZero() {
		where += ` AND start < ` + arg(ceilMicro(f.To))
	}
	if f.Channel != "" {
		where += ` AND channel = ` + arg(f.Channel)
	}
	if f.Dialled != "" {
		where += ` AND dialled = ` + arg(f.Dialled)
	}
	if f.Disposition != "" {
		where += ` AND disposition = ` + arg(string(f.Disposition))
	}
	if f.Tag != "" {
		where += ` AND ` + arg(f.Tag) + ` = ANY (tags)`
	}
	if f.HasRecording != nil {
		if *f.HasRecording {
			where += ` AND recording_id <> ''`
		} else {
			where += ` AND recording_id = ''`
		}
	}
	if f.Active != nil {
		if *f.Active {
			where += ` AND ended IS NULL`
		} else {
			where += ` AND ended IS NOT NULL`
		}
	}
	if f.Before != "" {
		where += ` AND id < ` + arg(f.Before)
	}
	var out []Call
	err := t.query(`SELECT `+pgCallColumns+` FROM calls WHERE `+where+` ORDER BY id DESC LIMIT `+arg(limit), args,
		func(r pgx.Rows) error {
			c, err := t.scanCall(r)
			out = append(out, c)
			return err
		})
	if err != nil {
		return nil, "", err
	}
	if len(out) == limit {
		return out, out[len(out)-1].ID, nil
	}
	return out, "", nil
}

// ceilMicro rounds t up to a whole microsecond.
func ceilMicro(t time.Time) time.Time {
	if r := t.Truncate(time.Microsecond); !r.Equal(t) {
		return r.Add(time.Microsecond)
	}
	return t
}

func (t *pgTx) activeCalls(fn func(Call) bool) error {
	var all []Call
	err := t.query(`SELECT `+pgCallColumns+` FROM calls WHERE ended IS NULL ORDER BY customer_id, id`, nil, func(r pgx.Rows) error {
		c, err := t.scanCall(r)
		all = append(all, c)
		return err
	})
	if err != nil {
		return err
	}
	for _, c := range all {
		if !fn(c) {
			return nil
		}
	}
	return nil
}

func (t *pgTx) callsOfCaller(customerID, pseudonym string) ([]Call, error) {
	var out []Call
	err := t.query(`SELECT `+pgCallColumns+` FROM calls WHERE customer_id = $1 AND caller_pseudonym = $2 ORDER BY id DESC LIMIT $3`,
		[]any{customerID, pseudonym, MaxCallerCalls}, func(r pgx.Rows) error {
			c, err := t.scanCall(r)
			out = append(out, c)
			return err
		})
	return out, err
}

// usage is Tx.Usage: the month's counters, and its sessions counted by their time-ordered
// ids until the month is frozen.
func (t *pgTx) usage(customerID, month string) (Usage, error) {
	from, err := ParseMonth(month)
	if err != nil {
		return Usage{}, err
	}
	var calls, talkMs, sessions int64
	var frozen bool
	err = t.row(`SELECT calls, talk_ms, sessions, sessions_frozen FROM usage_months WHERE customer_id = $1 AND month = $2`,
		[]any{customerID, month}, &calls, &talkMs, &sessions, &frozen)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Usage{}, err
	}
	if !frozen {
		lo, hi := idTimePrefix(from.UnixMilli()), idTimePrefix(from.AddDate(0, 1, 0).UnixMilli())
		if err := t.row(`SELECT count(*) FROM sessions WHERE customer_id = $1 AND id >= $2 AND id < $3`,
			[]any{customerID, string(lo), string(hi)}, &sessions); err != nil {
			return Usage{}, err
		}
	}
	talk := time.Duration(talkMs) * time.Millisecond
	return Usage{Month: month, Sessions: uint64(sessions), Calls: uint64(calls), TalkTime: talk, TalkSeconds: talk.Seconds()}, nil
}

// --- recordings

func (t *pgTx) putRecording(r *Recording) error {
	return t.exec(nil, `INSERT INTO recordings (id, customer_id, call_id, path, duration_ns, size, sha256, created)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, call_id = excluded.call_id, path = excluded.path,
			duration_ns = excluded.duration_ns, size = excluded.size, sha256 = excluded.sha256, created = excluded.created`,
		r.ID, r.CustomerID, r.CallID, r.Path, int64(r.Duration), r.Size, r.SHA256, pgTime(r.Created))
}

func (t *pgTx) recording(id string) (Recording, error) {
	var r Recording
	var dur int64
	var created *time.Time
	err := t.row(`SELECT id, customer_id, call_id, path, duration_ns, size, sha256, created FROM recordings WHERE id = $1`+t.forUpdate(),
		[]any{id}, &r.ID, &r.CustomerID, &r.CallID, &r.Path, &dur, &r.Size, &r.SHA256, &created)
	r.Duration, r.Created = time.Duration(dur), pgTimeOf(created)
	return r, err
}
