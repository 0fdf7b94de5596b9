package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

const offerSDP = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
const answerSDP = "v=0\r\no=line 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"

// peer is a sipgo user agent on a UDP socket of its own: the trunk or a business line.
type peer struct {
	t    testing.TB
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	conn net.PacketConn
	addr string
	uas  *sipgo.DialogServerCache
	uac  *sipgo.DialogClientCache

	mu   sync.Mutex
	seen []string // methods received and statuses of responses received, in order
}

func newPeer(t testing.TB, ip string, line lineBehaviour) *peer {
	t.Helper()
	conn, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, conn: conn, addr: conn.LocalAddr().String()}
	host, port, _ := net.SplitHostPort(p.addr)
	var portN int
	fmt.Sscan(port, &portN)
	p.ua, _ = sipgo.NewUA(sipgo.WithUserAgentHostname(host))
	p.srv, _ = sipgo.NewServer(p.ua)
	p.cli, _ = sipgo.NewClient(p.ua, sipgo.WithClientHostname(host), sipgo.WithClientPort(portN), sipgo.WithClientConnectionAddr(p.addr))
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: host, Port: portN}}
	p.uas = sipgo.NewDialogServerCache(p.cli, contact)
	p.uac = sipgo.NewDialogClientCache(p.cli, contact)
	p.srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { p.note("ACK"); p.uas.ReadAck(req, tx) })
	p.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		p.note("BYE")
		if err := p.uas.ReadBye(req, tx); err == nil {
			return
		}
		if err := p.uac.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 481, "No dialog", nil))
		}
	})
	p.srv.OnCancel(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { p.note("CANCEL") })
	p.srv.OnInfo(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		p.note("INFO " + string(req.Body()))
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	if line != nil {
		p.serveLine(line)
	}
	go p.srv.ServeUDP(conn)
	waitServing(p.ua, p.addr)
	t.Cleanup(func() { p.ua.Close(); conn.Close() })
	return p
}

func (p *peer) note(s string) {
	p.mu.Lock()
	p.seen = append(p.seen, s)
	p.mu.Unlock()
}

func (p *peer) history() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.seen, " ")
}

// waitHistory waits until the peer's history contains want.
func (p *peer) waitHistory(want string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.history(), want) {
		if time.Now().After(deadline) {
			p.t.Fatalf("peer %s: history %q lacks %q", p.addr, p.history(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lineBehaviour is how a business line answers an INVITE.
type lineBehaviour func(p *peer, req *sipmsg.Request, tx sipmsg.ServerTransaction)

func answer(hangupAfter time.Duration) lineBehaviour {
	return func(p *peer, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		d, err := p.uas.ReadInvite(req, tx)
		if err != nil {
			p.t.Error(err)
			return
		}
		d.Respond(180, "Ringing", nil)
		time.Sleep(50 * time.Millisecond) // sipgo handles each datagram in its own goroutine
		if err := d.RespondSDP([]byte(answerSDP)); err != nil {
			if d.Context().Err() != nil {
				// The BYE was handled before the ACK: sipgo handles each datagram in its own
				// goroutine. The dialog's context tells, not its state: an ACK handled after
				// the BYE sets the state from ended back to confirmed, while the end has
				// cancelled the context for good.
				return
			}
			p.t.Errorf("business line answer: %v", err)
			return
		}
		if hangupAfter > 0 {
			select {
			case <-time.After(hangupAfter):
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := d.Bye(ctx); err != nil {
					p.t.Errorf("business line bye: %v", err)
				}
			case <-d.Context().Done():
			}
		}
		<-d.Context().Done()
	}
}

// answerThenInfo answers, then sends an INFO towards the caller and notes the status it got.
func answerThenInfo(p *peer, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	d, err := p.uas.ReadInvite(req, tx)
	if err != nil {
		p.t.Error(err)
		return
	}
	if err := d.RespondSDP([]byte(answerSDP)); err != nil {
		p.t.Errorf("business line answer: %v", err)
		return
	}
	info := sipmsg.NewRequest(sipmsg.INFO, d.InviteRequest.Contact().Address)
	info.SetBody([]byte("Signal=5"))
	ct := sipmsg.ContentTypeHeader("application/dtmf-relay")
	info.AppendHeader(&ct)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := d.Do(ctx, info)
	if err != nil {
		p.note("INFO failed")
	} else {
		p.note(fmt.Sprintf("INFO answered %d", res.StatusCode))
	}
	<-d.Context().Done()
}

func reject(code int, reason string) lineBehaviour {
	return func(p *peer, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 180, "Ringing", nil))
		tx.Respond(sipmsg.NewResponseFromRequest(req, code, reason, nil))
		select {
		case <-tx.Acks():
		case <-tx.Done():
		}
	}
}

// ringForever rings until cancelled (sipgo answers the CANCEL and 487 by itself).
func ringForever(p *peer, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	d, err := p.uas.ReadInvite(req, tx)
	if err != nil {
		return
	}
	d.Respond(180, "Ringing", nil)
	<-d.Context().Done()
	if errors.Is(context.Cause(d.Context()), sipmsg.ErrTransactionCanceled) {
		p.note("CANCELLED")
	}
}

func (p *peer) serveLine(b lineBehaviour) {
	p.srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if req.To().Params.Has("tag") {
			p.note("reINVITE")
			p.reinvite(req, tx)
			return
		}
		p.note("INVITE")
		p.mu.Lock()
		p.seen = append(p.seen, "from="+req.From().Address.User)
		p.mu.Unlock()
		b(p, req, tx)
	})
}

// reinvite answers an in-dialog INVITE with the same SDP, echoing a=sendonly as recvonly.
func (p *peer) reinvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	body := answerSDP
	if strings.Contains(string(req.Body()), "a=sendonly") {
		body += "a=recvonly\r\n"
	}
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", []byte(body))
	ct := sipmsg.ContentTypeHeader("application/sdp")
	res.AppendHeader(&ct)
	res.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: portOf(p.addr)}})
	tx.Respond(res)
}

func portOf(addr string) int {
	ap, _ := netip.ParseAddrPort(addr)
	return int(ap.Port())
}

// env is a switch with a store, a pool and one customer, plus a trunk peer.
type env struct {
	t     testing.TB
	db    *store.DB
	pool  *pool.Pool
	sw    *Switch
	trunk *peer
}

type envOpts struct {
	lines        []string
	ringTimeout  time.Duration
	maxDuration  time.Duration
	drain        time.Duration
	trunkSource  string
	status       store.CustomerStatus
	trunkUser    string // digest credentials the trunk must present
	trunkPass    string
	proxy        string // outbound proxy URI
	proxyUser    string
	proxyPass    string
	toFallback   bool
	trialEnds    time.Time             // a trial customer's end
	switchMax    time.Duration         // the switch's default maximum call duration
	keys         *keyring.Keyring      // caller pseudonyms
	pseudonymous bool                  // the customer's callers are pseudonymous
	media        callseam.Media        // anchors calls (none: direct media)
	edge         EdgeConfig            // the edge's limits and policy
	switchOpts   []Option              // more options of the switch
	auth         AuthConfig            // digest limits
	tls          TLSConfig             // SIP over TLS
	trunks       []Trunk               // the trunks (default: one from trunkSource and the credentials)
	onInvite     func(*sipmsg.Request) // sees each INVITE as the switch receives it, before its handler
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if o.status == store.StatusUnknown {
		o.status = store.StatusActive
	}
	if _, err := p.CreateCustomer(ctx, store.Customer{ID: "acme", Name: "Acme", Status: o.status, SiteKey: "acme-site-key",
		BusinessLines: o.lines, RingTimeout: o.ringTimeout, MaxCallDuration: o.maxDuration, TrialEnds: o.trialEnds,
		PseudonymousCallers: o.pseudonymous}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PutChannel(ctx, "acme", store.Channel{Name: "Flyer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ImportNumbers(ctx, "acme", []pool.NumberInput{{Number: "+31850000001"}, {Number: "+31850000101", Kind: "static", Channel: "Flyer"}}); err != nil {
		t.Fatal(err)
	}
	src := o.trunkSource
	if src == "" {
		src = "127.0.0.1/32"
	}
	trunks := o.trunks
	if trunks == nil {
		trunks = []Trunk{{Name: "t", Sources: []netip.Prefix{netip.MustParsePrefix(src)}, Username: o.trunkUser, Password: o.trunkPass}}
	}
	sw, err := New(Config{NodeID: "node-t", Listen: "127.0.0.1:0", DrainTimeout: o.drain, ToFallback: o.toFallback, MaxDuration: o.switchMax,
		Trunks: trunks, OutboundProxy: o.proxy, OutboundUsername: o.proxyUser, OutboundPassword: o.proxyPass, Auth: o.auth, TLS: o.tls, Edge: o.edge}, p, db, append([]Option{WithKeys(o.keys), WithMedia(o.media)}, o.switchOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Listen(); err != nil {
		t.Fatal(err)
	}
	if o.onInvite != nil { // before Serve: the handlers are read by the goroutines it starts
		sw.srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { o.onInvite(req); sw.handleInvite(req, tx) })
	}
	sw.Serve()
	e := &env{t: t, db: db, pool: p, sw: sw, trunk: newPeer(t, "127.0.0.1", nil)}
	t.Cleanup(func() { sw.Close(); db.Close() })
	return e
}

func lineURI(p *peer) string { return "sip:+31852087972@" + p.addr }

// invite sends an INVITE for number from the trunk peer.
func (e *env) invite(ctx context.Context, number string, from *peer) (*sipgo.DialogClientSession, error) {
	if from == nil {
		from = e.trunk
	}
	uri := sipmsg.Uri{Scheme: "sip", User: number, Host: e.sw.Addr().Addr().String(), Port: int(e.sw.Addr().Port())}
	req := sipmsg.NewRequest(sipmsg.INVITE, uri)
	req.SetBody([]byte(offerSDP))
	ct := sipmsg.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	f := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: "+31612345678", Host: "127.0.0.1"}, Params: sipmsg.NewParams()}
	f.Params.Add("tag", sipmsg.GenerateTagN(10))
	req.AppendHeader(f)
	return from.uac.WriteInvite(ctx, req)
}

// call places a call and waits for its final answer: nil when answered (and ACKed).
func (e *env) call(number string) (*sipgo.DialogClientSession, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := e.invite(ctx, number, nil)
	if err != nil {
		return nil, err
	}
	err = d.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(r *sipmsg.Response) error {
		e.trunk.note(fmt.Sprint(r.StatusCode))
		return nil
	}})
	if err != nil {
		return d, err
	}
	return d, d.Ack(ctx)
}

// record waits for the call record of the last call to be completed and returns it.
func (e *env) record() store.Call {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var calls []store.Call
		e.db.View(func(tx *store.Tx) (err error) { calls, _, err = tx.Calls(store.CallFilter{Limit: 1}); return err })
		if len(calls) == 1 && !calls[0].End.IsZero() {
			return calls[0]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no completed call record: %+v", calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
