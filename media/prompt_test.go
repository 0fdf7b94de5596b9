package media

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/media/uring"
)

// The disclaimers of many calls at once go out through the loop's ring, in batches of sends
// from the loop's frame buffers (sendGenerated), and each caller, on a real UDP socket of
// its own, gets the whole prompt in its law, in order, then the ringback tone on the same
// stream: one SSRC, the marker on the first packet only, sequence numbers without a gap and
// timestamps that step by whole frames.
func TestPromptFramesBatchedThroughTheRing(t *testing.T) {
	if err := uring.Available(); err != nil {
		t.Skipf("io_uring is not available here: %v", err)
	}
	cust := recordingCustomer()
	cust.Prompts.Disclaimer = writeWAV(t, 8000/2) // 0.5 s: 25 frames
	f := newFixture(t, Config{IO: IOUring, Loops: 1}, cust)
	const calls = 40
	eps := make([]*endpoint, calls)
	laws := make([]g711.Law, calls)
	for i := range eps {
		eps[i] = newEndpoint(t, "127.0.0.1")
		pt := "0"
		laws[i] = g711.ULaw
		if i%2 == 1 {
			pt, laws[i] = "8", g711.ALaw
		}
		f.anchor(t, eps[i].sdp("sendrecv", pt))
	}
	prompt := f.e.prompts[cust.Prompts.Disclaimer]
	n := prompt.Frames()
	for i, ep := range eps {
		var prev rtp.Packet
		for k := range n + 1 { // the prompt, then the tone's first frame
			p, ok := ep.recv(5 * time.Second)
			if !ok {
				t.Fatalf("call %d: frame %d of %d missing", i, k, n)
			}
			if p.PayloadType != laws[i].PayloadType() {
				t.Fatalf("call %d frame %d: payload type %d, want %d", i, k, p.PayloadType, laws[i].PayloadType())
			}
			want := ringback.frame(laws[i], 0)
			if k < n {
				want = prompt.frame(laws[i], k)
			}
			if string(p.Payload) != string(want) {
				t.Fatalf("call %d frame %d: not the frame that was due", i, k)
			}
			if p.Marker != (k == 0) {
				t.Fatalf("call %d frame %d: marker %v", i, k, p.Marker)
			}
			if k > 0 {
				if p.SSRC != prev.SSRC {
					t.Fatalf("call %d frame %d: SSRC changed", i, k)
				}
				if p.SequenceNumber != prev.SequenceNumber+1 {
					t.Fatalf("call %d frame %d: sequence %d after %d", i, k, p.SequenceNumber, prev.SequenceNumber)
				}
				if d := p.Timestamp - prev.Timestamp; d == 0 || d%frameSamples != 0 {
					t.Fatalf("call %d frame %d: timestamp step %d, want whole frames", i, k, d)
				}
			}
			prev = p
		}
	}
	loops := f.e.loops
	f.e.Close() // the loop's counters are read once it has stopped
	if got := loops[0].ring.genSent; got < calls*uint64(n) {
		t.Fatalf("%d frames went through the ring, want at least %d", got, calls*n)
	}
}

// A business line that answers while the caller still hears the disclaimer waits on
// silence: a frame of it a second (keepAliveEvery), each the first of a talkspurt (marked,
// its timestamp as far on as the time since the last), not 50 a second; at the bridge the
// caller's audio follows on the same stream without a gap in the sequence numbers.
func TestAnsweredLineWaitsOnKeepAlives(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		cust := recordingCustomer()
		cust.Prompts.Disclaimer = writeWAV(t, 8000*5/2) // 2.5 s
		f := newFixture(t, Config{IO: mode}, cust)
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s := f.anchor(t, a.sdp("sendrecv", "0"))
		if err := s.Callee(b.sdp("sendrecv", "0"), netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		s.Answered()
		var got []rtp.Packet
		for {
			p, ok := b.recv(2 * time.Second)
			if !ok {
				break // the disclaimer has ended, and with it the line's wait
			}
			got = append(got, p)
			if len(got) > 10 {
				t.Fatalf("%d frames in the line's wait of 2.5 s, want one a second", len(got))
			}
		}
		if len(got) < 2 || len(got) > 4 {
			t.Fatalf("%d frames in the line's wait of 2.5 s, want one a second", len(got))
		}
		for i, p := range got {
			if string(p.Payload) != string(silence[g711.ULaw][:frameSamples]) {
				t.Fatalf("frame %d is not silence", i)
			}
			if !p.Marker {
				t.Fatalf("frame %d after a pause is not marked", i)
			}
			if i > 0 {
				if p.SequenceNumber != got[i-1].SequenceNumber+1 || p.SSRC != got[i-1].SSRC {
					t.Fatalf("frame %d: sequence %d after %d", i, p.SequenceNumber, got[i-1].SequenceNumber)
				}
				if d := p.Timestamp - got[i-1].Timestamp; d%frameSamples != 0 || d < 4000 || d > 16000 {
					t.Fatalf("frame %d: timestamp %d on from the last, want about a second's (8000)", i, d)
				}
			}
		}
		select {
		case <-s.Ready():
		case <-time.After(5 * time.Second):
			t.Fatal("not ready after the disclaimer")
		}
		s.Bridge()
		toA := anchorAddr(t, s.CallerSDP())
		for {
			a.send(toA, 0, payload(0x42))
			p, ok := b.recv(time.Second)
			if !ok {
				t.Fatal("no bridged audio at the line")
			}
			if p.Payload[0] != 0x42 {
				continue
			}
			last := got[len(got)-1]
			if p.SSRC != last.SSRC || p.SequenceNumber != last.SequenceNumber+1 || !p.Marker {
				t.Fatalf("bridged audio: ssrc %x seq %d marker %v after ssrc %x seq %d", p.SSRC, p.SequenceNumber, p.Marker, last.SSRC, last.SequenceNumber)
			}
			break
		}
	})
}

// A prompt that starts on an idle loop plays, however the loop's look for due frames falls
// between the prompt's start and the loop taking the call: one call at a time, many times.
func TestPromptStartsOnAnIdleLoop(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		cust := recordingCustomer()
		cust.Prompts.Disclaimer = writeWAV(t, 8000/10) // 0.1 s
		f := newFixture(t, Config{IO: mode, Loops: 1}, cust)
		a := newEndpoint(t, "127.0.0.1")
		for i := range 100 {
			s := f.anchor(t, a.sdp("sendrecv", "0"))
			if _, ok := a.recv(2 * time.Second); !ok {
				t.Fatalf("call %d: no prompt", i)
			}
			s.Close(nil)
			for { // what the call still sent
				if _, ok := a.recv(30 * time.Millisecond); !ok {
					break
				}
			}
		}
	})
}

// Each loop wakes on its own shift of the grid: with two loops their bursts of frames
// alternate, 2.5 ms apart.
func TestLoopGrids(t *testing.T) {
	g := genGrid
	for _, tc := range []struct {
		off, t, want int64
	}{
		{0, 0, 0}, {0, 1, g}, {0, g, g}, {0, g + 1, 2 * g},
		{g / 2, 0, g / 2}, {g / 2, g / 2, g / 2}, {g / 2, g/2 + 1, g + g/2}, {g / 2, 3 * g, 3*g + g/2},
	} {
		l := &loop{gridOff: tc.off}
		if got := l.onGrid(tc.t); got != tc.want {
			t.Errorf("offset %d: onGrid(%d) = %d, want %d", tc.off, tc.t, got, tc.want)
		}
	}
	e, err := New(Config{Loops: 2, PortMin: 44000, PortMax: 44099, IO: IOEpoll, Kernel: KernelOff, RealtimePriority: -1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.loops[0].gridOff != 0 || e.loops[1].gridOff != g/2 {
		t.Errorf("grid offsets %d and %d, want 0 and %d", e.loops[0].gridOff, e.loops[1].gridOff, g/2)
	}
}

// The anchor's own frames have the packetization the caller's SDP asks for: a=ptime, at
// most a=maxptime (RFC 4566 §6). The prompt plays whole in frames of that size, each a
// frame's time after the last, with timestamps that step by it, and both SDPs the anchor
// sends ask for it too, so that the business line sends the caller what it asked for.
func TestPromptAtTheCallersPtime(t *testing.T) {
	for _, tc := range []struct {
		attrs   string
		samples int
	}{
		{"a=ptime:40\r\n", 320},
		{"a=maxptime:10\r\n", 80},
		{"a=ptime:30\r\na=maxptime:20\r\n", 160},
		{"a=ptime:60\r\n", 480},
	} {
		t.Run(strings.TrimSpace(strings.ReplaceAll(tc.attrs, "\r\n", " ")), func(t *testing.T) {
			eachIO(t, func(t *testing.T, mode string) {
				cust := recordingCustomer()
				cust.Prompts.Disclaimer = writeWAV(t, 8000/2) // 0.5 s
				f := newFixture(t, Config{IO: mode}, cust)
				a := newEndpoint(t, "127.0.0.1")
				offer := append(a.sdp("sendrecv", "8"), tc.attrs...)
				s := f.anchor(t, offer)
				want := fmt.Sprintf("a=ptime:%d\r\n", tc.samples/8)
				if !strings.Contains(string(s.CallerSDP()), want) || !strings.Contains(string(s.Offer()), want) {
					t.Fatalf("the answer or the line's offer does not ask for %q:\n%s\n%s", want, s.CallerSDP(), s.Offer())
				}
				prompt := f.e.prompts[cust.Prompts.Disclaimer]
				n := prompt.framesOf(tc.samples)
				var first time.Time
				var prev rtp.Packet
				for k := range n + 1 { // the prompt, then the tone's first frame
					p, ok := a.recv(5 * time.Second)
					if !ok {
						t.Fatalf("frame %d of %d missing", k, n)
					}
					wantPayload := ringback.frameOf(g711.ALaw, 0, tc.samples)
					if k < n {
						wantPayload = prompt.frameOf(g711.ALaw, k, tc.samples)
					}
					if string(p.Payload) != string(wantPayload) {
						t.Fatalf("frame %d: %d bytes, not the frame of %d samples that was due", k, len(p.Payload), tc.samples)
					}
					if k == 0 {
						first = time.Now()
					} else if d := p.Timestamp - prev.Timestamp; d != uint32(tc.samples) {
						t.Fatalf("frame %d: timestamp step %d, want %d", k, d, tc.samples)
					}
					prev = p
				}
				// The frames come a frame's time apart: never faster (a slow machine only
				// makes them later).
				if d, min := time.Since(first), time.Duration(n-1)*time.Duration(tc.samples)*125*time.Microsecond; d < min {
					t.Fatalf("%d frames came in %v, want at least %v", n, d, min)
				}
			})
		})
	}
}

// What a side's a=ptime and a=maxptime make of the anchor's frames.
func TestPtimeOf(t *testing.T) {
	for _, tc := range []struct {
		ptime, maxptime string
		want            int
	}{
		{"", "", 0}, {"20", "", 160}, {"40", "", 320}, {"30", "", 240}, {"40", "30", 240},
		{"", "10", 80}, {"", "40", 0}, {"", "15", 80}, {"25", "", 160}, {"20.5", "", 160},
		{"5", "", 80}, {"100", "", 480}, {"abc", "", 0}, {"-20", "", 0}, {"NaN", "", 0},
		{"Inf", "", 0}, {"1e300", "", 0}, {"40", "junk", 320},
	} {
		if got := ptimeOf(tc.ptime, tc.maxptime); got != tc.want {
			t.Errorf("ptimeOf(%q, %q) = %d, want %d", tc.ptime, tc.maxptime, got, tc.want)
		}
	}
}

// A new ptime while a prompt plays (an SDP in the dialog) goes on from the same point of the
// prompt in frames of the new size.
func TestPtimeChangeKeepsThePromptsPlace(t *testing.T) {
	lg := leg{gen: genPrompt, pos: 10} // 10 frames of 20 ms: 200 ms in
	lg.setPtime(320)
	if lg.pos != 5 || lg.frame() != 320 || lg.every() != 40_000_000 {
		t.Fatalf("at 40 ms: pos %d, frame %d, every %d; want 5, 320, 40 ms", lg.pos, lg.frame(), lg.every())
	}
	lg.setPtime(0)
	if lg.pos != 10 || lg.frame() != frameSamples {
		t.Fatalf("back at the default: pos %d, frame %d; want 10, %d", lg.pos, lg.frame(), frameSamples)
	}
}

// The loop's wheel serves each session's frames once and on time, a few milliseconds late at
// most (its grid), for frames of 20 and 40 ms and keep-alives a second apart, across turns of
// the wheel and after a stall longer than one turn, and forgets a session whose legs stopped;
// only the slots in use hold arrays.
func TestWheelServesFramesOnTime(t *testing.T) {
	l := &loop{gridOff: genGrid / 2}
	p := NewPrompt("long", make([]int16, 8000*60)) // a minute: it does not end here
	t0 := int64(1_000_000_000_000)
	base := map[*Session]int64{} // frames sent before the count starts
	mk := func(gen genKind, ptime int) *Session {
		s := &Session{}
		lg := &s.legs[caller]
		lg.gen, lg.prompt, lg.next, lg.ptime = gen, p, t0, ptime
		l.file(s, t0)
		return s
	}
	s20, s40, ka := mk(genPrompt, 0), mk(genPrompt, 320), mk(genSilence, 0)
	// sent counts the frames a leg has sent: its place in the prompt, or its keep-alives
	// (whose next due time steps by keepAliveEvery).
	sent := func(s *Session) int64 {
		lg := &s.legs[caller]
		if lg.gen == genSilence {
			return (lg.next - t0) / keepAliveEvery
		}
		return int64(lg.pos)
	}
	check := func(now, from int64) {
		t.Helper()
		for _, c := range []struct {
			s     *Session
			every int64
		}{{s20, frameNanos}, {s40, 2 * frameNanos}, {ka, keepAliveEvery}} {
			// frames due at from, from+every, ...: those due a grid step before now are out,
			// none due after now is.
			due := func(t int64) int64 {
				if t < from {
					return 0
				}
				return (t-from)/c.every + 1
			}
			lo, hi := due(now-genGrid), due(now)
			if got := sent(c.s) - base[c.s]; got < lo || got > hi {
				t.Fatalf("at %d ms: %d frames of every %d ms sent, want %d to %d", (now-t0)/1e6, got, c.every/1e6, lo, hi)
			}
		}
	}
	now := t0
	for ; now < t0+int64(6*time.Second); now += int64(time.Millisecond) {
		l.generateDue(now)
		check(now, t0)
	}
	// Only the slots in use hold arrays: three sessions due in at most three slots at a time,
	// and the one being visited.
	arrays := len(l.gen.free)
	for _, sl := range l.gen.slots {
		if sl != nil {
			arrays++
		}
	}
	if arrays > 4 {
		t.Fatalf("the wheel holds %d arrays for 3 sessions, want at most 4", arrays)
	}
	// A stall of 4 s, longer than a turn of the wheel (2.56 s): the prompts resume from
	// then without a burst of the frames missed (loop.generate), the keep-alive sends the
	// one it missed.
	now += int64(4 * time.Second)
	l.generateDue(now)
	for _, s := range []*Session{s20, s40, ka} {
		base[s] = sent(s) - 1 // the first frame after the stall counts from now
	}
	from := now
	for end := now + int64(3*time.Second); now < end; now += int64(time.Millisecond) {
		l.generateDue(now)
		check(now, from)
	}
	// Stopped legs leave the wheel at their next look.
	for _, s := range []*Session{s20, s40, ka} {
		s.legs[caller].stopGen()
	}
	for end := now + int64(2*time.Second); now < end; now += int64(time.Millisecond) {
		l.generateDue(now)
	}
	if d := l.generateDue(now); d != -1 || l.gen.n != 0 {
		t.Fatalf("nothing generates, but the wheel has %d entries and is due at %d", l.gen.n, d)
	}
}
