package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/trackline/trackline/agents"
	"github.com/trackline/trackline/pool"
)

// The operator makes an agent token; the agent page logs in with it on the public listener;
// the token opens nothing on the admin listener; revoking it logs the page out at once.
func TestAgentTokens(t *testing.T) {
	e := newTenancyEnv(t)
	hub, err := agents.New(agents.Config{}, e.db)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pool.New(e.db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{AdminToken: token}, p, WithAccess(e.db), WithAgents(hub), WithLogLevel(new(slog.LevelVar)))
	if err != nil {
		t.Fatal(err)
	}
	admin, public := httptest.NewServer(a.Admin()), httptest.NewServer(a.Public())
	t.Cleanup(func() { public.CloseClientConnections(); hub.Close(); admin.Close(); public.Close() })
	op := []string{"Authorization", "Bearer " + token}

	for _, tc := range []struct{ name, body, field string }{
		{"no groups", `{"label":"desk"}`, "groups"},
		{"bad group", `{"label":"desk","groups":["Sales Team"]}`, "groups"},
		{"group twice", `{"label":"desk","groups":["sales","sales"]}`, "groups"},
		{"no label", `{"groups":["sales"]}`, "label"},
		{"unknown field", `{"label":"desk","groups":["sales"],"admin":true}`, "admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", admin.URL+"/v1/customers/acme/agent-tokens", "application/json", tc.body, op...)
			if r.status != 400 || r.body["field"] != tc.field {
				t.Fatalf("%d %v, want 400 naming %s", r.status, r.body, tc.field)
			}
		})
	}
	r := do(t, "POST", admin.URL+"/v1/customers/acme/agent-tokens", "application/json", `{"label":"Anna","groups":["sales"]}`, op...)
	secret, _ := r.body["token"].(string)
	if r.status != 201 || !strings.HasPrefix(secret, agents.TokenPrefix) || r.body["hint"] != secret[len(secret)-4:] {
		t.Fatalf("create agent token: %d %v", r.status, r.body)
	}
	id := r.body["id"].(string)
	r = do(t, "GET", admin.URL+"/v1/customers/acme/agent-tokens", "", "", op...)
	if list, _ := r.body["agent_tokens"].([]any); r.status != 200 || len(list) != 1 || strings.Contains(mustJSON(r.body), secret) {
		t.Fatalf("list agent tokens: %d %v", r.status, r.body)
	}
	if r := do(t, "GET", admin.URL+"/v1/calls", "", "", "Authorization", "Bearer "+secret); r.status != 401 {
		t.Fatalf("an agent token on the admin API: %d, want 401", r.status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(public.URL, "http")+"/v1/agent/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	b, _ := json.Marshal(map[string]string{"type": "login", "token": secret})
	conn.Write(ctx, websocket.MessageText, b)
	_, msg, err := conn.Read(ctx)
	if err != nil || !strings.Contains(string(msg), `"type":"ready"`) || !strings.Contains(string(msg), `"agent":"Anna"`) {
		t.Fatalf("login: %s %v", msg, err)
	}
	if r := do(t, "DELETE", admin.URL+"/v1/customers/bakery/agent-tokens/"+id, "", "", op...); r.status != 404 {
		t.Fatalf("revoke through another customer: %d", r.status)
	}
	if r := do(t, "DELETE", admin.URL+"/v1/customers/acme/agent-tokens/"+id, "", "", op...); r.status != 204 {
		t.Fatalf("revoke: %d %v", r.status, r.body)
	}
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("after revoke the page reads %v, want close 1008", err)
	}
	if r := do(t, "GET", public.URL+"/agent", "", ""); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /agent: %d %v", r.status, r.header)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
