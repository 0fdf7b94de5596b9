package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// SIP over TLS (RFC 3261 §26.2, RFC 5630): trunks connect to the TLS listener (sips:, port
// 5061 by default). The certificate and key come from files and are read again on Reload
// (SIGHUP): new connections get the new certificate, connections already up keep theirs,
// so no call is dropped. With a client CA file, a client may present a certificate; it is
// verified against those CAs during the handshake (an expired or unknown one fails the
// handshake), and a trunk that requires one is only accepted on a connection that carried a
// verified certificate with its name.

// TLSConfig configures the TLS listener.
type TLSConfig struct {
	Listen       string // host:port; empty: no TLS
	CertFile     string // PEM certificate chain, leaf first
	KeyFile      string // PEM private key of the leaf
	ClientCAFile string // PEM CAs that client certificates are verified against; empty: none asked for
	// HandshakeTimeout bounds a client's TLS handshake (default 10 s).
	HandshakeTimeout time.Duration
}

const (
	defaultHandshakeTimeout = 10 * time.Second
	maxPendingHandshakes    = 256 // handshakes in progress at once; more connections are closed at once
)

// tlsCerts holds what the listener serves: swapped whole, atomically, by load.
type tlsCerts struct {
	cert      *tls.Certificate
	leaf      *x509.Certificate
	clientCAs *x509.CertPool // nil: no client certificates asked for
}

// loadTLSCerts reads the certificate, key and client CAs. It refuses a certificate that is
// not valid at now, so that a reload with a wrong file keeps serving the old one.
func loadTLSCerts(cfg *TLSConfig, now time.Time) (*tlsCerts, error) {
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls certificate: %w", err)
		}
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls certificate %s: valid from %s to %s, not now", cfg.CertFile,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	c := &tlsCerts{cert: &cert, leaf: leaf}
	if cfg.ClientCAFile != "" {
		b, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls client CAs: %w", err)
		}
		c.clientCAs = x509.NewCertPool()
		if !c.clientCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls client CAs %s: no PEM certificate", cfg.ClientCAFile)
		}
	}
	return c, nil
}

// tlsListener accepts TCP connections, runs each one's TLS handshake in a goroutine of its
// own (bounded in time and number) and hands sipgo only the connections whose handshake
// succeeded. It remembers each connection's verified client certificate by remote address,
// until the connection closes, so that the INVITE handler can tell which trunk sent it.
type tlsListener struct {
	net.Listener
	cfg     TLSConfig
	certs   atomic.Pointer[tlsCerts]
	base    *tls.Config
	admit   func(netip.Addr) bool // whether a source may start a handshake at all
	pending chan struct{}         // semaphore of handshakes in progress
	ready   chan net.Conn
	done    chan struct{}
	ctx     context.Context // ends with Close: handshakes in progress stop
	cancel  context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup

	mu    sync.Mutex
	peers map[string]*x509.Certificate // remote address -> verified client certificate (leaf)

	handshakes *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	notAfter   prometheus.GaugeFunc
}

func newTLSListener(ln net.Listener, cfg TLSConfig, certs *tlsCerts, admit func(netip.Addr) bool) *tlsListener {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	l := &tlsListener{Listener: ln, cfg: cfg, admit: admit, pending: make(chan struct{}, maxPendingHandshakes),
		ready: make(chan net.Conn), done: make(chan struct{}), peers: make(map[string]*x509.Certificate),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_sip_tls_handshakes_total",
			Help: "TLS handshakes on the SIP TLS listener, by result: ok, client_cert_expired, client_cert_unknown, client_cert_bad, failed (any other), overloaded (too many at once, closed unanswered), unknown_source (no trunk sends from there: closed unanswered).",
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_sip_tls_reloads_total", Help: "Reloads of the SIP TLS certificate (SIGHUP), by result: ok, failed (the old certificate stays).",
		}, []string{"result"}),
	}
	l.notAfter = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trackline_sip_tls_cert_not_after_seconds", Help: "When the SIP TLS certificate being served expires (Unix time).",
	}, func() float64 { return float64(l.certs.Load().leaf.NotAfter.Unix()) })
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.certs.Store(certs)
	// Both callbacks read the certificates current at the handshake: a reload changes what
	// new connections get and nothing else.
	l.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return l.certs.Load().cert, nil
		},
	}
	l.base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := l.certs.Load()
		if c.clientCAs == nil {
			return nil, nil // the base config: no client certificate asked for
		}
		conf := l.base.Clone()
		conf.GetConfigForClient = nil
		conf.ClientCAs = c.clientCAs
		// A client without a certificate may still connect (a trunk that does not require
		// one); one that presents a certificate must present a valid one.
		conf.ClientAuth = tls.VerifyClientCertIfGiven
		return conf, nil
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// reload reads the files again; on failure the certificates in use stay.
func (l *tlsListener) reload(now time.Time) error {
	c, err := loadTLSCerts(&l.cfg, now)
	if err != nil {
		l.reloads.WithLabelValues("failed").Inc()
		return err
	}
	l.certs.Store(c)
	l.reloads.WithLabelValues("ok").Inc()
	return nil
}

// acceptLoop accepts until the listener closes; it exits then.
func (l *tlsListener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.Close()
			return
		}
		if ap, err := netip.ParseAddrPort(raw.RemoteAddr().String()); err != nil || !l.admit(ap.Addr().Unmap()) {
			l.handshakes.WithLabelValues("unknown_source").Inc()
			raw.Close()
			continue
		}
		select {
		case l.pending <- struct{}{}:
		default:
			l.handshakes.WithLabelValues("overloaded").Inc()
			raw.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(raw)
	}
}

// handshake runs one connection's handshake and passes it to Accept, or closes it.
func (l *tlsListener) handshake(raw net.Conn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	tc := tls.Server(raw, l.base)
	err := tc.HandshakeContext(ctx)
	cancel()
	<-l.pending
	if err != nil {
		l.handshakes.WithLabelValues(handshakeFailure(err)).Inc()
		raw.Close()
		return
	}
	l.handshakes.WithLabelValues("ok").Inc()
	c := &tlsConn{Conn: tc, l: l, remote: raw.RemoteAddr().String()}
	if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 {
		l.mu.Lock()
		l.peers[c.remote] = st.VerifiedChains[0][0]
		l.mu.Unlock()
	}
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

// handshakeFailure names why a handshake failed, for the metric.
func handshakeFailure(err error) string {
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "client_cert_expired"
	case errors.As(err, &unk):
		return "client_cert_unknown"
	case errors.As(err, &inv):
		return "client_cert_bad"
	}
	return "failed"
}

// Accept returns the next connection whose handshake succeeded.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener and ends the handshakes in progress.
func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// wait waits for the accept loop and the handshakes to end, after Close.
func (l *tlsListener) wait() { l.wg.Wait() }

// peer is the verified client certificate of the connection from remote, or nil.
func (l *tlsListener) peer(remote string) *x509.Certificate {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peers[remote]
}

func (l *tlsListener) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{l.handshakes, l.reloads, l.notAfter} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register sip tls metrics: %w", err)
		}
	}
	return nil
}

// tlsConn forgets its client certificate when it closes.
type tlsConn struct {
	*tls.Conn
	l      *tlsListener
	remote string
	once   sync.Once
}

func (c *tlsConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.peers, c.remote)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// certHasName tells whether a certificate names name: a DNS SAN (RFC 6125, no wildcards for
// clients) or, when it has no DNS SAN, its subject common name.
func certHasName(c *x509.Certificate, name string) bool {
	if len(c.DNSNames) > 0 {
		for _, n := range c.DNSNames {
			if strings.EqualFold(n, name) {
				return true
			}
		}
		return false
	}
	return strings.EqualFold(c.Subject.CommonName, name)
}

// isTLS tells whether a request came over TLS.
func isTLS(req *sipmsg.Request) bool { return strings.EqualFold(req.Transport(), "tls") }

// identify finds the trunk that sent req: over TLS, a verified client certificate with a
// trunk's name identifies that trunk (from its sources, when it lists any); otherwise the
// source address does. A trunk that requires a client certificate is refused without one.
func (s *Switch) identify(req *sipmsg.Request) (*Trunk, *refusal) {
	var cert *x509.Certificate
	if s.tls != nil && isTLS(req) {
		cert = s.tls.peer(req.Source())
	}
	if cert != nil {
		ip := sourceIP(req.Source())
		for i := range s.cfg.Trunks {
			t := &s.cfg.Trunks[i]
			if t.ClientCertName == "" || !certHasName(cert, t.ClientCertName) {
				continue
			}
			if len(t.Sources) == 0 || containsIP(t, ip) {
				return t, nil
			}
		}
	}
	t, ok := s.trunkFor(req)
	if !ok {
		s.m.aclRejected.Inc()
		return nil, &refusal{code: 403, reason: "Forbidden"}
	}
	if t.ClientCert && (cert == nil || t.ClientCertName != "" && !certHasName(cert, t.ClientCertName)) {
		s.m.aclRejected.Inc()
		return nil, &refusal{code: 403, reason: "Client Certificate Required"}
	}
	return t, nil
}

func containsIP(t *Trunk, ip netip.Addr) bool {
	for _, p := range t.Sources {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// listenTLS binds the TLS listener when one is configured.
func (s *Switch) listenTLS() error {
	cfg := s.cfg.TLS
	if cfg.Listen == "" {
		return nil
	}
	certs, err := loadTLSCerts(&cfg, s.now())
	if err != nil {
		return fmt.Errorf("%w: sip.tls: %v", ErrConfig, err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen sip tls %s: %w", cfg.Listen, err)
	}
	s.tls = newTLSListener(ln, cfg, certs, s.tlsAdmits)
	if err := s.tls.register(s.reg); err != nil {
		s.tls.Close()
		return err
	}
	return nil
}

// tlsAdmits tells whether a source may start a TLS handshake: as on UDP and TCP (the edge,
// docs/sip-edge.md), a source that is no trunk gets no answer at all, unless the operator
// has unknown sources answered; a trunk that a client certificate identifies without
// sources may connect from anywhere.
func (s *Switch) tlsAdmits(ip netip.Addr) bool {
	if s.cfg.Edge.AnswerUnknown {
		return true
	}
	for i := range s.cfg.Trunks {
		t := &s.cfg.Trunks[i]
		if len(t.Sources) == 0 && t.ClientCertName != "" || containsIP(t, ip) {
			return true
		}
	}
	return false
}

// setupTLSUA makes the dialog user agents of TLS dialogs. Their Contact says TLS, so the
// trunk's in-dialog requests (ACK, BYE) come back over TLS; ours go back on the trunk's
// connection (RFC 5923's reuse: a trunk need not listen where its Contact points).
func (s *Switch) setupTLSUA(ua *sipgo.UserAgent, host string) error {
	port := int(s.TLSAddr().Port())
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log), sipgo.WithClientHostname(host), sipgo.WithClientPort(port))
	if err != nil {
		return err
	}
	tlsContact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sipmsg.NewParams()}}
	tlsContact.Address.UriParams.Add("transport", "tls")
	s.tlsUA = sipgo.DialogUA{Client: cli, ContactHDR: tlsContact, RewriteContact: true}
	s.sipsUA = sipgo.DialogUA{Client: cli, ContactHDR: sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sips", Host: host, Port: port}},
		RewriteContact: true}
	return nil
}

// inboundUA is the dialog user agent for a trunk's INVITE, by the transport it came over.
func (s *Switch) inboundUA(req *sipmsg.Request) *sipgo.DialogUA {
	if s.tls != nil && isTLS(req) {
		if req.Recipient.IsEncrypted() {
			return &s.sipsUA
		}
		return &s.tlsUA
	}
	return s.dialogUA(req.Transport())
}

// TLSAddr is the TLS listener's bound address (invalid without TLS).
func (s *Switch) TLSAddr() netip.AddrPort {
	if s.tls == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(s.tls.Addr().String())
	return ap
}

// ReloadTLS reads the TLS certificate, key and client CAs again (on SIGHUP). New
// connections get the new certificate; connections up, and their calls, are untouched. On
// an error the old certificate stays in use.
func (s *Switch) ReloadTLS() error {
	if s.tls == nil {
		return nil
	}
	if err := s.tls.reload(s.now()); err != nil {
		return err
	}
	c := s.tls.certs.Load()
	s.log.Info("sip tls certificate reloaded", "subject", c.leaf.Subject.CommonName, "not_after", c.leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}
