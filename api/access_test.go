package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/privacy"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

const (
	// The personal data of the fixture's calls and sessions: the audit log must hold neither.
	probeCaller  = "+31612398765"
	probeLanding = "landing-probe-4711"
)

// tenancyEnv is an admin server with two customers, acme and bakery, each with numbers, a
// session, a call and a recording, and a token of acme.
type tenancyEnv struct {
	db        *store.DB
	pool      *pool.Pool
	keys      *keyring.Keyring
	recorder  *recordings.Recorder
	url       string
	acmeToken string // a customer token of acme
	// per customer: a pool number, a call id, a recording id, a token id, a webhook endpoint
	number, call, recording, tokenID, webhook map[string]string
	// spareWebhook is a second endpoint of acme's, for the case that deletes one.
	spareWebhook string
}

func newTenancyEnv(t *testing.T) *tenancyEnv {
	t.Helper()
	db := storetest.Open(t)
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	recorder, err := recordings.New(recordings.Options{Dir: t.TempDir(), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recorder.Close() })
	ctx := context.Background()
	e := &tenancyEnv{db: db, pool: p, keys: keys, recorder: recorder, number: map[string]string{}, call: map[string]string{}, recording: map[string]string{}, tokenID: map[string]string{},
		webhook: map[string]string{}, spareWebhook: "acme-spare-webhook"}
	for i, cu := range []string{"acme", "bakery"} {
		if _, err := p.CreateCustomer(ctx, store.Customer{ID: cu, Name: cu, Status: store.StatusActive, SiteKey: cu + "-site-key",
			AllowedOrigins: []string{"https://" + cu + ".example"}}); err != nil {
			t.Fatal(err)
		}
		num := []string{"+31850000001", "+31850000011"}[i]
		if _, err := p.ImportNumbers(ctx, cu, []pool.NumberInput{{Number: num}}); err != nil {
			t.Fatal(err)
		}
		lease, err := p.Assign(ctx, cu, pool.Visit{LandingURL: "https://" + cu + ".example/" + probeLanding, UTMSource: "google"})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		// A webhook endpoint that wants every event: the call below writes its messages.
		e.webhook[cu] = cu + "-webhook"
		if err := db.Write(ctx, func(tx *store.Tx) error {
			for _, id := range []string{e.webhook[cu], e.spareWebhook} {
				if id == e.spareWebhook && cu != "acme" {
					continue
				}
				if err := tx.PutEndpoint(&store.Endpoint{ID: id, CustomerID: cu, URL: "https://crm." + cu + ".example/hook",
					EventTypes: store.EventTypes(), Secret: testWebhookSecret, Created: now}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		key, err := keys.Get(cu)
		if err != nil {
			t.Fatal(err)
		}
		c := store.Call{ID: pool.NewID(now), CustomerID: cu, Dialled: num, Caller: probeCaller, CallerPseudonym: key.Pseudonym(probeCaller), SessionID: lease.SessionID,
			LandingPage: "https://" + cu + ".example/" + probeLanding, Start: now, End: now.Add(time.Minute), Disposition: "answered"}
		info := recordOneSecond(t, recorder, cu, c.ID)
		rec := store.Recording{ID: pool.NewID(now), CustomerID: cu, CallID: c.ID, Path: info.Rel, Size: info.Size, SHA256: info.SHA256, Created: now}
		c.RecordingID = rec.ID
		if err := db.Write(ctx, func(tx *store.Tx) error {
			if err := tx.PutCall(&c); err != nil {
				return err
			}
			return tx.PutRecording(&rec)
		}); err != nil {
			t.Fatal(err)
		}
		e.number[cu], e.call[cu], e.recording[cu] = num, c.ID, rec.ID
	}
	a, err := New(Config{AdminToken: token}, p, WithCalls(db), WithUsers(db, "https://app.example", time.Hour), WithRecordings(db, recorder.Dir(), keys), WithPrivacy(privacy.New(db, keys, recorder.Dir(), p)), WithBackup(db),
		WithLogLevel(new(slog.LevelVar)), WithAccess(db), WithExport(recordings.NewExporter(db, recorder.Dir(), keys)), WithUsage(db),
		WithWebhooks(db, nil))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Admin())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	for _, cu := range []string{"acme", "bakery"} {
		r := do(t, "POST", e.url+"/v1/customers/"+cu+"/tokens", "application/json", `{"label":"crm"}`, "Authorization", "Bearer "+token)
		secret, _ := r.body["token"].(string)
		if r.status != 201 || !strings.HasPrefix(secret, tokenPrefix) || r.body["id"] == "" || r.body["hint"] != secret[len(secret)-4:] {
			t.Fatalf("create token: %d %v", r.status, r.body)
		}
		e.tokenID[cu] = r.body["id"].(string)
		if cu == "acme" {
			e.acmeToken = secret
		}
	}
	return e
}

// testWebhookSecret is a webhook endpoint's secret: whsec_ and the base64 of 32 bytes.
const testWebhookSecret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// recordOneSecond records one second of silence of a call, as the media layer would.
func recordOneSecond(t *testing.T, r *recordings.Recorder, customerID, callID string) recordings.Info {
	t.Helper()
	rec, err := r.Open(customerID, callID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec.Submit(rec.NewChunk(0))
	info, err := rec.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// raw does a request and returns the status, Content-Type and body.
func raw(t *testing.T, method, url, tok, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), string(b)
}

// TestTenancyEveryAdminRoute requests every admin route with acme's token, once for acme's own
// records and once for bakery's: own records answer 2xx, bakery's 404 (exactly like a record
// that does not exist), operator-only routes 403. A route without a case fails the test.
func TestTenancyEveryAdminRoute(t *testing.T) {
	e := newTenancyEnv(t)
	type req struct{ method, path, body string }
	type tcase struct {
		own, other req
		ownStatus  int
		// otherStatus is 404 or 403; for 404 with missing set, the body equals the answer
		// for a record that does not exist.
		otherStatus int
		missing     string
		// notIn: bakery's ids that must not appear in the answer to own.
		notIn bool
	}
	get := func(p string) req { return req{"GET", p, ""} }
	// Both customers have Google Ads settings (without credentials: the CSV only).
	const adsBody = `{"ads_customer_id":"1234567890","conversion_action":"customers/1234567890/conversionActions/1",` +
		`"conversion_name":"Calls","currency":"EUR","rule":{"min_talk_seconds":30,"value":"fixed","fixed_value":10}}`
	for _, cu := range []string{"acme", "bakery"} {
		if r := do(t, "PUT", e.url+"/v1/customers/"+cu+"/google-ads", "application/json", adsBody, "Authorization", "Bearer "+token); r.status != 201 {
			t.Fatalf("google ads settings of %s: %d %v", cu, r.status, r.body)
		}
	}
	operatorOnly := func(method, path, body string) tcase {
		return tcase{own: req{method, path, body}, other: req{method, strings.ReplaceAll(path, "acme", "bakery"), body}, ownStatus: 403, otherStatus: 403}
	}
	cases := map[string]tcase{
		"GET /healthz":                     {own: get("/healthz"), other: get("/healthz"), ownStatus: 200, otherStatus: 200},
		"GET /readyz":                      {own: get("/readyz"), other: get("/readyz"), ownStatus: 200, otherStatus: 200},
		"GET /v1/backup":                   operatorOnly("GET", "/v1/backup", ""),
		"GET /v1/log-level":                operatorOnly("GET", "/v1/log-level", ""),
		"PUT /v1/log-level":                operatorOnly("PUT", "/v1/log-level", `{"level":"debug"}`),
		"GET /v1/drain":                    operatorOnly("GET", "/v1/drain", ""),
		"PUT /v1/drain":                    operatorOnly("PUT", "/v1/drain", `{"draining":true}`),
		"GET /v1/customers":                {own: get("/v1/customers"), other: get("/v1/customers?id=bakery"), ownStatus: 200, otherStatus: 200, notIn: true},
		"POST /v1/customers":               operatorOnly("POST", "/v1/customers", `{"id":"new","site_key":"new-site-key"}`),
		"GET /v1/customers/{id}":           {own: get("/v1/customers/acme"), other: get("/v1/customers/bakery"), ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody"},
		"PATCH /v1/customers/{id}":         operatorOnly("PATCH", "/v1/customers/acme", `{"name":"x"}`),
		"GET /v1/customers/{id}/numbers":   {own: get("/v1/customers/acme/numbers"), other: get("/v1/customers/bakery/numbers"), ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/numbers", notIn: true},
		"POST /v1/customers/{id}/numbers":  operatorOnly("POST", "/v1/customers/acme/numbers", `[{"number":"+31850000099"}]`),
		"GET /v1/customers/{id}/channels":  {own: get("/v1/customers/acme/channels"), other: get("/v1/customers/bakery/channels"), ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/channels"},
		"POST /v1/customers/{id}/channels": operatorOnly("POST", "/v1/customers/acme/channels", `{"id":"x","name":"X"}`),
		"GET /v1/customers/{id}/pool":      {own: get("/v1/customers/acme/pool"), other: get("/v1/customers/bakery/pool"), ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/pool"},
		"GET /v1/customers/{id}/sessions":  {own: get("/v1/customers/acme/sessions"), other: get("/v1/customers/bakery/sessions"), ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/sessions", notIn: true},
		"GET /v1/customers/{id}/attribution": {own: get("/v1/customers/acme/attribution?number=" + url.QueryEscape(e.number["acme"])), other: get("/v1/customers/bakery/attribution?number=" + url.QueryEscape(e.number["bakery"])),
			ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/attribution?number=" + url.QueryEscape(e.number["bakery"]), notIn: true},
		"GET /v1/customers/{id}/tokens":                       operatorOnly("GET", "/v1/customers/acme/tokens", ""),
		"POST /v1/customers/{id}/tokens":                      operatorOnly("POST", "/v1/customers/acme/tokens", `{"label":"mine"}`),
		"DELETE /v1/customers/{id}/tokens/{token}":            operatorOnly("DELETE", "/v1/customers/acme/tokens/"+e.tokenID["acme"], ""),
		"GET /v1/customers/{id}/agent-tokens":                 operatorOnly("GET", "/v1/customers/acme/agent-tokens", ""),
		"POST /v1/customers/{id}/agent-tokens":                operatorOnly("POST", "/v1/customers/acme/agent-tokens", `{"label":"desk","groups":["sales"]}`),
		"DELETE /v1/customers/{id}/agent-tokens/{token}":      operatorOnly("DELETE", "/v1/customers/acme/agent-tokens/x", ""),
		"POST /v1/customers/{id}/numbers/{number}/quarantine": operatorOnly("POST", "/v1/customers/acme/numbers/"+e.number["acme"]+"/quarantine", `{"until":"2030-01-01T00:00:00Z"}`),
		"GET /v1/calls":                {own: get("/v1/calls"), other: get("/v1/calls?customer=bakery"), ownStatus: 200, otherStatus: 404, missing: "/v1/calls?customer=nobody", notIn: true},
		"GET /v1/calls/{id}":           {own: get("/v1/calls/" + e.call["acme"]), other: get("/v1/calls/" + e.call["bakery"]), ownStatus: 200, otherStatus: 404, missing: "/v1/calls/" + pool.NewID(time.Now())},
		"GET /v1/customers/{id}/users": {own: get("/v1/customers/acme/users"), other: get("/v1/customers/bakery/users"), ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/users"},
		"POST /v1/customers/{id}/invitations": {own: req{"POST", "/v1/customers/acme/invitations", `{"email":"new@acme.example","role":"member"}`},
			other: req{"POST", "/v1/customers/bakery/invitations", `{"email":"new@bakery.example","role":"member"}`}, ownStatus: 201, otherStatus: 404},
		"POST /v1/operators/invitations": operatorOnly("POST", "/v1/operators/invitations", `{"email":"ops@example.com"}`),
		"PATCH /v1/calls/{id}": {own: req{"PATCH", "/v1/calls/" + e.call["acme"], `{"tags":["x"]}`}, other: req{"PATCH", "/v1/calls/" + e.call["bakery"], `{"tags":["x"]}`},
			ownStatus: 200, otherStatus: 404},
		"GET /v1/recordings/{id}": {own: get("/v1/recordings/" + e.recording["acme"]), other: get("/v1/recordings/" + e.recording["bakery"]), ownStatus: 200, otherStatus: 404, missing: "/v1/recordings/" + pool.NewID(time.Now())},
		"GET /v1/audit":           {own: get("/v1/audit"), other: get("/v1/audit?customer=bakery"), ownStatus: 200, otherStatus: 404, missing: "/v1/audit?customer=nobody", notIn: true},
		// The archive is compressed: TestExportArchive checks what it holds.
		"GET /v1/export":                            {own: get("/v1/export"), other: get("/v1/export?customer=bakery"), ownStatus: 200, otherStatus: 404, missing: "/v1/export?customer=nobody"},
		"GET /v1/customers/{id}/usage":              {own: get("/v1/customers/acme/usage"), other: get("/v1/customers/bakery/usage"), ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/usage", notIn: true},
		"PATCH /v1/customers/{id}/numbers/{number}": operatorOnly("PATCH", "/v1/customers/acme/numbers/"+e.number["acme"], `{"porting":true}`),
		"GET /v1/numbers/held":                      operatorOnly("GET", "/v1/numbers/held", ""),
		"GET /v1/archives":                          operatorOnly("GET", "/v1/archives", ""),
		"GET /v1/archives/{name}":                   operatorOnly("GET", "/v1/archives/trackline-export-acme-20260101T000000Z.zip", ""),
		"DELETE /v1/archives/{name}":                operatorOnly("DELETE", "/v1/archives/trackline-export-acme-20260101T000000Z.zip", ""),
		"DELETE /v1/numbers/held/{number}":          operatorOnly("DELETE", "/v1/numbers/held/"+e.number["acme"], ""),
		"/":                                         {own: get("/v1/nothing"), other: get("/v1/customers/bakery/nothing"), ownStatus: 404, otherStatus: 404},
		"GET /v1/callers/{number}": {own: get("/v1/callers/" + probeCaller), other: get("/v1/callers/" + probeCaller + "?customer=bakery"),
			ownStatus: 200, otherStatus: 404, missing: "/v1/callers/" + probeCaller + "?customer=nobody", notIn: true},
		"GET /v1/callers/{number}/export": {own: get("/v1/callers/" + probeCaller + "/export"), other: get("/v1/callers/" + probeCaller + "/export?customer=bakery"),
			ownStatus: 200, otherStatus: 404, missing: "/v1/callers/" + probeCaller + "/export?customer=nobody"},
		"POST /v1/customers/{id}/erase": operatorOnly("POST", "/v1/customers/acme/erase", ""),
		"POST /v1/customers/{id}/webhooks": {own: req{"POST", "/v1/customers/acme/webhooks", `{"url":"https://crm.acme.example/new","event_types":["call.completed"]}`},
			other: req{"POST", "/v1/customers/bakery/webhooks", `{"url":"https://crm.acme.example/new","event_types":["call.completed"]}`}, ownStatus: 201, otherStatus: 404},
		"GET /v1/customers/{id}/webhooks": {own: get("/v1/customers/acme/webhooks"), other: get("/v1/customers/bakery/webhooks"),
			ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/webhooks", notIn: true},
		"GET /v1/customers/{id}/webhooks/{wid}": {own: get("/v1/customers/acme/webhooks/" + e.webhook["acme"]), other: get("/v1/customers/bakery/webhooks/" + e.webhook["bakery"]),
			ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/webhooks/" + e.webhook["bakery"], notIn: true},
		"PATCH /v1/customers/{id}/webhooks/{wid}": {own: req{"PATCH", "/v1/customers/acme/webhooks/" + e.webhook["acme"], `{"description":"CRM"}`},
			other: req{"PATCH", "/v1/customers/bakery/webhooks/" + e.webhook["bakery"], `{"description":"CRM"}`}, ownStatus: 200, otherStatus: 404},
		"DELETE /v1/customers/{id}/webhooks/{wid}": {own: req{"DELETE", "/v1/customers/acme/webhooks/" + e.spareWebhook, ""},
			other: req{"DELETE", "/v1/customers/bakery/webhooks/" + e.webhook["bakery"], ""}, ownStatus: 204, otherStatus: 404},
		"POST /v1/customers/{id}/webhooks/{wid}/rotate-secret": {own: req{"POST", "/v1/customers/acme/webhooks/" + e.webhook["acme"] + "/rotate-secret", ""},
			other: req{"POST", "/v1/customers/bakery/webhooks/" + e.webhook["bakery"] + "/rotate-secret", ""}, ownStatus: 200, otherStatus: 404},
		"GET /v1/customers/{id}/webhooks/{wid}/deliveries": {own: get("/v1/customers/acme/webhooks/" + e.webhook["acme"] + "/deliveries"),
			other: get("/v1/customers/bakery/webhooks/" + e.webhook["bakery"] + "/deliveries"), ownStatus: 200, otherStatus: 404,
			missing: "/v1/customers/nobody/webhooks/" + e.webhook["bakery"] + "/deliveries", notIn: true},
		"POST /v1/customers/{id}/webhooks/{wid}/replay": {own: req{"POST", "/v1/customers/acme/webhooks/" + e.webhook["acme"] + "/replay", `{"since":"2000-01-01T00:00:00Z"}`},
			other: req{"POST", "/v1/customers/bakery/webhooks/" + e.webhook["bakery"] + "/replay", `{"since":"2000-01-01T00:00:00Z"}`}, ownStatus: 202, otherStatus: 404},
		"GET /v1/customers/{id}/google-ads": {own: get("/v1/customers/acme/google-ads"), other: get("/v1/customers/bakery/google-ads"),
			ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/google-ads", notIn: true},
		"PUT /v1/customers/{id}/google-ads": {own: req{"PUT", "/v1/customers/acme/google-ads", adsBody},
			other: req{"PUT", "/v1/customers/bakery/google-ads", adsBody}, ownStatus: 200, otherStatus: 404},
		"GET /v1/customers/{id}/conversions": {own: get("/v1/customers/acme/conversions"), other: get("/v1/customers/bakery/conversions"),
			ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/conversions", notIn: true},
		"GET /v1/customers/{id}/conversions.csv": {own: get("/v1/customers/acme/conversions.csv"), other: get("/v1/customers/bakery/conversions.csv"),
			ownStatus: 200, otherStatus: 404, missing: "/v1/customers/nobody/conversions.csv", notIn: true},
		// The own case erases a caller without calls, so that the other cases keep their data.
		"DELETE /v1/callers/{number}": {own: req{"DELETE", "/v1/callers/+31600000000", ""}, other: req{"DELETE", "/v1/callers/" + probeCaller + "?customer=bakery", ""},
			ownStatus: 200, otherStatus: 404, missing: "/v1/callers/" + probeCaller + "?customer=nobody"},
	}
	a := &API{}
	bakeryIDs := []string{"bakery", e.call["bakery"], e.recording["bakery"], e.number["bakery"]}
	seen := map[string]bool{}
	for _, rt := range a.adminRoutes() {
		seen[rt.pattern] = true
		tc, ok := cases[rt.pattern]
		if !ok {
			t.Errorf("admin route %q (rule %s) has no tenancy case", rt.pattern, rt.rule)
			continue
		}
		t.Run(rt.pattern, func(t *testing.T) {
			status, ctype, body := raw(t, tc.own.method, e.url+tc.own.path, e.acmeToken, tc.own.body)
			if status != tc.ownStatus {
				t.Fatalf("own: %s %s = %d %s, want %d", tc.own.method, tc.own.path, status, body, tc.ownStatus)
			}
			if status >= 400 && ctype != "application/problem+json" {
				t.Fatalf("own: %d with Content-Type %q, want a problem", status, ctype)
			}
			if tc.notIn {
				for _, id := range bakeryIDs {
					if strings.Contains(body, id) {
						t.Fatalf("own: answer names bakery's %q: %s", id, body)
					}
				}
			}
			status, ctype, body = raw(t, tc.other.method, e.url+tc.other.path, e.acmeToken, tc.other.body)
			if status != tc.otherStatus {
				t.Fatalf("other: %s %s = %d %s, want %d", tc.other.method, tc.other.path, status, body, tc.otherStatus)
			}
			if status >= 400 && ctype != "application/problem+json" {
				t.Fatalf("other: %d with Content-Type %q, want a problem", status, ctype)
			}
			if status == 200 && tc.notIn {
				for _, id := range bakeryIDs {
					if strings.Contains(body, id) {
						t.Fatalf("other: answer names bakery's %q: %s", id, body)
					}
				}
			}
			if tc.missing != "" {
				ms, _, mbody := raw(t, "GET", e.url+tc.missing, e.acmeToken, "")
				if ms != status || mbody != body {
					t.Fatalf("bakery's record answers %d %s, a missing one %d %s: existence leaks", status, body, ms, mbody)
				}
			}
		})
	}
	for p := range cases {
		if !seen[p] {
			t.Errorf("case %q names no admin route", p)
		}
	}
}

func TestTokensLifecycle(t *testing.T) {
	e := newTenancyEnv(t)
	// Listing shows ids, labels and hints, never the secret.
	status, _, body := raw(t, "GET", e.url+"/v1/customers/acme/tokens", token, "")
	if status != 200 || !strings.Contains(body, e.tokenID["acme"]) || strings.Contains(body, e.acmeToken) || strings.Contains(body, e.tokenID["bakery"]) {
		t.Fatalf("list tokens: %d %s", status, body)
	}
	// An API token's answer has the members docs/api.md lists, and no agent groups.
	var list struct{ Tokens []map[string]any }
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Tokens) != 1 {
		t.Fatalf("list tokens: %s %v", body, err)
	}
	for _, m := range []string{"id", "customer_id", "label", "created", "hint"} {
		if _, ok := list.Tokens[0][m]; !ok || len(list.Tokens[0]) != 5 {
			t.Fatalf("listed token %v, want exactly id, customer_id, label, created, hint", list.Tokens[0])
		}
	}
	if status, _, body := raw(t, "POST", e.url+"/v1/customers/acme/tokens", token, `{"label":"x","groups":["sales"]}`); status != 400 ||
		!strings.Contains(body, `"field":"groups"`) {
		t.Fatalf("API token with groups = %d %s, want 400 naming groups", status, body)
	}
	// An API token is not revoked through the agent tokens' route.
	if status, _, _ := raw(t, "DELETE", e.url+"/v1/customers/acme/agent-tokens/"+e.tokenID["acme"], token, ""); status != 404 {
		t.Fatalf("revoke an API token as an agent token = %d, want 404", status)
	}
	tests := []struct {
		name, tok string
		want      int
	}{
		{"customer token", e.acmeToken, 200},
		{"operator token", token, 200},
		{"unknown customer token", tokenPrefix + strings.Repeat("A", 43), 401},
		{"token with a character changed", e.acmeToken[:len(e.acmeToken)-1] + "x", 401},
		{"no token", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "token with a character changed" && strings.HasSuffix(e.acmeToken, "x") {
				tt.tok = e.acmeToken[:len(e.acmeToken)-1] + "y"
			}
			if status, _, body := raw(t, "GET", e.url+"/v1/calls/"+e.call["acme"], tt.tok, ""); status != tt.want {
				t.Fatalf("= %d %s, want %d", status, body, tt.want)
			}
		})
	}
	// Revoking through another customer's path finds nothing; through its own it works.
	if status, _, _ := raw(t, "DELETE", e.url+"/v1/customers/bakery/tokens/"+e.tokenID["acme"], token, ""); status != 404 {
		t.Fatalf("revoke through bakery = %d, want 404", status)
	}
	if status, _, _ := raw(t, "DELETE", e.url+"/v1/customers/acme/tokens/"+e.tokenID["acme"], token, ""); status != 204 {
		t.Fatalf("revoke = %d, want 204", status)
	}
	if status, _, _ := raw(t, "GET", e.url+"/v1/calls", e.acmeToken, ""); status != 401 {
		t.Fatalf("revoked token = %d, want 401", status)
	}
	if status, _, _ := raw(t, "POST", e.url+"/v1/customers/nobody/tokens", token, `{"label":"x"}`); status != 404 {
		t.Fatalf("token for an unknown customer = %d, want 404", status)
	}
	if status, _, _ := raw(t, "POST", e.url+"/v1/customers/acme/tokens", token, `{"label":"a\nb"}`); status != 400 {
		t.Fatalf("label with a newline = %d, want 400", status)
	}
}

// TestAuditLog reads calls, sessions, attribution and recordings as acme and as the operator,
// then checks the audit log: the entries name the actor and ids, a customer sees its own
// entries only, and the stored bytes hold no caller number and no landing page.
func TestAuditLog(t *testing.T) {
	e := newTenancyEnv(t)
	for _, tok := range []string{e.acmeToken, token} {
		for _, p := range []string{"/v1/calls", "/v1/calls/" + e.call["acme"], "/v1/customers/acme/sessions",
			"/v1/customers/acme/attribution?number=" + url.QueryEscape(e.number["acme"]), "/v1/recordings/" + e.recording["acme"]} {
			if status, _, body := raw(t, "GET", e.url+p, tok, ""); status != 200 {
				t.Fatalf("GET %s = %d %s", p, status, body)
			}
		}
	}
	// The reads' entries are queued, not waited for: the next commit carries them.
	if err := e.db.Write(context.Background(), func(*store.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Entries    []store.AuditEntry `json:"entries"`
		NextCursor string             `json:"next_cursor"`
	}
	read := func(tok, query string) page {
		t.Helper()
		status, _, body := raw(t, "GET", e.url+"/v1/audit"+query, tok, "")
		if status != 200 {
			t.Fatalf("GET /v1/audit%s = %d %s", query, status, body)
		}
		var p page
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mine := read(e.acmeToken, "")
	var actions []string
	for _, en := range mine.Entries {
		if en.CustomerID != "acme" {
			t.Fatalf("acme's token sees an entry of %q: %+v", en.CustomerID, en)
		}
		if en.Actor == "token:"+e.tokenID["acme"] {
			actions = append(actions, en.Action)
		}
	}
	slices.Sort(actions)
	if want := []string{"attribution.read", "call.read", "calls.list", "recording.read", "sessions.list"}; !slices.Equal(actions, want) {
		t.Fatalf("acme token's actions %v, want %v", actions, want)
	}
	all := read(token, "")
	var operatorCalls, tokenCreates int
	for _, en := range all.Entries {
		switch {
		case en.Actor == "operator" && en.Action == "calls.list":
			operatorCalls++ // one per customer whose calls the page held
		case en.Action == "token.create":
			tokenCreates++
		}
	}
	if operatorCalls != 2 || tokenCreates != 2 {
		t.Fatalf("operator's calls.list entries %d (want 2), token.create %d (want 2): %+v", operatorCalls, tokenCreates, all.Entries)
	}
	if p := read(token, "?customer=bakery&limit=1"); len(p.Entries) != 1 || p.NextCursor == "" {
		t.Fatalf("bakery's first page: %+v", p)
	} else if p2 := read(token, "?customer=bakery&limit=1&cursor="+p.NextCursor); len(p2.Entries) != 1 || p2.Entries[0].ID >= p.Entries[0].ID {
		t.Fatalf("bakery's second page: %+v after %+v", p2, p)
	}
	for _, q := range []string{"?limit=0", "?cursor=zz", "?from=yesterday"} {
		if status, _, _ := raw(t, "GET", e.url+"/v1/audit"+q, token, ""); status != 400 {
			t.Fatalf("GET /v1/audit%s = %d, want 400", q, status)
		}
	}
	// What the log keeps: ids, never the data.
	stored := auditJSON(t, e.db)
	if stored.Len() == 0 {
		t.Fatal("audit log is empty")
	}
	for _, probe := range []string{probeCaller, strings.TrimPrefix(probeCaller, "+"), "0" + probeCaller[3:], probeCaller[3:], probeLanding, e.acmeToken} {
		if bytes.Contains(stored.Bytes(), []byte(probe)) {
			t.Errorf("the audit log holds %q", probe)
		}
	}
	if !bytes.Contains(stored.Bytes(), []byte(e.call["acme"])) {
		t.Error("the audit log does not name the call read")
	}
}

// auditJSON is every entry of the audit log as JSON: what the store keeps of them, since it
// keeps an entry's JSON and nothing else (store.TestAuditStoresTheEntryOnly).
func auditJSON(t *testing.T, db *store.DB) *bytes.Buffer {
	t.Helper()
	entries, _, err := db.AuditLog(store.AuditFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if len(entries) > 0 {
		if err := json.NewEncoder(&b).Encode(entries); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}
