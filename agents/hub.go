package agents

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/internal/textutil"
	"github.com/trackline/trackline/store"
)

// TokenPrefix starts every agent token, so that one is recognisable and never mistaken for
// an API token.
const TokenPrefix = "tla_"

// Tokens finds tokens by kind and the SHA-256 of their secret; *store.DB is one. The hub
// asks only for store.TokenAgent.
type Tokens interface {
	TokenByHash(k store.TokenKind, hash [32]byte) (store.Token, error)
}

// Hub is the registry of online agents and their calls. It implements callseam.Agents and serves
// the agent page and its signalling.
type Hub struct {
	cfg    Config
	tokens Tokens
	log    *slog.Logger
	reg    prometheus.Registerer
	m      *metrics
	apis   map[string]*webrtc.API // by MIME type of the law
	now    func() time.Time

	base   context.Context
	cancel context.CancelFunc
	conns  sync.WaitGroup // one per signalling connection

	mu     sync.Mutex
	agents map[string]map[*agent]struct{} // by customer
	calls  map[string]*call               // ringing or connected, by call id
	closed bool
}

var _ callseam.Agents = (*Hub)(nil)

// Option configures New.
type Option func(*Hub)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(h *Hub) { h.log = l } }

// WithRegisterer registers the hub's metrics on r.
func WithRegisterer(r prometheus.Registerer) Option { return func(h *Hub) { h.reg = r } }

// New builds a hub that checks agent tokens against tokens.
func New(cfg Config, tokens Tokens, opts ...Option) (*Hub, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, tokens: tokens, log: slog.New(slog.DiscardHandler), now: time.Now,
		agents: map[string]map[*agent]struct{}{}, calls: map[string]*call{}}
	for _, o := range opts {
		o(h)
	}
	m, err := newMetrics(h.reg)
	if err != nil {
		return nil, err
	}
	h.m = m
	if h.apis, err = newAPIs(&h.cfg, h.log); err != nil {
		return nil, err
	}
	h.base, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Close disconnects every agent page and waits for their connections to end. Calls still up
// end with them. It is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	var all []*agent
	for _, set := range h.agents {
		for a := range set {
			all = append(all, a)
		}
	}
	h.mu.Unlock()
	h.cancel()
	for _, a := range all {
		a.conn.CloseNow()
	}
	h.conns.Wait()
	return nil
}

// Online counts a customer's logged-in agent pages.
func (h *Hub) Online(customerID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.agents[customerID])
}

// Disconnect logs out every page of a revoked agent token; their calls end.
func (h *Hub) Disconnect(customerID, tokenID string) {
	h.mu.Lock()
	var gone []*agent
	for a := range h.agents[customerID] {
		if a.tokenID == tokenID {
			gone = append(gone, a)
		}
	}
	h.mu.Unlock()
	for _, a := range gone {
		// The close handshake waits for the page; the revoking request does not.
		go a.close(websocket.StatusPolicyViolation, "agent token revoked")
	}
}

// agent is one logged-in agent page: one WebSocket.
type agent struct {
	h        *Hub
	conn     *websocket.Conn
	customer string
	tokenID  string
	label    string
	groups   []string

	out       chan []byte // messages for the writer
	done      chan struct{}
	closeOnce sync.Once

	// Guarded by h.mu.
	ringing map[string]*call // calls ringing on this page
	busy    *call            // the call this agent has accepted
}

// outQueue bounds the messages waiting for a page; a page that lets it fill is disconnected.
const outQueue = 64

// send queues a message for the page without blocking; a page that does not keep up is
// disconnected.
func (a *agent) send(m outMsg) {
	b, err := json.Marshal(m)
	if err != nil {
		return // outMsg always marshals
	}
	select {
	case a.out <- b:
	case <-a.done:
	default:
		a.h.m.errors.WithLabelValues(errSlowAgent).Inc()
		go a.close(websocket.StatusPolicyViolation, errSlowAgent)
	}
}

// refuse tells the page that a message was refused, and counts it.
func (a *agent) refuse(e *protoError) {
	a.h.m.errors.WithLabelValues(e.code).Inc()
	a.send(outMsg{Type: msgError, Error: e.code, Detail: e.detail, CallID: e.callID})
}

// close ends the connection with a close frame; the reader then unregisters the agent.
func (a *agent) close(code websocket.StatusCode, reason string) {
	a.closeOnce.Do(func() {
		close(a.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		go func() { <-ctx.Done(); a.conn.CloseNow() }()
		a.conn.Close(code, reason)
	})
}

// ServeSignalling is the handler of GET /v1/agent/ws: a WebSocket for one agent page. The
// page logs in first; then it gets rings and answers them. Only same-origin pages may open it.
func (h *Hub) ServeSignalling(w http.ResponseWriter, r *http.Request) {
	// The API server's read and write timeouts are for requests; a signalling connection
	// lives as long as the page.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the request (400, 403 for a foreign origin, 426)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		conn.Close(websocket.StatusGoingAway, "shutting down")
		return
	}
	h.conns.Add(1)
	h.mu.Unlock()
	defer h.conns.Done()
	conn.SetReadLimit(h.cfg.MaxMessage)

	a, err := h.login(conn)
	if err != nil {
		return
	}
	defer h.logout(a)
	writerDone := make(chan struct{})
	go a.writer(writerDone)
	defer func() { <-writerDone }()
	defer a.close(websocket.StatusNormalClosure, "")
	a.readLoop()
}

// login reads the page's first message, which must be a login with a valid agent token, and
// registers the agent.
func (h *Hub) login(conn *websocket.Conn) (*agent, error) {
	fail := func(code websocket.StatusCode, e *protoError) error {
		h.m.errors.WithLabelValues(e.code).Inc()
		b, _ := json.Marshal(outMsg{Type: msgError, Error: e.code, Detail: e.detail})
		wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer wcancel()
		conn.Write(wctx, websocket.MessageText, b)
		conn.Close(code, e.code)
		return e
	}
	// A read whose context ends closes the connection at once; the timer says why first.
	timedOut := time.AfterFunc(h.cfg.LoginTimeout, func() {
		fail(websocket.StatusPolicyViolation, refuse(errLoginTimeout, "", "no login within %v", h.cfg.LoginTimeout))
	})
	typ, b, err := conn.Read(h.base)
	if !timedOut.Stop() {
		conn.CloseNow()
		return nil, errors.New(errLoginTimeout)
	}
	if err != nil {
		if errors.Is(err, websocket.ErrMessageTooBig) {
			h.m.errors.WithLabelValues(errTooBig).Inc()
		}
		conn.CloseNow()
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, fail(websocket.StatusUnsupportedData, refuse(errMalformed, "", "binary messages are not part of the protocol"))
	}
	m, perr := decode(b)
	if perr != nil {
		return nil, fail(websocket.StatusPolicyViolation, perr)
	}
	if m.Type != msgLogin {
		return nil, fail(websocket.StatusPolicyViolation, refuse(errLoginFirst, "", "the first message must be a login"))
	}
	if !strings.HasPrefix(m.Token, TokenPrefix) {
		return nil, fail(websocket.StatusPolicyViolation, refuse(errUnauthorized, "", "wrong or revoked agent token"))
	}
	tok, err := h.tokens.TokenByHash(store.TokenAgent, sha256.Sum256([]byte(m.Token)))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.log.Error("read agent token", "err", err)
		}
		return nil, fail(websocket.StatusPolicyViolation, refuse(errUnauthorized, "", "wrong or revoked agent token"))
	}
	a := &agent{h: h, conn: conn, customer: tok.CustomerID, tokenID: tok.ID, label: tok.Label, groups: slices.Clone(tok.Groups),
		out: make(chan []byte, outQueue), done: make(chan struct{}), ringing: map[string]*call{}}
	h.mu.Lock()
	if len(h.agents[a.customer]) >= h.cfg.MaxAgents {
		h.mu.Unlock()
		return nil, fail(websocket.StatusTryAgainLater, refuse(errTooMany, "", "more than %d agent pages of this customer are open", h.cfg.MaxAgents))
	}
	set := h.agents[a.customer]
	if set == nil {
		set = map[*agent]struct{}{}
		h.agents[a.customer] = set
	}
	set[a] = struct{}{}
	h.mu.Unlock()
	h.m.online.Inc()
	h.log.Info("agent online", "customer", a.customer, "agent", a.tokenID)
	a.send(outMsg{Type: msgReady, Agent: a.label, Groups: a.groups, ICEServers: h.cfg.ICEServers})
	return a, nil
}

// logout unregisters an agent whose connection ended: its rings stop, its call ends.
func (h *Hub) logout(a *agent) {
	h.mu.Lock()
	delete(h.agents[a.customer], a)
	if len(h.agents[a.customer]) == 0 {
		delete(h.agents, a.customer)
	}
	var left []*call
	for id, c := range a.ringing {
		delete(a.ringing, id)
		left = append(left, c)
	}
	for _, c := range left {
		h.dropRinger(c, a)
	}
	busy := a.busy
	h.mu.Unlock()
	if busy != nil {
		busy.end("agent_disconnected", true)
	}
	h.m.online.Dec()
	h.log.Info("agent offline", "customer", a.customer, "agent", a.tokenID)
}

// writer sends the queued messages until the connection ends.
func (a *agent) writer(done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case b := <-a.out:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := a.conn.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				a.conn.CloseNow()
				return
			}
		case <-a.done:
			return
		}
	}
}

// readLoop handles the page's messages until the connection ends. A refused message is
// answered with an error and changes nothing; an oversized one closes the connection (1009).
func (a *agent) readLoop() {
	for {
		typ, b, err := a.conn.Read(a.h.base)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				a.h.m.errors.WithLabelValues(errTooBig).Inc()
			}
			return
		}
		if typ != websocket.MessageText {
			a.refuse(refuse(errMalformed, "", "binary messages are not part of the protocol"))
			continue
		}
		m, perr := decode(b)
		if perr != nil {
			a.refuse(perr)
			continue
		}
		if perr := a.h.handle(a, m); perr != nil {
			a.refuse(perr)
		}
	}
}

// handle acts on one valid message of a logged-in agent.
func (h *Hub) handle(a *agent, m inMsg) *protoError {
	switch m.Type {
	case msgPing:
		a.send(outMsg{Type: msgPong})
		return nil
	case msgLogin:
		return refuse(errBadField, "", "already logged in")
	case msgAccept:
		return h.accept(a, m.CallID)
	case msgReject:
		return h.reject(a, m.CallID)
	case msgAnswer:
		return h.answer(a, m.CallID, m.SDP)
	case msgHangup:
		return h.hangup(a, m.CallID)
	}
	return refuse(errUnknownType, "", "type %q", m.Type)
}

func (a *agent) inGroup(g string) bool { return slices.Contains(a.groups, g) }

// idle lists the customer's agents of a group that are in no call. Called under h.mu.
func (h *Hub) idle(customer, group string) []*agent {
	var out []*agent
	for a := range h.agents[customer] {
		if a.busy == nil && a.inGroup(group) && !isDone(a.done) {
			out = append(out, a)
		}
	}
	return out
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func unknownCall(id string) *protoError {
	return refuse(errUnknownCall, id, "no call %q rings or runs on this page", textutil.Clip(id, maxCallID))
}

// String names an agent in errors.
func (a *agent) String() string { return fmt.Sprintf("agent %s of %s", a.tokenID, a.customer) }
