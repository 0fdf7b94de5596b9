package configs

import (
	"fmt"
	"net"
	"time"
)

// SIPTLS configures SIP over TLS (docs/security.md). Empty Listen: no TLS.
type SIPTLS struct {
	Listen   string `yaml:"listen"`    // host:port, usually :5061
	CertFile string `yaml:"cert_file"` // PEM chain, leaf first; read again on SIGHUP
	KeyFile  string `yaml:"key_file"`  // PEM private key; read again on SIGHUP
	// ClientCAFile: PEM CAs that trunks' client certificates are verified against (mutual
	// TLS); trunks with client_cert need it.
	ClientCAFile     string        `yaml:"client_ca_file"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"` // default 10s
}

// SIPDigest limits the digest authentication of trunks with credentials.
type SIPDigest struct {
	NonceLifetime time.Duration `yaml:"nonce_lifetime"` // default 5m
	MaxFailures   int           `yaml:"max_failures"`   // failures of one source within failure_window that block it (default 10)
	FailureWindow time.Duration `yaml:"failure_window"` // default 1m
	Ban           time.Duration `yaml:"ban"`            // how long a blocked source stays blocked (default 5m)
}

// checkSecure checks sip.tls, sip.digest and the trunks' client certificate settings.
func (c *Config) checkSecure(add adder) {
	t := c.SIP.TLS
	if t.Listen != "" {
		if _, port, err := net.SplitHostPort(t.Listen); err != nil || !digits(port, 1, 5) {
			add("sip.tls.listen", "%q is not host:port", t.Listen)
		}
		if t.CertFile == "" || t.KeyFile == "" {
			add("sip.tls", "cert_file and key_file are needed with listen")
		}
	}
	if t.HandshakeTimeout < 0 || t.HandshakeTimeout > time.Minute {
		add("sip.tls.handshake_timeout", "must be between 0 (10s) and 1m")
	}
	for i, tr := range c.SIP.Trunks {
		if (tr.ClientCert || tr.ClientCertName != "") && (t.Listen == "" || t.ClientCAFile == "") {
			add(fmt.Sprintf("sip.trunks[%d]", i), "client_cert and client_cert_name need sip.tls.listen and sip.tls.client_ca_file")
		}
	}
	d := c.SIP.Digest
	for _, v := range []struct {
		path   string
		v      time.Duration
		lo, hi time.Duration
	}{{"sip.digest.nonce_lifetime", d.NonceLifetime, 10 * time.Second, time.Hour},
		{"sip.digest.failure_window", d.FailureWindow, time.Second, 24 * time.Hour},
		{"sip.digest.ban", d.Ban, time.Second, 7 * 24 * time.Hour}} {
		if v.v != 0 && (v.v < v.lo || v.v > v.hi) {
			add(v.path, "must be between %v and %v", v.lo, v.hi)
		}
	}
	if d.MaxFailures < 0 || d.MaxFailures > 10_000 {
		add("sip.digest.max_failures", "must be between 1 and 10000 (0: 10)")
	}
}
