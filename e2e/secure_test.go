package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/trackline/trackline/g711"
)

// Secure trunks through the real binary (docs/security.md): SIP over TLS with a client
// certificate, a certificate reloaded on SIGHUP with a call up.
//
// Debian's sipp (sip-tester 3.6.1) is built without OpenSSL: `sipp -t l1` answers "To use
// a TLS transport you must compile SIPp with OpenSSL". So sipp talks TCP (-t t1) to a
// socat on loopback that carries each of its connections over TLS to the switch, with the
// test's CA and, where the test says, a client certificate (scripts/deps.sh installs
// socat). The switch sees a real TLS connection per sipp connection, answers on it, and
// sends its in-dialog requests back on it.

// testPKI is a CA and certificates made for one test, in its temporary directory only.
type testPKI struct {
	t      *testing.T
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{t: t, dir: t.TempDir(), serial: 1}
	var err error
	if p.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trackline e2e CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.write("ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

func (p *testPKI) write(name, typ string, der []byte) {
	p.t.Helper()
	if err := os.WriteFile(p.path(name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// issue writes <name>.pem and <name>.key: a certificate for cn (an IP SAN when it is an
// address, else a DNS SAN), valid until notAfter, for a client or a server. It returns the
// certificate's serial number.
func (p *testPKI) issue(name, cn string, client bool, notAfter time.Time) *big.Int {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	// Written whole, then renamed: the switch never reads half a file.
	for _, f := range []struct {
		name, typ string
		der       []byte
	}{{name + ".pem", "CERTIFICATE", der}, {name + ".key", "EC PRIVATE KEY", kder}} {
		p.write(f.name+".tmp", f.typ, f.der)
		if err := os.Rename(p.path(f.name+".tmp"), p.path(f.name)); err != nil {
			p.t.Fatal(err)
		}
	}
	return tmpl.SerialNumber
}

func (p *testPKI) pool() *x509.CertPool {
	cp := x509.NewCertPool()
	cp.AddCert(p.ca)
	return cp
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServerPatched is startServer with the YAML of c changed by patch before the start.
func startServerPatched(t *testing.T, c testConfig, patch func(string) string) *server {
	t.Helper()
	path := writeConfig(t, c)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(patch(string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerOn(t, path, t.TempDir())
	return s
}

// tlsRelay is a socat that takes TCP on a loopback port and carries each connection over
// TLS to the switch, verifying the switch against the test's CA, with the client
// certificate <cert>.pem when cert is not empty. Killed, by PID, when the test ends.
func tlsRelay(t *testing.T, pki *testPKI, tlsPort int, cert string) int {
	t.Helper()
	bin, err := exec.LookPath("socat")
	if err != nil {
		t.Fatalf("socat not found (scripts/deps.sh installs it): %v", err)
	}
	port := freeTCPPort(t)
	target := fmt.Sprintf("OPENSSL:127.0.0.1:%d,cafile=%s,verify=1,commonname=127.0.0.1", tlsPort, pki.path("ca.pem"))
	if cert != "" {
		target += ",cert=" + pki.path(cert+".pem") + ",key=" + pki.path(cert+".key")
	}
	cmd := exec.Command(bin, "-d", fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", port), target)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("socat (%s):\n%s", cert, stderr.String())
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("socat does not listen: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// servedSerial dials the switch's TLS port and returns the serial of the certificate served.
func servedSerial(t *testing.T, pki *testPKI, tlsPort int) *big.Int {
	t.Helper()
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort), &tls.Config{RootCAs: pki.pool()})
	if err != nil {
		t.Fatalf("dial the switch's TLS port: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestSIPOverTLSWithSipp: a trunk that must present a client certificate calls over TLS
// (sipp through socat); without the certificate it gets 403, with an expired one its
// handshake fails. SIGHUP with a new certificate on disk: new connections get it, and the
// call in progress across the reload ends normally.
func TestSIPOverTLSWithSipp(t *testing.T) {
	pki := newTestPKI(t)
	first := pki.issue("server", "127.0.0.1", false, time.Now().Add(2*time.Hour))
	pki.issue("carrier", "carrier.e2e", true, time.Now().Add(2*time.Hour))
	pki.issue("expired", "carrier.e2e", true, time.Now().Add(-time.Hour))
	tlsPort := freeTCPPort(t)

	line := startSipp(t, "line", sippSpec{scenario: "uas-answer.xml"})
	s := startServerPatched(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}}, func(y string) string {
		y = strings.Replace(y, "sip:\n", fmt.Sprintf("sip:\n  tls:\n    listen: \"127.0.0.1:%d\"\n    cert_file: %q\n    key_file: %q\n    client_ca_file: %q\n",
			tlsPort, pki.path("server.pem"), pki.path("server.key"), pki.path("ca.pem")), 1)
		return strings.Replace(y, "    - name: e2e\n", "    - name: e2e\n      client_cert: true\n      client_cert_name: carrier.e2e\n", 1)
	})
	if got := servedSerial(t, pki, tlsPort); got.Cmp(first) != 0 {
		t.Fatalf("serving serial %v, want %v", got, first)
	}

	// Without a client certificate the trunk is not accepted.
	anon := tlsRelay(t, pki, tlsPort, "")
	refused := startSipp(t, "refused", sippSpec{scenario: "uac-reject-403.xml", service: flyerNumber, tcp: true,
		remote: fmt.Sprintf("127.0.0.1:%d", anon)})
	refused.expectSuccess()

	// With it: a call that stays up across a reload.
	relay := tlsRelay(t, pki, tlsPort, "carrier")
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-answer.xml", service: flyerNumber, tcp: true, pauseMS: 3000,
		remote: fmt.Sprintf("127.0.0.1:%d", relay)})
	waitAnswered(t, trunk, 10*time.Second)
	second := pki.issue("server", "127.0.0.1", false, time.Now().Add(3*time.Hour))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, pki, tlsPort).Cmp(second) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the new certificate is not served after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	trunk.expectSuccess()
	call := finalCall(t, s, flyerNumber)
	if call.Disposition != "answered" || call.HangupBy != "caller" || call.TalkSeconds < 2.5 {
		t.Fatalf("the call across the reload: %+v", call)
	}
	// The trunk's BYE came over TLS, on the trunk's connection.
	if bye, ok := trunk.firstMessage(true, "BYE"); !ok || !strings.Contains(bye.start, "transport=tls") {
		t.Errorf("the trunk's BYE did not follow the switch's TLS Contact: %+v", bye)
	}

	// An expired client certificate: the handshake fails, and says why.
	expired, err := tls.LoadX509KeyPair(pki.path("expired.pem"), pki.path("expired.key"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort), &tls.Config{RootCAs: pki.pool(), Certificates: []tls.Certificate{expired}})
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Errorf("expired client certificate: %v", err)
	}
	if got := s.metric(t, `trackline_sip_tls_handshakes_total{result="client_cert_expired"}`); got != 1 {
		t.Errorf("client_cert_expired handshakes %v, want 1", got)
	}
	if got := s.metric(t, `trackline_sip_tls_reloads_total{result="ok"}`); got != 1 {
		t.Errorf("reloads %v, want 1", got)
	}
	line.expectSuccess()
}

// srtpTrunk is a trunk written in Go for the SRTP test: sipgo for its signalling, a UDP
// socket and pion/srtp for its audio.
type srtpTrunk struct {
	t    *testing.T
	ua   *sipgo.UserAgent
	dc   *sipgo.DialogClientCache
	rtp  *net.UDPConn
	key  [30]byte
	out  *srtp.Context
	in   *srtp.Context // keyed by the switch's answer
	seq  uint16
	ts   uint32
	ssrc uint32
}

func newSRTPTrunk(t *testing.T) *srtpTrunk {
	t.Helper()
	tr := &srtpTrunk{t: t, ssrc: 0x5EC0DE, seq: 1000, ts: 80000}
	rand.Read(tr.key[:])
	var err error
	if tr.out, err = srtp.CreateContext(tr.key[:16], tr.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80); err != nil {
		t.Fatal(err)
	}
	if tr.rtp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	tr.ua, _ = sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"))
	srv, _ := sipgo.NewServer(tr.ua)
	cli, _ := sipgo.NewClient(tr.ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port), sipgo.WithClientConnectionAddr(conn.LocalAddr().String()))
	tr.dc = sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: port}})
	srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { tr.dc.ReadBye(req, tx) })
	go srv.ServeUDP(conn)
	t.Cleanup(func() { tr.ua.Close(); conn.Close(); tr.rtp.Close() })
	// Requests go out from conn only once sipgo serves it.
	for i := 0; ; i++ {
		if c, err := tr.ua.TransportLayer().GetConnection("udp", conn.LocalAddr().String()); err == nil && c != nil {
			break
		}
		if i == 1000 {
			t.Fatal("sipgo does not serve the trunk's socket")
		}
		time.Sleep(time.Millisecond)
	}
	return tr
}

// call offers RTP/SAVP with the trunk's key to number at the switch and returns the answered
// dialog and where the switch wants the audio; the switch's key keys tr.in.
func (tr *srtpTrunk) call(sipAddr, number string) (*sipgo.DialogClientSession, *net.UDPAddr) {
	tr.t.Helper()
	host, port, _ := net.SplitHostPort(sipAddr)
	p, _ := strconv.Atoi(port)
	req := sipmsg.NewRequest(sipmsg.INVITE, sipmsg.Uri{Scheme: "sip", User: number, Host: host, Port: p})
	local := tr.rtp.LocalAddr().(*net.UDPAddr)
	offer := fmt.Sprintf("v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s\r\na=sendrecv\r\n",
		local.Port, base64.StdEncoding.EncodeToString(tr.key[:]))
	req.SetBody([]byte(offer))
	ct := sipmsg.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: "+31612345678", Host: "127.0.0.1"}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(10))
	req.AppendHeader(from)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := tr.dc.WriteInvite(ctx, req)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		tr.t.Fatalf("the SRTP call was not answered: %v", err)
	}
	if err := d.Ack(ctx); err != nil {
		tr.t.Fatal(err)
	}
	answer := string(d.InviteResponse.Body())
	m := regexp.MustCompile(`m=audio (\d+) RTP/SAVP 0`).FindStringSubmatch(answer)
	k := regexp.MustCompile(`a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)`).FindStringSubmatch(answer)
	if m == nil || k == nil {
		tr.t.Fatalf("the switch did not answer SRTP:\n%s", answer)
	}
	key, err := base64.StdEncoding.DecodeString(k[1])
	if err != nil || len(key) != 30 || string(key) == string(tr.key[:]) {
		tr.t.Fatalf("the switch's key %q", k[1])
	}
	if tr.in, err = srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80); err != nil {
		tr.t.Fatal(err)
	}
	ap, _ := strconv.Atoi(m[1])
	return d, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: ap}
}

// send encrypts one 20 ms PCMU frame with ctx and sends it to the switch.
func (tr *srtpTrunk) send(ctx *srtp.Context, to *net.UDPAddr, frame []byte) {
	tr.seq++
	tr.ts += 160
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: tr.seq, Timestamp: tr.ts, SSRC: tr.ssrc}, Payload: frame}
	b, _ := pkt.Marshal()
	enc, err := ctx.EncryptRTP(nil, b, nil)
	if err != nil {
		tr.t.Error(err)
		return
	}
	tr.rtp.WriteToUDP(enc, to)
}

// receive decrypts what the switch sends until the socket closes or d passes, and
// returns the PCMU payloads in order; a packet that does not decrypt fails the test.
func (tr *srtpTrunk) receive(d time.Duration, got chan<- []byte) {
	var audio []byte
	buf := make([]byte, 1500)
	tr.rtp.SetReadDeadline(time.Now().Add(d))
	for {
		n, err := tr.rtp.Read(buf)
		if err != nil {
			break
		}
		plain, err := tr.in.DecryptRTP(nil, buf[:n], nil)
		if err != nil {
			tr.t.Errorf("a packet from the switch does not decrypt: %v", err)
			continue
		}
		var p rtp.Packet
		if p.Unmarshal(plain) == nil {
			audio = append(audio, p.Payload...)
		}
	}
	got <- audio
}

// TestSRTPTrunkEndToEnd: a trunk offering SDES-SRTP talks to a plain business line (sipp)
// through the binary: each hears the other, the recording holds both sides decrypted, and
// packets under a wrong key are dropped and counted.
func TestSRTPTrunkEndToEnd(t *testing.T) {
	callerAudio := g711.Encode(nil, testSignal(3*8000, 5), g711.ULaw)
	calleeAudio := g711.Encode(nil, testSignal(3*8000, 6), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true, pauseMS: 200,
		files: map[string][]byte{"callee.pcap": pcapOf(calleeAudio, 0xCA11EE)}})
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true})
	tr := newSRTPTrunk(t)
	d, toSwitch := tr.call(s.SIP, flyerNumber)
	heard := make(chan []byte, 1)
	go tr.receive(6*time.Second, heard)

	var wrong [30]byte
	rand.Read(wrong[:])
	bad, _ := srtp.CreateContext(wrong[:16], wrong[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	const badPackets = 10
	tick := time.NewTicker(20 * time.Millisecond)
	for i := 0; i+160 <= len(callerAudio); i += 160 {
		<-tick.C
		tr.send(tr.out, toSwitch, callerAudio[i:i+160])
		if i/160 < badPackets {
			// Under a wrong key, with the sequence number the right key uses next: it must
			// not take that number from the trunk's next packet.
			tr.send(bad, toSwitch, make([]byte, 160))
			tr.seq--
			tr.ts -= 160
		}
	}
	tick.Stop()
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := d.Bye(ctx); err != nil {
		t.Errorf("BYE: %v", err)
	}
	cancel()
	line.expectSuccess()

	call := finalCall(t, s, flyerNumber)
	if call.Disposition != "answered" || call.RecordingID == "" {
		t.Fatalf("call record: %+v", call)
	}
	if got := s.metric(t, `trackline_rtp_dropped_total{reason="srtp_auth"}`); got != badPackets {
		t.Errorf("srtp_auth drops %v, want %d", got, badPackets)
	}
	if got := s.metric(t, `trackline_rtp_dropped_total{reason="srtp_replay"}`); got != 0 {
		t.Errorf("srtp_replay drops %v, want 0", got)
	}
	// Run as root the switch forwards plain bridged calls in the kernel; an SRTP call stays
	// in the packet loops.
	if s.metric(t, "trackline_media_kernel_path") == 1 {
		if got := s.metric(t, "trackline_media_kernel_packets_total"); got != 0 {
			t.Errorf("the kernel path forwarded %v packets of the SRTP call", got)
		}
	} else {
		t.Log("the kernel path is not available here (not root?)")
	}
	if call.Media == nil || call.Media.FromCaller.Packets != uint64(len(callerAudio)/160) {
		t.Errorf("packets from the trunk: %+v, want the %d sent under its key", call.Media, len(callerAudio)/160)
	}
	code, _, data := s.getRecording(t, call.RecordingID, nil)
	if code != 200 {
		t.Fatalf("GET recording: %d", code)
	}
	w := parseWAV(t, data)
	if c, lag := bestCorrelation(w.left, decodeULaw(callerAudio)); c < 0.9 {
		t.Errorf("left channel vs the trunk's (decrypted) audio: correlation %.3f at %d", c, lag)
	}
	if c, lag := bestCorrelation(w.right, decodeULaw(calleeAudio)); c < 0.9 {
		t.Errorf("right channel vs the business line's audio: correlation %.3f at %d", c, lag)
	}
	audio := <-heard
	if c, lag := bestCorrelation(decodeULaw(audio), decodeULaw(calleeAudio[:8000])); c < 0.9 {
		t.Errorf("what the trunk heard (%d bytes, decrypted) vs the business line's audio: correlation %.3f at %d", len(audio), c, lag)
	}
}
