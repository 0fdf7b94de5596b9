package api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// callsEnv is an admin server over a store holding calls; labels maps call ids to the names
// the tests use.
type callsEnv struct {
	admin  string
	ids    map[string]string // label -> id
	labels map[string]string // id -> label
}

func newCallsEnv(t *testing.T, withCalls bool) *callsEnv {
	t.Helper()
	db := storetest.Open(t)
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"acme", "bakery"} {
		if _, err := p.CreateCustomer(ctx, store.Customer{ID: id, Name: id, Status: store.StatusActive, SiteKey: id + "-site-key"}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	e := &callsEnv{ids: map[string]string{}, labels: map[string]string{}}
	for i, d := range []struct {
		label, customer, dialled, channel, disposition string
	}{
		{"a1", "acme", "+31850000001", "Google Ads", "answered"},
		{"a2", "acme", "+31850000002", "Direct", "busy"},
		{"b1", "bakery", "+31850000011", "Google Ads", "no-answer"},
		{"a3", "acme", "+31850000001", "Google Ads", "answered"},
		{"b2", "bakery", "+31850000011", "Direct", ""},
		{"a4", "acme", "+31850000001", "Direct", ""},
	} {
		start := t0.Add(time.Duration(i) * 10 * time.Minute)
		c := store.Call{ID: pool.NewID(start), CustomerID: d.customer, Dialled: d.dialled, Caller: "+31612345678",
			Channel: d.channel, Disposition: store.Disposition(d.disposition), Start: start, CallIDA: "a-" + d.label}
		if d.disposition != "" {
			c.End = start.Add(2 * time.Minute)
		}
		if err := db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&c) }); err != nil {
			t.Fatal(err)
		}
		e.ids[d.label], e.labels[c.ID] = c.ID, d.label
	}
	var opts []Option
	if withCalls {
		opts = append(opts, WithCalls(db))
	}
	a, err := New(Config{AdminToken: token}, p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Admin())
	t.Cleanup(srv.Close)
	e.admin = srv.URL
	return e
}

// list answers GET /v1/calls?query as the labels of the calls and of the next cursor.
func (e *callsEnv) list(t *testing.T, query string) (status int, calls, next string) {
	t.Helper()
	r := do(t, "GET", e.admin+"/v1/calls?"+query, "", "", "Authorization", "Bearer "+token)
	if r.status != 200 {
		return r.status, "", ""
	}
	raw, ok := r.body["calls"].([]any)
	if !ok {
		t.Fatalf("calls is %T, want an array: %v", r.body["calls"], r.body)
	}
	var ls []string
	for _, c := range raw {
		ls = append(ls, e.labels[c.(map[string]any)["id"].(string)])
	}
	if n, ok := r.body["next_cursor"].(string); ok {
		next = e.labels[n]
		if next == "" {
			t.Fatalf("next_cursor %q is no call id", n)
		}
	}
	return r.status, strings.Join(ls, " "), next
}

func TestListCalls(t *testing.T) {
	e := newCallsEnv(t, true)
	tests := []struct {
		name  string
		query string
		want  string
		next  string
	}{
		{"all", "", "a4 b2 a3 b1 a2 a1", ""},
		{"customer", "customer=bakery", "b2 b1", ""},
		{"from", "from=2026-05-01T10:20:00Z", "a4 b2 a3 b1", ""},
		{"to, other zone", "to=" + url.QueryEscape("2026-05-01T12:20:00+02:00"), "a2 a1", ""},
		{"from and to", "from=2026-05-01T10:10:00Z&to=2026-05-01T10:30:00Z", "b1 a2", ""},
		{"channel", "channel=" + url.QueryEscape("Google Ads"), "a3 b1 a1", ""},
		{"number", "number=" + url.QueryEscape("+31850000001"), "a4 a3 a1", ""},
		{"disposition", "disposition=answered", "a3 a1", ""},
		{"active", "active=true", "a4 b2", ""},
		{"ended", "active=false", "a3 b1 a2 a1", ""},
		{"combined", "customer=acme&number=%2B31850000001&active=false&from=2026-05-01T10:05:00Z", "a3", ""},
		{"limit", "limit=2", "a4 b2", "b2"},
		{"none", "disposition=failed", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got, next := e.list(t, tt.query)
			if status != 200 || got != tt.want || next != tt.next {
				t.Fatalf("GET /v1/calls?%s = %d %q next %q, want %q next %q", tt.query, status, got, next, tt.want, tt.next)
			}
		})
	}
}

func TestListCallsPaging(t *testing.T) {
	e := newCallsEnv(t, true)
	for _, q := range []string{"limit=1", "limit=2&customer=acme", "limit=4"} {
		var all []string
		cursor := ""
		for page := 0; page < 10; page++ {
			status, got, next := e.list(t, q+"&cursor="+url.QueryEscape(cursor))
			if status != 200 {
				t.Fatalf("%s page %d: %d", q, page, status)
			}
			all = append(all, strings.Fields(got)...)
			if next == "" {
				break
			}
			cursor = e.ids[next]
		}
		want := "a4 b2 a3 b1 a2 a1"
		if strings.HasSuffix(q, "acme") {
			want = "a4 a3 a2 a1"
		}
		if strings.Join(all, " ") != want {
			t.Fatalf("paging %s: %v, want %s", q, all, want)
		}
	}
}

func TestListCallsRejectsBadParams(t *testing.T) {
	e := newCallsEnv(t, true)
	tests := []struct {
		name   string
		query  string
		status int
		field  string
	}{
		{"customer too long", "customer=" + strings.Repeat("a", 65), 400, "customer"},
		{"unknown customer", "customer=nobody", 404, "customer"},
		{"from not RFC 3339", "from=2026-05-01", 400, "from"},
		{"to not RFC 3339", "to=yesterday", 400, "to"},
		{"to before from", "from=2026-05-01T11:00:00Z&to=2026-05-01T10:00:00Z", 400, "to"},
		{"channel too long", "channel=" + strings.Repeat("c", 101), 400, "channel"},
		{"number not E.164", "number=0850000001", 400, "number"},
		{"number with letters", "number=%2B3185000000x", 400, "number"},
		{"disposition", "disposition=hung-up", 400, "disposition"},
		{"active", "active=yes", 400, "active"},
		{"limit zero", "limit=0", 400, "limit"},
		{"limit too big", "limit=1001", 400, "limit"},
		{"limit not a number", "limit=ten", 400, "limit"},
		{"cursor too long", "cursor=" + strings.Repeat("0", 65), 400, "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "GET", e.admin+"/v1/calls?"+tt.query, "", "", "Authorization", "Bearer "+token)
			if r.status != tt.status || r.body["field"] != tt.field || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("GET /v1/calls?%s = %d %v, want %d field %q", tt.query, r.status, r.body, tt.status, tt.field)
			}
		})
	}
}

func TestGetCall(t *testing.T) {
	e := newCallsEnv(t, true)
	auth := []string{"Authorization", "Bearer " + token}
	r := do(t, "GET", e.admin+"/v1/calls/"+e.ids["a2"], "", "", auth...)
	if r.status != 200 || r.body["id"] != e.ids["a2"] || r.body["customer_id"] != "acme" || r.body["disposition"] != "busy" ||
		r.body["call_id_a"] != "a-a2" || r.body["end"] == nil {
		t.Fatalf("get a2: %d %v", r.status, r.body)
	}
	r = do(t, "GET", e.admin+"/v1/calls/"+e.ids["a4"], "", "", auth...)
	if r.status != 200 || r.body["end"] != nil || r.body["disposition"] != nil {
		t.Fatalf("get active a4: %d %v", r.status, r.body)
	}
	for _, id := range []string{pool.NewID(time.Now()), strings.Repeat("0", 65)} {
		if r := do(t, "GET", e.admin+"/v1/calls/"+id, "", "", auth...); r.status != 404 || r.body["detail"] != "unknown call" {
			t.Fatalf("get %s: %d %v", id, r.status, r.body)
		}
	}
}

func TestCallsNeedTokenAndStore(t *testing.T) {
	e := newCallsEnv(t, true)
	for _, path := range []string{"/v1/calls", "/v1/calls/" + e.ids["a1"]} {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}} {
			if r := do(t, "GET", e.admin+path, "", "", hdr...); r.status != 401 {
				t.Fatalf("GET %s with %v: %d", path, hdr, r.status)
			}
		}
	}
	none := newCallsEnv(t, false)
	for _, path := range []string{"/v1/calls", "/v1/calls/" + none.ids["a1"]} {
		r := do(t, "GET", none.admin+path, "", "", "Authorization", "Bearer "+token)
		if r.status != 503 || r.body["detail"] != "call records are not available" {
			t.Fatalf("GET %s without call records: %d %v", path, r.status, r.body)
		}
	}
}

func TestPatchCall(t *testing.T) {
	e := newCallsEnv(t, true)
	auth := []string{"Authorization", "Bearer " + token}
	patch := func(label, body string) resp {
		t.Helper()
		id := e.ids[label]
		if id == "" {
			id = label
		}
		return do(t, "PATCH", e.admin+"/v1/calls/"+id, "application/json", body, auth...)
	}
	// Members change one at a time; absent ones stay.
	steps := []struct {
		body string
		want map[string]any
	}{
		{`{"lead_status":"qualified","tags":["vip","offerte"]}`, map[string]any{"lead_status": "qualified", "tags": []any{"vip", "offerte"}}},
		{`{"value":1250.5,"note":"Belt dinsdag terug.\nOfferte sturen."}`, map[string]any{"lead_status": "qualified", "value": 1250.5,
			"note": "Belt dinsdag terug.\nOfferte sturen.", "tags": []any{"vip", "offerte"}}},
		{`{"tags":[],"lead_status":null}`, map[string]any{"lead_status": "qualified", "value": 1250.5, "note": "Belt dinsdag terug.\nOfferte sturen.", "tags": nil}},
		{`{"lead_status":"","value":0,"note":""}`, map[string]any{"lead_status": nil, "value": nil, "note": nil, "tags": nil}},
	}
	for i, st := range steps {
		r := patch("a2", st.body)
		if r.status != 200 || r.body["id"] != e.ids["a2"] || r.body["disposition"] != "busy" || r.body["updated"] == nil {
			t.Fatalf("step %d: PATCH %s = %d %v", i, st.body, r.status, r.body)
		}
		for k, v := range st.want {
			if got := r.body[k]; fmt.Sprint(got) != fmt.Sprint(v) {
				t.Fatalf("step %d: %s = %v, want %v (%v)", i, k, got, v, r.body)
			}
		}
		if g := do(t, "GET", e.admin+"/v1/calls/"+e.ids["a2"], "", "", auth...); fmt.Sprint(g.body) != fmt.Sprint(r.body) {
			t.Fatalf("step %d: GET after PATCH = %v, want %v", i, g.body, r.body)
		}
	}
	// Only the annotations change: the rest of the record stays.
	if r := patch("a3", `{"tags":["terugbellen"]}`); r.status != 200 || r.body["channel"] != "Google Ads" || r.body["call_id_a"] != "a-a3" {
		t.Fatalf("PATCH a3: %d %v", r.status, r.body)
	}
}

func TestPatchCallRejects(t *testing.T) {
	e := newCallsEnv(t, true)
	auth := []string{"Authorization", "Bearer " + token}
	tags := func(n int, tag string) string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf("%q", fmt.Sprint(tag, i))
		}
		return `{"tags":[` + strings.Join(s, ",") + `]}`
	}
	tests := []struct {
		name   string
		id     string
		ctype  string
		body   string
		status int
		field  string
	}{
		{"lead status", "a1", "application/json", `{"lead_status":"hot"}`, 400, "lead_status"},
		{"lead status not a string", "a1", "application/json", `{"lead_status":1}`, 400, "lead_status"},
		{"21 tags", "a1", "application/json", tags(21, "t"), 400, "tags"},
		{"empty tag", "a1", "application/json", `{"tags":["ok",""]}`, 400, "tags"},
		{"tag of 33 characters", "a1", "application/json", `{"tags":["` + strings.Repeat("ü", 33) + `"]}`, 400, "tags"},
		{"tag with a control character", "a1", "application/json", `{"tags":["a\u0007b"]}`, 400, "tags"},
		{"tag twice", "a1", "application/json", `{"tags":["a","a"]}`, 400, "tags"},
		{"tags not a list", "a1", "application/json", `{"tags":"vip"}`, 400, "tags"},
		{"negative value", "a1", "application/json", `{"value":-0.01}`, 400, "value"},
		{"value too high", "a1", "application/json", `{"value":1000000000.01}`, 400, "value"},
		{"value not a number", "a1", "application/json", `{"value":"12"}`, 400, "value"},
		{"note of 2,001 characters", "a1", "application/json", `{"note":"` + strings.Repeat("é", 2001) + `"}`, 400, "note"},
		{"note with a control character", "a1", "application/json", `{"note":"a\u0000b"}`, 400, "note"},
		{"unknown member", "a1", "application/json", `{"channel":"Direct"}`, 400, "channel"},
		{"nothing to change", "a1", "application/json", `{}`, 400, ""},
		{"not JSON", "a1", "application/json", `lead`, 400, ""},
		{"not JSON content", "a1", "text/plain", `{"note":"x"}`, 415, ""},
		{"too big", "a1", "application/json", `{"note":"` + strings.Repeat("x", 40<<10) + `"}`, 413, ""},
		{"unknown call", pool.NewID(time.Now()), "application/json", `{"note":"x"}`, 404, ""},
		{"id too long", strings.Repeat("0", 65), "application/json", `{"note":"x"}`, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.ids[tt.id]
			if id == "" {
				id = tt.id
			}
			r := do(t, "PATCH", e.admin+"/v1/calls/"+id, tt.ctype, tt.body, auth...)
			if r.status != tt.status || r.header.Get("Content-Type") != "application/problem+json" || tt.field != "" && r.body["field"] != tt.field {
				t.Fatalf("PATCH %s = %d %v, want %d field %q", tt.body[:min(len(tt.body), 60)], r.status, r.body, tt.status, tt.field)
			}
		})
	}
	// Nothing was changed.
	if r := do(t, "GET", e.admin+"/v1/calls/"+e.ids["a1"], "", "", auth...); r.body["updated"] != nil || r.body["tags"] != nil || r.body["note"] != nil {
		t.Fatalf("a1 after refused patches: %v", r.body)
	}
	// The largest valid annotations fit.
	body := tags(20, strings.Repeat("ü", 30)) // 20 tags of 31-32 characters
	body = body[:len(body)-1] + `,"note":"` + strings.Repeat("€", 2000) + `","value":1e9,"lead_status":"not_a_lead"}`
	if r := do(t, "PATCH", e.admin+"/v1/calls/"+e.ids["a1"], "application/json", body, auth...); r.status != 200 {
		t.Fatalf("the largest annotations: %d %v", r.status, r.body)
	}
	none := newCallsEnv(t, false)
	if r := do(t, "PATCH", none.admin+"/v1/calls/"+none.ids["a1"], "application/json", `{"note":"x"}`, auth...); r.status != 503 {
		t.Fatalf("PATCH without call records: %d %v", r.status, r.body)
	}
}

// A customer token annotates its own calls only: another customer's call answers exactly what
// a missing one does, and changes nothing. Each change is audited with the token as actor.
func TestPatchCallTenancy(t *testing.T) {
	e := newTenancyEnv(t)
	body := `{"tags":["vip"],"lead_status":"lead"}`
	status, _, own := raw(t, "PATCH", e.url+"/v1/calls/"+e.call["acme"], e.acmeToken, body)
	if status != 200 || !strings.Contains(own, `"tags":["vip"]`) {
		t.Fatalf("own call: %d %s", status, own)
	}
	status, ctype, other := raw(t, "PATCH", e.url+"/v1/calls/"+e.call["bakery"], e.acmeToken, body)
	ms, _, missing := raw(t, "PATCH", e.url+"/v1/calls/"+pool.NewID(time.Now()), e.acmeToken, body)
	gs, _, getMissing := raw(t, "GET", e.url+"/v1/calls/"+pool.NewID(time.Now()), e.acmeToken, "")
	if status != 404 || ctype != "application/problem+json" || ms != status || missing != other || gs != status || getMissing != other {
		t.Fatalf("bakery's call answers %d %s; a missing one %d %s (GET %d %s)", status, other, ms, missing, gs, getMissing)
	}
	// An invalid body for bakery's call answers 404 too, never the validation's 400.
	if status, _, b := raw(t, "PATCH", e.url+"/v1/calls/"+e.call["bakery"], e.acmeToken, `{"tags":[""]}`); status != 404 || b != other {
		t.Fatalf("bakery's call with an invalid body: %d %s", status, b)
	}
	if c, err := e.db.Call(e.call["bakery"]); err != nil || c.Tags != nil || c.LeadStatus != "" {
		t.Fatalf("bakery's call was changed: %+v %v", c, err)
	}
	// The operator annotates any customer's call.
	if status, _, b := raw(t, "PATCH", e.url+"/v1/calls/"+e.call["bakery"], token, `{"note":"checked"}`); status != 200 || !strings.Contains(b, `"note":"checked"`) {
		t.Fatalf("operator: %d %s", status, b)
	}
	entries, _, err := e.db.AuditLog(store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var updates []string
	for _, en := range entries {
		if en.Action == "call.update" {
			updates = append(updates, en.Actor+" "+en.CustomerID+" "+strings.Join(en.IDs, ","))
		}
	}
	want := []string{"operator bakery " + e.call["bakery"], "token:" + e.tokenID["acme"] + " acme " + e.call["acme"]}
	if !slices.Equal(updates, want) {
		t.Fatalf("call.update entries %v, want %v", updates, want)
	}
}
