package sip

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// The edge sees every SIP message before sipgo does: it wraps the switch's UDP socket
// (edgePacketConn) and its TCP listener (edgeListener, which frames each connection's
// stream by Content-Length). For each request it
//   - drops it unanswered when its source is banned, over its rate, or (by default) not a
//     trunk and not in a dialog of a call in progress;
//   - answers it itself when it is malformed in a way RFC 3261 gives an answer for (400
//     naming the fault, 505, 416, 420 with Unsupported, 406, 413, 513), or drops it when
//     no answer could be addressed (no Via or no CSeq);
//   - passes it on to sipgo otherwise.
// Responses pass (sipgo's transaction layer matches them or drops them), unless their
// source is banned. What sipgo still cannot parse is caught from its log (edgeLogHandler)
// and answered the same way, and never logged raw.

// EdgeConfig holds the edge's limits and its policy for sources that are not trunks.
type EdgeConfig struct {
	MaxHeaderBytes int  // a header section longer than this is answered 513 (default 8192)
	MaxBodyBytes   int  // a body longer than this is answered 413 (default 16384)
	AnswerUnknown  bool // answer requests from sources that are no trunk (default: drop them unanswered)
	// The per-source limit of sources that are no trunk: a token bucket of SourceBurst
	// requests refilled at SourceRate a second. A source that goes BanAfter requests over
	// it is banned (every datagram dropped unread) for BanFor. Requests in the dialog of a
	// call in progress are not limited.
	SourceRate  float64       // default 20
	SourceBurst int           // default 100
	BanAfter    int           // default 200
	BanFor      time.Duration // default 10 minutes
	MaxSources  int           // sources tracked at once, bans included (default 65536)
}

func (c *EdgeConfig) defaults() {
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 8192
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 16384
	}
	if c.SourceRate <= 0 {
		c.SourceRate = 20
	}
	if c.SourceBurst <= 0 {
		c.SourceBurst = 100
	}
	if c.BanAfter <= 0 {
		c.BanAfter = 200
	}
	if c.BanFor <= 0 {
		c.BanFor = 10 * time.Minute
	}
	if c.MaxSources <= 0 {
		c.MaxSources = 65536
	}
}

type edgeLimits struct{ maxHeader, maxBody int }

// Why the edge dropped a message unanswered (the reason label of
// trackline_sip_edge_dropped_total). A fixed set: labels never come from the message.
type dropReason uint8

const (
	dropUnknownSource dropReason = iota // a request from a source that is no trunk
	dropRateLimited                     // over the per-source limit (or too many sources)
	dropBanned                          // from a banned source
	dropUnanswerable                    // malformed, and no Via or CSeq to answer with
	dropMalformedACK                    // a malformed ACK: an ACK is never answered
	dropBadResponse                     // a response sipgo could not parse
	dropStream                          // a TCP stream that cannot be framed: closed
	dropReasons
)

var dropNames = [dropReasons]string{"unknown_source", "rate_limited", "banned", "unanswerable", "malformed_ack",
	"bad_response", "stream"}

type edgeMetrics struct {
	dropped   [dropReasons]prometheus.Counter
	droppedV  *prometheus.CounterVec
	answers   *prometheus.CounterVec
	bans      prometheus.Counter
	banned    prometheus.GaugeFunc
	trunkReqs *prometheus.CounterVec
}

// edge is the switch's view of raw SIP. It is safe for concurrent use.
type edge struct {
	lim           edgeLimits
	answerUnknown bool
	trunks        []Trunk
	trunkReqs     []prometheus.Counter // per trunk, in cfg order
	live          func(callID, fromTag, toTag []byte) bool
	limiter       *sourceLimiter
	m             edgeMetrics
	log           *slog.Logger
	sent          func(code int) // counts an answer in trackline_sip_responses_total
	now           func() time.Time

	tagSeed uint64
	tagSeq  atomic.Uint64

	recentMu sync.Mutex
	recent   [8]passed // the last messages passed to sipgo: what its parse errors are matched to
	recentN  int
	scratch  scan // the log hook's scan, under recentMu
}

// passed is a message the edge passed to sipgo, kept until sipgo has parsed it.
type passed struct {
	data []byte
	to   net.Addr
	via  answerer
}

// answerer sends the edge's own answers where a message came from.
type answerer interface {
	sendAnswer(b []byte, to net.Addr) error
}

func newEdge(cfg EdgeConfig, trunks []Trunk, log *slog.Logger, now func() time.Time) *edge {
	cfg.defaults()
	e := &edge{
		lim:           edgeLimits{maxHeader: cfg.MaxHeaderBytes, maxBody: cfg.MaxBodyBytes},
		answerUnknown: cfg.AnswerUnknown,
		trunks:        trunks,
		limiter:       newSourceLimiter(cfg),
		log:           log,
		now:           now,
		live:          func(_, _, _ []byte) bool { return false },
		sent:          func(int) {},
	}
	var seed [8]byte
	rand.Read(seed[:])
	e.tagSeed = binary.BigEndian.Uint64(seed[:])
	e.m.droppedV = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trackline_sip_edge_dropped_total",
		Help: "SIP messages the edge dropped unanswered, by reason (unknown_source, rate_limited, banned, unanswerable, malformed_ack, bad_response, stream).",
	}, []string{"reason"})
	for r := range dropReasons {
		e.m.dropped[r] = e.m.droppedV.WithLabelValues(dropNames[r])
	}
	e.m.answers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trackline_sip_edge_answers_total",
		Help: "Malformed or unacceptable requests the edge answered itself, by status code and reason phrase.",
	}, []string{"code", "reason"})
	e.m.bans = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "trackline_sip_edge_bans_total", Help: "Sources banned for going over the per-source request limit.",
	})
	e.m.banned = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trackline_sip_edge_banned_sources", Help: "Sources banned now (held in memory only).",
	}, func() float64 { return float64(e.limiter.bannedCount(e.now())) })
	e.m.trunkReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trackline_sip_trunk_requests_total",
		Help: "SIP requests received from a configured trunk's sources, by trunk (malformed ones included; other sources never count).",
	}, []string{"trunk"})
	e.trunkReqs = make([]prometheus.Counter, len(trunks))
	for i, t := range trunks {
		e.trunkReqs[i] = e.m.trunkReqs.WithLabelValues(t.Name)
	}
	e.limiter.onBan = func() { e.m.bans.Inc() }
	return e
}

func (e *edge) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.m.droppedV, e.m.answers, e.m.bans, e.m.banned, e.m.trunkReqs}
}

// trunkIndex is the index of the trunk whose sources contain ip, or -1.
func (e *edge) trunkIndex(ip netip.Addr) int {
	for i := range e.trunks {
		for _, p := range e.trunks[i].Sources {
			if p.Contains(ip) {
				return i
			}
		}
	}
	return -1
}

// action is what the edge does with a message.
type action uint8

const (
	actPass   action = iota // on to sipgo
	actAnswer               // answered by the edge (sc.fault), not passed on
	actDrop                 // dropped unanswered
)

// inspect decides about message b from src. sc is the caller's scan (reused).
func (e *edge) inspect(sc *scan, b []byte, src netip.Addr, stream bool) action {
	if len(bytes.Trim(b, "\r\n")) == 0 {
		// Keep-alives (RFC 5626 §3.5.1): sipgo answers them. The scan is reset all the
		// same: what the callers read of it after a pass (inviteRef, normalize) must not
		// be the last message's spans applied to these bytes.
		sc.reset()
		return actPass
	}
	trunk := e.trunkIndex(src)
	var now time.Time
	if trunk < 0 {
		now = e.now()
		if e.limiter.isBanned(src, now) {
			e.m.dropped[dropBanned].Inc()
			return actDrop
		}
	}
	sc.readMessage(b, stream, &e.lim)
	if sc.response {
		return actPass
	}
	if trunk >= 0 {
		e.trunkReqs[trunk].Inc()
	} else if !(sc.toTagged(b) && e.live(sc.callID.of(b), sc.tag(b, hdrFrom), sc.tag(b, hdrTo))) {
		// Out of a dialog, or in one that is not ours: a scanner, a flood, a drainer.
		if !e.limiter.allow(src, now) {
			e.m.dropped[dropRateLimited].Inc()
			return actDrop
		}
		if !e.answerUnknown {
			e.m.dropped[dropUnknownSource].Inc()
			return actDrop
		}
	}
	if !sc.request {
		e.m.dropped[dropUnanswerable].Inc()
		return actDrop
	}
	if sc.fault.code == 0 {
		return actPass
	}
	return e.refuse(sc, b)
}

// refuse decides between answering a faulty request and dropping it.
func (e *edge) refuse(sc *scan, b []byte) action {
	switch {
	case isMethod(sc.method.of(b), "ACK"):
		e.m.dropped[dropMalformedACK].Inc()
		return actDrop
	case !sc.answerable():
		e.m.dropped[dropUnanswerable].Inc()
		return actDrop
	}
	return actAnswer
}

// appendAnswer appends the answer to the faulty request b, or to a new call refused to shed
// load (503, admit_conn.go) (RFC 3261 §8.2.6: Via, From, To with a tag, Call-ID and CSeq
// copied; folded lines unfolded, and no CR or LF copied into a line). The To tag is
// sc.answerTag when set, else a fresh one.
func (e *edge) appendAnswer(dst []byte, sc *scan, b []byte) []byte {
	f := sc.fault
	dst = append(dst, "SIP/2.0 "...)
	dst = strconv.AppendInt(dst, int64(f.code), 10)
	dst = append(dst, ' ')
	dst = append(dst, f.reason...)
	dst = append(dst, "\r\n"...)
	for _, v := range sc.vias {
		dst = appendLine(dst, v.of(b))
	}
	for _, h := range [...]hdr{hdrFrom, hdrTo, hdrCallID, hdrCSeq} {
		if sc.count[h] == 0 {
			continue
		}
		line := sc.fields[h].of(b)
		if h != hdrTo || sc.toTagged(b) {
			dst = appendLine(dst, line)
			continue
		}
		// RFC 3261 §8.2.6.2: a final answer outside a dialog adds a To tag.
		dst = appendLine(dst, line)
		dst = dst[:len(dst)-2]
		if sc.answerTag != 0 {
			dst = append(dst, ";tag=s"...) // the same for every retransmission of the request
			dst = strconv.AppendUint(dst, sc.answerTag, 36)
		} else {
			dst = append(dst, ";tag=e"...)
			dst = strconv.AppendUint(dst, e.tagSeed^e.tagSeq.Add(1), 36)
		}
		dst = append(dst, "\r\n"...)
	}
	switch f.code {
	case 503:
		dst = append(dst, "Retry-After: "+shedRetryAfter+"\r\n"...) // RFC 3261 §21.5.4
	case 420:
		dst = append(dst, "Unsupported: "...)
		dst = appendValue(dst, sc.require.of(b))
		dst = append(dst, "\r\n"...)
	case 406, 415:
		dst = append(dst, "Accept: application/sdp\r\n"...)
	}
	dst = append(dst, "Server: trackline\r\nContent-Length: 0\r\n\r\n"...)
	return dst
}

// appendLine appends a header line with CR, LF and NUL turned into spaces, then CRLF.
func appendLine(dst, line []byte) []byte {
	dst = appendValue(dst, line)
	return append(dst, "\r\n"...)
}

func appendValue(dst, v []byte) []byte {
	for _, c := range v {
		if c == '\r' || c == '\n' || c == 0 {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// answered counts an answer the edge sent.
func (e *edge) answered(f fault) {
	e.m.answers.WithLabelValues(strconv.Itoa(f.code), f.reason).Inc()
	e.sent(f.code)
}

// remember keeps a copy of a message passed to sipgo, so that a parse error sipgo reports
// can be answered (parseFailed).
func (e *edge) remember(b []byte, to net.Addr, via answerer) {
	e.recentMu.Lock()
	p := &e.recent[e.recentN%len(e.recent)]
	e.recentN++
	p.data = append(p.data[:0], b...)
	p.to, p.via = to, via
	e.recentMu.Unlock()
}

// parseFailed answers a message sipgo could not parse (it reports the message's bytes in
// its log: see edgeLogHandler), when it is one the edge passed and an answer can be
// addressed; else it counts the drop.
func (e *edge) parseFailed(data string) {
	e.recentMu.Lock()
	defer e.recentMu.Unlock()
	for i := range e.recent {
		p := &e.recent[i]
		if p.via == nil || string(p.data) != data {
			continue
		}
		sc := &e.scratch
		sc.readMessage(p.data, false, &e.lim)
		if !sc.request {
			e.m.dropped[dropBadResponse].Inc()
			return
		}
		if sc.fault.code == 0 {
			sc.fault = faultUnparsable
		}
		if e.refuse(sc, p.data) != actAnswer {
			return
		}
		out := e.appendAnswer(nil, sc, p.data)
		to := p.to
		if _, udp := p.via.(*edgePacketConn); udp {
			to = replyAddr(sc, p.data, to)
		}
		if err := p.via.sendAnswer(out, to); err == nil {
			e.answered(sc.fault)
		}
		p.via = nil // answered once
		return
	}
	e.m.dropped[dropUnanswerable].Inc()
}

// liveDialog tells whether a request with these Call-ID and tags belongs to a dialog of a
// call in progress, on either leg (the UAS and the UAC dialog ids, as sipgo makes them).
func (t *callTable) liveDialog(callID, fromTag, toTag []byte) bool {
	if len(callID) == 0 || len(toTag) == 0 {
		return false
	}
	c, f, to := string(callID), string(fromTag), string(toTag)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.dialogs[sipmsg.DialogIDMake(c, to, f)]; ok {
		return true
	}
	_, ok := t.dialogs[sipmsg.DialogIDMake(c, f, to)]
	return ok
}

// addrIP is the IP of a UDP or TCP address, or the invalid Addr.
func addrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// setupEdge makes the switch's edge and registers its metrics.
func (s *Switch) setupEdge() error {
	s.edge = newEdge(s.cfg.Edge, s.cfg.Trunks, s.log, s.now)
	s.edge.live = s.calls.liveDialog
	s.edge.sent = func(code int) { s.m.response("sent", code) }
	if s.reg == nil {
		return nil
	}
	for _, c := range s.edge.collectors() {
		if err := s.reg.Register(c); err != nil {
			return fmt.Errorf("register sip edge metrics: %w", err)
		}
	}
	return nil
}

// edgeLogOption gives sipgo's transport and transaction layers the edge's log handler
// (edge_log.go).
func (s *Switch) edgeLogOption() sipgo.UserAgentOption {
	l := slog.New(&edgeLogHandler{Handler: s.log.Handler(), e: s.edge})
	return func(ua *sipgo.UserAgent) error {
		for _, o := range []sipgo.UserAgentOption{
			sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(l)),
			sipgo.WithUserAgentTransactionLayerOptions(sipmsg.WithTransactionLayerLogger(l)),
		} {
			if err := o(ua); err != nil {
				return err
			}
		}
		return nil
	}
}
