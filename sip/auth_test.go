package sip

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/store"
)

// callWith places a call that answers digest challenges with the given credentials.
func (e *env) callWith(number, user, pass string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := e.invite(ctx, number, nil)
	if err != nil {
		return err
	}
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: user, Password: pass}); err != nil {
		return err
	}
	d.Ack(ctx)
	return d.Bye(ctx)
}

func TestTrunkDigestAuthentication(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, trunkUser: "trunk", trunkPass: "s3cret-trunk"})
	tests := []struct {
		name       string
		user, pass string
		want       int
	}{
		{"no credentials", "", "", 401},
		{"wrong password", "trunk", "guess", 403},
		{"wrong user", "other", "s3cret-trunk", 403},
		{"right credentials", "trunk", "s3cret-trunk", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.callWith("+31850000101", tt.user, tt.pass)
			if got := statusOf(err); got != tt.want || tt.want == 0 && err != nil {
				t.Fatalf("got %d (%v), want %d", got, err, tt.want)
			}
		})
	}
}

// proxyChallenging answers like an outbound proxy that wants digest credentials (407)
// before it lets a call through to the business line behind it. It offers SHA-256 before
// MD5 (RFC 8760) and accepts only SHA-256 over the Request-URI.
func proxyChallenging(user, pass string) lineBehaviour {
	return func(p *peer, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		h := req.GetHeader("Proxy-Authorization")
		if h == nil {
			res := sipmsg.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
			for _, alg := range []string{"SHA-256", "MD5"} {
				chal := digest.Challenge{Realm: "proxy", Nonce: "n0nce", Algorithm: alg, QOP: []string{"auth"}}
				res.AppendHeader(sipmsg.NewHeader("Proxy-Authenticate", chal.String()))
			}
			tx.Respond(res)
			<-tx.Done()
			return
		}
		cred, err := digest.ParseCredentials(h.Value())
		if err != nil || cred.Algorithm != "SHA-256" || cred.URI != req.Recipient.String() {
			p.note(fmt.Sprintf("bad credentials %+v", cred))
			tx.Respond(sipmsg.NewResponseFromRequest(req, 403, "Forbidden", nil))
			return
		}
		want, _ := digest.Digest(&digest.Challenge{Realm: "proxy", Nonce: "n0nce", Algorithm: "SHA-256", QOP: []string{"auth"}},
			digest.Options{Method: "INVITE", URI: cred.URI, Username: user, Password: pass, Cnonce: cred.Cnonce, Count: cred.Nc})
		if cred.Username != user || want.Response != cred.Response {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 403, "Forbidden", nil))
			return
		}
		p.note("authorized")
		answer(0)(p, req, tx)
	}
}

func TestOutboundProxyWithDigest(t *testing.T) {
	proxy := newPeer(t, "127.0.0.1", proxyChallenging("switch", "pr0xy"))
	// The business line's host does not resolve: only the proxy can reach it.
	e := newEnv(t, envOpts{lines: []string{"sip:+31852087972@line.invalid"}, proxy: "sip:" + proxy.addr,
		proxyUser: "switch", proxyPass: "pr0xy"})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatalf("call through the proxy: %v", err)
	}
	hangup(t, d)
	proxy.waitHistory("authorized")
	if rec := e.record(); rec.Disposition != store.DispAnswered || rec.BusinessLine != "sip:+31852087972@line.invalid" {
		t.Fatalf("record %+v", rec)
	}
}

func TestDialledNumberFromToOnlyWhenConfigured(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	for _, fallback := range []bool{false, true} {
		e := newEnv(t, envOpts{lines: []string{lineURI(line)}, toFallback: fallback})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		uri := sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.sw.Addr().Port())} // no user
		req := sipmsg.NewRequest(sipmsg.INVITE, uri)
		req.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: "0850000101", Host: "127.0.0.1"}})
		d, err := e.trunk.uac.WriteInvite(ctx, req)
		if err == nil {
			if err = d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err == nil {
				err = d.Ack(ctx)
			}
		}
		cancel()
		if fallback {
			if err != nil {
				t.Fatalf("with to_fallback: %v", err)
			}
			hangup(t, d)
			if rec := e.record(); rec.Dialled != "+31850000101" {
				t.Fatalf("record %+v", rec)
			}
		} else if got := statusOf(err); got != 404 {
			t.Fatalf("without to_fallback: %d (%v)", got, err)
		}
	}
	if n := strings.Count(line.history(), "INVITE"); n != 1 {
		t.Fatalf("business line rang %d times", n)
	}
}

// inviteOnce sends one INVITE to number from the trunk, with authz as its Authorization
// (none when empty), and returns the final response. The numbers used here are not in the
// pool: past the digest check the switch answers 404.
func (e *env) inviteOnce(number, authz string) *sipmsg.Response {
	e.t.Helper()
	req := sipmsg.NewRequest(sipmsg.INVITE, e.ruri(number))
	req.SetBody([]byte(offerSDP))
	ct := sipmsg.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: portOf(e.trunk.addr)}})
	if authz != "" {
		req.AppendHeader(sipmsg.NewHeader("Authorization", authz))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := e.trunk.cli.Do(ctx, req)
	if err != nil {
		e.t.Fatalf("invite: %v", err)
	}
	return res
}

func (e *env) ruri(number string) sipmsg.Uri {
	return sipmsg.Uri{Scheme: "sip", User: number, Host: "127.0.0.1", Port: int(e.sw.Addr().Port())}
}

// credentials answers the i-th WWW-Authenticate challenge of res for uri with count nc
// (qop dropped when noQOP).
func credentials(t *testing.T, res *sipmsg.Response, i int, uri, user, pass string, nc int, noQOP bool) string {
	t.Helper()
	hs := res.GetHeaders("WWW-Authenticate")
	if len(hs) <= i {
		t.Fatalf("%d challenges in %d %s", len(hs), res.StatusCode, res.Reason)
	}
	chal, err := digest.ParseChallenge(hs[i].Value())
	if err != nil {
		t.Fatal(err)
	}
	if noQOP {
		chal.QOP = nil
	}
	cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: uri, Username: user, Password: pass, Count: nc, Cnonce: "c0ffee"})
	if err != nil {
		t.Fatal(err)
	}
	return cred.String()
}

func TestTrunkDigestChecks(t *testing.T) {
	e := newEnv(t, envOpts{lines: []string{"sip:+31852087972@127.0.0.1:9"}, trunkUser: "trunk", trunkPass: "s3cret-trunk"})
	const number = "+31850000999" // not in the pool: 404 once through the digest check
	ru := e.ruri(number)
	uri := ru.String()
	cred := func(res *sipmsg.Response, i int, uri string, nc int) string {
		return credentials(t, res, i, uri, "trunk", "s3cret-trunk", nc, false)
	}
	expect := func(step string, res *sipmsg.Response, code int) {
		t.Helper()
		if res.StatusCode != code {
			t.Fatalf("%s: got %d %s, want %d", step, res.StatusCode, res.Reason, code)
		}
	}

	// RFC 8760 §2.4: SHA-256 offered first, MD5 second, both with qop=auth.
	chal := e.inviteOnce(number, "")
	expect("no credentials", chal, 401)
	hs := chal.GetHeaders("WWW-Authenticate")
	if len(hs) != 2 || !strings.Contains(hs[0].Value(), "algorithm=SHA-256") || !strings.Contains(hs[1].Value(), "algorithm=MD5") ||
		!strings.Contains(hs[0].Value(), `qop="auth"`) {
		t.Fatalf("challenges: %v", hs)
	}

	sha1 := cred(chal, 0, uri, 1)
	expect("SHA-256, nc 1", e.inviteOnce(number, sha1), 404)
	expect("SHA-256, nc 1 replayed", e.inviteOnce(number, sha1), 401)
	expect("SHA-256, nc 2", e.inviteOnce(number, cred(chal, 0, uri, 2)), 404)
	expect("SHA-256, nc 2 replayed", e.inviteOnce(number, cred(chal, 0, uri, 2)), 401)
	expect("SHA-256, nc 1 after 2", e.inviteOnce(number, cred(chal, 0, uri, 1)), 401)

	chal = e.inviteOnce(number, "")
	expect("MD5, nc 1", e.inviteOnce(number, cred(chal, 1, uri, 1)), 404)

	// The uri must be the Request-URI: credentials captured for another number do not carry over.
	chal = e.inviteOnce(number, "")
	other := e.ruri("+31850000998")
	res := e.inviteOnce(number, cred(chal, 0, other.String(), 1))
	expect("uri of another request", res, 400)
	if res.Reason != "Authorization URI Mismatch" {
		t.Fatalf("reason %q", res.Reason)
	}

	// RFC 2069 style (no qop, no count): the nonce is good for one request.
	chal = e.inviteOnce(number, "")
	noqop := credentials(t, chal, 1, uri, "trunk", "s3cret-trunk", 0, true)
	expect("no qop", e.inviteOnce(number, noqop), 404)
	expect("no qop replayed", e.inviteOnce(number, noqop), 401)

	// A nonce we never issued.
	forged := strings.Replace(sha1, "nonce=\"", "nonce=\"AAAA", 1)
	expect("forged nonce", e.inviteOnce(number, forged), 401)

	for outcome, want := range map[string]float64{"replay": 4, "uri": 1, "nonce": 1, "challenged": 4} {
		if got := testutil.ToFloat64(e.sw.auth.attempts.WithLabelValues(outcome)); got != want {
			t.Errorf("trackline_sip_auth_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

func TestTrunkDigestFailuresBlockTheSource(t *testing.T) {
	e := newEnv(t, envOpts{lines: []string{"sip:+31852087972@127.0.0.1:9"}, trunkUser: "trunk", trunkPass: "s3cret-trunk",
		auth: AuthConfig{MaxFailures: 3, Window: time.Minute, Ban: time.Minute}})
	const number = "+31850000999"
	ru := e.ruri(number)
	uri := ru.String()
	for i := range 3 {
		chal := e.inviteOnce(number, "")
		if res := e.inviteOnce(number, credentials(t, chal, 0, uri, "trunk", "guess", 1, false)); res.StatusCode != 403 {
			t.Fatalf("wrong password %d: %d %s", i, res.StatusCode, res.Reason)
		}
	}
	// Blocked: not even challenged any more.
	if res := e.inviteOnce(number, ""); res.StatusCode != 403 || res.Reason != "Too Many Failed Authentications" {
		t.Fatalf("blocked source: %d %s", res.StatusCode, res.Reason)
	}
}

// TestDigestLimitsExpire runs the nonce lifetime and the failure block on a clock of its own.
func TestDigestLimitsExpire(t *testing.T) {
	d := newDigestAuth(AuthConfig{NonceLifetime: time.Minute, MaxFailures: 2, Window: time.Minute, Ban: 2 * time.Minute})
	trunk := &Trunk{Username: "trunk", Password: "pw"}
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	ru := sipmsg.Uri{Scheme: "sip", User: "+31850000999", Host: "192.0.2.1"}
	req := func(nonce, pass string, nc int) *sipmsg.Request {
		r := sipmsg.NewRequest(sipmsg.INVITE, ru)
		r.SetSource("192.0.2.7:5060")
		chal := digest.Challenge{Realm: realm, Nonce: nonce, Algorithm: "SHA-256", QOP: []string{"auth"}}
		cred, _ := digest.Digest(&chal, digest.Options{Method: "INVITE", URI: ru.String(), Username: "trunk", Password: pass, Count: nc})
		r.AppendHeader(sipmsg.NewHeader("Authorization", cred.String()))
		return r
	}

	// An expired nonce with the right password: challenged again, marked stale.
	n := d.nonce(t0)
	if no := d.check(req(n, "pw", 1), trunk, t0.Add(59*time.Second)); no != nil {
		t.Fatalf("fresh nonce refused: %+v", no)
	}
	no := d.check(req(n, "pw", 2), trunk, t0.Add(61*time.Second))
	if no == nil || no.code != 401 || !strings.Contains(no.hdrs[0].Value(), "stale=true") {
		t.Fatalf("expired nonce: %+v", no)
	}

	// Two failures block the source for two minutes, then it may try again.
	t1 := t0.Add(10 * time.Minute)
	for range 2 {
		if no := d.check(req(d.nonce(t1), "guess", 1), trunk, t1); no == nil || no.code != 403 {
			t.Fatalf("wrong password: %+v", no)
		}
	}
	if no := d.check(req(d.nonce(t1), "pw", 1), trunk, t1.Add(119*time.Second)); no == nil || no.reason != "Too Many Failed Authentications" {
		t.Fatalf("blocked source: %+v", no)
	}
	t2 := t1.Add(121 * time.Second)
	if no := d.check(req(d.nonce(t2), "pw", 1), trunk, t2); no != nil {
		t.Fatalf("after the block: %+v", no)
	}
	// Another source was never blocked.
	other := req(d.nonce(t1), "pw", 1)
	other.SetSource("192.0.2.8:5060")
	if no := d.check(other, trunk, t1); no != nil {
		t.Fatalf("other source: %+v", no)
	}
	d.mu.Lock()
	d.prune(t2.Add(time.Hour))
	left := len(d.used) + len(d.fails)
	d.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d entries left after everything expired", left)
	}
}

// FuzzDigestCheck: any Authorization value gets an answer, never a panic, and only the
// right credentials pass.
func FuzzDigestCheck(f *testing.F) {
	d := newDigestAuth(AuthConfig{MaxFailures: 1 << 30})
	trunk := &Trunk{Username: "trunk", Password: "pw"}
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	ru := sipmsg.Uri{Scheme: "sip", User: "+31850000999", Host: "192.0.2.1"}
	nonce := d.nonce(now)
	good, _ := digest.Digest(&digest.Challenge{Realm: realm, Nonce: nonce, Algorithm: "SHA-256", QOP: []string{"auth"}},
		digest.Options{Method: "INVITE", URI: ru.String(), Username: "trunk", Password: "pw", Count: 1})
	for _, s := range []string{good.String(), "Digest", "Basic abc", `Digest username="trunk", nc=zz`, `Digest realm="trackline", uri="sip:%", nonce=""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := sipmsg.NewRequest(sipmsg.INVITE, ru)
		r.SetSource("192.0.2.7:5060")
		r.AppendHeader(sipmsg.NewHeader("Authorization", v))
		no := d.check(r, trunk, now)
		if no == nil && v != good.String() {
			// Another spelling of the right credentials (the order or quoting of the
			// parameters) may pass once; anything that passes must carry the right response.
			if cred, err := digest.ParseCredentials(v); err != nil || cred.Response != good.Response {
				t.Fatalf("%q was accepted", v)
			}
		}
	})
}
