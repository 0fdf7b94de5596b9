package sip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
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
// before it lets a call through to the business line behind it.
func proxyChallenging(user, pass string) lineBehaviour {
	return func(p *peer, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		h := req.GetHeader("Proxy-Authorization")
		if h == nil {
			chal := digest.Challenge{Realm: "proxy", Nonce: "n0nce", Algorithm: "MD5"}
			res := sipmsg.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
			res.AppendHeader(sipmsg.NewHeader("Proxy-Authenticate", chal.String()))
			tx.Respond(res)
			<-tx.Done()
			return
		}
		cred, err := digest.ParseCredentials(h.Value())
		want, _ := digest.Digest(&digest.Challenge{Realm: "proxy", Nonce: "n0nce", Algorithm: "MD5"},
			digest.Options{Method: "INVITE", URI: cred.URI, Username: user, Password: pass})
		if err != nil || cred.Username != user || want.Response != cred.Response {
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
