package media

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trackline/trackline/callseam"

	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"golang.org/x/sys/unix"
)

// Sides of a session.
const (
	caller = 0 // the trunk's leg (A)
	callee = 1 // the business line's leg (B)
)

// genKind is what the anchor itself sends into a leg while it is not bridged.
type genKind uint8

const (
	genNone genKind = iota
	genPrompt
	genSilence
)

// outStream is the RTP stream the anchor sends into a leg. It keeps one SSRC, and sequence
// numbers and timestamps that run on across prompts and relayed audio (RFC 3550 §5.1):
// whenever the source changes, the next packet is re-based onto the stream and marked.
type outStream struct {
	ssrc    uint32
	seq     uint16 // last sent
	ts      uint32 // last sent
	started bool
	last    int64 // monotonic time of the last packet sent

	src      uint32 // the relayed source the deltas belong to
	srcOK    bool
	seqDelta uint16
	tsDelta  uint32
}

func newOutStream() outStream {
	return outStream{ssrc: rand.Uint32(), seq: uint16(rand.Uint32()), ts: rand.Uint32()}
}

// advance moves the stream to its next packet, sent at now, and reports whether the packet
// starts a new run (the marker bit). n is the leg's frame in samples: after a gap of more
// than a frame and a half the timestamp steps by the gap in whole frames.
func (o *outStream) advance(now int64, n int) bool {
	if !o.started {
		o.started, o.last = true, now
		return true
	}
	o.seq++
	step := uint32(n)
	if gap := (now - o.last) / 125_000; gap > int64(3*n/2) { // more than a frame was skipped
		step = uint32((gap + int64(n/2)) / int64(n) * int64(n))
	}
	o.ts += step
	o.last = now
	return false
}

// generated returns the header fields of the next generated frame, of n samples. A frame
// after a pause (a keep-alive, keepAliveEvery) starts a talkspurt: marked (RFC 3551 §4.1).
func (o *outStream) generated(now int64, n int) (seq uint16, ts uint32, marker bool) {
	resumed := o.started && (now-o.last)/125_000 > int64(3*n/2)
	marker = o.advance(now, n) || resumed
	o.srcOK = false
	return o.seq, o.ts, marker
}

// relayed maps a relayed packet's sequence number and timestamp onto the stream.
func (o *outStream) relayed(ssrc uint32, seq uint16, ts uint32, now int64) (uint16, uint32, bool) {
	marker := false
	if !o.srcOK || ssrc != o.src {
		o.advance(now, frameSamples)
		marker = true
		o.seqDelta, o.tsDelta = o.seq-seq, o.ts-ts
		o.src, o.srcOK = ssrc, true
		return o.seq, o.ts, marker
	}
	oseq, ots := seq+o.seqDelta, ts+o.tsDelta
	if int16(oseq-o.seq) > 0 {
		o.seq, o.ts = oseq, ots
	}
	o.last = now
	return oseq, ots, false
}

// leg is one side of a session: its socket pair, what its SDP said, where it latched, and
// the streams in and out. Fields below mu are guarded by the session's mu.
type leg struct {
	s    *Session
	side int
	pair int
	port int
	fd   int
	rtcp int
	// stray is the socket that receives other sources' datagrams while fd is connected to
	// dest: -1 until the leg first latches, -2 when it could not be opened (the leg then
	// stays unconnected). Opened, read and closed by the loop only.
	stray     int
	connected bool // fd is connected to dest

	// What the leg may latch onto (latch.go): the address its latest SDP announced, the IP
	// its signalling came from and whether it is marked as behind NAT, the IPs allowed, and
	// the source on probation.
	sdpAddr netip.AddrPort
	signal  netip.Addr
	nat     bool
	sdpOK   bool
	sdpRaw  rawAddr
	allow   [2][4]byte
	nAllow  int
	cand    probation

	dest    rawAddr // where packets for this leg go: the latched source, or the SDP address
	destOK  bool
	latched bool
	law     g711.Law
	te      uint8
	ptime   int      // the frame its SDP asks for, in samples (a=ptime, a=maxptime); 0: frameSamples
	srtp    *srtpLeg // SRTP keys when the leg's SDP is RTP/SAVP (the caller's leg only)
	held    bool     // its latest SDP holds the call
	lastRx  int64
	rx      rxStats
	out     outStream
	orig    origin

	// The kernel path's flow for packets from this leg (kernelPath.offload); guarded by mu.
	kernel     bool // in the flow table
	kernelKey  [flowKeySize]byte
	kernelSSRC uint32
	kernelTag  uint32 // the port pair and a number of its own, set at the first offload
	// kernelRefused: the flow could not go in (no route, a full table); the relay keeps it
	// without asking again until the leg's SDP changes (Session.unload).
	kernelRefused bool

	gen    genKind
	prompt *Prompt
	pos    int
	next   int64
	onEnd  func() // called (under mu) when prompt ends
}

// send sends p to the leg's destination.
func (l *leg) send(p []byte) unix.Errno { return sendOn(l.fd, l.connected, p, &l.dest) }

// play starts p into the leg; onEnd runs (under the session's mu) after its last frame.
func (l *leg) play(p *Prompt, now int64, onEnd func()) {
	l.gen, l.prompt, l.pos, l.next, l.onEnd = genPrompt, p, 0, now, onEnd
	l.s.lp.start(l.s)
}

// follow plays p into the leg after the prompt whose last frame it has just sent (from that
// prompt's onEnd, under the session's mu): the stream goes on at its pace, p's first frame
// one frame after that last one, so its timestamps step by a frame and it is not marked,
// however late the loop sent the last frame.
func (l *leg) follow(p *Prompt, onEnd func()) {
	l.gen, l.prompt, l.pos, l.onEnd = genPrompt, p, 0, onEnd
}

// playSilence makes the leg wait on silence: a frame of it now, then one every
// keepAliveEvery, and nothing between them.
func (l *leg) playSilence(now int64) {
	l.gen, l.prompt, l.onEnd = genSilence, nil, nil
	l.next = now
	l.s.lp.start(l.s)
}

// keepAliveEvery is how often a leg that waits on silence (a business line that answered
// while the caller still hears the disclaimer) gets a frame. A frame of silence every 20 ms
// would say nothing that no packet does not (RFC 3551 §4.1: a sender may send nothing in
// silence); what the frames are for is to keep the line's side from taking the call for
// dead (an RTP timeout, a NAT or firewall binding), and one a second does that (Asterisk's
// rtpkeepalive does the same). It spares 49 of 50 packets a second for as long as the line
// waits: with the 7 s disclaimer and a line that answers at once, half of a call's packets.
const keepAliveEvery = int64(time.Second)

// every is the spacing of the leg's generated frames.
func (l *leg) every() int64 {
	if l.gen == genSilence {
		return keepAliveEvery
	}
	return int64(l.frame()) * 125_000
}

// frame is the length of the leg's generated frames in samples: what its SDP asked for.
func (l *leg) frame() int {
	return frameOr(l.ptime)
}

// setPtime takes the frame the leg's latest SDP asks for (samples, 0 for the default). A
// prompt that plays on goes on from where it was, in frames of the new size.
func (l *leg) setPtime(n int) {
	old := l.frame()
	l.ptime = n
	if l.gen == genPrompt {
		l.pos = l.pos * old / l.frame()
	}
}

func (l *leg) stopGen() { l.gen, l.prompt, l.onEnd = genNone, nil, nil }

// Session is one anchored call. The SIP side drives it through the callseam.MediaSession
// methods; its loop moves the packets.
type Session struct {
	e    *Engine
	lp   *loop
	info callseam.CallInfo
	plan plan

	callerSDP []byte
	offer     []byte
	ready     chan struct{}
	done      chan struct{}

	onLoop  atomic.Bool // its loop has taken it (loop.commands)
	wheelAt int64       // the grid time it waits for on its loop's wheel, 0: none (the loop's)

	mu          sync.Mutex
	legs        [2]leg
	flow        bool // packets are relayed between the legs
	bridged     bool
	answered    bool
	disclaiming bool // the disclaimer still plays
	whispering  bool // a whisper is configured and has not finished
	readyClosed bool
	doneClosed  bool
	endReason   string
	closed      bool
	closing     bool // Close has begun: no flow goes into the kernel path
	strictDrops uint64
	badRTP      uint64
	rec         *tap
	calleeKnown bool
}

var _ callseam.MediaSession = (*Session)(nil)

// Offer implements callseam.MediaSession.
func (s *Session) Offer() []byte { return s.offer }

// CallerSDP implements callseam.MediaSession.
func (s *Session) CallerSDP() []byte { return s.callerSDP }

// Early implements callseam.MediaSession.
func (s *Session) Early() bool { return s.plan.disclaimer != nil }

// Ready implements callseam.MediaSession.
func (s *Session) Ready() <-chan struct{} { return s.ready }

// Done implements callseam.MediaSession.
func (s *Session) Done() <-chan struct{} { return s.done }

// Callee implements callseam.MediaSession: the business line's answer picks its law and address;
// signal is where that answer came from.
func (s *Session) Callee(body []byte, signal netip.Addr) error {
	d, err := parseDesc(body)
	if err != nil {
		return err
	}
	if d.savp { // the business line was offered RTP/AVP
		return fmt.Errorf("%w: the business line answered RTP/SAVP to an RTP/AVP offer", callseam.ErrNotAcceptable)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed { // the loop may be closing the legs' sockets: leave them alone
		return fmt.Errorf("%w: the call's media is closed", callseam.ErrNotAcceptable)
	}
	b := &s.legs[callee]
	b.law, b.te, b.held = d.laws[0], d.te, d.held()
	b.setPtime(d.ptime)
	b.setRemote(d.addr, signal, s.info.CalleeNAT)
	s.calleeKnown = true
	if s.plan.disclaimer == nil && !s.flow {
		s.flow = true // no disclaimer: early media passes
	}
	return nil
}

// Answered implements callseam.MediaSession.
func (s *Session) Answered() {
	now := monoNow()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answered = true
	if w := s.plan.whisper; w != nil {
		s.legs[callee].play(w, now, func() {
			s.whispering = false
			s.legs[callee].playSilence(monoNow())
			s.checkReady()
		})
	} else if s.disclaiming {
		s.legs[callee].playSilence(now) // it waits on silence until the disclaimer ends
	}
	s.lp.wake()
}

// checkReady closes Ready once nothing is left to play before the bridge. Called under mu.
func (s *Session) checkReady() {
	if s.readyClosed || s.disclaiming || s.whispering {
		return
	}
	s.readyClosed = true
	close(s.ready)
}

// Bridge implements callseam.MediaSession: the legs are connected and recording starts.
func (s *Session) Bridge() {
	var r *tap
	if s.plan.record {
		var err error
		if r, err = s.e.openRecording(s); err != nil {
			s.e.log.Error("open recording", "call_id", s.info.CallID, "err", err)
			r = nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.legs {
		s.legs[i].stopGen()
	}
	s.flow, s.bridged, s.rec = true, true, r
	now := monoNow()
	s.legs[caller].lastRx, s.legs[callee].lastRx = now, now // the RTP timeout counts from here
}

// Rewrite implements callseam.MediaSession for in-dialog offers and answers: the sending leg's
// address, law and direction are taken, and the other leg gets the anchor's address.
func (s *Session) Rewrite(fromCaller bool, body []byte) ([]byte, error) {
	d, err := parseDesc(body)
	if err != nil {
		return nil, err
	}
	from, to := callee, caller
	if fromCaller {
		from, to = caller, callee
	}
	now := monoNow()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: the call's media is closed", callseam.ErrNotAcceptable)
	}
	f, t := &s.legs[from], &s.legs[to]
	if err := f.takeCrypto(&d); err != nil {
		return nil, err
	}
	s.unload() // the relay takes both directions again until the new state settles
	if !d.has(f.law) {
		f.law = d.laws[0]
	}
	f.te, f.held = d.te, d.held()
	f.setPtime(d.ptime)
	f.setRemote(d.addr, f.signal, f.nat)
	s.legs[caller].lastRx, s.legs[callee].lastRx = now, now
	out := t.orig.build(sdpOut{ip: s.e.announce, port: t.port, laws: []g711.Law{t.law}, te: teFor(t, d.te), ptime: d.ptime, dir: d.dir, crypto: t.localKey()})
	return out, nil
}

// teFor keeps telephone-event on a leg that negotiated it when the other side still has it.
func teFor(l *leg, peerTE uint8) uint8 {
	if peerTE == 0 {
		return 0
	}
	if l.te != 0 {
		return l.te
	}
	return peerTE
}

// unload takes both legs' flows out of the kernel path. Called under mu.
func (s *Session) unload() {
	if k := s.e.kernel; k != nil {
		for i := range s.legs {
			s.legs[i].kernelRefused = false
			if err := k.unload(&s.legs[i]); err != nil {
				s.e.log.Warn("kernel path: remove flow", "call_id", s.info.CallID, "err", err)
			}
		}
	}
}

// onHold reports whether the latest SDP of either leg holds the call. Called under mu.
func (s *Session) onHold() bool {
	return s.legs[caller].held || s.legs[callee].held
}

// end finishes the session from the loop (RTP timeout). Called under mu.
func (s *Session) end(reason string) {
	if s.doneClosed {
		return
	}
	s.doneClosed, s.endReason = true, reason
	close(s.done)
}

// Close implements callseam.MediaSession.
func (s *Session) Close(rec *store.Call) *store.Recording {
	last := s.closeMedia(rec)
	if last == nil {
		return nil
	}
	ri, err := last.finish()
	r := s.e.recorded(s.info, ri, err)
	if r != nil && rec != nil {
		rec.RecordingID = r.ID
	}
	return r
}

// CloseThen implements callseam.MediaSession: Close without the wait for the recording.
func (s *Session) CloseThen(rec *store.Call, then func(*store.Recording)) bool {
	last := s.closeMedia(rec)
	if last == nil {
		return false
	}
	e, info := s.e, s.info
	last.r.FinishAsync(func(ri recordings.Info, err error) { then(e.recorded(info, ri, err)) })
	return true
}

// closeMedia ends the session's media: its sockets go, rec (when not nil) gets its media
// fields, and the recording, if any, gets its last chunks; it returns that recording, to be
// finished, or nil. After the first call it does nothing and returns nil.
func (s *Session) closeMedia(rec *store.Call) *tapEnd {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.e.kernel != nil { // what the kernel forwarded until now belongs in the figures
		s.closing = true // and nothing goes back in
		s.unload()
		s.mu.Unlock()
		s.e.drain()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil
		}
	}
	s.closed = true
	t := s.rec
	s.rec = nil
	var media store.CallMedia
	media.CallerCodec = s.legs[caller].law.String()
	if s.calleeKnown {
		media.CalleeCodec = s.legs[callee].law.String()
	}
	media.FromCaller = streamStats(&s.legs[caller].rx)
	media.FromCallee = streamStats(&s.legs[callee].rx)
	media.StrictSourceDrops, media.BadRTP = s.strictDrops, s.badRTP
	var last *tapEnd
	if t != nil {
		last = t.close(monoNow())
	}
	s.mu.Unlock()

	s.e.finished(s, &media)
	s.lp.remove(s)
	if rec != nil {
		rec.Media = &media
		if s.endReason != "" && rec.EndReason == "" {
			rec.EndReason = s.endReason
		}
	}
	return last
}

// recorded is the record of a call's finished recording, or nil when finishing it failed
// (logged).
func (e *Engine) recorded(info callseam.CallInfo, ri recordings.Info, err error) *store.Recording {
	if err != nil {
		e.log.Error("finish recording", "call_id", info.CallID, "err", err)
		return nil
	}
	e.m.recorded.Inc()
	return &store.Recording{
		ID: info.CallID, CustomerID: info.CustomerID, CallID: info.CallID, Path: ri.Rel,
		Duration: ri.Duration, Size: ri.Size, SHA256: ri.SHA256, Created: time.Now().UTC(),
	}
}

func streamStats(r *rxStats) store.StreamStats {
	return store.StreamStats{Packets: r.packets, Bytes: r.bytes, Lost: r.lost(), JitterMs: r.jitterSeconds() * 1000}
}

// rtpFields reads the fields the relay rewrites.
func rtpFields(p []byte) (pt uint8, seq uint16, ts, ssrc uint32) {
	return p[1] & 0x7f, binary.BigEndian.Uint16(p[2:]), binary.BigEndian.Uint32(p[4:]), binary.BigEndian.Uint32(p[8:])
}

// setRTP writes the rewritten header fields.
func setRTP(p []byte, pt uint8, marker bool, seq uint16, ts, ssrc uint32) {
	m := byte(0)
	if marker {
		m = 0x80
	}
	p[1] = m | pt
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], ssrc)
}
