package sip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/callseam"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

func hangup(t *testing.T, d *sipgo.DialogClientSession) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("trunk bye: %v", err)
	}
}

func statusOf(err error) int {
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) {
		return de.Res.StatusCode
	}
	return 0
}

func TestAnsweredCallByeFromCaller(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}})
	// A website visitor saw the pool number just before calling.
	l, err := e.pool.Assign(context.Background(), "acme", pool.Visit{LandingURL: "https://acme.example/?utm_term=tegels&gclid=G1"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.call("31850000001") // the '+'-less international form trunks send
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if !strings.Contains(string(d.InviteResponse.Body()), "m=audio 50000") {
		t.Fatalf("caller did not get the business line's SDP: %s", d.InviteResponse.Body())
	}
	time.Sleep(300 * time.Millisecond)
	hangup(t, d)
	rec := e.record()
	line.waitHistory("BYE")
	if got := line.history(); !strings.HasPrefix(got, "INVITE from=+31612345678 ACK BYE") {
		t.Fatalf("business line saw %q", got)
	}
	if got := e.trunk.history(); !strings.Contains(got, "180") || !strings.Contains(got, "200") {
		t.Fatalf("trunk saw %q", got)
	}
	if rec.Disposition != store.DispAnswered || rec.HangupBy != "caller" || rec.FinalStatus != 200 || rec.Dialled != "+31850000001" ||
		rec.Caller != "+31612345678" || rec.SessionID != l.SessionID || rec.Channel != pool.ChannelPaidSearch ||
		rec.Keyword != "tegels" || rec.Gclid != "G1" || rec.Candidates != 1 || rec.BusinessLine != lineURI(line) {
		t.Fatalf("record %+v", rec)
	}
	if rec.CallIDA == "" || rec.CallIDB == "" || rec.CallIDA == rec.CallIDB || rec.Answer.IsZero() || rec.Ringing.IsZero() {
		t.Fatalf("record legs/times %+v", rec)
	}
	if rec.Node != "node-t" {
		t.Errorf("record's node %q, want the switch's node id node-t", rec.Node)
	}
	if rec.TalkSeconds < 0.25 || rec.TalkSeconds > 3 {
		t.Fatalf("talk seconds %v", rec.TalkSeconds)
	}
}

// An ended call's INVITE is given up when the call ends, not when sipgo's Timer L fires
// (32 s by default, sip.transaction_linger in the switch): release empties the messages the
// terminated transaction still holds, so a collection no longer marks them.
func TestEndedCallGivesUpItsInvite(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	var held []func() bool // whether each header of the INVITE the switch got is still reachable
	seen := make(chan struct{})
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, onInvite: func(req *sipmsg.Request) {
		for _, h := range req.Headers() {
			if f, ok := reachable(h); ok {
				held = append(held, f)
			}
		}
		close(seen)
	}})
	d, err := e.call("+31850000001")
	if err != nil {
		t.Fatal(err)
	}
	<-seen
	if len(held) == 0 {
		t.Fatal("no header of the INVITE to watch")
	}
	hangup(t, d)
	e.record()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		n := 0
		for _, h := range held {
			if h() {
				n++
			}
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d headers of the ended call's INVITE still reachable", n, len(held))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reachable returns a function that tells, through a weak pointer, whether the header h is
// still reachable; false instead for a header without pointers (a number: the allocator may
// pack it with other small values, which then keep it).
func reachable(h sipmsg.Header) (func() bool, bool) {
	v := reflect.ValueOf(h)
	if v.Kind() != reflect.Pointer || v.Type().Elem().Kind() == reflect.Uint32 {
		return nil, false
	}
	w := weak.Make((*byte)(v.UnsafePointer()))
	return func() bool { return w.Value() != nil }, true
}

func TestByeFromBusinessLine(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(200*time.Millisecond))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("caller got no BYE after the business line hung up")
	}
	rec := e.record()
	if rec.HangupBy != "business_line" || rec.Disposition != store.DispAnswered || rec.Channel != "Flyer" || rec.SessionID != "" {
		t.Fatalf("record %+v", rec)
	}
}

func TestCancelWhileRinging(t *testing.T) {
	line := newPeer(t, "127.0.0.1", ringForever)
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}})
	ctx, cancel := context.WithCancel(context.Background())
	d, err := e.invite(ctx, "+31850000101", nil)
	if err != nil {
		t.Fatal(err)
	}
	ringing := make(chan struct{})
	go func() { line.waitHistory("INVITE"); time.Sleep(100 * time.Millisecond); close(ringing) }()
	<-ringing
	cancel() // WaitAnswer sends CANCEL
	err = d.WaitAnswer(ctx, sipgo.AnswerOptions{})
	if err == nil {
		t.Fatal("cancelled call was answered")
	}
	rec := e.record()
	line.waitHistory("CANCELLED")
	if rec.Disposition != store.DispCancelled || rec.FinalStatus != 487 || rec.HangupBy != "caller" {
		t.Fatalf("record %+v", rec)
	}
	if d.InviteResponse == nil || d.InviteResponse.StatusCode != 487 {
		t.Fatalf("caller's final answer: %v", d.InviteResponse)
	}
}

func TestBusyAndDeclineAreRelayed(t *testing.T) {
	for _, tt := range []struct {
		code int
		disp store.Disposition
	}{{486, store.DispBusy}, {603, store.DispRejected}} {
		t.Run(string(tt.disp), func(t *testing.T) {
			line := newPeer(t, "127.0.0.1", reject(tt.code, "No"))
			e := newEnv(t, envOpts{lines: []string{lineURI(line)}})
			_, err := e.call("+31850000101")
			if got := statusOf(err); got != tt.code {
				t.Fatalf("caller got %d (%v), want %d", got, err, tt.code)
			}
			if rec := e.record(); rec.Disposition != tt.disp || rec.FinalStatus != tt.code {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

func TestNoAnswerFailsOverThenGives480(t *testing.T) {
	silent := newPeer(t, "127.0.0.1", ringForever)
	backup := newPeer(t, "127.0.0.1", answer(100*time.Millisecond))
	e := newEnv(t, envOpts{lines: []string{lineURI(silent), lineURI(backup)}, ringTimeout: time.Second})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatalf("failover call: %v", err)
	}
	<-d.Context().Done()
	rec := e.record()
	silent.waitHistory("CANCELLED")
	if rec.BusinessLine != lineURI(backup) || rec.Disposition != store.DispAnswered {
		t.Fatalf("record %+v", rec)
	}

	t.Run("no line answers", func(t *testing.T) {
		e := newEnv(t, envOpts{lines: []string{lineURI(silent)}, ringTimeout: time.Second})
		_, err := e.call("+31850000101")
		if got := statusOf(err); got != 480 {
			t.Fatalf("caller got %d (%v)", got, err)
		}
		if rec := e.record(); rec.Disposition != store.DispNoAnswer || rec.FinalStatus != 480 {
			t.Fatalf("record %+v", rec)
		}
	})
}

func TestHoldAndResumeAreForwarded(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"a=sendonly", "a=sendrecv"} {
		req := sipmsg.NewRequest(sipmsg.INVITE, d.InviteResponse.Contact().Address)
		req.SetBody([]byte(offerSDP + dir + "\r\n"))
		ct := sipmsg.ContentTypeHeader("application/sdp")
		req.AppendHeader(&ct)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := d.Do(ctx, req)
		cancel()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("re-INVITE %s: %v %v", dir, res, err)
		}
		wantRecv := dir == "a=sendonly"
		if got := strings.Contains(string(res.Body()), "a=recvonly"); got != wantRecv {
			t.Fatalf("re-INVITE %s answered with %q", dir, res.Body())
		}
		ack := sipmsg.NewRequest(sipmsg.ACK, d.InviteResponse.Contact().Address)
		if err := d.WriteRequest(ack); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(line.history(), "reINVITE"); got != 2 {
		t.Fatalf("business line saw %d re-INVITEs: %q", got, line.history())
	}
	hangup(t, d)
	if rec := e.record(); rec.HangupBy != "caller" {
		t.Fatalf("record %+v", rec)
	}
}

func TestInfoFromBusinessLineReachesCaller(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answerThenInfo)
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}
	e.trunk.waitHistory("INFO Signal=5")
	line.waitHistory("INFO answered 200")
	hangup(t, d)
	e.record()
}

func TestRejectedBeforeRinging(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	tests := []struct {
		name   string
		opts   envOpts
		number string
		from   string
		want   int
	}{
		{"unknown number", envOpts{lines: []string{lineURI(line)}}, "+31859999999", "", 404},
		{"not a number", envOpts{lines: []string{lineURI(line)}}, "sales", "", 404},
		{"source outside the trunk ACL, answered", envOpts{lines: []string{lineURI(line)}, edge: EdgeConfig{AnswerUnknown: true}}, "+31850000101", "127.0.0.3", 403},
		{"customer ended", envOpts{lines: []string{lineURI(line)}, status: store.StatusEnded}, "+31850000101", "", 480},
		{"no business line", envOpts{}, "+31850000101", "", 480},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			from := e.trunk
			if tt.from != "" {
				from = newPeer(t, tt.from, nil)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			d, err := e.invite(ctx, tt.number, from)
			if err == nil {
				err = d.WaitAnswer(ctx, sipgo.AnswerOptions{})
			}
			if got := statusOf(err); got != tt.want {
				t.Fatalf("got %d (%v), want %d", got, err, tt.want)
			}
			var calls []store.Call
			e.db.View(func(tx *store.Tx) (err error) { calls, _, err = tx.Calls(store.CallFilter{}); return err })
			if len(calls) != 0 {
				t.Fatalf("a refused call left a record: %+v", calls)
			}
		})
	}
	if strings.Contains(line.history(), "INVITE") {
		t.Fatalf("business line rang for a refused call: %q", line.history())
	}
}

func TestMaxDurationEndsBothLegs(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, maxDuration: time.Second})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("caller not hung up at the maximum duration")
	}
	line.waitHistory("BYE")
	rec := e.record()
	if rec.HangupBy != "switch" || rec.EndReason != "max_duration" || rec.TalkSeconds < 0.9 || rec.TalkSeconds > 2.5 {
		t.Fatalf("record %+v", rec)
	}
}

func TestDrainRefusesNewCallsThenEndsOld(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, drain: 700 * time.Millisecond})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	go func() { e.sw.Drain(context.Background()); close(drained) }()
	for !e.sw.Draining() {
		time.Sleep(time.Millisecond)
	}
	_, err = e.call("+31850000101")
	if got := statusOf(err); got != 503 {
		t.Fatalf("new call while draining: %d (%v)", got, err)
	}
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not end")
	}
	<-d.Context().Done()
	line.waitHistory("BYE")
	rec := e.record()
	if rec.EndReason != "shutdown" || rec.HangupBy != "switch" || rec.Disposition != store.DispAnswered {
		t.Fatalf("record %+v", rec)
	}
}

func TestUnknownDialogAndMethods(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	uri := sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.sw.Addr().Port())}
	for _, tt := range []struct {
		method sipmsg.RequestMethod
		want   int
	}{{sipmsg.OPTIONS, 200}, {sipmsg.BYE, 481}, {sipmsg.REGISTER, 405}, {sipmsg.MESSAGE, 405}, {sipmsg.INFO, 481}} {
		res, err := e.trunk.cli.Do(ctx, sipmsg.NewRequest(tt.method, uri))
		if err != nil || res.StatusCode != tt.want {
			t.Fatalf("%s: %v %v, want %d", tt.method, res, err, tt.want)
		}
	}
}

func TestRecoverRecordsLeftOpen(t *testing.T) {
	e := newEnv(t, envOpts{})
	open := store.Call{ID: pool.NewID(time.Now()), CustomerID: "acme", Start: time.Now(), Answer: time.Now()}
	if err := e.db.Write(context.Background(), func(tx *store.Tx) error { return tx.PutCall(&open) }); err != nil {
		t.Fatal(err)
	}
	n, err := e.sw.RecoverRecords(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("recovered %d, %v", n, err)
	}
	if rec := e.record(); rec.EndReason != "switch restarted" || rec.Disposition != store.DispAnswered {
		t.Fatalf("record %+v", rec)
	}
}

func TestUDPDropsCountsAFullReceiveBuffer(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(1) // the kernel rounds up to its minimum; never read from it
	if got := socketDrops(conn); got != 0 {
		t.Fatalf("drops before any traffic = %d", got)
	}
	out, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	payload := make([]byte, 1000)
	for range 500 {
		out.Write(payload)
	}
	got := socketDrops(conn)
	if got == 0 {
		t.Fatal("no drops counted for 500 datagrams into a minimal, unread buffer")
	}
	// Only this socket's: another socket's full buffer does not count here.
	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetReadBuffer(1)
	out2, err := net.DialUDP("udp", nil, other.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Close()
	for range 500 {
		out2.Write(payload)
	}
	if socketDrops(other) == 0 {
		t.Fatal("no drops counted on the second socket")
	}
	if again := socketDrops(conn); again != got {
		t.Fatalf("drops of the first socket went from %d to %d with traffic to another", got, again)
	}
	conn.Close()
	if got := socketDrops(conn); got != 0 {
		t.Fatalf("drops of a closed socket = %d; want 0", got)
	}
	if n := testing.AllocsPerRun(10, func() { socketDrops(other) }); n > 8 {
		t.Fatalf("reading the counter allocates %v times", n)
	}
}

// refusingAnswer is an anchor whose session refuses the business line's answer.
type refusingAnswer struct{}

func (refusingAnswer) Anchor(context.Context, *callseam.CallInfo, []byte) (callseam.MediaSession, error) {
	return refusingSession{ready: make(chan struct{})}, nil
}

type refusingSession struct{ ready chan struct{} }

func (refusingSession) Offer() []byte                                      { return []byte(offerSDP) }
func (refusingSession) CallerSDP() []byte                                  { return []byte(answerSDP) }
func (refusingSession) Early() bool                                        { return false }
func (refusingSession) Answered()                                          {}
func (r refusingSession) Ready() <-chan struct{}                           { return r.ready }
func (refusingSession) Bridge()                                            {}
func (refusingSession) Done() <-chan struct{}                              { return nil }
func (refusingSession) Close(*store.Call) *store.Recording                 { return nil }
func (refusingSession) CloseThen(*store.Call, func(*store.Recording)) bool { return false }
func (refusingSession) Rewrite(bool, []byte) ([]byte, error)               { return nil, callseam.ErrNotAcceptable }
func (refusingSession) Callee([]byte, netip.Addr) error                    { return callseam.ErrNotAcceptable }

// TestEveryResponseIsCounted: a response the switch sends on a path off the common one (the
// media refusing the business line's answer: 488 to the caller) is counted like any other.
func TestEveryResponseIsCounted(t *testing.T) {
	line := newPeer(t, "127.0.0.1", func(p *peer, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if d, err := p.uas.ReadInvite(req, tx); err == nil {
			d.RespondSDP([]byte(answerSDP)) // the switch hangs up at once: its ACK may not come
			<-d.Context().Done()
		}
	})
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, media: refusingAnswer{}})
	sent := func() float64 { return testutil.ToFloat64(e.sw.m.responses.WithLabelValues("sent", "4xx")) }
	before := sent()
	if _, err := e.call("+31850000101"); statusOf(err) != 488 {
		t.Fatalf("caller got %v, want 488", err)
	}
	if rec := e.record(); rec.Disposition != store.DispFailed || rec.FinalStatus != 488 {
		t.Fatalf("record %+v", rec)
	}
	if got := sent() - before; got != 1 {
		t.Fatalf("4xx responses counted: %v, want 1", got)
	}
}
