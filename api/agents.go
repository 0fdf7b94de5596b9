package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// Browser agents: the agent page and its signalling on the public listener, and the agent
// tokens the operator hands out on the admin listener.

// Agents serves the agent page and its signalling and logs out revoked tokens (package
// agents).
type Agents interface {
	ServePage(w http.ResponseWriter, r *http.Request)
	ServeSignalling(w http.ResponseWriter, r *http.Request)
	Disconnect(customerID, tokenID string)
}

// WithAgents serves GET /agent and GET /v1/agent/ws through ag. Without it both are 404.
func WithAgents(ag Agents) Option { return func(a *API) { a.agents = ag } }

// agentTokenPrefix starts every agent token (agents.TokenPrefix).
const agentTokenPrefix = "tla_"

// maxAgentGroups bounds the groups of one agent token.
const maxAgentGroups = 16

func (a *API) servePage(w http.ResponseWriter, r *http.Request) error {
	a.agents.ServePage(w, r)
	return nil
}

func (a *API) createAgentToken(w http.ResponseWriter, r *http.Request) error {
	if err := a.accessAvailable(); err != nil {
		return err
	}
	var in struct {
		Label  string   `json:"label"`
		Groups []string `json:"groups"`
	}
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	if !validLabel(in.Label) || in.Label == "" {
		return errStatus(http.StatusBadRequest, "label", "label: 1-100 printable characters, shown on the agent page")
	}
	if len(in.Groups) == 0 || len(in.Groups) > maxAgentGroups {
		return errStatus(http.StatusBadRequest, "groups", "groups: 1-16 agent groups, as in business lines webrtc:<group>")
	}
	for i, g := range in.Groups {
		if !pool.ValidAgentGroup(g) || slices.Contains(in.Groups[:i], g) {
			return errStatus(http.StatusBadRequest, "groups", "groups: each 1-32 of a-z, 0-9, '_' and '-', none twice")
		}
	}
	id := r.PathValue("id")
	if _, err := a.pool.Customer(id); err != nil {
		return err
	}
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	secret := agentTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := a.now()
	tok := store.AgentToken{ID: pool.NewID(now), CustomerID: id, Label: in.Label, Groups: in.Groups, Created: now.UTC(),
		Hint: secret[len(secret)-4:]}
	e := store.AuditEntry{Time: now, Actor: who(r).actor(), Action: "agent_token.create", CustomerID: id, IDs: []string{tok.ID}}
	hash := sha256.Sum256([]byte(secret))
	err := a.access.Write(r.Context(), func(tx *store.Tx) error {
		if err := tx.PutAgentToken(hash, &tok); err != nil {
			return err
		}
		return tx.AppendAudit(&e)
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/customers/"+id+"/agent-tokens/"+tok.ID)
	writeJSON(w, http.StatusCreated, struct {
		store.AgentToken
		Secret string `json:"token"`
	}{tok, secret})
	return nil
}

func (a *API) listAgentTokens(w http.ResponseWriter, r *http.Request) error {
	if err := a.accessAvailable(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := a.pool.Customer(id); err != nil {
		return err
	}
	toks, err := a.access.AgentTokens(id)
	if err != nil {
		return err
	}
	if toks == nil {
		toks = []store.AgentToken{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agent_tokens": toks})
	return nil
}

func (a *API) revokeAgentToken(w http.ResponseWriter, r *http.Request) error {
	if err := a.accessAvailable(); err != nil {
		return err
	}
	id, tid := r.PathValue("id"), r.PathValue("token")
	e := store.AuditEntry{Time: a.now(), Actor: who(r).actor(), Action: "agent_token.revoke", CustomerID: id, IDs: []string{tid}}
	err := a.access.Write(r.Context(), func(tx *store.Tx) error {
		if err := tx.DeleteAgentToken(id, tid); err != nil {
			return err
		}
		return tx.AppendAudit(&e)
	})
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusNotFound, "", "unknown agent token")
	}
	if err != nil {
		return err
	}
	if a.agents != nil {
		a.agents.Disconnect(id, tid) // its pages are logged out at once
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
