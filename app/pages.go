package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trackline/trackline/accounts"
	"github.com/trackline/trackline/pool/e164"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// home sends a customer's user to its overview and an operator to the customer list.
func (a *App) home(w http.ResponseWriter, q *request) error {
	if q.user.Role == store.RoleOperator {
		http.Redirect(w, q.r, "/operator", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, q.r, "/c/"+url.PathEscape(q.user.CustomerID)+"/", http.StatusSeeOther)
	return nil
}

// auditAs writes an audit entry; a failure is logged (the page has already been read).
func (a *App) auditAs(ctx context.Context, actor, action, customerID string, ids ...string) {
	e := store.AuditEntry{Time: a.now(), Actor: actor, Action: action, CustomerID: customerID, IDs: ids}
	if err := a.db.Audit(ctx, e); err != nil {
		a.log.Error("audit", "action", action, "err", err)
	}
}

// auditWrite commits an audit entry before personal data is shown: no entry, no page.
func (a *App) auditWrite(q *request, action string, ids ...string) error {
	e := store.AuditEntry{Time: a.now(), Actor: q.actor(), Action: action, CustomerID: q.customer.ID, IDs: ids}
	return a.db.Write(q.r.Context(), func(tx *store.Tx) error { return tx.AppendAudit(&e) })
}

// --- date range and filters

// span is a page's date range: whole UTC days [From, To).
type span struct {
	From, To time.Time
	Channel  string
}

// readSpan reads from, to (inclusive dates) and channel; 30 days to today by default, at
// most 400 days.
func (a *App) readSpan(r *http.Request) (span, error) {
	qs := r.URL.Query()
	today := a.now().UTC().Truncate(24 * time.Hour)
	s := span{From: today.AddDate(0, 0, -29), To: today.AddDate(0, 0, 1), Channel: qs.Get("channel")}
	if v := qs.Get("from"); v != "" {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			return s, errBadInput("from: a date like 2026-12-01")
		}
		s.From = t
	}
	if v := qs.Get("to"); v != "" {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			return s, errBadInput("to: a date like 2026-12-31")
		}
		s.To = t.AddDate(0, 0, 1)
	}
	if !s.From.Before(s.To) || s.To.Sub(s.From) > 400*24*time.Hour {
		return s, errBadInput("the date range must run forward and cover at most 400 days")
	}
	if len(s.Channel) > 64 {
		return s, errBadInput("channel: too long")
	}
	return s, nil
}

// --- overview

// tally is one row of the overview's counts: a channel's, or the total.
type tally struct {
	Name string
	store.ChannelStats
}

// ranked is a name and a count, for the top lists.
type ranked struct {
	Name  string
	Count int
}

func top(m map[string]int, n int) []ranked {
	out := make([]ranked, 0, len(m))
	for k, v := range m {
		out = append(out, ranked{k, v})
	}
	slices.SortFunc(out, func(a, b ranked) int { return cmp.Or(b.Count-a.Count, strings.Compare(a.Name, b.Name)) })
	return out[:min(n, len(out))]
}

// overview shows the customer's calls from the daily rollups: calls per day by result, new
// and returning callers, median talk time, top landing pages and keywords, and how the
// pool copes.
func (a *App) overview(w http.ResponseWriter, q *request) error {
	s, err := a.readSpan(q.r)
	if err != nil {
		return err
	}
	days, err := a.db.Rollups(q.customer.ID, s.From, s.To)
	if err != nil {
		return err
	}
	var total tally
	byChannel := map[string]*tally{}
	landing, keywords := map[string]int{}, map[string]int{}
	n := int(s.To.Sub(s.From).Hours() / 24)
	chart := struct {
		Days                   []int64  `json:"days"`
		Answered, Missed, Busy []int    `json:"-"`
		Series                 [][]int  `json:"series"`
		Labels                 []string `json:"labels"`
	}{Days: make([]int64, n), Answered: make([]int, n), Missed: make([]int, n), Busy: make([]int, n)}
	for i := range n {
		chart.Days[i] = s.From.AddDate(0, 0, i).Unix()
	}
	for _, d := range days {
		i := int(d.Day.Sub(s.From).Hours() / 24)
		if i < 0 || i >= n {
			continue
		}
		for name, c := range d.Channels {
			if s.Channel != "" && name != s.Channel {
				continue
			}
			total.Add(c)
			t := byChannel[name]
			if t == nil {
				t = &tally{Name: name}
				byChannel[name] = t
			}
			t.Add(c)
			chart.Answered[i] += c.Answered
			chart.Missed[i] += c.Missed
			chart.Busy[i] += c.Busy
		}
		if s.Channel == "" {
			for k, v := range d.Landing {
				landing[k] += v
			}
			for k, v := range d.Keywords {
				keywords[k] += v
			}
		}
	}
	chart.Series = [][]int{chart.Answered, chart.Missed, chart.Busy}
	chart.Labels = []string{msg(q.lang, "answered"), msg(q.lang, "missed"), msg(q.lang, "busy")}
	channels := make([]*tally, 0, len(byChannel))
	for _, t := range byChannel {
		channels = append(channels, t)
	}
	slices.SortFunc(channels, func(a, b *tally) int { return cmp.Or(b.Calls-a.Calls, strings.Compare(a.Name, b.Name)) })
	names, err := a.channelNames(q.customer.ID)
	if err != nil {
		return err
	}
	st, err := a.pool.Status(q.customer.ID)
	if err != nil {
		return err
	}
	return a.page(w, q, "overview", map[string]any{
		"Span": s, "From": s.From.Format("2006-01-02"), "To": s.To.AddDate(0, 0, -1).Format("2006-01-02"),
		"Total": total, "Median": store.MedianTalk(total.TalkHist), "Channels": channels, "ChannelNames": names,
		"Landing": top(landing, 10), "Keywords": top(keywords, 10), "Pool": st, "Advice": poolAdvice(q.lang, st),
		"Chart": chart, // html/template writes it as JSON into the application/json block
	})
}

// poolAdvice is the overview's plain line on the pool's size.
func poolAdvice(lang string, st pool.PoolStatus) string {
	if st.Exhaustions == 0 || st.Total == 0 {
		return msg(lang, "pool_ok")
	}
	want := int(math.Ceil(float64(max(st.PeakAssigned, st.Total)) * 1.25))
	return fmt.Sprintf(msg(lang, "pool_grow"), max(want, st.Total+1), st.Exhaustions)
}

// channelNames lists the customer's channels, for the filters.
func (a *App) channelNames(customerID string) ([]string, error) {
	chs, err := a.pool.Channels(customerID)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(chs))
	for _, c := range chs {
		out = append(out, c.Name)
	}
	return out, nil
}

// --- calls

// callsPage lists the customer's calls, newest first, a page at a time; htmx asks for the
// table alone.
func (a *App) callsPage(w http.ResponseWriter, q *request) error {
	s, err := a.readSpan(q.r)
	if err != nil {
		return err
	}
	qs := q.r.URL.Query()
	f := store.CallFilter{CustomerID: q.customer.ID, From: s.From, To: s.To, Channel: s.Channel, Limit: 50, Before: qs.Get("before")}
	if len(f.Before) > 64 {
		return errBadInput("before: not a cursor")
	}
	if v := qs.Get("disposition"); v != "" {
		d, err := store.ParseDisposition(v)
		if err != nil {
			return errBadInput("result: " + err.Error())
		}
		f.Disposition = d
	}
	if v := strings.TrimSpace(qs.Get("number")); v != "" {
		n, err := e164.Normalize(v, a.cfg.CountryCode)
		if err != nil {
			return errBadInput(msg(q.lang, "number") + ": " + err.Error())
		}
		f.Dialled = n
	}
	if v := qs.Get("tag"); v != "" {
		if len(v) > 32 {
			return errBadInput("tag: too long")
		}
		f.Tag = v
	}
	if v := qs.Get("recorded"); v != "" {
		b := v == "yes"
		f.HasRecording = &b
	}
	calls, next, err := a.db.Calls(f)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(calls))
	for _, c := range calls {
		ids = append(ids, c.ID)
	}
	if err := a.auditWrite(q, "calls.list", ids...); err != nil {
		return err
	}
	names, err := a.channelNames(q.customer.ID)
	if err != nil {
		return err
	}
	more := url.Values{}
	for k, v := range qs {
		more[k] = v
	}
	more.Set("before", next)
	data := map[string]any{"Calls": calls, "Next": next, "More": more.Encode(), "ChannelNames": names,
		"From": s.From.Format("2006-01-02"), "To": s.To.AddDate(0, 0, -1).Format("2006-01-02"), "Channel": s.Channel,
		"Disposition": string(f.Disposition), "Tag": f.Tag, "Number": qs.Get("number"), "Recorded": qs.Get("recorded"),
		"Dispositions": []string{"answered", "busy", "no-answer", "cancelled", "rejected", "failed"}}
	if q.r.Header.Get("HX-Request") != "" && q.r.Header.Get("HX-Target") == "calls-table" {
		return a.fragment(w, q, "calls", "table", data)
	}
	return a.page(w, q, "calls", data)
}

// customerCall reads a call of the request's customer; another customer's answers as missing.
func (a *App) customerCall(q *request) (store.Call, error) {
	id := q.r.PathValue("id")
	if len(id) > 64 {
		return store.Call{}, errNotFound
	}
	c, err := a.db.Call(id)
	if err != nil || c.CustomerID != q.customer.ID {
		return store.Call{}, errNotFound
	}
	return c, nil
}

// callPage shows one call: its attribution in words, its recording and its annotations.
func (a *App) callPage(w http.ResponseWriter, q *request) error {
	c, err := a.customerCall(q)
	if err != nil {
		return err
	}
	if err := a.auditWrite(q, "call.read", c.ID); err != nil {
		return err
	}
	data := map[string]any{"Call": c, "Explain": a.explain(q.lang, &c), "Saved": q.r.URL.Query().Get("saved") != "",
		"LeadStatuses": []string{"", "lead", "qualified", "customer", "not_a_lead"}, "Tags": strings.Join(c.Tags, ", ")}
	// The call's Google Ads upload, if it has one.
	if err := a.db.View(func(tx *store.Tx) error {
		u, err := tx.ConversionUpload(c.CustomerID, c.ID)
		if err == nil {
			data["Upload"] = u
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	return a.page(w, q, "call", data)
}

// explain says in words why a call belongs where it does: the visit whose lease covered it
// (or whose grace window did), the rule that gave the visit its channel, and the other
// visits that had seen the number, as far as the store still holds them.
func (a *App) explain(lang string, c *store.Call) []string {
	var out []string
	switch {
	case c.SessionID != "":
		out = append(out, msg(lang, "attr_session"))
	case c.Channel != "":
		return append(out, msg(lang, "attr_static"))
	default:
		return append(out, msg(lang, "attr_none"))
	}
	at, err := a.pool.Attribute(c.Dialled, c.Start)
	if err != nil || at.Session == nil || at.Session.ID != c.SessionID {
		if c.Candidates > 1 {
			out = append(out, msg(lang, "attr_many"))
		}
		return out
	}
	if at.InGrace {
		out = append(out, fmt.Sprintf(msg(lang, "attr_grace"), fmtTime(at.LeaseUntil, "15:04:05")))
	} else {
		out = append(out, fmt.Sprintf(msg(lang, "attr_lease"), fmtTime(at.LeaseFrom, "15:04:05"), fmtTime(at.LeaseUntil, "15:04:05")))
	}
	if chs, err := a.pool.Channels(c.CustomerID); err == nil {
		if r, name := pool.ExplainChannel(chs, at.Session); r != nil {
			out = append(out, fmt.Sprintf(msg(lang, "attr_rule"), name, r.Param, r.Pattern))
		} else {
			out = append(out, fmt.Sprintf(msg(lang, "attr_builtin"), at.Session.Channel))
		}
	}
	if len(at.Others) > 0 {
		out = append(out, fmt.Sprintf(msg(lang, "attr_others"), len(at.Others), strings.Join(at.Others, ", ")))
	}
	return out
}

// annotate saves a call's lead status, tags, value and note (members may).
func (a *App) annotate(w http.ResponseWriter, q *request) error {
	c, err := a.customerCall(q)
	if err != nil {
		return err
	}
	f := q.r.PostForm
	ls, err := store.ParseLeadStatus(f.Get("lead_status"))
	if err != nil {
		return errBadInput(msg(q.lang, "lead_status") + ": " + err.Error())
	}
	var tags []string
	for _, t := range strings.Split(f.Get("tags"), ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if len(tags) > 20 {
		return errBadInput("tags: at most 20")
	}
	for _, t := range tags {
		if len(t) > 32 || strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return errBadInput("tags: each at most 32 characters, without control characters")
		}
	}
	var value float64
	if v := strings.TrimSpace(f.Get("value")); v != "" {
		value, err = strconv.ParseFloat(strings.ReplaceAll(v, ",", "."), 64)
		if err != nil || value < 0 || value > 1e9 || math.IsNaN(value) {
			return errBadInput("value: a number from 0 to 1,000,000,000")
		}
	}
	note := f.Get("note")
	if len(note) > 2000 {
		return errBadInput("note: at most 2,000 characters")
	}
	e := store.AuditEntry{Time: a.now(), Actor: q.actor(), Action: "call.update", CustomerID: q.customer.ID, IDs: []string{c.ID}}
	err = a.db.Write(q.r.Context(), func(tx *store.Tx) error {
		if _, err := tx.AnnotateCall(q.customer.ID, c.ID, func(c *store.Call) error {
			c.LeadStatus, c.Tags, c.Value, c.Note = ls, tags, value, note
			return nil
		}); err != nil {
			return err
		}
		return tx.AppendAudit(&e)
	})
	if err != nil {
		return err
	}
	http.Redirect(w, q.r, fmt.Sprintf("/c/%s/calls/%s?saved=1", url.PathEscape(q.customer.ID), url.PathEscape(c.ID)), http.StatusSeeOther)
	return nil
}

// recording streams a call's recording, decrypted, with Range support for seeking.
func (a *App) recording(w http.ResponseWriter, q *request) error {
	c, err := a.customerCall(q)
	if err != nil {
		return err
	}
	if c.RecordingID == "" || a.keys == nil {
		return errNotFound
	}
	rec, err := a.db.Recording(c.RecordingID)
	if err != nil || rec.CustomerID != q.customer.ID {
		return errNotFound
	}
	rd, err := a.openRecording(q.r.Context(), rec)
	if err != nil {
		return err
	}
	defer rd.Close()
	if err := a.auditWrite(q, "recording.read", rec.ID, rec.CallID); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "audio/wav")
	h.Set("Cache-Control", "private, no-store")
	http.ServeContent(w, q.r, "", rd.ModTime(), rd)
	return nil
}

// --- numbers

func (a *App) numbersPage(w http.ResponseWriter, q *request) error {
	nums, err := a.pool.Numbers(q.customer.ID)
	if err != nil {
		return err
	}
	chs, err := a.pool.Channels(q.customer.ID)
	if err != nil {
		return err
	}
	st, err := a.pool.Status(q.customer.ID)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, c := range chs {
		names[c.ID] = c.Name
	}
	type row struct{ Number, Kind, Channel, State string }
	rows := make([]row, 0, len(nums))
	for _, n := range nums {
		rows = append(rows, row{n.E164, string(n.Kind), names[n.ChannelID], n.Live})
	}
	return a.page(w, q, "numbers", map[string]any{"Numbers": rows, "Channels": chs, "Pool": st})
}

// --- audit

func (a *App) auditPage(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin reads the audit log")
	}
	before := q.r.URL.Query().Get("before")
	if len(before) > 64 {
		return errBadInput("before: not a cursor")
	}
	entries, next, err := a.db.AuditLog(store.AuditFilter{CustomerID: q.customer.ID, Before: before, Limit: 100})
	if err != nil {
		return err
	}
	return a.page(w, q, "audit", map[string]any{"Entries": entries, "Next": next})
}

// --- users

func (a *App) usersPage(w http.ResponseWriter, q *request) error {
	users, err := a.db.Users(q.customer.ID)
	if err != nil {
		return err
	}
	return a.page(w, q, "users", map[string]any{"Users": users})
}

// inviteUser makes an invitation for a new user of the customer (admins only).
func (a *App) inviteUser(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin invites users")
	}
	email := strings.ToLower(strings.TrimSpace(q.r.PostFormValue("email")))
	role := store.Role(q.r.PostFormValue("role"))
	if !accounts.ValidEmail(email) {
		return errBadInput(msg(q.lang, "email") + ": not an email address")
	}
	if role != store.RoleAdmin && role != store.RoleMember {
		return errBadInput("role: admin or member")
	}
	link, err := a.invite(q.r.Context(), q.actor(), store.User{CustomerID: q.customer.ID, Email: email, Role: role})
	if errors.Is(err, store.ErrEmailTaken) {
		return &pageError{status: http.StatusConflict, msg: "a user with this email address exists"}
	}
	if err != nil {
		return err
	}
	users, err := a.db.Users(q.customer.ID)
	if err != nil {
		return err
	}
	return a.page(w, q, "users", map[string]any{"Users": users, "Link": link})
}

// --- operator

// operatorPage lists every customer with its pool health and its calls over 30 days.
func (a *App) operatorPage(w http.ResponseWriter, q *request) error {
	if q.user.Role != store.RoleOperator {
		return errNotFound
	}
	type row struct {
		Customer store.Customer
		Pool     pool.PoolStatus
		Calls    int
	}
	today := a.now().UTC().Truncate(24 * time.Hour)
	var rows []row
	for _, c := range a.pool.Customers() {
		st, err := a.pool.Status(c.ID)
		if err != nil {
			return err
		}
		days, err := a.db.Rollups(c.ID, today.AddDate(0, 0, -29), today.AddDate(0, 0, 1))
		if err != nil {
			return err
		}
		n := 0
		for _, d := range days {
			for _, ch := range d.Channels {
				n += ch.Calls
			}
		}
		rows = append(rows, row{c, st, n})
	}
	return a.page(w, q, "operator", map[string]any{"Rows": rows, "Link": q.r.URL.Query().Get("link")})
}

// createCustomer makes a customer (a trial, by the pool's rules) and invites its first admin.
func (a *App) createCustomer(w http.ResponseWriter, q *request) error {
	if q.user.Role != store.RoleOperator {
		return errNotFound
	}
	f := q.r.PostForm
	email := strings.ToLower(strings.TrimSpace(f.Get("email")))
	if !accounts.ValidEmail(email) {
		return errBadInput(msg(q.lang, "first_admin") + ": not an email address")
	}
	c, err := a.pool.CreateCustomer(q.r.Context(), store.Customer{ID: strings.TrimSpace(f.Get("id")), Name: strings.TrimSpace(f.Get("name")),
		SiteKey: strings.TrimSpace(f.Get("site_key")), Status: store.StatusTrial})
	if errors.Is(err, pool.ErrConflict) {
		return &pageError{status: http.StatusConflict, msg: "a customer with this id exists"}
	}
	if err != nil {
		return err
	}
	link, err := a.invite(q.r.Context(), q.actor(), store.User{CustomerID: c.ID, Email: email, Role: store.RoleAdmin})
	if errors.Is(err, store.ErrEmailTaken) {
		return &pageError{status: http.StatusConflict, msg: "a user with this email address exists"}
	}
	if err != nil {
		return err
	}
	http.Redirect(w, q.r, "/operator?link="+url.QueryEscape(link), http.StatusSeeOther)
	return nil
}
