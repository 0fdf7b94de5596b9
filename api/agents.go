package api

import (
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

// agentTokens are the browser agents' tokens: an agent page's login, never the admin API.
// Revoking one logs its open pages out at once.
func agentTokens() *tokenKind {
	return &tokenKind{
		kind: store.TokenAgent, prefix: agentTokenPrefix, path: "agent-tokens", list: "agent_tokens", action: "agent_token",
		noun: "agent token", groups: true, check: checkAgentToken,
		revoked: func(a *API, customerID, tokenID string) {
			if a.agents != nil {
				a.agents.Disconnect(customerID, tokenID)
			}
		},
	}
}

// checkAgentToken validates a new agent token's label and groups.
func checkAgentToken(label string, groups []string) error {
	if !validLabel(label) || label == "" {
		return errStatus(http.StatusBadRequest, "label", "label: 1-100 printable characters, shown on the agent page")
	}
	if len(groups) == 0 || len(groups) > maxAgentGroups {
		return errStatus(http.StatusBadRequest, "groups", "groups: 1-16 agent groups, as in business lines webrtc:<group>")
	}
	for i, g := range groups {
		if !pool.ValidAgentGroup(g) || slices.Contains(groups[:i], g) {
			return errStatus(http.StatusBadRequest, "groups", "groups: each 1-32 of a-z, 0-9, '_' and '-', none twice")
		}
	}
	return nil
}

func (a *API) servePage(w http.ResponseWriter, r *http.Request) error {
	a.agents.ServePage(w, r)
	return nil
}
