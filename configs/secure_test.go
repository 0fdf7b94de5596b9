package configs

import (
	"strings"
	"testing"
	"time"
)

func TestSecureSIPSettings(t *testing.T) {
	c, err := Parse([]byte(`
sip:
  tls: {listen: "127.0.0.1:5061", cert_file: /etc/t/sip.crt, key_file: /etc/t/sip.key, client_ca_file: /etc/t/ca.pem}
  digest: {nonce_lifetime: 2m, max_failures: 5, failure_window: 30s, ban: 10m}
  trunks:
    - name: carrier
      client_cert: true
      client_cert_name: sbc.carrier.example
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.TLS.Listen != "127.0.0.1:5061" || !c.SIP.Trunks[0].ClientCert || c.SIP.Trunks[0].ClientCertName != "sbc.carrier.example" ||
		c.SIP.Digest.MaxFailures != 5 || c.SIP.Digest.Ban != 10*time.Minute {
		t.Fatalf("%+v %+v", c.SIP.TLS, c.SIP.Trunks)
	}

	_, err = Parse([]byte(`
sip:
  tls: {listen: "5061", handshake_timeout: 2m}
  digest: {nonce_lifetime: 1s, max_failures: -1, ban: 200h}
  trunks:
    - name: carrier
      sources: ["192.0.2.1"]
      client_cert: true
    - name: nameless
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`sip.tls.listen: "5061" is not host:port`,
		"sip.tls: cert_file and key_file are needed with listen",
		"sip.tls.handshake_timeout:",
		"sip.trunks[0]: client_cert and client_cert_name need sip.tls.listen and sip.tls.client_ca_file",
		"sip.trunks[1].sources: must list at least one address or CIDR",
		"sip.digest.nonce_lifetime:",
		"sip.digest.max_failures:",
		"sip.digest.ban:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
