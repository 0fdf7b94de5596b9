package sip

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/store"
)

// testCA is a throw-away certificate authority made for one test; its keys live in memory
// and in the test's temporary directory only.
type testCA struct {
	t      *testing.T
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	dir    string
	serial atomic.Int64
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trackline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{t: t, cert: cert, key: key, dir: t.TempDir()}
	ca.serial.Store(100)
	ca.write("ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) path(name string) string { return filepath.Join(ca.dir, name) }

func (ca *testCA) write(name, typ string, der []byte) {
	ca.t.Helper()
	if err := os.WriteFile(ca.path(name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue makes a certificate for name (an IP address or a DNS name), valid from notBefore to
// notAfter, for a server or a client, and writes it and its key as <file>.pem and
// <file>.key. It returns the pair.
func (ca *testCA) issue(file, name string, client bool, notBefore, notAfter time.Time) tls.Certificate {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if file != "" {
		ca.write(file+".pem", "CERTIFICATE", der)
		ca.write(file+".key", "EC PRIVATE KEY", kder)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// tlsConfig is the switch's TLS config on an ephemeral port with server.pem, asking for
// client certificates from the CA when clientCAs.
func (ca *testCA) tlsConfig(clientCAs bool) TLSConfig {
	c := TLSConfig{Listen: "127.0.0.1:0", CertFile: ca.path("server.pem"), KeyFile: ca.path("server.key")}
	if clientCAs {
		c.ClientCAFile = ca.path("ca.pem")
	}
	return c
}

// newTLSTrunk is a trunk peer that reaches the switch over TLS only (it listens nowhere:
// the switch's requests come back on the trunk's connection), with a client certificate
// when cert is not nil.
func newTLSTrunk(t *testing.T, ca *testCA, cert *tls.Certificate) *peer {
	t.Helper()
	conf := &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	p := &peer{t: t, addr: "127.0.0.1:5999"}
	p.ua, _ = sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"), sipgo.WithUserAgenTLSConfig(conf))
	p.srv, _ = sipgo.NewServer(p.ua)
	p.cli, _ = sipgo.NewClient(p.ua, sipgo.WithClientHostname("127.0.0.1"))
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 5999, UriParams: sipmsg.NewParams()}}
	contact.Address.UriParams.Add("transport", "tls")
	p.uac = sipgo.NewDialogClientCache(p.cli, contact)
	p.uas = sipgo.NewDialogServerCache(p.cli, contact)
	p.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		p.note("BYE")
		if err := p.uac.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 481, "No dialog", nil))
		}
	})
	t.Cleanup(func() { p.ua.Close() })
	return p
}

// tlsInvite sends an INVITE for number over TLS to the switch from trunk p (scheme sip or
// sips) and waits for the final answer; a 2xx is acknowledged.
func (e *env) tlsInvite(p *peer, scheme, number string) (*sipgo.DialogClientSession, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ap := e.sw.TLSAddr()
	uri := sipmsg.Uri{Scheme: scheme, User: number, Host: ap.Addr().String(), Port: int(ap.Port())}
	if scheme == "sip" {
		uri.UriParams = sipmsg.NewParams()
		uri.UriParams.Add("transport", "tls")
	}
	req := sipmsg.NewRequest(sipmsg.INVITE, uri)
	req.SetTransport("TLS")
	req.SetBody([]byte(offerSDP))
	ct := sipmsg.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	f := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: "+31612345678", Host: "127.0.0.1"}, Params: sipmsg.NewParams()}
	f.Params.Add("tag", sipmsg.GenerateTagN(10))
	req.AppendHeader(f)
	d, err := p.uac.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		return d, err
	}
	return d, d.Ack(ctx)
}

// servedCert dials the TLS listener and returns the certificate it serves.
func servedCert(t *testing.T, e *env, ca *testCA) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", e.sw.TLSAddr().String(), &tls.Config{RootCAs: ca.pool()})
	if err != nil {
		t.Fatalf("dial tls: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func TestTLSTrunkCallAndCertificateReload(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	ca.issue("server", "127.0.0.1", false, now.Add(-time.Hour), now.Add(time.Hour))
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, tls: ca.tlsConfig(false)})
	old := servedCert(t, e, ca)

	for _, scheme := range []string{"sip", "sips"} {
		trunk := newTLSTrunk(t, ca, nil)
		d, err := e.tlsInvite(trunk, scheme, "+31850000101")
		if err != nil {
			t.Fatalf("%s: call over TLS: %v", scheme, err)
		}
		// The switch's Contact says TLS, so the trunk's in-dialog requests come back over it.
		contact := d.InviteResponse.Contact()
		if scheme == "sips" && contact.Address.Scheme != "sips" ||
			scheme == "sip" && !strings.EqualFold(contact.Address.UriParams.GetOr("transport", ""), "tls") {
			t.Fatalf("%s: contact %s", scheme, contact.Value())
		}
		if contact.Address.Port != int(e.sw.TLSAddr().Port()) {
			t.Fatalf("%s: contact port %d, TLS listens on %d", scheme, contact.Address.Port, e.sw.TLSAddr().Port())
		}
		if scheme == "sips" {
			hangup(t, d)
			if rec := e.record(); rec.Disposition != store.DispAnswered {
				t.Fatalf("record %+v", rec)
			}
			continue
		}

		// Reload with the call up: a new certificate for new connections, the call goes on.
		ca.issue("server", "127.0.0.1", false, now.Add(-time.Minute), now.Add(2*time.Hour))
		if err := e.sw.ReloadTLS(); err != nil {
			t.Fatalf("reload: %v", err)
		}
		if got := servedCert(t, e, ca); got.SerialNumber.Cmp(old.SerialNumber) == 0 {
			t.Fatalf("still serving serial %v after the reload", got.SerialNumber)
		}
		// A certificate that is no longer valid is refused; the one in use stays.
		ca.issue("server", "127.0.0.1", false, now.Add(-2*time.Hour), now.Add(-time.Minute))
		if err := e.sw.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "not now") {
			t.Fatalf("reload of an expired certificate: %v", err)
		}
		if got := servedCert(t, e, ca); !got.NotAfter.After(now.Add(time.Hour)) {
			t.Fatalf("serving %v (not after %v) after a failed reload", got.SerialNumber, got.NotAfter)
		}
		// The call set up before the reloads ends normally, on its own connection.
		time.Sleep(100 * time.Millisecond)
		hangup(t, d)
		if rec := e.record(); rec.Disposition != store.DispAnswered || rec.HangupBy != store.PartyCaller {
			t.Fatalf("record of the call across the reload %+v", rec)
		}
		if got := testutil.ToFloat64(e.sw.tls.reloads.WithLabelValues("ok")); got != 1 {
			t.Fatalf("reloads ok %v", got)
		}
	}
}

func TestTLSBusinessLineByeReachesTrunkOverTLS(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	ca.issue("server", "127.0.0.1", false, now.Add(-time.Hour), now.Add(time.Hour))
	line := newPeer(t, "127.0.0.1", answer(300*time.Millisecond)) // the line hangs up
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, tls: ca.tlsConfig(false)})
	trunk := newTLSTrunk(t, ca, nil)
	if _, err := e.tlsInvite(trunk, "sip", "+31850000101"); err != nil {
		t.Fatalf("call over TLS: %v", err)
	}
	// The switch's BYE to the trunk goes back over the trunk's TLS connection: the trunk
	// listens nowhere else.
	trunk.waitHistory("BYE")
	if rec := e.record(); rec.Disposition != store.DispAnswered || rec.HangupBy != store.PartyBusinessLine {
		t.Fatalf("record %+v", rec)
	}
}

func TestTLSClientCertificates(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	ca.issue("server", "127.0.0.1", false, now.Add(-time.Hour), now.Add(time.Hour))
	good := ca.issue("", "carrier.test", true, now.Add(-time.Hour), now.Add(time.Hour))
	other := ca.issue("", "someone-else.test", true, now.Add(-time.Hour), now.Add(time.Hour))
	expired := ca.issue("", "carrier.test", true, now.Add(-48*time.Hour), now.Add(-time.Hour))
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, tls: ca.tlsConfig(true),
		trunks: []Trunk{{Name: "carrier", ClientCert: true, ClientCertName: "carrier.test"}}})

	// The certificate identifies the trunk (it lists no sources) and lets its call in.
	d, err := e.tlsInvite(newTLSTrunk(t, ca, &good), "sips", "+31850000101")
	if err != nil {
		t.Fatalf("call with the trunk's certificate: %v", err)
	}
	hangup(t, d)
	if rec := e.record(); rec.Disposition != store.DispAnswered {
		t.Fatalf("record %+v", rec)
	}
	// Without a certificate, or with another name, the trunk is not recognised.
	for name, cert := range map[string]*tls.Certificate{"none": nil, "other name": &other} {
		_, err := e.tlsInvite(newTLSTrunk(t, ca, cert), "sips", "+31850000101")
		if got := statusOf(err); got != 403 {
			t.Fatalf("%s: got %d (%v), want 403", name, got, err)
		}
	}

	// An expired client certificate fails the handshake: the alert names it.
	c, err := tls.Dial("tcp", e.sw.TLSAddr().String(), &tls.Config{RootCAs: ca.pool(), Certificates: []tls.Certificate{expired}})
	if err == nil {
		// TLS 1.3: the client hears the server's verdict on its first read.
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Fatalf("expired client certificate: %v", err)
	}
	waitFor(t, func() bool {
		return testutil.ToFloat64(e.sw.tls.handshakes.WithLabelValues("client_cert_expired")) == 1
	})
}

// TestTLSClientCertRequiredBySourceTrunk: a trunk found by its source that requires a
// certificate is refused over plain UDP with a 403 that says why.
func TestTLSClientCertRequiredBySourceTrunk(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	ca.issue("server", "127.0.0.1", false, now.Add(-time.Hour), now.Add(time.Hour))
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, tls: ca.tlsConfig(true),
		trunks: []Trunk{{Name: "carrier", Sources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, ClientCert: true}}})
	_, err := e.call("+31850000101")
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) || de.Res.StatusCode != 403 || de.Res.Reason != "Client Certificate Required" {
		t.Fatalf("over UDP: %v", err)
	}
}

func TestTLSServerCertificateMustBeValidAtStart(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	ca.issue("server", "127.0.0.1", false, now.Add(-2*time.Hour), now.Add(-time.Hour))
	sw, err := New(Config{Listen: "127.0.0.1:0", TLS: ca.tlsConfig(false)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	if err := sw.Listen(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "not now") {
		t.Fatalf("listen with an expired certificate: %v", err)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTLSHandshakesAreBounded: a client that connects and never completes its handshake is
// dropped after the handshake timeout, and does not hold up the switch's Close.
func TestTLSHandshakesAreBounded(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	ca.issue("server", "127.0.0.1", false, now.Add(-time.Hour), now.Add(time.Hour))
	cfg := ca.tlsConfig(false)
	cfg.HandshakeTimeout = 200 * time.Millisecond
	e := newEnv(t, envOpts{lines: []string{"sip:+31852087972@127.0.0.1:9"}, tls: cfg})
	idle, err := net.Dial("tcp", e.sw.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := idle.Read(make([]byte, 1)); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("a silent client was not dropped after the handshake timeout: %v after %v", err, time.Since(start))
	}
	waitFor(t, func() bool { return testutil.ToFloat64(e.sw.tls.handshakes.WithLabelValues("failed")) == 1 })

	// Another silent client, then Close: it does not wait for the 200 ms, let alone 10 s.
	again, err := net.Dial("tcp", e.sw.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	time.Sleep(20 * time.Millisecond)
	start = time.Now()
	e.sw.Close()
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Fatalf("Close took %v with a handshake in progress", d)
	}
}

// TestTLSReloadTakesNewClientCAs: the client CA file is read again on reload too: a trunk
// whose certificate comes from a new CA is refused before, and accepted after.
func TestTLSReloadTakesNewClientCAs(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	ca.issue("server", "127.0.0.1", false, now.Add(-time.Hour), now.Add(time.Hour))
	other := newTestCA(t)
	cert := other.issue("", "carrier.test", true, now.Add(-time.Hour), now.Add(time.Hour))
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, tls: ca.tlsConfig(true),
		trunks: []Trunk{{Name: "carrier", ClientCert: true, ClientCertName: "carrier.test"}}})
	dial := func() error {
		c, err := tls.Dial("tcp", e.sw.TLSAddr().String(), &tls.Config{RootCAs: ca.pool(), Certificates: []tls.Certificate{cert}})
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 1)) // TLS 1.3: a refused certificate shows here
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil // accepted: the switch waits for SIP
		}
		return err
	}
	if err := dial(); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Fatalf("a certificate of an unknown CA: %v", err)
	}
	b, err := os.ReadFile(other.path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca.path("ca.pem"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.sw.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
	d, err := e.tlsInvite(newTLSTrunk(t, ca, &cert), "sips", "+31850000101")
	if err != nil {
		t.Fatalf("call after the reload: %v", err)
	}
	hangup(t, d)
}

// TestTLSUnknownSourceGetsNoHandshake: a source that is no trunk is closed before the
// handshake, as the edge drops its datagrams on UDP and TCP.
func TestTLSUnknownSourceGetsNoHandshake(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	ca.issue("server", "127.0.0.1", false, now.Add(-time.Hour), now.Add(time.Hour))
	e := newEnv(t, envOpts{lines: []string{"sip:+31852087972@127.0.0.1:9"}, tls: ca.tlsConfig(false), trunkSource: "127.0.0.2/32"})
	c, err := tls.Dial("tcp", e.sw.TLSAddr().String(), &tls.Config{RootCAs: ca.pool()})
	if err == nil {
		c.Close()
		t.Fatal("a source that is no trunk completed a handshake")
	}
	waitFor(t, func() bool { return testutil.ToFloat64(e.sw.tls.handshakes.WithLabelValues("unknown_source")) == 1 })
	if got := testutil.ToFloat64(e.sw.tls.handshakes.WithLabelValues("ok")); got != 0 {
		t.Fatalf("%v handshakes", got)
	}
}
