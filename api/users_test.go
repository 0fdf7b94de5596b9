package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestInvitations: a customer token invites its own users, the operator invites operators;
// the link is on the web app, the answer never shows a password hash, and bad input changes
// nothing.
func TestInvitations(t *testing.T) {
	e := newTenancyEnv(t)
	status, _, body := raw(t, "POST", e.url+"/v1/customers/acme/invitations", e.acmeToken, `{"email":" Anna@Acme.example ","role":"admin"}`)
	var got struct {
		User struct {
			Email, Role, CustomerID string
			Active                  bool
		} `json:"user"`
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(body), &got); status != http.StatusCreated || err != nil {
		t.Fatalf("invite: %d %s", status, body)
	}
	if got.User.Email != "anna@acme.example" || got.User.Role != "admin" || got.User.Active || !strings.HasPrefix(got.URL, "https://app.example/invite/") {
		t.Fatalf("invitation %+v", got)
	}
	for name, c := range map[string]struct {
		body   string
		status int
	}{
		"bad email":     {`{"email":"anna","role":"admin"}`, 400},
		"operator role": {`{"email":"b@acme.example","role":"operator"}`, 400},
		"taken email":   {`{"email":"anna@acme.example","role":"member"}`, 409},
		"unknown field": {`{"email":"c@acme.example","role":"member","password":"x"}`, 400},
	} {
		if status, _, body := raw(t, "POST", e.url+"/v1/customers/acme/invitations", e.acmeToken, c.body); status != c.status {
			t.Errorf("%s: %d %s, want %d", name, status, body, c.status)
		}
	}
	status, _, body = raw(t, "GET", e.url+"/v1/customers/acme/users", e.acmeToken, "")
	if status != 200 || strings.Contains(body, "password") || strings.Count(body, `"email"`) != 1 {
		t.Fatalf("users: %d %s", status, body)
	}
	if status, _, body := raw(t, "POST", e.url+"/v1/operators/invitations", token, `{"email":"ops@example.com"}`); status != 201 || !strings.Contains(body, `"role":"operator"`) {
		t.Fatalf("operator invitation: %d %s", status, body)
	}
}
