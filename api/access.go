package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// Tenancy and access on the admin listener.
//
// Two kinds of bearer token are accepted: the operator's (Config.AdminToken), which may do
// everything, and customers' tokens (tokenPrefix, made through the API and kept as hashes by
// Access), which may only read their own customer's records and answer its callers'
// requests (list, export, erase: callers.go). Each admin route declares its rule in
// adminRoutes; a request of a customer token for another customer's record answers 404
// exactly like a record that does not exist, so that existence does not leak; an
// operator-only route answers it 403 whatever the ids.
//
// Every read, export, change or deletion of personal data writes an audit entry (ids only).
// A read's entry is queued with the store's group commit before the answer is written and
// is durable once the next commit lands, so reads add no fsync; a change's entry is committed
// before the answer (in the same transaction for tokens, the next commit for customers).

// tokenPrefix starts every customer token, so that a leaked one is recognisable (secret
// scanners) and cannot be mistaken for the operator token.
const tokenPrefix = "tlc_"

// Access keeps the tokens (customers' and agents') and the audit log; *store.DB is one.
type Access interface {
	// TokenByHash reads the token of a kind whose secret hashes (SHA-256) to hash;
	// store.ErrNotFound if there is none.
	TokenByHash(kind store.TokenKind, hash [32]byte) (store.Token, error)
	// Tokens lists a customer's tokens of a kind.
	Tokens(kind store.TokenKind, customerID string) ([]store.Token, error)
	// Write runs fn in a durable transaction.
	Write(ctx context.Context, fn func(*store.Tx) error) error
	// Audit queues an entry for the next commit without waiting for it.
	Audit(ctx context.Context, e store.AuditEntry) error
	// AuditLog reads the entries f selects, newest first, and the next page's cursor.
	AuditLog(f store.AuditFilter) ([]store.AuditEntry, string, error)
}

// WithAccess enables customer tokens and the audit log. Without it only the operator token is
// accepted, nothing is audited, and the token and audit endpoints answer 503.
func WithAccess(acc Access) Option { return func(a *API) { a.access = acc } }

// rule is who may use an admin route.
type rule uint8

// Route rules. The zero value is unknown: Admin refuses a route without a rule.
const (
	ruleUnknown  rule = iota
	rulePublic        // no token (health checks)
	ruleOperator      // the operator token only; a customer token gets 403
	ruleCustomer      // {id} names a customer: a customer token may read its own only (404 else)
	ruleScoped        // the handler limits a customer token to its own records (404 else)
)

var ruleNames = [...]string{"unknown", "public", "operator", "customer", "scoped"}

func (r rule) String() string {
	if int(r) < len(ruleNames) {
		return ruleNames[r]
	}
	return "rule(" + strconv.Itoa(int(r)) + ")"
}

// adminRoute is one route of the admin listener with its tenancy rule.
type adminRoute struct {
	pattern string
	rule    rule
	h       handlerFunc
}

// adminRoutes is every route of the admin listener. A new route needs a rule here and a case
// in TestTenancyEveryAdminRoute.
func (a *API) adminRoutes() []adminRoute {
	apiTokens, agentTokens := apiTokens(), agentTokens()
	return []adminRoute{
		{"GET /healthz", rulePublic, healthz},
		{"GET /readyz", rulePublic, a.readyz(true)},
		{"GET /v1/backup", ruleOperator, a.getBackup},
		{"GET /v1/log-level", ruleOperator, a.getLogLevel},
		{"PUT /v1/log-level", ruleOperator, a.putLogLevel},
		{"GET /v1/drain", ruleOperator, a.getDrain},
		{"PUT /v1/drain", ruleOperator, a.putDrain},
		{"GET /v1/customers", ruleScoped, a.listCustomers},
		{"POST /v1/customers", ruleOperator, a.createCustomer},
		{"GET /v1/customers/{id}", ruleCustomer, a.getCustomer},
		{"GET /v1/customers/{id}/users", ruleCustomer, a.listUsers},
		{"POST /v1/customers/{id}/invitations", ruleCustomer, a.inviteCustomerUser},
		{"POST /v1/operators/invitations", ruleOperator, a.inviteOperator},
		{"PATCH /v1/customers/{id}", ruleOperator, a.patchCustomer},
		{"GET /v1/customers/{id}/numbers", ruleCustomer, a.listNumbers},
		{"POST /v1/customers/{id}/numbers", ruleOperator, a.importNumbers},
		{"POST /v1/customers/{id}/numbers/{number}/quarantine", ruleOperator, a.quarantineNumber},
		{"GET /v1/customers/{id}/channels", ruleCustomer, a.listChannels},
		{"POST /v1/customers/{id}/channels", ruleOperator, a.putChannel},
		{"GET /v1/customers/{id}/pool", ruleCustomer, a.poolStatus},
		{"GET /v1/customers/{id}/sessions", ruleCustomer, a.listSessions},
		{"GET /v1/customers/{id}/attribution", ruleCustomer, a.attribution},
		{"GET /v1/customers/{id}/usage", ruleCustomer, a.usageReport},
		{"PATCH /v1/customers/{id}/numbers/{number}", ruleOperator, a.patchNumber},
		{"GET /v1/numbers/held", ruleOperator, a.listHeld},
		{"DELETE /v1/numbers/held/{number}", ruleOperator, a.releaseHeld},
		{"GET /v1/export", ruleScoped, a.export},
		{"GET /v1/archives", ruleOperator, a.listArchives},
		{"GET /v1/archives/{name}", ruleOperator, a.downloadArchive},
		{"DELETE /v1/archives/{name}", ruleOperator, a.deleteArchive},
		{"GET /v1/customers/{id}/tokens", ruleOperator, a.listTokens(apiTokens)},
		{"POST /v1/customers/{id}/tokens", ruleOperator, a.createToken(apiTokens)},
		{"DELETE /v1/customers/{id}/tokens/{token}", ruleOperator, a.revokeToken(apiTokens)},
		{"GET /v1/customers/{id}/agent-tokens", ruleOperator, a.listTokens(agentTokens)},
		{"POST /v1/customers/{id}/agent-tokens", ruleOperator, a.createToken(agentTokens)},
		{"DELETE /v1/customers/{id}/agent-tokens/{token}", ruleOperator, a.revokeToken(agentTokens)},
		{"GET /v1/calls", ruleScoped, a.listCalls},
		{"GET /v1/calls/{id}", ruleScoped, a.getCall},
		{"PATCH /v1/calls/{id}", ruleScoped, a.patchCall},
		{"GET /v1/recordings/{id}", ruleScoped, a.getRecording},
		{"GET /v1/audit", ruleScoped, a.listAudit},
		{"GET /v1/callers/{number}", ruleScoped, a.getCaller},
		{"GET /v1/callers/{number}/export", ruleScoped, a.exportCaller},
		{"DELETE /v1/callers/{number}", ruleScoped, a.eraseCaller},
		{"POST /v1/customers/{id}/erase", ruleOperator, a.eraseCustomer},
		{"POST /v1/customers/{id}/webhooks", ruleCustomer, a.createWebhook},
		{"GET /v1/customers/{id}/webhooks", ruleCustomer, a.listWebhooks},
		{"GET /v1/customers/{id}/webhooks/{wid}", ruleCustomer, a.getWebhook},
		{"PATCH /v1/customers/{id}/webhooks/{wid}", ruleCustomer, a.patchWebhook},
		{"DELETE /v1/customers/{id}/webhooks/{wid}", ruleCustomer, a.deleteWebhook},
		{"POST /v1/customers/{id}/webhooks/{wid}/rotate-secret", ruleCustomer, a.rotateWebhookSecret},
		{"GET /v1/customers/{id}/webhooks/{wid}/deliveries", ruleCustomer, a.listWebhookDeliveries},
		{"POST /v1/customers/{id}/webhooks/{wid}/replay", ruleCustomer, a.replayWebhook},
		{"GET /v1/customers/{id}/google-ads", ruleCustomer, a.getGoogleAds},
		{"PUT /v1/customers/{id}/google-ads", ruleCustomer, a.putGoogleAds},
		{"GET /v1/customers/{id}/conversions.csv", ruleCustomer, a.conversionsCSV},
		{"GET /v1/customers/{id}/conversions", ruleCustomer, a.listConversions},
		{"/", rulePublic, notFound},
	}
}

// principal is who a request acts for.
type principal struct {
	customer string // "" for the operator
	token    string // the customer token's id
}

// actor names p in the audit log: never the token itself.
func (p principal) actor() string {
	if p.customer == "" {
		return "operator"
	}
	return "token:" + p.token
}

// sees tells whether p may see the records of customerID.
func (p principal) sees(customerID string) bool { return p.customer == "" || p.customer == customerID }

type principalKey struct{}

// who is the principal of an authenticated request (the operator if none was set).
func who(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// guard authenticates a request and applies the route's rule before h.
func (a *API) guard(rt adminRoute) handlerFunc {
	switch rt.rule {
	case rulePublic:
		return rt.h
	case ruleOperator, ruleCustomer, ruleScoped:
	default:
		panic("api: admin route " + rt.pattern + " has no tenancy rule")
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := a.authenticate(r)
		if errors.Is(err, errUnauthorized) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="trackline"`)
		}
		if err != nil {
			return err
		}
		if p.customer != "" {
			switch rt.rule {
			case ruleOperator:
				return errStatus(http.StatusForbidden, "", "this endpoint needs the operator token")
			case ruleCustomer:
				if r.PathValue("id") != p.customer {
					return pool.ErrUnknownCustomer
				}
			}
		}
		return rt.h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// authenticate finds the principal of r's bearer token; 401 for none or a wrong one. Without
// an operator token configured (loopback only), a request without a token is the operator's.
func (a *API) authenticate(r *http.Request) (principal, error) {
	hdr := r.Header.Get("Authorization")
	if a.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(hdr), []byte("Bearer "+a.cfg.AdminToken)) == 1 {
		return principal{}, nil
	}
	if tok, ok := strings.CutPrefix(hdr, "Bearer "); ok && strings.HasPrefix(tok, tokenPrefix) && a.access != nil {
		// A lookup by hash: the secret is never compared byte by byte.
		t, err := a.access.TokenByHash(store.TokenAPI, sha256.Sum256([]byte(tok)))
		if err == nil {
			return principal{customer: t.CustomerID, token: t.ID}, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return principal{}, err
		}
	} else if a.cfg.AdminToken == "" && hdr == "" {
		return principal{}, nil
	}
	return principal{}, errUnauthorized
}

var errUnauthorized = &httpError{status: http.StatusUnauthorized, detail: "missing or wrong bearer token"}

// audit queues an entry for a read of personal data; it shares the next commit. It fails
// (and the read with it) only when the entry cannot be queued.
func (a *API) audit(r *http.Request, action, customerID string, ids ...string) error {
	if a.access == nil {
		return nil
	}
	return a.access.Audit(r.Context(), store.AuditEntry{Time: a.now(), Actor: who(r).actor(), Action: action, CustomerID: customerID, IDs: ids})
}

// auditWrite commits an entry for a change before the change is answered.
func (a *API) auditWrite(r *http.Request, action, customerID string, ids ...string) error {
	if a.access == nil {
		return nil
	}
	e := store.AuditEntry{Time: a.now(), Actor: who(r).actor(), Action: action, CustomerID: customerID, IDs: ids}
	return a.access.Write(r.Context(), func(tx *store.Tx) error { return tx.AppendAudit(&e) })
}

func (a *API) accessAvailable() error {
	if a.access == nil {
		return errStatus(http.StatusServiceUnavailable, "", "tokens and the audit log are not available")
	}
	return nil
}

// --- tokens

// tokenKind is what the admin API's routes of one kind of token differ in: the kind's
// routes, answers, audit actions and checks. The handlers below serve every kind.
type tokenKind struct {
	kind store.TokenKind
	// prefix starts every secret of the kind, so that a leaked one is recognisable (secret
	// scanners) and one kind cannot be mistaken for another.
	prefix string
	path   string // the routes' segment: /v1/customers/{id}/<path>
	list   string // the member of the list's answer
	action string // audit actions: <action>.create, <action>.revoke
	noun   string // names the kind in problems
	groups bool   // a new token's body has groups besides its label
	// check validates a new token's label and groups.
	check func(label string, groups []string) error
	// revoked, if set, runs once a token of the kind is revoked.
	revoked func(a *API, customerID, tokenID string)
}

// apiTokens are the customers' API tokens: the admin API, for the customer's own records.
func apiTokens() *tokenKind {
	return &tokenKind{
		kind: store.TokenAPI, prefix: tokenPrefix, path: "tokens", list: "tokens", action: "token", noun: "token",
		check: func(label string, _ []string) error {
			if !validLabel(label) {
				return errStatus(http.StatusBadRequest, "label", "label: at most 100 printable characters")
			}
			return nil
		},
	}
}

func validLabel(s string) bool {
	if len(s) > 100 {
		return false
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}

// decode reads the body of a request for a new token of kind k: its label, and its groups
// if the kind has them (for one that has none, groups is an unknown field).
func (k *tokenKind) decode(w http.ResponseWriter, r *http.Request) (label string, groups []string, err error) {
	if !k.groups {
		var in struct {
			Label string `json:"label"`
		}
		err := decodeBody(w, r, maxBody, &in, false)
		return in.Label, nil, err
	}
	var in struct {
		Label  string   `json:"label"`
		Groups []string `json:"groups"`
	}
	err = decodeBody(w, r, maxBody, &in, false)
	return in.Label, in.Groups, err
}

func (a *API) createToken(k *tokenKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := a.accessAvailable(); err != nil {
			return err
		}
		label, groups, err := k.decode(w, r)
		if err != nil {
			return err
		}
		if err := k.check(label, groups); err != nil {
			return err
		}
		id := r.PathValue("id")
		if _, err := a.pool.Customer(id); err != nil {
			return err
		}
		// The prefix and 32 random bytes in base64url.
		var b [32]byte
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		secret := k.prefix + base64.RawURLEncoding.EncodeToString(b[:])
		now := a.now()
		tok := store.Token{Kind: k.kind, ID: pool.NewID(now), CustomerID: id, Label: label, Groups: groups, Created: now.UTC(),
			Hint: secret[len(secret)-4:]}
		e := store.AuditEntry{Time: now, Actor: who(r).actor(), Action: k.action + ".create", CustomerID: id, IDs: []string{tok.ID}}
		hash := sha256.Sum256([]byte(secret))
		err = a.access.Write(r.Context(), func(tx *store.Tx) error {
			if err := tx.PutToken(hash, &tok); err != nil {
				return err
			}
			return tx.AppendAudit(&e)
		})
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/v1/customers/"+id+"/"+k.path+"/"+tok.ID)
		writeJSON(w, http.StatusCreated, struct {
			store.Token
			Secret string `json:"token"`
		}{tok, secret})
		return nil
	}
}

func (a *API) listTokens(k *tokenKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := a.accessAvailable(); err != nil {
			return err
		}
		id := r.PathValue("id")
		if _, err := a.pool.Customer(id); err != nil {
			return err
		}
		toks, err := a.access.Tokens(k.kind, id)
		if err != nil {
			return err
		}
		if toks == nil {
			toks = []store.Token{}
		}
		writeJSON(w, http.StatusOK, map[string]any{k.list: toks})
		return nil
	}
}

func (a *API) revokeToken(k *tokenKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := a.accessAvailable(); err != nil {
			return err
		}
		id, tid := r.PathValue("id"), r.PathValue("token")
		e := store.AuditEntry{Time: a.now(), Actor: who(r).actor(), Action: k.action + ".revoke", CustomerID: id, IDs: []string{tid}}
		err := a.access.Write(r.Context(), func(tx *store.Tx) error {
			if err := tx.DeleteToken(k.kind, id, tid); err != nil {
				return err
			}
			return tx.AppendAudit(&e)
		})
		if errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusNotFound, "", "unknown "+k.noun)
		}
		if err != nil {
			return err
		}
		if k.revoked != nil {
			k.revoked(a, id, tid)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// --- audit log

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	if err := a.accessAvailable(); err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.AuditFilter{Limit: 100}
	bad := func(field, reason string) error { return errStatus(http.StatusBadRequest, field, field+": "+reason) }
	p := who(r)
	switch v := q.Get("customer"); {
	case len(v) > 64:
		return bad("customer", "too long")
	case p.customer != "" && v != "" && v != p.customer:
		return pool.ErrUnknownCustomer
	case p.customer != "":
		f.CustomerID = p.customer
	default:
		f.CustomerID = v
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(t.name); v != "" {
			tm, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return bad(t.name, "must be an RFC 3339 time")
			}
			*t.dst = tm
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return bad("limit", "must be 1-1000")
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		if b, err := hex.DecodeString(v); err != nil || len(b) != 16 {
			return bad("cursor", "malformed")
		}
		f.Before = v
	}
	entries, next, err := a.access.AuditLog(f)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, struct {
		Entries    []store.AuditEntry `json:"entries"`
		NextCursor string             `json:"next_cursor,omitempty"`
	}{entries, next})
	return nil
}
