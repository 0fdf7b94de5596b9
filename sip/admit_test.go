package sip

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var admitT0 = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

// offer runs calls at rate a second for d from *now, with a datagram observed before each
// with the given queueing delay, and returns how many were admitted and refused by reason.
func offer(a *admission, now *time.Time, rate float64, d, delay time.Duration) (admitted int, refused map[string]int) {
	refused = map[string]int{}
	step := time.Duration(float64(time.Second) / rate)
	for end := now.Add(d); now.Before(end); *now = now.Add(step) {
		a.observe(delay, *now)
		if r := a.allow(*now, 0); r == "" {
			admitted++
		} else {
			refused[r]++
		}
	}
	return admitted, refused
}

func TestAdmissionNoLimitWithoutDelay(t *testing.T) {
	a := newAdmission(0, 0, newAdmitMetrics())
	now := admitT0
	admitted, refused := offer(a, &now, 2000, 3*time.Second, time.Millisecond)
	if admitted != 6000 || len(refused) != 0 {
		t.Errorf("admitted %d, refused %v; want all 6000", admitted, refused)
	}
	if a.lim.rate != 0 {
		t.Errorf("limit %v in force without a queue", a.lim.rate)
	}
}

func TestAdmissionMaxCPS(t *testing.T) {
	m := newAdmitMetrics()
	a := newAdmission(0, 20, m)
	now := admitT0
	admitted, refused := offer(a, &now, 60, 2*time.Second, 0)
	// 20 a second, and the bucket's saved-up token at the start.
	if admitted < 40 || admitted > 42 || refused[shedMaxCPS] < 78 || refused[shedRate]+refused[shedStale] != 0 {
		t.Errorf("admitted %d, refused %v; want 40-42 admitted, the rest for max_cps", admitted, refused)
	}
	if got := testutil.ToFloat64(m.shed.WithLabelValues(shedMaxCPS)); int(got) != refused[shedMaxCPS] {
		t.Errorf("shed_total{max_cps} = %v, want %d", got, refused[shedMaxCPS])
	}
}

// A standing queue (every datagram of an interval waits longer than the target) cuts the
// admitted rate; once the queue is gone the limit grows back, and is lifted when nothing
// has been refused for a second.
func TestAdmissionDelaySignal(t *testing.T) {
	m := newAdmitMetrics()
	a := newAdmission(20*time.Millisecond, 0, m)
	now := admitT0
	// Overloaded: 2,000 offered a second while every datagram waits 50 ms.
	admitted, refused := offer(a, &now, 2000, 2*time.Second, 50*time.Millisecond)
	if refused[shedRate] == 0 || admitted > 2000 {
		t.Fatalf("standing queue: admitted %d, refused %v; want calls shed for overload", admitted, refused)
	}
	if a.lim.rate <= 0 || a.lim.rate >= 2000 {
		t.Fatalf("limit %v under a standing queue, want (0, 2000)", a.lim.rate)
	}
	if got := testutil.ToFloat64(m.delay); got != 0.05 {
		t.Errorf("queue_delay_seconds = %v, want 0.05", got)
	}
	if got := testutil.ToFloat64(m.shed.WithLabelValues(shedRate)); int(got) != refused[shedRate] {
		t.Errorf("shed_total{overload_rate} = %v, want %d", got, refused[shedRate])
	}
	// While the queue shrinks the limit holds (the first interval still holds datagrams of
	// the standing queue)...
	offer(a, &now, 2000, 100*time.Millisecond, 45*time.Millisecond)
	low := a.lim.rate
	for _, d := range []time.Duration{40, 30} {
		offer(a, &now, 2000, 100*time.Millisecond, d*time.Millisecond)
	}
	if a.lim.rate != low {
		t.Errorf("limit %v moved from %v while the queue shrank", a.lim.rate, low)
	}
	// ...once it is gone the limit grows while calls are still refused...
	offer(a, &now, 2000, 300*time.Millisecond, time.Millisecond)
	if a.lim.rate <= low {
		t.Errorf("limit %v did not grow from %v without a queue", a.lim.rate, low)
	}
	// ...and goes once the offered load is under it for a second.
	admitted, refused = offer(a, &now, 50, 2*time.Second, time.Millisecond)
	if a.lim.rate != 0 || testutil.ToFloat64(m.limit) != 0 {
		t.Errorf("limit %v still in force after a calm second", a.lim.rate)
	}
	if admitted < 98 { // the bucket may be empty as the load falls
		t.Errorf("calm: admitted %d, refused %v; want (nearly) all 100", admitted, refused)
	}
}

// A burst the reader works off within an interval is no overload: some datagram of each
// interval waited less than the target.
func TestAdmissionBurstIsNotOverload(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now := admitT0
	for i := range 3000 {
		delay := 80 * time.Millisecond
		if i%50 == 0 { // the queue empties now and then
			delay = time.Millisecond
		}
		a.observe(delay, now)
		if r := a.allow(now, 0); r != "" {
			t.Fatalf("call %d refused (%s) under bursts", i, r)
		}
		now = now.Add(time.Millisecond)
	}
}

// The meter reads the kernel's receive timestamp: a datagram left in the queue for 30 ms
// is stamped at least that long before it is read.
func TestAdmitMeterKernelTimestamp(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := meterUDP(c)
	if m == nil {
		t.Fatal("no kernel timestamps on a loopback UDP socket")
	}
	out, err := net.Dial("udp", c.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// The kernel turns receive timestamps on for the machine a moment after the first
	// socket asks (a deferred static key); until then a datagram is stamped as it is read.
	buf := make([]byte, 1500)
	for i := range 20 {
		if _, err := out.Write([]byte("OPTIONS sip:x SIP/2.0\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		n, from, err := m.ReadFrom(buf)
		read := time.Now()
		if err != nil || n != 25 || from.String() != out.LocalAddr().String() {
			t.Fatalf("ReadFrom = %d, %v, %v", n, from, err)
		}
		if m.rx.IsZero() {
			t.Fatal("the datagram has no receive timestamp")
		}
		waited := read.Sub(m.rx)
		if waited >= 30*time.Millisecond && waited < 5*time.Second {
			return
		}
		t.Logf("datagram %d: waited %v by its timestamp", i, waited)
	}
	t.Error("no datagram was stamped as waiting the 30 ms it waited")
}

// The meter reads and writes with system calls of its own: on an IPv4 socket and on a
// dual-stack one (IPv4 peers as IPv4-mapped addresses), each datagram's source is the peer
// that sent it, also when two peers alternate, and a write reaches the peer from the
// switch's own port.
func TestAdmitMeterReadWrite(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", ":0"} {
		t.Run(listen, func(t *testing.T) {
			c, err := net.ListenPacket("udp", listen)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			m := meterUDP(c)
			if m == nil {
				t.Fatal("no meter")
			}
			port := c.LocalAddr().(*net.UDPAddr).Port
			var peers [2]*net.UDPConn
			for i := range peers {
				p, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				peers[i] = p
			}
			to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
			buf := make([]byte, 1500)
			for i := range 6 {
				p := peers[i%2]
				msg := fmt.Sprintf("OPTIONS sip:x SIP/2.0\r\nX: %d\r\n\r\n", i)
				if _, err := p.WriteToUDP([]byte(msg), to); err != nil {
					t.Fatal(err)
				}
				n, from, err := m.ReadFrom(buf)
				if err != nil || string(buf[:n]) != msg {
					t.Fatalf("ReadFrom = %q, %v", buf[:n], err)
				}
				if from.String() != p.LocalAddr().String() {
					t.Fatalf("datagram %d from %v, want %v", i, from, p.LocalAddr())
				}
				reply := fmt.Sprintf("SIP/2.0 200 OK\r\nX: %d\r\n\r\n", i)
				if n, err := m.WriteTo([]byte(reply), from); err != nil || n != len(reply) {
					t.Fatalf("WriteTo = %d, %v", n, err)
				}
				p.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, src, err := p.ReadFromUDP(buf)
				if err != nil || string(buf[:n]) != reply {
					t.Fatalf("the peer read %q, %v", buf[:n], err)
				}
				if src.Port != port {
					t.Fatalf("the answer came from port %d, want the switch's %d", src.Port, port)
				}
			}
			if _, err := m.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0}); err == nil {
				t.Error("a write to port 0 succeeded")
			}
			// Reading from sources seen before allocates nothing (the drain must not assist
			// the garbage collector).
			msg := []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")
			dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
			i := 0
			if n := testing.AllocsPerRun(100, func() {
				peers[i%2].WriteToUDPAddrPort(msg, dst)
				i++
				if _, _, err := m.ReadFrom(buf); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("a read allocates %v times", n)
			}
			// Nor does the drain's own write (its 503s).
			to0 := peers[0].LocalAddr()
			if n := testing.AllocsPerRun(100, func() {
				if _, err := m.writeOwn(msg, to0); err != nil {
					t.Fatal(err)
				}
				peers[0].ReadFromUDPAddrPort(buf)
			}); n != 0 {
				t.Errorf("the drain's write allocates %v times", n)
			}
		})
	}
}

func TestRxTimestampMalformed(t *testing.T) {
	for _, oob := range [][]byte{nil, make([]byte, 8), {255, 255, 255, 255, 255, 255, 255, 127, 0, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 64)} {
		if _, ok := rxTimestamp(oob); ok {
			t.Errorf("rxTimestamp(%v) found a timestamp", oob)
		}
	}
}

// An INVITE that finds the queue standing for admitStale times the target is refused at
// once, whatever the limit; one that finds it shorter is not, nor one whose wait is not
// known (TCP).
func TestAdmissionStaleInvite(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now, key := admitT0, uint64(0)
	stale := admitStale * 20 * time.Millisecond
	// An idle switch is not quiet: the calls that fill its queue may be a step of the load.
	if r := a.allow(now, stale+time.Millisecond); r != shedStale {
		t.Errorf("an INVITE that found the queue of an idle switch standing past admitStale targets: %q, want overload", r)
	}
	now = now.Add(quietAfter)
	steadySetups(t, a, &now, &key, quietSetups, 2*time.Millisecond) // carrying 500 calls a second: quiet
	if r := a.allow(now, stale); r != "" {
		t.Errorf("refused (%s) at a wait of exactly admitStale times the target", r)
	}
	// A quiet switch rides out a pause of up to setupPause: the queue stood that long.
	if r := a.allow(now, stale+time.Millisecond); r != "" {
		t.Errorf("an INVITE that found the queue of a quiet switch standing past admitStale targets: %q, want admitted", r)
	}
	if r := a.allow(now, setupPause); r != "" {
		t.Errorf("an INVITE that found the queue of a quiet switch standing setupPause: %q, want admitted", r)
	}
	if r := a.allow(now, setupPause+time.Millisecond); r != shedStale {
		t.Errorf("an INVITE that found the queue standing past setupPause: %q, want overload", r)
	}
	// The switch shed a call: from then on past admitStale targets is overload again, ...
	if r := a.allow(now, stale+time.Millisecond); r != shedStale {
		t.Errorf("an INVITE that found the queue standing past admitStale targets after a refusal: %q, want overload", r)
	}
	// ... for a queue that began to stand within quietAfter of the refusal ...
	steadySetups(t, a, &now, &key, int((quietAfter+stale)/(2*time.Millisecond)), 2*time.Millisecond)
	if r := a.allow(now, stale+time.Millisecond); r != shedStale {
		t.Errorf("a queue that began to stand quietAfter after a refusal: %q, want overload", r)
	}
	// ... and not past it.
	steadySetups(t, a, &now, &key, int((quietAfter+stale+2*time.Millisecond)/(2*time.Millisecond)), 2*time.Millisecond)
	if r := a.allow(now, stale+time.Millisecond); r != "" {
		t.Errorf("a queue that began to stand past quietAfter after a refusal: %q, want admitted", r)
	}
	if r := a.allow(now, maxWait); r != shedStale {
		t.Errorf("an INVITE that found the queue full: %q, want overload", r)
	}
	if r := a.allow(now, 0); r != "" {
		t.Errorf("over TCP (no wait known): %q, want admitted", r)
	}
	// A step of the load is not a pause: an interval that admitted more than quietStep times
	// the setups done a second.
	b := newAdmission(20*time.Millisecond, 0, nil)
	now, key = admitT0, 0
	steadySetups(t, b, &now, &key, quietSetups, 2*time.Millisecond)
	for range 2 * 400 { // two intervals of 4,000 calls a second
		b.allow(now, 0)
		now = now.Add(250 * time.Microsecond)
	}
	if r := b.allow(now, stale+time.Millisecond); r != shedStale {
		t.Errorf("a stale INVITE after a step of the load: %q, want overload", r)
	}
	// Nor is a step the switch carries for a while: 4,000 setups a second done for a second
	// after 500 a second (a switch at twice its knee carries that long before it falls behind).
	e := newAdmission(20*time.Millisecond, 0, nil)
	now, key = admitT0, 0
	steadySetups(t, e, &now, &key, quietSetups, 2*time.Millisecond)
	steadySetups(t, e, &now, &key, 4000, 250*time.Microsecond)
	if r := e.allow(now, stale+time.Millisecond); r != shedStale {
		t.Errorf("a stale INVITE after a second of a step carried: %q, want overload", r)
	}
	// Under a rate limit a queue past admitStale targets is overload, quiet or not.
	c := newAdmission(20*time.Millisecond, 0, nil)
	now, key = admitT0, 0
	steadySetups(t, c, &now, &key, 600, 2*time.Millisecond)
	c.lim.setRate(1000, now)
	if r := c.allow(now, stale+time.Millisecond); r != shedStale {
		t.Errorf("a stale INVITE under a rate limit: %q, want overload", r)
	}
}

// The handlers' wait counts while it is recent: a switch that refused everything for it
// admits again within two intervals.
func TestAdmissionHandlerWait(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now := admitT0
	if got := a.handlerWait(now); got != 0 {
		t.Errorf("handlerWait before any handler = %v, want 0", got)
	}
	a.observeHandler(300*time.Millisecond, now)
	if got := a.handlerWait(now.Add(admitInterval)); got != 300*time.Millisecond {
		t.Errorf("handlerWait an interval later = %v, want 300ms", got)
	}
	if got := a.handlerWait(now.Add(2*admitInterval + time.Millisecond)); got != 0 {
		t.Errorf("handlerWait past two intervals = %v, want 0", got)
	}
}

// The switch is strained (the drain polls) for strainHold after a refusal for overload or a
// handler that waited over half the target, and not before nor after.
func TestAdmissionStrained(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now := admitT0
	if a.strained(now) {
		t.Fatal("strained before any sign")
	}
	a.observeHandler(5*time.Millisecond, now)
	if a.strained(now) {
		t.Fatal("strained by a handler that waited a quarter of the target")
	}
	a.observeHandler(15*time.Millisecond, now)
	if !a.strained(now) || !a.strained(now.Add(strainHold-time.Millisecond)) {
		t.Fatal("not strained after a handler waited three quarters of the target")
	}
	if a.strained(now.Add(strainHold)) {
		t.Fatal("still strained a strainHold later")
	}
	now = now.Add(2 * strainHold)
	if r := a.allow(now, setupPause+time.Millisecond); r != shedStale {
		t.Fatalf("a stale INVITE: %q, want refused", r)
	}
	if !a.strained(now.Add(strainHold / 2)) {
		t.Fatal("not strained after a refusal for overload")
	}
}

// The limit on setups in flight: it starts at setupInit and refuses past it; setups done in
// time make it grow by one each while it is in use (a slow start), not while it is not; a
// setup that took longer than the least plus admitStale targets cuts it (by the ratio, at
// most by half), once for the setups admitted before the cut, but not under what the setups
// done in the last second need at the time allowed; an INVITE whose handler never came
// leaves after setupExpire.
func TestAdmissionSetupLimit(t *testing.T) {
	m := newAdmitMetrics()
	a := newAdmission(20*time.Millisecond, 0, m)
	now := admitT0
	key := uint64(0)
	admit := func(n int) (admitted []uint64, refused int) {
		for range n {
			key++
			switch r := a.allowSetup(now, 0, key, true); r {
			case "":
				admitted = append(admitted, key)
			case shedSetups:
				refused++
			default:
				t.Fatalf("refused for %q, want overload", r)
			}
		}
		return admitted, refused
	}
	first, refused := admit(setupInit + 10)
	if len(first) != setupInit || refused != 10 {
		t.Fatalf("admitted %d, refused %d of %d at once; want %d admitted", len(first), refused, setupInit+10, setupInit)
	}
	if r := a.allow(now, 0); r != "" {
		t.Errorf("an INVITE without a key (TCP, no limit on its setup): %q, want admitted", r)
	}
	// Done in 1 ms each: one more for each while at least half the limit is in flight (the
	// first 22: then 42 are left in flight of a limit of 86).
	now = now.Add(time.Millisecond)
	for _, k := range first {
		a.setupDone(k, now)
	}
	if want := float64(setupInit + 22); a.conc != want {
		t.Errorf("limit after %d setups done in 1 ms = %v, want %v (grown while half of it was in flight)", setupInit, a.conc, want)
	}
	a.setupDone(first[0], now) // done already: ignored
	before := a.conc
	// A lull: one setup at a time leaves the limit where it is.
	for range 50 {
		ks, _ := admit(1)
		now = now.Add(time.Millisecond)
		a.setupDone(ks[0], now)
	}
	if a.conc != before {
		t.Errorf("limit after a lull = %v, want %v (not in use: not grown)", a.conc, before)
	}
	// Fill it, then a setup takes 810 ms, ten times the 81 ms allowed (1 ms + 4 targets):
	// the limit is halved, once for all those admitted before the cut.
	full, _ := admit(int(a.conc) + 5)
	now = now.Add(810 * time.Millisecond)
	a.setupDone(full[0], now)
	if want := before / 2; a.conc != want {
		t.Errorf("limit after a setup of 810 ms = %v, want %v", a.conc, want)
	}
	cut := a.conc
	a.setupDone(full[1], now.Add(time.Millisecond))
	if a.conc != cut {
		t.Errorf("limit after a second slow setup admitted before the cut = %v, want %v", a.conc, cut)
	}
	if !a.strained(now) {
		t.Error("not strained after a cut of the setups' limit")
	}
	// A setup admitted after the cut that took 162 ms (twice the allowed) cuts it again, by
	// half: the 50 setups done in the last second (the lull's) need only 4 at 81 ms.
	for _, k := range full[2:] {
		a.setupDone(k, now)
	}
	ks, _ := admit(1)
	now = now.Add(162 * time.Millisecond)
	a.setupDone(ks[0], now)
	if want := cut / 2; a.conc != want {
		t.Errorf("limit after a setup of 162 ms admitted after the cut = %v, want %v", a.conc, want)
	}
	// An INVITE whose handler never came leaves the setups in flight after setupExpire.
	admit(1)
	if len(a.flight) != 1 {
		t.Fatalf("%d setups in flight, want 1", len(a.flight))
	}
	now = now.Add(setupExpire + 2*admitInterval)
	a.allow(now, 0)
	if len(a.flight) != 0 {
		t.Errorf("%d setups in flight past setupExpire, want 0", len(a.flight))
	}
	if got := testutil.ToFloat64(m.setups); got != 0 {
		t.Errorf("setups_in_flight = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.setupLimit); got != a.conc {
		t.Errorf("setup_limit = %v, want %v", got, a.conc)
	}
}

// quietSetups: steadySetups of this many, one every 2 ms, make a switch quiet: 500 setups a
// second for 9 s, near enough their average over quietAfter.
const quietSetups = 4500

// steadySetups admits n setups one at a time, every apart from *now on, each done in 1 ms,
// with keys after *key; it fails t if one is refused.
func steadySetups(t *testing.T, a *admission, now *time.Time, key *uint64, n int, every time.Duration) {
	t.Helper()
	for range n {
		*key++
		if r := a.allowSetup(*now, 0, *key, true); r != "" {
			t.Fatalf("setup %d of one at a time every %v refused (%s)", *key, every, r)
		}
		a.setupDone(*key, now.Add(time.Millisecond))
		*now = now.Add(every)
	}
}

// sheddingSetups is steadySetups with the switch refusing a call for overload before each
// (an INVITE that found the queue full): it is not quiet.
func sheddingSetups(t *testing.T, a *admission, now *time.Time, key *uint64, n int, every time.Duration) {
	t.Helper()
	for range n {
		if r := a.allow(*now, maxWait); r != shedStale {
			t.Fatalf("an INVITE that found the queue full: %q, want overload", r)
		}
		steadySetups(t, a, now, key, 1, every)
	}
}

// A cut of the setups' limit stops at what the setups done in the last second need at the
// time allowed (Little's law): after a second of 500 setups of 1 ms (never more than one in
// flight), with the switch shedding (so that the limit is not lifted past that need), a
// burst is admitted and one of its setups takes 900 ms (within a second of the last
// refusal); 500 a second at 81 ms need 40.5, more than half the limit.
func TestAdmissionSetupLimitFloor(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now, key := admitT0, uint64(0)
	sheddingSetups(t, a, &now, &key, 500, 2*time.Millisecond)
	a.allow(now, 0) // closes the interval
	burst := key + 1
	for range setupInit {
		key++
		a.allowSetup(now, 0, key, true)
	}
	a.setupDone(burst, now.Add(900*time.Millisecond))
	if want := 500 * 0.081; a.conc < want-0.5 || a.conc > want+0.5 {
		t.Errorf("limit after a slow setup = %v, want about %v (the last second's need)", a.conc, want)
	}
}

// The setups' limit follows what the switch carries (Little's law): at 1,000 setups a
// second, each done in 1 ms (never more than two in flight, so never in use), it rises to
// the 81 the last second's setups need at the time allowed (1 ms + 4 targets), and a pause
// of the switch's handlers for 75 ms, which leaves 75 setups in flight, refuses none.
func TestAdmissionSetupLimitFollowsRate(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now, key := admitT0, uint64(0)
	steadySetups(t, a, &now, &key, 1100, time.Millisecond)
	if want := 1000 * 0.081; a.conc < want-1 {
		t.Fatalf("limit at 1,000 setups a second = %v, want at least about %v", a.conc, want)
	}
	for range 75 {
		key++
		if r := a.allowSetup(now, 0, key, true); r != "" {
			t.Fatalf("setup %d of a 75 ms pause refused (%s), limit %v", key, r, a.conc)
		}
		now = now.Add(time.Millisecond)
	}
	// Past the knee (a rate limit in force, here 6,000 a second) it adapts as before: 3,000
	// setups a second for half a second (about 1,200 done a second over the last second,
	// which need about 97) leave it where it was.
	b := newAdmission(20*time.Millisecond, 0, nil)
	now, key = admitT0, 0
	b.lim = newTokenBucket(6000)
	steadySetups(t, b, &now, &key, 1500, time.Millisecond/3)
	if b.lim.rate == 0 {
		t.Fatal("the rate limit was lifted")
	}
	if b.conc != setupInit {
		t.Errorf("limit under a rate limit = %v, want %v (not lifted)", b.conc, setupInit)
	}
}

// While the switch is quiet the limit covers what the setups done need at setupPause: after a
// second of 500 setups a second, a 220 ms pause in which 110 setups are admitted and none is
// done refuses none of them, strain or not (a datagram that waited in the socket). While it
// sheds (a refusal or a cut in the last second), the lift is to the time allowed alone.
func TestAdmissionSetupLimitRidesOutAPause(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now, key := admitT0, uint64(0)
	steadySetups(t, a, &now, &key, quietSetups, 2*time.Millisecond)
	if want := 500 * setupPause.Seconds(); a.conc < want-2 {
		t.Fatalf("limit at 500 setups a second = %v, want about %v", a.conc, want)
	}
	paused := key + 1
	for range 110 {
		key++
		if r := a.allowSetup(now, 0, key, true); r != "" {
			t.Fatalf("setup %d of a 220 ms pause refused (%s), limit %v", key, r, a.conc)
		}
		now = now.Add(2 * time.Millisecond)
	}
	// The pause ends: its setups, done now, took up to 220 ms, more than the 81 ms allowed a
	// switch that sheds, and cut nothing; nor does the queue the pause left refuse a call.
	limit := a.conc
	for k := paused; k <= key; k++ {
		a.setupDone(k, now)
	}
	if a.conc < limit {
		t.Errorf("limit after the pause's setups = %v, want %v or more (not cut)", a.conc, limit)
	}
	key++
	if r := a.allowSetup(now, 150*time.Millisecond, key, true); r != "" {
		t.Errorf("an INVITE that found the queue standing 150 ms after the pause: %q, want admitted", r)
	}
	b := newAdmission(20*time.Millisecond, 0, nil)
	now, key = admitT0, 0
	sheddingSetups(t, b, &now, &key, 600, 2*time.Millisecond)
	if b.conc != setupInit {
		t.Errorf("limit while shedding = %v, want %v (500 a second at the time allowed need ~41)", b.conc, setupInit)
	}
	c := newAdmission(20*time.Millisecond, 0, nil)
	now, key = admitT0, 0
	for range quietSetups {
		c.strain(now)
		steadySetups(t, c, &now, &key, 1, 2*time.Millisecond)
	}
	if want := 500 * setupPause.Seconds(); c.conc < want-2 {
		t.Errorf("limit of a switch strained but quiet = %v, want about %v", c.conc, want)
	}
}

// While the switch is quiet, a setup later than setupPause does not cut the limit when a
// setup that began after it was done in time: its goroutine stalled, not the switch. One
// whose followers are still in flight cuts it (to no less than what the setups done need at
// setupPause), and the switch is no longer quiet, as before.
func TestAdmissionSetupRidesOutAStalledOne(t *testing.T) {
	// stall starts a setup after 9 s of 500 setups a second (quiet); setups follow it, 100
	// done in 1 ms each when done, else 10 left in flight; the stalled one is done 600 ms
	// after it began.
	stall := func(a *admission, done bool) {
		now, key := admitT0, uint64(0)
		steadySetups(t, a, &now, &key, quietSetups, 2*time.Millisecond)
		key++
		stalled, began := key, now
		if r := a.allowSetup(now, 0, stalled, true); r != "" {
			t.Fatalf("the setup that stalls refused (%s)", r)
		}
		if done {
			steadySetups(t, a, &now, &key, 100, 2*time.Millisecond)
		} else {
			for range 10 {
				key++
				a.allowSetup(now, 0, key, true)
				now = now.Add(2 * time.Millisecond)
			}
		}
		a.setupDone(stalled, began.Add(600*time.Millisecond))
	}
	a := newAdmission(20*time.Millisecond, 0, nil)
	stall(a, true)
	if want := 500 * setupPause.Seconds(); a.conc < want-2 || a.shedAt != 0 {
		t.Errorf("a stalled setup among setups in time: limit %v, shed at %v; want about %v, never shed", a.conc, a.shedAt, want)
	}
	b := newAdmission(20*time.Millisecond, 0, nil)
	stall(b, false)
	if b.shedAt == 0 || b.cutAt == 0 {
		t.Errorf("a stalled setup with the setups after it in flight: cut at %v, shed at %v; want a cut, and no longer quiet", b.cutAt, b.shedAt)
	}
}

// A pause of the whole process holds the calls offered in the socket, and the interval
// after it admits them at once: over the pause and that interval the calls admitted are
// those offered, not a step of the load, and the switch stays quiet. After 9 s of 500 setups
// a second, 5 setups are in flight when the process pauses for 130 ms; then the 65 calls
// it held come in at once, the 500 a second go on for 106 ms, and the 5 are done, 236-244
// ms after they began (within setupPause): nothing is cut. A step to 1,500 calls a second
// without a pause is not quiet from its first interval: a setup of 200 ms cuts the limit.
func TestAdmissionSetupRidesOutAWholePause(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now, key := admitT0, uint64(0)
	steadySetups(t, a, &now, &key, quietSetups, 2*time.Millisecond)
	held := key + 1
	for range 5 {
		key++
		if r := a.allowSetup(now, 0, key, true); r != "" {
			t.Fatalf("setup %d before the pause refused (%s)", key, r)
		}
		now = now.Add(2 * time.Millisecond)
	}
	last := key
	now = now.Add(130 * time.Millisecond)
	for i := range 65 {
		key++
		if r := a.allowSetup(now, 130*time.Millisecond-time.Duration(i)*2*time.Millisecond, key, true); r != "" {
			t.Fatalf("call %d the pause held refused (%s)", i, r)
		}
		a.setupDone(key, now.Add(time.Millisecond))
	}
	steadySetups(t, a, &now, &key, 53, 2*time.Millisecond)
	for k := held; k <= last; k++ {
		a.setupDone(k, now)
	}
	if a.cutAt != 0 || a.shedAt != 0 {
		t.Errorf("a whole pause of 130 ms: cut at %v, shed at %v; want neither", a.cutAt, a.shedAt)
	}

	b := newAdmission(20*time.Millisecond, 0, nil)
	now, key = admitT0, 0
	steadySetups(t, b, &now, &key, quietSetups, 2*time.Millisecond)
	key++
	slow, began := key, now
	if r := b.allowSetup(now, 0, slow, true); r != "" {
		t.Fatalf("the slow setup refused (%s)", r)
	}
	steadySetups(t, b, &now, &key, 300, 2*time.Millisecond/3)
	b.setupDone(slow, began.Add(200*time.Millisecond))
	if b.cutAt == 0 {
		t.Errorf("a step to 1,500 calls a second: a setup of 200 ms cut nothing, want a cut")
	}
}

// A queue that stands for whole intervals while the switch is quiet, no longer than
// setupPause, is a pause of the process: the rate is not cut. A queue that stood longer, a
// switch that shed load lately, and a step of the load are cut as before.
func TestAdmissionRateRidesOutAPause(t *testing.T) {
	// standing offers 500 calls a second for 250 ms (two intervals and more) with every
	// datagram waiting delay, after a second of 500 setups a second, and returns the calls
	// refused.
	standing := func(a *admission, shedding bool, delay time.Duration) map[string]int {
		now, key := admitT0, uint64(0)
		if shedding {
			sheddingSetups(t, a, &now, &key, 600, 2*time.Millisecond)
		} else {
			steadySetups(t, a, &now, &key, quietSetups, 2*time.Millisecond)
		}
		_, refused := offer(a, &now, 500, 250*time.Millisecond, delay)
		return refused
	}
	a := newAdmission(20*time.Millisecond, 0, nil)
	if refused := standing(a, false, 120*time.Millisecond); len(refused) != 0 || a.lim.rate != 0 {
		t.Errorf("a quiet switch's queue standing 120 ms: refused %v, limit %v; want none", refused, a.lim.rate)
	}
	b := newAdmission(20*time.Millisecond, 0, nil)
	if standing(b, false, setupPause+time.Millisecond); b.lim.rate == 0 {
		t.Errorf("a quiet switch's queue standing past setupPause: no limit, want a cut")
	}
	c := newAdmission(20*time.Millisecond, 0, nil)
	if standing(c, true, 120*time.Millisecond); c.lim.rate == 0 {
		t.Errorf("the queue of a switch that shed load standing 120 ms: no limit, want a cut")
	}
	// A step to 4,000 calls a second from quiet: cut by the second interval it stands in.
	d := newAdmission(20*time.Millisecond, 0, nil)
	now, key := admitT0, uint64(0)
	steadySetups(t, d, &now, &key, quietSetups, 2*time.Millisecond)
	if _, refused := offer(d, &now, 4000, 250*time.Millisecond, 50*time.Millisecond); refused[shedRate] == 0 || d.lim.rate == 0 {
		t.Errorf("a step to 4,000 calls a second with the queue standing: refused %v, limit %v; want a cut", refused, d.lim.rate)
	}
}

// Past the knee (a rate limit in force) a setup is allowed its baseline and
// setupSlackLimited targets, not admitStale: one of 61 ms after setups of 1 ms cuts the
// limit under a rate limit, and not without one.
func TestAdmissionSetupSlackPastTheKnee(t *testing.T) {
	for _, limited := range []bool{true, false} {
		a := newAdmission(20*time.Millisecond, 0, nil)
		now, key := admitT0, uint64(0)
		sheddingSetups(t, a, &now, &key, 600, 2*time.Millisecond)
		if limited {
			a.lim.setRate(1000, now)
			now = now.Add(10 * time.Millisecond) // a token saved up
		}
		before := a.conc
		key++
		if r := a.allowSetup(now, 0, key, true); r != "" {
			t.Fatalf("limited %v: setup refused (%s)", limited, r)
		}
		a.setupDone(key, now.Add(61*time.Millisecond))
		if cut := a.conc < before; cut != limited {
			t.Errorf("limited %v: a setup of 61 ms took the limit from %v to %v; want a cut %v", limited, before, a.conc, limited)
		}
	}
}

// A standing queue after a second in which the switch carried 1,000 setups a second cuts the
// rate limit from that, not from the few calls a stall let in: to 85 % of 1,000.
func TestAdmissionCutFromSetupsDone(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, nil)
	now := admitT0
	key := uint64(0)
	for range 1000 {
		key++
		a.observe(time.Millisecond, now)
		if r := a.allowSetup(now, 0, key, true); r != "" {
			t.Fatalf("refused (%s) at 1,000 a second without a queue", r)
		}
		a.setupDone(key, now.Add(time.Millisecond))
		now = now.Add(time.Millisecond)
	}
	// A stall: one interval in which every datagram waited 300 ms, and no call was admitted.
	for end := now.Add(admitInterval); now.Before(end); now = now.Add(time.Millisecond) {
		a.observe(300*time.Millisecond, now)
	}
	a.allow(now, 0) // closes the interval
	if want := 850.0; a.lim.rate < want-20 || a.lim.rate > want+20 {
		t.Errorf("limit after a stall = %v, want about %v", a.lim.rate, want)
	}
}

// The scheduler's waits: a mean of their 90th percentile over a second above a third of the
// target cuts the admitted rate, with no queue at the socket, while the switch is busy (half
// a core or more); a burst of waits in one interval of ten, which a switch under its capacity
// works off, does not, nor waits while the switch itself has little to do (other processes
// take the cores).
func TestAdmissionSchedSignal(t *testing.T) {
	m := newAdmitMetrics()
	a := newAdmission(20*time.Millisecond, 0, m)
	wait, cpu, load := time.Millisecond, time.Duration(0), 0.8 // of a core
	a.sched = func() (time.Duration, time.Duration) {
		cpu += time.Duration(load * float64(admitInterval))
		return wait, cpu
	}
	now := admitT0
	if admitted, refused := offer(a, &now, 2000, 2*time.Second, 0); admitted != 4000 || len(refused) != 0 {
		t.Fatalf("waits of 1 ms: admitted %d, refused %v; want all 4000", admitted, refused)
	}
	// A burst of 60 ms in two intervals: a plain mean of 12.8 ms over the second, but the
	// highest two intervals are left out: 1 ms.
	wait = 60 * time.Millisecond
	offer(a, &now, 2000, 2*admitInterval, 0)
	if got := testutil.ToFloat64(m.sched); got != 0.001 {
		t.Errorf("sched_delay_seconds after a burst of two intervals = %v, want 0.001", got)
	}
	wait = time.Millisecond
	if admitted, refused := offer(a, &now, 2000, 2*time.Second, 0); admitted != 4000 || len(refused) != 0 {
		t.Fatalf("after a burst of two intervals: admitted %d, refused %v; want all 4000", admitted, refused)
	}
	if got := testutil.ToFloat64(m.sched); got != 0.001 {
		t.Errorf("sched_delay_seconds = %v, want 0.001", got)
	}
	// Waits of 10 ms standing while the switch uses a tenth of a core: not its own load.
	wait, load = 10*time.Millisecond, 0.1
	if admitted, refused := offer(a, &now, 2000, 2*time.Second, 0); admitted != 4000 || len(refused) != 0 {
		t.Fatalf("waits of 10 ms, the switch idle: admitted %d, refused %v; want all 4000", admitted, refused)
	}
	// The same waits while it is busy: the limit comes into force.
	load = 0.8
	admitted, refused := offer(a, &now, 2000, 3*time.Second, 0)
	if refused[shedRate] == 0 || admitted >= 6000 || a.lim.rate <= 0 {
		t.Fatalf("waits of 10 ms standing: admitted %d, refused %v, limit %v; want calls shed by the rate limit", admitted, refused, a.lim.rate)
	}
	if got := testutil.ToFloat64(m.sched); got != 0.01 {
		t.Errorf("sched_delay_seconds = %v, want 0.01", got)
	}
	// The same waits at a quiet switch, which carries its setups in time and shed nothing: no
	// cut (its setups' limit sheds should they fall behind). Once it sheds, the waits cut.
	b := newAdmission(20*time.Millisecond, 0, nil)
	b.sched = a.sched
	now, key := admitT0, uint64(0)
	wait = time.Millisecond
	steadySetups(t, b, &now, &key, quietSetups, 2*time.Millisecond)
	wait = 10 * time.Millisecond
	steadySetups(t, b, &now, &key, 1000, 2*time.Millisecond)
	if b.lim.rate != 0 {
		t.Errorf("waits of 10 ms at a quiet switch: limit %v, want none", b.lim.rate)
	}
	if r := b.allow(now, maxWait); r != shedStale {
		t.Fatalf("an INVITE that found the queue full: %q, want overload", r)
	}
	offer(b, &now, 500, time.Second, 0)
	if b.lim.rate == 0 {
		t.Errorf("waits of 10 ms at a switch that shed load: no limit, want one")
	}
}

// The switch's part of a setup past ringing: a business line's final answer counts as a
// setup in flight from its arrival at the socket until the call's goroutine has it, and
// again while it bridges after the disclaimer; answers of lines not rung here, and a second
// answer, do not count; the time taken adapts the setups' limit on its own baseline.
func TestAdmissionLineAnswers(t *testing.T) {
	a := newAdmission(20*time.Millisecond, 0, newAdmitMetrics())
	now := admitT0
	inFlight := func(want int) {
		t.Helper()
		a.mu.Lock()
		defer a.mu.Unlock()
		if got := a.inFlight(); got != want {
			t.Errorf("setups in flight = %d, want %d", got, want)
		}
	}
	a.answered(1, now) // not rung here
	inFlight(0)
	a.ringing(1)
	inFlight(0) // ringing is the line's time
	a.answered(1, now)
	a.answered(1, now.Add(time.Millisecond)) // a retransmission
	inFlight(1)
	a.lineDone(1, now.Add(2*time.Millisecond))
	inFlight(0)
	a.answered(1, now) // after the call's goroutine had it: ignored
	inFlight(0)
	a.bridging(1, now)
	inFlight(1)
	a.lineDone(1, now.Add(time.Millisecond))
	a.lineDone(1, now.Add(time.Millisecond)) // twice: nothing more
	inFlight(0)
	// Setups at their limit refuse a new call; an answer in flight counts among them.
	a.conc = 1
	a.ringing(2)
	a.answered(2, now)
	if r := a.allowSetup(now, 0, 99, true); r != shedSetups {
		t.Errorf("with an answer in flight at a limit of 1: %q, want %s", r, shedSetups)
	}
	// An answer never taken up leaves the setups in flight after setupExpire, as a setup
	// that took that long, which cuts the limit of a switch whose answers took 1 ms.
	a.conc = 64
	a.lineBase.add(time.Millisecond, now)
	now = now.Add(setupExpire + admitInterval)
	a.observe(0, now)
	now = now.Add(admitInterval)
	a.observe(0, now)
	inFlight(0)
	if a.conc >= 64 {
		t.Errorf("limit after an answer expired = %v, want cut below 64", a.conc)
	}
	a.lineDone(2, now) // the goroutine gives up at last: nothing counted twice
	inFlight(0)
}

// nextRecord waits for the next record logged (the admission logs from goroutines of its
// own) and returns it with its attributes as text.
func nextRecord(t *testing.T, records chan slog.Record) (slog.Record, map[string]string) {
	t.Helper()
	select {
	case r := <-records:
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		return r, attrs
	case <-time.After(10 * time.Second):
		t.Fatal("nothing logged")
	}
	panic("unreachable")
}

// An episode of shedding is logged once at its start, with its first sign and what the
// admission measured, and once at its end, 10 s (quietAfter) after its last sign, with how
// long it lasted and the calls it refused by reason; not once a refusal.
func TestAdmissionLogsEpisodes(t *testing.T) {
	records := make(chan slog.Record, 16)
	a := newAdmission(20*time.Millisecond, 0, nil)
	a.log = slog.New(&recordingHandler{records: records})
	now, key := admitT0, uint64(0)
	steadySetups(t, a, &now, &key, quietSetups, 2*time.Millisecond)
	sheddingSetups(t, a, &now, &key, 100, 2*time.Millisecond)
	r, attrs := nextRecord(t, records)
	if r.Level != slog.LevelWarn || r.Message != "sip: shedding load" || attrs["first"] != shedStale || attrs["quiet_before"] != "true" {
		t.Fatalf("the episode's start: %v %q %v; want a warning, first %s, quiet before", r.Level, r.Message, attrs, shedStale)
	}
	last := now
	steadySetups(t, a, &now, &key, 6000, 2*time.Millisecond) // 12 s without a refusal
	r, attrs = nextRecord(t, records)
	if r.Message != "sip: shedding load ended" || !strings.Contains(attrs["refused"], shedStale+":100") {
		t.Fatalf("the episode's end: %q %v; want it ended, with %s:100 refused", r.Message, attrs, shedStale)
	}
	if lasted, err := time.ParseDuration(attrs["lasted"]); err != nil || lasted > last.Sub(admitT0) {
		t.Errorf("the episode lasted %q, want no longer than its signs", attrs["lasted"])
	}
	select {
	case r := <-records:
		t.Errorf("more logged: %q", r.Message)
	case <-time.After(100 * time.Millisecond):
	}
}
