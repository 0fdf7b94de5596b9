package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Config configures the switch.
type Config struct {
	// NodeID names this switch in a cluster; it is written in the records of its calls.
	NodeID           string
	Listen           string // host:port for UDP and TCP; port 0 picks a free one
	ExternalHost     string // host written in Via and Contact (default: the listen host)
	Trunks           []Trunk
	OutboundProxy    string // sip:host:port that business-line INVITEs are sent through
	OutboundUsername string
	OutboundPassword string
	// OutboundNAT: the business lines are behind NAT, so their RTP may come from the IP
	// their answer came from as well as from the one their SDP names.
	OutboundNAT   bool
	ToFallback    bool   // read the dialled number from To when the Request-URI has none
	CountryCode   string // for national dialled numbers
	RingTimeout   time.Duration
	MaxDuration   time.Duration
	DrainTimeout  time.Duration
	UDPReadBuffer int        // SO_RCVBUF of the UDP socket (default 8 MiB, capped by rmem_max)
	Auth          AuthConfig // digest limits of the trunks with credentials
	TLS           TLSConfig  // SIP over TLS (none when TLS.Listen is empty)
	Edge          EdgeConfig // limits of what is read, and sources that are no trunk (sip/edge.go)

	// MaxCPS caps new calls a second (0: no cap); OverloadDelay is the queueing delay above
	// which the switch sheds new calls (default DefaultOverloadDelay), and the unit of its
	// other targets. See admit.go.
	MaxCPS        float64
	OverloadDelay time.Duration
}

// Trunk is an inbound trunk: the sources it sends from and optional digest credentials.
type Trunk struct {
	Name     string
	Sources  []netip.Prefix
	Username string
	Password string
	// NAT: the trunk is behind NAT, so its RTP may come from the IP its INVITE came from as
	// well as from the one its SDP names.
	NAT bool
	// ClientCert: the trunk is accepted only over TLS with a client certificate verified
	// against TLSConfig.ClientCAFile (and naming ClientCertName, when set). A certificate
	// naming ClientCertName identifies the trunk from any of its sources, or from anywhere
	// when it lists none.
	ClientCert     bool
	ClientCertName string
}

func (c *Config) defaults() {
	if c.RingTimeout <= 0 {
		c.RingTimeout = 30 * time.Second
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = 4 * time.Hour
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.CountryCode == "" {
		c.CountryCode = "31"
	}
	if c.UDPReadBuffer <= 0 {
		c.UDPReadBuffer = 8 << 20
	}
}

// Switch is the B2BUA.
type Switch struct {
	cfg    Config
	log    *slog.Logger
	pool   *pool.Pool
	db     *store.DB
	media  callseam.Media
	agents callseam.Agents  // nil: webrtc: business lines are skipped
	keys   *keyring.Keyring // caller pseudonyms; nil: calls are stored without one
	now    func() time.Time
	reg    prometheus.Registerer // nil: the metrics are kept but not registered
	m      *metrics

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	udpUA  sipgo.DialogUA // dialogs over UDP, sent from the listening socket
	tcpUA  sipgo.DialogUA // dialogs over TCP
	tlsUA  sipgo.DialogUA // dialogs over TLS whose Request-URI is sip: (Contact ;transport=tls)
	sipsUA sipgo.DialogUA // dialogs over TLS whose Request-URI is sips: (Contact sips:)
	proxy  *sipmsg.Uri
	calls  *callTable
	auth   *digestAuth
	adm    *admission // which new calls are taken (admit.go)
	inv    inviteKeys // INVITEs over UDP admitted and refused (admit_conn.go)

	udp  net.PacketConn
	tcp  net.Listener
	tls  *tlsListener // nil: no TLS
	edge *edge        // sees every message over UDP and TCP before sipgo does
	addr netip.AddrPort

	draining  atomic.Bool
	storeDown atomic.Bool    // new calls refused: the store cannot be reached (storedown.go)
	admitMu   sync.Mutex     // orders callsWG.Add of an admitted INVITE before a drain's Wait
	callsWG   sync.WaitGroup // one per INVITE handler admitted before the drain, and per record it left to complete
	endings   endings        // recorded calls' records waiting for their recordings (complete.go)
	hangupAll context.CancelCauseFunc
	base      context.Context
	closeOnce sync.Once
	serveWG   sync.WaitGroup

	// shuttingDown (under admitMu): Drain or Close began; SetDraining can no longer lift it.
	shuttingDown bool
}

// Option configures New.
type Option func(*Switch)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Switch) { s.log = l } }

// WithRegisterer registers the switch's metrics on r; without it (or with nil) they are
// kept but not registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *Switch) { s.reg = r } }

// WithMedia anchors media through m (default: direct media).
func WithMedia(m callseam.Media) Option { return func(s *Switch) { s.media = m } }

// WithKeys gives every call record its caller's pseudonym (a keyed hash with the customer's
// key), which indexes calls by caller and, for customers with pseudonymous callers, is
// stored in place of the number. Without it, calls have no pseudonym, and a customer with
// pseudonymous callers keeps only the caller's last three digits.
func WithKeys(k *keyring.Keyring) Option { return func(s *Switch) { s.keys = k } }

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(s *Switch) { s.now = now } }

// New builds a switch; Listen binds its sockets and Serve runs it.
func New(cfg Config, p *pool.Pool, db *store.DB, opts ...Option) (*Switch, error) {
	cfg.defaults()
	s := &Switch{cfg: cfg, pool: p, db: db, log: slog.New(slog.DiscardHandler), now: time.Now, m: newMetrics(),
		calls: newCallTable(), auth: newDigestAuth(cfg.Auth)}
	for _, o := range opts {
		o(s)
	}
	s.log = slog.New(RedactHandler(s.log.Handler())) // no caller number in the logs
	if cfg.OutboundProxy != "" {
		var u sipmsg.Uri
		if err := sipmsg.ParseUri(cfg.OutboundProxy, &u); err != nil || u.Host == "" {
			return nil, fmt.Errorf("%w: outbound_proxy %q: not a SIP URI", ErrConfig, cfg.OutboundProxy)
		}
		s.proxy = &u
	}
	if err := s.m.register(s.reg); err != nil {
		return nil, err
	}
	if err := s.auth.register(s.reg); err != nil {
		return nil, err
	}
	if s.reg != nil {
		if err := s.reg.Register(s.dropsCollector()); err != nil {
			return nil, fmt.Errorf("register sip metrics: %w", err)
		}
	}
	if err := s.setupEdge(); err != nil {
		return nil, err
	}
	if err := s.setupAdmission(); err != nil {
		return nil, err
	}
	s.base, s.hangupAll = context.WithCancelCause(context.Background())
	return s, nil
}

// Listen binds UDP and TCP on the configured address (the same port for both).
func (s *Switch) Listen() error {
	host, port, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("%w: listen %q: %v", ErrConfig, s.cfg.Listen, err)
	}
	var lastErr error
	for range 20 {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return fmt.Errorf("listen sip udp %s: %w", s.cfg.Listen, err)
		}
		bound := udp.LocalAddr().(*net.UDPAddr)
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(bound.Port)))
		if err != nil {
			udp.Close()
			lastErr = err
			if port == "0" {
				continue // the free UDP port was taken for TCP: try another
			}
			return fmt.Errorf("listen sip tcp %s: %w", s.cfg.Listen, err)
		}
		if uc, ok := udp.(*net.UDPConn); ok {
			uc.SetReadBuffer(s.cfg.UDPReadBuffer)
		}
		s.udp, s.tcp = udp, tcp
		s.addr = bound.AddrPort()
		if err := s.listenTLS(); err != nil {
			return err
		}
		return s.setupUA()
	}
	return fmt.Errorf("listen sip %s: no port free for both UDP and TCP: %w", s.cfg.Listen, lastErr)
}

// Addr is the bound address.
func (s *Switch) Addr() netip.AddrPort { return s.addr }

func (s *Switch) setupUA() error {
	host := s.cfg.ExternalHost
	if host == "" {
		host = s.addr.Addr().String()
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("trackline"), sipgo.WithUserAgentHostname(host), s.edgeLogOption())
	if err != nil {
		return fmt.Errorf("sip user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		return err
	}
	port := int(s.addr.Port())
	udpCli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log), sipgo.WithClientHostname(host), sipgo.WithClientPort(port),
		sipgo.WithClientConnectionAddr(s.udp.LocalAddr().String()))
	if err != nil {
		return err
	}
	tcpCli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log), sipgo.WithClientHostname(host), sipgo.WithClientPort(port))
	if err != nil {
		return err
	}
	contact := func(transport string) sipmsg.ContactHeader {
		c := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: host, Port: port}}
		if transport != "udp" {
			c.Address.UriParams = sipmsg.NewParams()
			c.Address.UriParams.Add("transport", transport)
		}
		return c
	}
	s.ua, s.srv = ua, srv
	s.udpUA = sipgo.DialogUA{Client: udpCli, ContactHDR: contact("udp")}
	s.tcpUA = sipgo.DialogUA{Client: tcpCli, ContactHDR: contact("tcp")}
	if s.tls != nil {
		if err := s.setupTLSUA(ua, host); err != nil {
			return err
		}
	}

	srv.OnInvite(s.handleInvite)
	srv.OnAck(s.handleAck)
	srv.OnBye(s.handleBye)
	srv.OnCancel(s.handleCancel)
	srv.OnOptions(s.handleOptions)
	srv.OnInfo(s.handleInDialog)
	srv.OnUpdate(s.handleInDialog)
	srv.OnNoRoute(s.handleNoRoute)
	return nil
}

func (s *Switch) dialogUA(transport string) *sipgo.DialogUA {
	if sipmsg.NetworkToLower(transport) == "tcp" {
		return &s.tcpUA
	}
	return &s.udpUA
}

// Serve answers SIP until Close. Listen must have succeeded. It returns once the UDP socket
// is registered with sipgo's transport layer: requests sent before that would not go out
// from the listening socket.
func (s *Switch) Serve() {
	s.serveWG.Add(3)
	udp := newAdmitConn(s, s.udp) // admit_conn.go, edge_udp.go
	go func() { defer s.serveWG.Done(); udp.drain() }()
	go func() { defer s.serveWG.Done(); s.srv.ServeUDP(udp) }()
	go func() { defer s.serveWG.Done(); s.srv.ServeTCP(&edgeListener{Listener: s.tcp, e: s.edge}) }()
	if s.tls != nil {
		s.serveWG.Add(1)
		go func() { defer s.serveWG.Done(); s.srv.ServeTLS(s.tls) }()
	}
	waitServing(s.ua, s.udp.LocalAddr().String())
}

// waitServing waits (briefly) until sipgo serves the UDP socket at addr.
func waitServing(ua *sipgo.UserAgent, addr string) {
	for range 1000 {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Drain refuses new INVITEs with 503 and waits for calls in progress to end, at most the
// drain timeout (or until ctx ends); then it ends the rest with BYE on both legs and waits
// for their records to be completed.
func (s *Switch) Drain(ctx context.Context) {
	s.stopAdmitting()
	done := make(chan struct{})
	go func() { s.callsWG.Wait(); close(done) }()
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	s.log.Info("drain timeout: ending calls in progress", "calls", s.calls.count())
	s.hangupAll(ErrDraining)
	<-done
}

// admit counts a new INVITE's handler in callsWG unless the switch is draining. A
// WaitGroup's Add from zero must happen before its Wait: the lock orders them.
func (s *Switch) admit() bool {
	s.admitMu.Lock()
	defer s.admitMu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.callsWG.Add(1)
	return true
}

// stopAdmitting makes admit refuse from now on; a Wait on callsWG after it sees every
// admitted handler.
func (s *Switch) stopAdmitting() {
	s.admitMu.Lock()
	s.shuttingDown = true
	s.draining.Store(true)
	s.admitMu.Unlock()
}

// Draining tells whether the switch refuses new calls.
func (s *Switch) Draining() bool { return s.draining.Load() }

// Close ends every call, then closes the sockets. It is idempotent.
func (s *Switch) Close() error {
	s.closeOnce.Do(func() {
		s.stopAdmitting()
		s.hangupAll(ErrDraining)
		s.callsWG.Wait()
		s.endings.wg.Wait() // its last Done above was before it returned
		if s.ua != nil {
			s.ua.Close()
		}
		if s.udp != nil {
			s.udp.Close()
		}
		if s.tcp != nil {
			s.tcp.Close()
		}
		if s.tls != nil {
			s.tls.Close()
			s.tls.wait()
		}
		s.serveWG.Wait()
	})
	return nil
}

// Every response the switch sends goes through send (on a server transaction) or answer (on
// the caller's INVITE dialog), which count it in trackline_sip_responses_total as they send.

// respond builds a response to req and sends it on tx.
func (s *Switch) respond(req *sipmsg.Request, tx sipmsg.ServerTransaction, code int, reason string, hdrs ...sipmsg.Header) {
	res := sipmsg.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := s.send(tx, res); err != nil && !errors.Is(err, sipmsg.ErrTransactionTerminated) {
		s.log.Debug("respond failed", "code", code, "err", err)
	}
}

// send sends res on tx and counts it.
func (s *Switch) send(tx sipmsg.ServerTransaction, res *sipmsg.Response) error {
	s.m.response("sent", res.StatusCode)
	return tx.Respond(res)
}

// answer responds on the caller's INVITE dialog and counts it. A 2xx returns once the
// caller's ACK came, or with an error when none did.
func (s *Switch) answer(a *sipgo.DialogServerSession, code int, reason string, body []byte, hdrs ...sipmsg.Header) error {
	s.m.response("sent", code)
	return a.Respond(code, reason, body, hdrs...)
}
