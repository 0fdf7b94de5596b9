package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/prometheus/client_golang/prometheus"
)

// Digest authentication of inbound trunks (RFC 3261 §22, RFC 8760).
//
// What is checked, in order: the source is not blocked for failing too often; the
// Authorization header parses, names our realm, the trunk's user and an algorithm we offer;
// its uri is the Request-URI (RFC 3261 §22.4, RFC 2617 §3.2.2.5); the nonce is one we issued
// and has not expired; the response is right; and the nonce count is higher than any the
// nonce was used with before (RFC 7616 §3.4), so a captured request cannot be replayed.

const realm = "trackline"

// Defaults of the digest limits.
const (
	defaultNonceLifetime = 5 * time.Minute
	defaultAuthFailures  = 10
	defaultAuthWindow    = time.Minute
	defaultAuthBan       = 5 * time.Minute
	maxNoncesTracked     = 200_000 // nonces in use at once; beyond it the oldest go first
	maxSourcesTracked    = 100_000 // sources with failures at once
)

// AuthConfig limits digest authentication.
type AuthConfig struct {
	NonceLifetime time.Duration // how long an issued nonce is accepted (default 5 min)
	MaxFailures   int           // failed attempts of one source within Window before it is blocked (default 10)
	Window        time.Duration // default 1 min
	Ban           time.Duration // how long a blocked source stays blocked (default 5 min)
}

func (c *AuthConfig) defaults() {
	if c.NonceLifetime <= 0 {
		c.NonceLifetime = defaultNonceLifetime
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = defaultAuthFailures
	}
	if c.Window <= 0 {
		c.Window = defaultAuthWindow
	}
	if c.Ban <= 0 {
		c.Ban = defaultAuthBan
	}
}

// Why an attempt failed, the label of trackline_sip_auth_failures_total.
const (
	authMalformed = "malformed"  // the Authorization header does not parse, or names another realm or algorithm
	authUser      = "user"       // a user other than the trunk's
	authURI       = "uri"        // uri is not the Request-URI
	authNonce     = "nonce"      // a nonce we did not issue
	authResponse  = "response"   // a wrong password
	authReplay    = "replay"     // a nonce count already used
	authBlocked   = "blocked"    // the source failed too often and is blocked
	authStale     = "stale"      // a right response on an expired nonce: challenged again, not counted against the source
	authChallenge = "challenged" // no credentials yet: challenged (not a failure)
)

// digestAuth issues nonces and checks credentials. Nonces are stateless (issue time, random,
// HMAC with a process secret) until first used; from then on the highest nonce count used
// with each is kept until it expires.
type digestAuth struct {
	cfg AuthConfig
	key [32]byte

	mu    sync.Mutex
	used  map[string]nonceUse
	fails map[netip.Addr]*sourceFailures

	attempts *prometheus.CounterVec
}

type nonceUse struct {
	nc      int // highest nonce count used; 0: used without qop (once only)
	expires time.Time
}

type sourceFailures struct {
	count   int
	since   time.Time // start of the current window
	blocked time.Time // blocked until
}

func newDigestAuth(cfg AuthConfig) *digestAuth {
	cfg.defaults()
	d := &digestAuth{cfg: cfg, used: make(map[string]nonceUse), fails: make(map[netip.Addr]*sourceFailures),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_sip_auth_total",
			Help: "Digest authentication attempts of inbound trunks that did not succeed, by outcome: challenged (no credentials yet), stale, and the failures malformed, user, uri, nonce, response, replay, blocked.",
		}, []string{"outcome"}),
	}
	rand.Read(d.key[:])
	return d
}

// nonce makes a nonce: issue time (8 bytes), random (8), HMAC-SHA-256 of both (16).
func (d *digestAuth) nonce(now time.Time) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	rand.Read(b[8:16])
	m := hmac.New(sha256.New, d.key[:])
	m.Write(b[:16])
	copy(b[16:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// issued returns when a nonce was issued, and false if we did not issue it.
func (d *digestAuth) issued(nonce string) (time.Time, bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 32 {
		return time.Time{}, false
	}
	m := hmac.New(sha256.New, d.key[:])
	m.Write(b[:16])
	if !hmac.Equal(m.Sum(nil)[:16], b[16:]) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), true
}

// challenges are the WWW-Authenticate headers of a 401: RFC 8760 §2.4, SHA-256 first, then
// MD5 for peers that know no better; both with the same nonce and qop=auth.
func (d *digestAuth) challenges(now time.Time, stale bool) []sipmsg.Header {
	nonce := d.nonce(now)
	hdrs := make([]sipmsg.Header, 0, 2)
	for _, alg := range [...]string{"SHA-256", "MD5"} {
		c := digest.Challenge{Realm: realm, Nonce: nonce, Algorithm: alg, QOP: []string{"auth"}, Stale: stale}
		hdrs = append(hdrs, sipmsg.NewHeader("WWW-Authenticate", c.String()))
	}
	return hdrs
}

// check authorizes req for trunk t. It returns nil, or the refusal to answer with.
func (d *digestAuth) check(req *sipmsg.Request, t *Trunk, now time.Time) *refusal {
	if t.Password == "" {
		return nil
	}
	src := sourceIP(req.Source())
	if d.isBlocked(src, now) {
		d.attempts.WithLabelValues(authBlocked).Inc()
		return &refusal{code: 403, reason: "Too Many Failed Authentications"}
	}
	h := req.GetHeader("Authorization")
	if h == nil {
		d.attempts.WithLabelValues(authChallenge).Inc()
		return &refusal{code: 401, reason: "Unauthorized", hdrs: d.challenges(now, false)}
	}
	fail := func(outcome string, code int, reason string, hdrs ...sipmsg.Header) *refusal {
		d.attempts.WithLabelValues(outcome).Inc()
		d.failed(src, now)
		return &refusal{code: code, reason: reason, hdrs: hdrs}
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Realm != realm {
		return fail(authMalformed, 400, "Malformed Authorization")
	}
	alg := strings.ToUpper(cred.Algorithm)
	if alg != "SHA-256" && alg != "MD5" && alg != "" {
		return fail(authMalformed, 401, "Unauthorized", d.challenges(now, false)...)
	}
	if cred.Username != t.Username {
		return fail(authUser, 403, "Forbidden")
	}
	if !sameURI(cred.URI, &req.Recipient) {
		return fail(authURI, 400, "Authorization URI Mismatch")
	}
	issued, ok := d.issued(cred.Nonce)
	if !ok {
		return fail(authNonce, 401, "Unauthorized", d.challenges(now, false)...)
	}
	qop := cred.QOP
	if qop != "" && qop != "auth" {
		return fail(authMalformed, 400, "Malformed Authorization")
	}
	nc := 0
	if qop != "" {
		if nc = cred.Nc; nc <= 0 || cred.Cnonce == "" {
			return fail(authMalformed, 400, "Malformed Authorization")
		}
	}
	chal := digest.Challenge{Realm: realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm}
	if qop != "" {
		chal.QOP = []string{qop}
	}
	want, err := digest.Digest(&chal, digest.Options{Method: string(req.Method), URI: cred.URI, Username: t.Username,
		Password: t.Password, Cnonce: cred.Cnonce, Count: nc})
	if err != nil || subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) != 1 {
		return fail(authResponse, 403, "Forbidden")
	}
	expires := issued.Add(d.cfg.NonceLifetime)
	if !now.Before(expires) || issued.After(now.Add(time.Minute)) {
		// RFC 2617 §3.2.1: the password was right, only the nonce is old; ask again.
		d.attempts.WithLabelValues(authStale).Inc()
		return &refusal{code: 401, reason: "Unauthorized", hdrs: d.challenges(now, true)}
	}
	if !d.use(cred.Nonce, nc, expires, now) {
		return fail(authReplay, 401, "Unauthorized", d.challenges(now, false)...)
	}
	return nil
}

// use records that nonce was used with count nc and tells whether that is fresh: a count
// higher than any before, or (without qop, nc 0) the nonce's first use.
func (d *digestAuth) use(nonce string, nc int, expires, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.used[nonce]; ok {
		if nc == 0 || nc <= u.nc {
			return false
		}
		d.used[nonce] = nonceUse{nc: nc, expires: u.expires}
		return true
	}
	if len(d.used) >= maxNoncesTracked {
		d.prune(now)
	}
	if len(d.used) >= maxNoncesTracked {
		// Still full of live nonces: refuse rather than forget one (which would let it be
		// replayed). The client gets a new challenge.
		return false
	}
	d.used[nonce] = nonceUse{nc: nc, expires: expires}
	return true
}

// prune drops expired nonces and sources whose window and block are over; d.mu is held.
func (d *digestAuth) prune(now time.Time) {
	for k, u := range d.used {
		if !now.Before(u.expires) {
			delete(d.used, k)
		}
	}
	for k, f := range d.fails {
		if now.Sub(f.since) >= d.cfg.Window && !now.Before(f.blocked) {
			delete(d.fails, k)
		}
	}
}

// failed counts a failed attempt of src; the MaxFailures-th within a window blocks it for Ban.
func (d *digestAuth) failed(src netip.Addr, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.fails[src]
	if f == nil {
		if len(d.fails) >= maxSourcesTracked {
			d.prune(now)
			if len(d.fails) >= maxSourcesTracked {
				return
			}
		}
		f = &sourceFailures{since: now}
		d.fails[src] = f
	}
	if now.Sub(f.since) >= d.cfg.Window {
		f.count, f.since = 0, now
	}
	f.count++
	if f.count >= d.cfg.MaxFailures {
		f.blocked = now.Add(d.cfg.Ban)
		f.count, f.since = 0, now
	}
}

func (d *digestAuth) isBlocked(src netip.Addr, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.fails[src]
	return f != nil && now.Before(f.blocked)
}

// sameURI tells whether a digest uri names the Request-URI (RFC 3261 §19.1.4 comparison of
// scheme, user, host and port; parameters and headers aside).
func sameURI(credURI string, ru *sipmsg.Uri) bool {
	if credURI == ru.String() {
		return true
	}
	var u sipmsg.Uri
	if err := sipmsg.ParseUri(credURI, &u); err != nil {
		return false
	}
	return strings.EqualFold(scheme(u.Scheme), scheme(ru.Scheme)) && u.User == ru.User &&
		strings.EqualFold(u.Host, ru.Host) && uriPort(&u) == uriPort(ru)
}

func scheme(s string) string {
	if s == "" {
		return "sip"
	}
	return s
}

// uriPort is a URI's port, with the scheme's default (RFC 3261 §19.1.2) when it has none.
func uriPort(u *sipmsg.Uri) int {
	if u.Port != 0 {
		return u.Port
	}
	if strings.EqualFold(u.Scheme, "sips") {
		return 5061
	}
	return 5060
}

func (d *digestAuth) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	if err := r.Register(d.attempts); err != nil {
		return fmt.Errorf("register sip auth metrics: %w", err)
	}
	return nil
}
