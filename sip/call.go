package sip

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// call is one call; its owner goroutine (handleInvite) is the only writer of rec.
type call struct {
	id  string
	log *slog.Logger
	a   *sipgo.DialogServerSession
	b   atomic.Pointer[sipgo.DialogClientSession]
	rec store.Call
	// caller is the caller's number as sent onwards to the business line (From and
	// P-Asserted-Identity); the record may hold only its pseudonym. Never logged.
	caller string
	// ms anchors the call's media (nil: direct media). Set before the call is in the table,
	// never changed after.
	ms callseam.MediaSession
	// agent is the browser agent that answered, when the business line is "webrtc:<group>";
	// read and written by the owner goroutine only. agentUp tells in-dialog handlers.
	agent   callseam.AgentCall
	agentUp atomic.Bool

	byeFrom atomic.Uint32 // the leg whose BYE ended the call first
	fwdMu   sync.Mutex    // one in-dialog forward at a time

	// confirmed is closed once the caller's 200 has been sent and acknowledged (or has
	// failed, or the call ended without it): requests from the business line wait for it,
	// so that nothing is sent in the caller's dialog while its 200 is being written.
	confirmed   chan struct{}
	confirmOnce sync.Once

	// line is the key of the business line's INVITE (answerKey) while admission control
	// counts the call's setup past ringing (admit.go); owner goroutine only.
	line    uint64
	lineSet bool
}

// confirm closes confirmed, once.
func (c *call) confirm() { c.confirmOnce.Do(func() { close(c.confirmed) }) }

func (c *call) hungUpBy(l leg) { c.byeFrom.CompareAndSwap(uint32(legUnknown), uint32(l)) }

// release drops the dialogs' copies of the INVITEs and their answers once the call is over.
// sipgo keeps a finished transaction, and through its callbacks the dialog, for the linger
// time; without this each ended call would hold these messages that long. It runs last in
// the owner goroutine, after the call left the table, and under fwdMu so that no in-dialog
// forward still reads them.
//
// An answered call's INVITE transactions are emptied too. sipgo v1.7.2 terminates them at
// the dialog's BYE, but leaves Timer L (the caller's, from its 200) and Timer M (the business
// line's) running, and their closures keep the terminated transaction, its INVITE and its
// 200 reachable until they fire: sip.transaction_linger after the answer. With the
// disclaimer at 500 calls a second that was ~2,500 ended calls' messages, which every
// collection marked (docs/benchmarks.md, "The messages of ended calls").
func (c *call) release(invite *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	a := c.a
	if r := a.InviteResponse; r != nil && r.IsSuccess() && a.Context().Err() != nil {
		// The dialog ended (its state may read otherwise: sipgo's ACK handler, running late,
		// sets it back to confirmed). The BYE's handler terminates the transaction as well,
		// perhaps a moment after.
		tx.Terminate()
		emptyMessage(invite)
		emptyMessage(r)
	}
	a.InviteRequest, a.InviteResponse = nil, nil
	if b := c.b.Load(); b != nil {
		// Ended: its BYE, sent or received, terminated its INVITE's transaction.
		if q, r := b.InviteRequest, b.InviteResponse; q != nil && r != nil && b.Context().Err() != nil {
			emptyMessage(q)
			emptyMessage(r)
		}
		b.InviteRequest, b.InviteResponse = nil, nil
	}
}

// message is what emptyMessage needs of a SIP request or response.
type message interface {
	Headers() []sipmsg.Header
	RemoveHeader(name string) bool
	SetBody([]byte)
}

// emptyMessage removes a message's headers and body, for a message that only a
// terminated transaction still holds (release). The header list's array is cleared as
// well: removing leaves its slots past the new length pointing at the headers.
func emptyMessage(m message) {
	m.SetBody(nil)
	all := m.Headers()
	for hs := all; len(hs) > 0 && m.RemoveHeader(hs[0].Name()); hs = m.Headers() {
	}
	clear(all)
}

// handleInvite owns a call from the trunk's INVITE to the completed record: it screens the
// request, resolves the dialled number to a customer in service, sets the call up (record,
// media), rings the business lines and holds the answered call until it ends.
func (s *Switch) handleInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.m.requests.WithLabelValues("INVITE").Inc()
	if req.To() != nil && req.To().Params.Has("tag") {
		s.handleReInvite(req, tx)
		return
	}
	start := s.now()
	su, refused := s.shed(req, tx) // overload control (admit.go)
	if refused {
		return
	}
	defer s.setupDone(su) // if it did not come to ringing (take)
	if s.storeDown.Load() && !s.draining.Load() {
		s.respond(req, tx, 503, "Service Unavailable", sipmsg.NewHeader("Retry-After", storeDownRetry)) // storedown.go
		return
	}
	if !s.admit() {
		s.respond(req, tx, 503, "Service Unavailable", sipmsg.NewHeader("Retry-After", strconv.Itoa(int(s.cfg.DrainTimeout.Seconds()))))
		return
	}
	defer s.callsWG.Done()
	trunk, no := s.screen(req)
	if no == nil {
		s.respond(req, tx, 100, "Trying")
		var dest *destination
		if dest, no = s.resolve(req, start); no == nil {
			s.take(req, tx, trunk, dest, start, su)
			return
		}
	}
	s.respond(req, tx, no.code, no.reason, no.hdrs...)
}

// refusal is the final answer to an INVITE that does not become a call.
type refusal struct {
	code   int
	reason string
	hdrs   []sipmsg.Header
}

// screen checks the INVITE's source against the trunks, its credentials and the headers the
// dialog layer relies on.
func (s *Switch) screen(req *sipmsg.Request) (*Trunk, *refusal) {
	trunk, no := s.identify(req)
	if no != nil {
		return nil, no
	}
	if no := s.auth.check(req, trunk, s.now()); no != nil {
		return nil, no
	}
	if code, reason := checkInvite(req); code != 0 {
		return nil, &refusal{code: code, reason: reason}
	}
	return trunk, nil
}

// destination is where a call goes: the number dialled, its attribution and its customer.
// It goes by pointer, as the customer does: the call's goroutine keeps the frames of
// handleInvite, take and talk for as long as the call lasts, and the collector shrinks its
// stack only while a quarter of it or less is in use (docs/benchmarks.md, "The calls held").
type destination struct {
	dialled string
	attr    pool.Attribution
	cust    store.Customer
}

// resolve finds the dialled number, what it is attributed to, and its customer, in service
// and with a business line.
func (s *Switch) resolve(req *sipmsg.Request, start time.Time) (*destination, *refusal) {
	// RFC 3261 §8.2.2.1: the Request-URI names the callee; To only if configured.
	dialled, err := dialledNumber(req.Recipient.User, s.cfg.CountryCode)
	if err != nil && s.cfg.ToFallback {
		dialled, err = dialledNumber(req.To().Address.User, s.cfg.CountryCode)
	}
	if err != nil {
		return nil, &refusal{code: 404, reason: "Not Found"}
	}
	attr, err := s.pool.Attribute(dialled, start)
	switch {
	case errors.Is(err, pool.ErrUnknownNumber):
		return nil, &refusal{code: 404, reason: "Not Found"}
	case errors.Is(err, pool.ErrQuarantined):
		// A number the operator took out of a running contract is not found; the numbers
		// of an ended contract, and those held after their customer was deleted, are
		// not in service.
		if c, cerr := s.pool.Customer(attr.CustomerID); cerr == nil && pool.InService(&c, start) {
			return nil, &refusal{code: 404, reason: "Not Found"}
		}
		return nil, &refusal{code: 480, reason: "Not In Service"}
	case err != nil:
		s.log.Error("attribute call", "err", err)
		return nil, &refusal{code: 500, reason: "Server Internal Error"}
	}
	cust, err := s.pool.Customer(attr.CustomerID)
	if err != nil || !pool.InService(&cust, start) {
		// The contract or the trial ended (RFC 3261 §21.4.18: 480, the callee is not
		// reachable here now).
		return nil, &refusal{code: 480, reason: "Not In Service"}
	}
	if len(cust.BusinessLines) == 0 {
		return nil, &refusal{code: 480, reason: "Temporarily Unavailable"}
	}
	return &destination{dialled: dialled, attr: attr, cust: cust}, nil
}

// take makes the INVITE a call: its dialog, its durable record and its media, then rings
// the business lines and holds the call until it ends.
func (s *Switch) take(req *sipmsg.Request, tx sipmsg.ServerTransaction, trunk *Trunk, dest *destination, start time.Time, su *setup) {
	a, err := s.inboundUA(req).ReadInvite(req, tx)
	if err != nil {
		s.respond(req, tx, 400, "Bad Request")
		return
	}
	defer a.Close()
	c := &call{id: pool.NewID(start), a: a, caller: callerNumber(req, s.cfg.CountryCode), confirmed: make(chan struct{})}
	defer c.release(req, tx)
	cust := &dest.cust
	c.log = s.log.With("call_id", c.id, "customer", cust.ID)
	if no := s.setUp(c, req, trunk, dest, start); no != nil {
		s.answer(a, no.code, no.reason, nil)
		return
	}
	if c.ms != nil {
		defer c.ms.Close(nil) // a no-op once finish closed it
	}
	s.m.active.Inc()
	defer s.m.active.Dec()
	s.calls.add(c)
	s.calls.index(a.ID, c, legCaller)
	defer func() {
		ids := []string{a.ID}
		if b := c.b.Load(); b != nil {
			ids = append(ids, b.ID)
		}
		s.calls.remove(c, ids...)
	}()

	offer := req.Body()
	ms := c.ms
	if ms != nil {
		offer = ms.Offer()
		if ms.Early() {
			// The disclaimer plays as early media while the business line rings.
			ct := sipmsg.ContentTypeHeader("application/sdp")
			s.answer(a, 183, "Session Progress", ms.CallerSDP(), &ct)
		}
	}

	s.setupDone(su) // the switch's own part of the setup is over: it rings (admit.go)
	defer s.lineDone(c)
	ans, code := s.ring(c, cust, offer, ms, start)
	switch {
	case ans.b != nil:
		defer ans.b.Close()
	case ans.agent != nil:
		defer ans.agent.Hangup("") // releases the agent's media whatever happened
	default:
		s.reject(c, code)
		return
	}
	s.talk(c, ans, ms, cust)
}

// setUp writes the call's record (durable before the business line rings) with its
// attribution snapshot and caller, and anchors its media where the customer needs it.
func (s *Switch) setUp(c *call, req *sipmsg.Request, trunk *Trunk, dest *destination, start time.Time) *refusal {
	cust, attr := &dest.cust, &dest.attr
	c.rec = store.Call{
		ID: c.id, CustomerID: cust.ID, Dialled: dest.dialled, Node: s.cfg.NodeID,
		Channel: attr.Channel, Candidates: attr.Candidates, Start: start.UTC(), CallIDA: req.CallID().Value(),
	}
	if err := s.storeCaller(&c.rec, cust, c.caller); err != nil {
		c.log.Error("caller pseudonym", "err", err)
		return &refusal{code: 500, reason: "Server Internal Error"}
	}
	if ses := attr.Session; ses != nil {
		c.rec.SessionID, c.rec.Keyword, c.rec.LandingPage = ses.ID, ses.UTMTerm, ses.LandingPage
		c.rec.ReferrerHost, c.rec.Gclid = ses.ReferrerHost, ses.Gclid
	}
	if s.media != nil {
		info := callseam.CallInfo{CallID: c.id, CustomerID: cust.ID, Dialled: dest.dialled, Channel: attr.Channel, Start: start.UnixNano(),
			Anchor:       s.agents != nil && hasAgentLine(cust.BusinessLines),
			CallerSignal: sourceIP(req.Source()), CallerNAT: trunk.NAT, CalleeNAT: s.cfg.OutboundNAT}
		ms, err := s.media.Anchor(c.a.Context(), &info, req.Body())
		c.rec.NotRecordedReason = info.NotRecorded
		if err != nil {
			c.log.Info("media refused the offer", "err", err)
			if errors.Is(err, callseam.ErrBadSDP) {
				return &refusal{code: 400, reason: "Malformed SDP"}
			}
			return &refusal{code: 488, reason: "Not Acceptable Here"}
		}
		c.ms = ms
	}
	if err := s.saveCall(&c.rec, nil); err != nil {
		c.log.Error("write call record", "err", err)
		if c.ms != nil {
			c.ms.Close(nil)
		}
		return &refusal{code: 500, reason: "Server Internal Error"}
	}
	return nil
}

// checkInvite validates what the dialog layer relies on (RFC 3261 §8.1.1).
func checkInvite(req *sipmsg.Request) (int, string) {
	switch {
	case req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil || req.Via() == nil:
		return 400, "Bad Request"
	case req.Contact() == nil:
		return 400, "Missing Contact"
	case req.CSeq().MethodName != sipmsg.INVITE:
		return 400, "CSeq Method Mismatch"
	}
	if ct := req.ContentType(); len(req.Body()) > 0 && (ct == nil || !strings.EqualFold(ct.Value(), "application/sdp")) {
		return 415, "Unsupported Media Type"
	}
	if body := req.Body(); len(body) > 0 && !plausibleSDP(body) {
		return 400, "Malformed SDP"
	}
	return 0, ""
}

// plausibleSDP is the check direct media can afford: an SDP body (RFC 4566 §5) starts with
// its version line and describes at least one media stream. Anchored media parses it fully.
func plausibleSDP(b []byte) bool {
	s := string(b)
	return strings.HasPrefix(s, "v=0") && (strings.Contains(s, "\nm=") || strings.Contains(s, "\rm="))
}

// storeCaller fills the caller fields of a call record: the pseudonym (with the customer's
// key) and either the number, or for a customer with pseudonymous callers only its last
// three digits.
func (s *Switch) storeCaller(rec *store.Call, cust *store.Customer, caller string) error {
	if caller == "" {
		return nil
	}
	if s.keys != nil {
		key, err := s.keys.Get(cust.ID)
		if err != nil {
			return err
		}
		rec.CallerPseudonym = key.Pseudonym(caller)
	}
	if !cust.PseudonymousCallers {
		rec.Caller = caller
		return nil
	}
	if strings.HasPrefix(caller, "+") && len(caller) > 3 {
		rec.CallerLastDigits = caller[len(caller)-3:]
	}
	return nil
}

// callerNumber is the caller as E.164 when it reads as a number, else the From user as
// sent (e.g. "anonymous"), clipped and without control characters.
func callerNumber(req *sipmsg.Request, cc string) string {
	user := req.From().Address.User
	if n, err := dialledNumber(user, cc); err == nil {
		return n
	}
	return safeToken(user, 32)
}

// safeToken keeps a value fit for a SIP header and a record: no CR, LF or other control
// characters, no quotes or angle brackets, at most n bytes.
func safeToken(v string, n int) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '<' || r == '>' || r == '\\' {
			return -1
		}
		return r
	}, v)
	if len(v) > n {
		v = v[:n]
	}
	return strings.ToValidUTF8(v, "")
}

// saveCall writes a copy of a call record durably, with its recording when it has one. The
// record comes by pointer and is copied to the heap here: a 568-byte argument in the call's
// frames would keep its goroutine's stack from shrinking while the call lasts.
func (s *Switch) saveCall(rec *store.Call, recording *store.Recording) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kept := *rec
	return s.db.Write(ctx, func(tx *store.Tx) error { return putCall(tx, kept, recording) })
}

// putCall writes a call record and its recording in tx. rec is a copy, so that the write
// can run again (store.DB.Write).
func putCall(tx *store.Tx, rec store.Call, recording *store.Recording) error {
	if recording != nil {
		if err := tx.PutRecording(recording); err != nil {
			return err
		}
		rec.RecordingID = recording.ID
	}
	return tx.PutCall(&rec)
}

// finish completes the record and the metrics; talk time counts from the answer. A call
// whose recording is still being finished (its fsync, in a batch with other calls') leaves
// its record to be completed with the recording (ending, complete.go): the call's goroutine
// ends now, and Drain and Close wait for the record all the same (callsWG).
func (s *Switch) finish(c *call, disposition store.Disposition, status int, reason string) {
	var e *ending
	if c.ms != nil {
		e = &ending{log: c.log, disposition: disposition, status: status, reason: reason}
		e.parts.Store(2)
		s.callsWG.Add(1) // this call's handler still counts: the count is not zero here
		if !c.ms.CloseThen(&c.rec, func(r *store.Recording) { e.recording = r; s.ended(e) }) {
			s.callsWG.Done()
			e = nil
		}
	}
	end := s.now().UTC()
	c.rec.End, c.rec.Disposition, c.rec.FinalStatus, c.rec.EndReason = end, disposition, status, reason
	if !c.rec.Answer.IsZero() {
		c.rec.TalkSeconds = end.Sub(c.rec.Answer).Seconds()
	}
	if e != nil {
		e.rec = c.rec
		s.ended(e)
		return
	}
	if err := s.saveCall(&c.rec, nil); err != nil {
		c.log.Error("complete call record", "err", err)
	}
	s.counted(c.rec.CustomerID, c.log, disposition, status, c.rec.HangupBy, reason)
}

// counted counts a completed call in the metrics and logs its end.
func (s *Switch) counted(customer string, log *slog.Logger, disposition store.Disposition, status int, hangupBy store.Party, reason string) {
	s.m.calls.WithLabelValues(string(disposition)).Inc()
	s.m.custCalls.WithLabelValues(customer, string(disposition)).Inc()
	log.Info("call ended", "disposition", disposition, "status", status, "hangup_by", hangupBy, "reason", reason)
}

// ringResult is how one business line answered.
type ringResult struct {
	code      int // final status, 0 when none
	noAnswer  bool
	cancelled bool // the caller gave up
}

// lineAnswer is the business line that answered: a SIP dialog or a browser agent.
type lineAnswer struct {
	b     *sipgo.DialogClientSession
	agent callseam.AgentCall
}

// ring tries the business lines in order. It returns the answered line, or none and the
// status to give the caller (0 when the caller cancelled and already got 487).
func (s *Switch) ring(c *call, cust *store.Customer, offer []byte, ms callseam.MediaSession, start time.Time) (lineAnswer, int) {
	timeout := cust.RingTimeout
	if timeout <= 0 {
		timeout = s.cfg.RingTimeout
	}
	last := ringResult{}
	for i, line := range cust.BusinessLines {
		var ans lineAnswer
		var res ringResult
		if group, ok := agentGroup(line); ok {
			ans.agent, res = s.ringAgents(c, group, ms, timeout, start)
		} else {
			ans.b, res = s.ringLine(c, line, offer, ms, timeout, start)
		}
		if ans.b != nil || ans.agent != nil {
			c.rec.BusinessLine = line
			return ans, 200
		}
		last = res
		if res.cancelled {
			return lineAnswer{}, 0
		}
		switch res.code {
		case 486, 600, 603:
			c.rec.BusinessLine = line
			return lineAnswer{}, res.code
		}
		if s.base.Err() != nil {
			break
		}
		c.log.Info("business line did not answer", "line_index", i, "status", res.code, "no_answer", res.noAnswer)
	}
	if last.noAnswer {
		return lineAnswer{}, 408 // mapped to 480 with disposition no-answer by reject
	}
	return lineAnswer{}, 480
}

// ringLine rings one business line until it answers, fails, the ring timeout passes or
// the caller cancels.
func (s *Switch) ringLine(c *call, line string, offer []byte, ms callseam.MediaSession, timeout time.Duration, start time.Time) (*sipgo.DialogClientSession, ringResult) {
	a := c.a
	var target sipmsg.Uri
	if err := sipmsg.ParseUri(line, &target); err != nil || target.Host == "" {
		c.log.Error("business line is not a SIP URI", "line", line)
		return nil, ringResult{code: 480}
	}
	transport := "udp"
	if target.UriParams != nil {
		if t, ok := target.UriParams.Get("transport"); ok {
			transport = strings.ToLower(t)
		}
	}
	breq := sipmsg.NewRequest(sipmsg.INVITE, target)
	breq.SetTransport(transport)
	host := s.udpUA.ContactHDR.Address.Host
	caller := c.caller
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: caller, Host: host}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	if dn := safeToken(a.InviteRequest.From().DisplayName, 64); dn != "" {
		from.DisplayName = dn
	}
	breq.AppendHeader(from)
	breq.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port}})
	if caller != "" {
		breq.AppendHeader(sipmsg.NewHeader("P-Asserted-Identity", "<sip:"+caller+"@"+host+">"))
	}
	if s.proxy != nil {
		breq.AppendHeader(sipmsg.NewHeader("Route", "<"+s.proxy.String()+";lr>"))
		breq.SetDestination(s.proxy.HostPort())
	}
	if len(offer) > 0 {
		ct := sipmsg.ContentTypeHeader("application/sdp")
		breq.AppendHeader(&ct)
		breq.SetBody(offer)
	}

	ringCtx, cancel := context.WithTimeout(a.Context(), timeout)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()

	// The switch's own part of the setup past ringing (admit.go): from the line's final
	// answer at the socket until this goroutine has it. Over UDP only, where the socket's
	// reader sees the answer arrive; the Call-ID is made here so that it is known before
	// the INVITE goes out.
	if transport == "udp" {
		id := sipmsg.CallIDHeader(sipmsg.GenerateTagN(32))
		breq.AppendHeader(&id)
		s.lineDone(c) // a line rung before
		c.line, c.lineSet = answerKey([]byte(id)), true
		s.adm.ringing(c.line)
	}
	b, err := s.dialogUA(transport).WriteInvite(ringCtx, breq)
	if err != nil {
		c.log.Warn("invite business line", "err", err)
		return nil, ringResult{code: 480}
	}
	c.rec.CallIDB = breq.CallID().Value()
	provisional := false
	err = b.WaitAnswer(ringCtx, sipgo.AnswerOptions{
		Username: s.cfg.OutboundUsername, Password: s.cfg.OutboundPassword,
		OnResponse: func(r *sipmsg.Response) error {
			s.m.response("received", r.StatusCode)
			if !r.IsProvisional() {
				return nil
			}
			if !provisional {
				provisional = true
				s.m.setup.WithLabelValues("provisional").Observe(s.now().Sub(start).Seconds())
			}
			if r.StatusCode == 180 || r.StatusCode == 183 {
				if c.rec.Ringing.IsZero() {
					c.rec.Ringing = s.now().UTC()
				}
				s.relayProvisional(c, r, ms)
			}
			return nil
		},
	})
	if err == nil {
		s.m.setup.WithLabelValues("answer").Observe(s.now().Sub(start).Seconds())
		return b, ringResult{}
	}
	b.Close()
	var de *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &de):
		return nil, ringResult{code: de.Res.StatusCode}
	case a.Context().Err() != nil:
		c.hungUpBy(legCaller)
		return nil, ringResult{cancelled: true}
	case errors.Is(context.Cause(ringCtx), context.DeadlineExceeded):
		return nil, ringResult{noAnswer: true}
	}
	c.log.Warn("business line failed", "err", err)
	return nil, ringResult{code: 480}
}

// relayProvisional passes 180/183 to the caller; 183's SDP goes through media if anchored.
// While a disclaimer plays the caller already has its 183 and hears the anchor: the
// business line's provisional answers only tell the media where the line is.
func (s *Switch) relayProvisional(c *call, r *sipmsg.Response, ms callseam.MediaSession) {
	body := r.Body()
	var hdrs []sipmsg.Header
	if ms != nil && len(body) > 0 {
		if err := ms.Callee(body, sourceIP(r.Source())); err != nil {
			c.log.Warn("early media answer", "err", err)
			body = nil
		} else {
			body = ms.CallerSDP()
		}
	}
	if ms != nil && ms.Early() {
		return
	}
	if len(body) > 0 {
		if len(body) > 0 {
			ct := sipmsg.ContentTypeHeader("application/sdp")
			hdrs = append(hdrs, &ct)
		}
	}
	s.answer(c.a, r.StatusCode, r.Reason, body, hdrs...)
}

// reject ends an unanswered call with the status mapped for the caller.
func (s *Switch) reject(c *call, code int) {
	switch {
	case code == 0: // the caller cancelled; the transaction layer answered 487
		c.rec.HangupBy = legCaller.party()
		s.finish(c, store.DispCancelled, 487, "")
		return
	case s.base.Err() != nil:
		c.rec.HangupBy = store.PartySwitch
		s.finish(c, store.DispFailed, 503, "shutdown")
		s.answer(c.a, 503, "Service Unavailable", nil)
		return
	}
	disp, status, reason := store.DispFailed, 480, "Temporarily Unavailable"
	c.rec.HangupBy = legCallee.party()
	switch code {
	case 486, 600:
		disp, status, reason = store.DispBusy, 486, "Busy Here"
	case 603:
		disp, status, reason = store.DispRejected, 603, "Decline"
	case 408: // nobody answered in time: the switch gave up ringing
		disp = store.DispNoAnswer
		c.rec.HangupBy = store.PartySwitch
	}
	s.finish(c, disp, status, "")
	s.answer(c.a, status, reason, nil)
}

// talk answers the caller with the business line's SDP and holds the call until one side
// hangs up, the fair-use maximum passes or the switch shuts down.
func (s *Switch) talk(c *call, ans lineAnswer, ms callseam.MediaSession, cust *store.Customer) {
	defer c.confirm() // the paths that end the call before the caller's 200
	a := c.a
	var answer []byte
	var calleeDone <-chan struct{}
	var mediaErr error
	if b := ans.b; b != nil {
		c.b.Store(b)
		s.calls.index(b.ID, c, legCallee)
		calleeDone = b.Context().Done()
		if ms == nil {
			c.rec.Answer = s.now().UTC() // the caller is connected with the line's answer
		}
		answer = b.InviteResponse.Body()
		if ms != nil && len(answer) > 0 {
			// Before the ACK: the line may send audio as soon as it has it.
			mediaErr = ms.Callee(answer, sourceIP(b.InviteResponse.Source()))
		}
		ackCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := b.Ack(ackCtx)
		cancel()
		if err != nil {
			c.log.Warn("ack business line", "err", err)
		}
	} else {
		// A browser agent: always anchored (ringAgents needs the anchor).
		c.agent = ans.agent
		c.agentUp.Store(true)
		c.rec.AgentID = ans.agent.AgentID()
		calleeDone = ans.agent.Done()
		mediaErr = ms.Callee(ans.agent.SDP(), netip.Addr{})
	}
	var mediaDone <-chan struct{}
	if ms != nil {
		if mediaErr != nil {
			c.log.Warn("media answer", "err", mediaErr)
			s.hangup(c, legCallee, "media")
			c.rec.HangupBy = store.PartySwitch
			s.finish(c, store.DispFailed, 488, "media")
			s.answer(a, 488, "Not Acceptable Here", nil)
			return
		}
		ms.Answered()
		// The disclaimer still playing is no part of the switch's setup time: admission
		// control counts the bridge apart (admit.go).
		playing := !isReady(ms)
		if playing {
			s.lineDone(c)
		}
		if !s.awaitBridge(c, calleeDone, ms) {
			return
		}
		if playing && c.lineSet {
			s.adm.bridging(c.line, s.now())
		}
		c.rec.Answer = s.now().UTC() // the caller is connected from here
		ms.Bridge()
		answer, mediaDone = ms.CallerSDP(), ms.Done()
	}
	var hdrs []sipmsg.Header
	if len(answer) > 0 {
		ct := sipmsg.ContentTypeHeader("application/sdp")
		hdrs = append(hdrs, &ct)
	}
	s.lineDone(c)
	// Blocks until the caller's ACK; a BYE may overtake the ACK (sipgo handles each message in
	// its own goroutine), which ends the dialog and is a normal, if short, call.
	err := s.answer(a, 200, "OK", answer, hdrs...)
	c.confirm()
	if err != nil && byeLeg(c) == legUnknown {
		c.log.Warn("caller did not confirm the answer", "err", err)
		s.hangup(c, legCallee, "no ack")
		c.rec.HangupBy = store.PartySwitch
		s.finish(c, store.DispAnswered, 200, "no ack from caller")
		return
	}

	maxDur := cust.MaxCallDuration
	if maxDur <= 0 {
		maxDur = s.cfg.MaxDuration
	}
	limit := time.NewTimer(maxDur)
	defer limit.Stop()
	reason := ""
	select {
	case <-a.Context().Done():
		c.hungUpBy(legCaller)
	case <-calleeDone:
		c.hungUpBy(legCallee)
	case <-limit.C:
		reason = "max_duration"
	case <-mediaDone:
		reason = "rtp_timeout"
	case <-s.base.Done():
		reason = "shutdown"
	}
	switch by := byeLeg(c); by {
	case legCaller:
		c.rec.HangupBy = by.party()
		s.hangup(c, legCallee, "")
	case legCallee:
		c.rec.HangupBy = by.party()
		s.hangup(c, legCaller, "")
	default:
		c.rec.HangupBy = store.PartySwitch
		s.hangup(c, legCaller, reason)
		s.hangup(c, legCallee, reason)
	}
	s.finish(c, store.DispAnswered, 200, reason)
}

// awaitBridge waits, with the business line answered, until the media may bridge (the
// disclaimer and whisper are over). It ends the call and returns false when a side hangs up
// or the switch shuts down first.
func (s *Switch) awaitBridge(c *call, calleeDone <-chan struct{}, ms callseam.MediaSession) bool {
	select {
	case <-ms.Ready():
		return true
	case <-c.a.Context().Done(): // the caller cancelled; the transaction layer answered 487
		c.hungUpBy(legCaller)
		s.hangup(c, legCallee, "cancelled")
		c.rec.HangupBy = legCaller.party()
		s.finish(c, store.DispCancelled, 487, "cancelled during the disclaimer")
	case <-calleeDone:
		c.rec.HangupBy = legCallee.party()
		s.finish(c, store.DispFailed, 480, "business line hung up during the disclaimer")
		s.answer(c.a, 480, "Temporarily Unavailable", nil)
	case <-s.base.Done():
		s.hangup(c, legCallee, "shutdown")
		c.rec.HangupBy = store.PartySwitch
		s.finish(c, store.DispFailed, 503, "shutdown")
		s.answer(c.a, 503, "Service Unavailable", nil)
	}
	return false
}

// isReady tells whether the media session is ready to bridge (its disclaimer is over).
func isReady(ms callseam.MediaSession) bool {
	select {
	case <-ms.Ready():
		return true
	default:
		return false
	}
}

// lineDone ends what admission control counts of the call's setup past ringing, if
// anything: the switch has the business line's answer in hand and is about to answer the
// caller, or the call goes no further.
func (s *Switch) lineDone(c *call) {
	if c.lineSet {
		c.lineSet = false
		s.adm.lineDone(c.line, s.now())
	}
}

func byeLeg(c *call) leg { return leg(c.byeFrom.Load()) }

// hangup sends BYE on one leg with a bounded context of its own: the other leg's context
// is already done.
func (s *Switch) hangup(c *call, l leg, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	switch l {
	case legCaller:
		err = c.a.Bye(ctx)
	case legCallee:
		if b := c.b.Load(); b != nil {
			err = b.Bye(ctx)
		} else if c.agent != nil {
			c.agent.Hangup(cmp.Or(reason, "caller")) // without a reason: the caller hung up
		}
	}
	if err != nil {
		c.log.Debug("bye", "leg", l.String(), "reason", reason, "err", err)
	}
}

// RecoverRecords completes the records of calls that a crash left open: they end now, as
// failed with the reason "switch restarted"; their talk time is unknown and left at zero.
// In a shared store (a cluster) only the calls of this node (Config.NodeID) are ended.
func (s *Switch) RecoverRecords(ctx context.Context) (int, error) {
	var open []store.Call
	shared := s.db.Driver() != "bbolt"
	err := s.db.View(func(tx *store.Tx) error {
		return tx.ActiveCalls(func(c store.Call) bool {
			// In a shared store another node's open call may be in progress there: only
			// this node's is this node's to end. A store of one node holds only its own,
			// whatever id it had then.
			if !shared || c.Node == s.cfg.NodeID {
				open = append(open, c)
			}
			return true
		})
	})
	if err != nil || len(open) == 0 {
		return 0, err
	}
	now := s.now().UTC()
	err = s.db.Write(ctx, func(tx *store.Tx) error {
		for i := range open {
			c := open[i]
			c.End, c.EndReason, c.HangupBy = now, "switch restarted", store.PartySwitch
			if c.Disposition == "" {
				c.Disposition = store.DispFailed
				if !c.Answer.IsZero() {
					c.Disposition = store.DispAnswered
				}
			}
			if err := tx.PutCall(&c); err != nil {
				return err
			}
		}
		return nil
	})
	return len(open), err
}
