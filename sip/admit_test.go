package sip

import (
	"net"
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
	if admitted < 40 || admitted > 42 || refused[shedMaxCPS] < 78 || refused[shedOverload] != 0 {
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
	if refused[shedOverload] == 0 || admitted > 2000 {
		t.Fatalf("standing queue: admitted %d, refused %v; want calls shed for overload", admitted, refused)
	}
	if a.lim.rate <= 0 || a.lim.rate >= 2000 {
		t.Fatalf("limit %v under a standing queue, want (0, 2000)", a.lim.rate)
	}
	if got := testutil.ToFloat64(m.delay); got != 0.05 {
		t.Errorf("queue_delay_seconds = %v, want 0.05", got)
	}
	if got := testutil.ToFloat64(m.shed.WithLabelValues(shedOverload)); int(got) != refused[shedOverload] {
		t.Errorf("shed_total{overload} = %v, want %d", got, refused[shedOverload])
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
	now := admitT0
	a.observe(time.Millisecond, now)
	if r := a.allow(now, admitStale*20*time.Millisecond); r != "" {
		t.Errorf("refused (%s) at a wait of exactly admitStale times the target", r)
	}
	if r := a.allow(now, admitStale*20*time.Millisecond+time.Millisecond); r != shedOverload {
		t.Errorf("an INVITE that found the queue standing past admitStale times the target: %q, want overload", r)
	}
	if r := a.allow(now, maxWait); r != shedOverload {
		t.Errorf("an INVITE that found the queue full: %q, want overload", r)
	}
	if r := a.allow(now, 0); r != "" {
		t.Errorf("over TCP (no wait known): %q, want admitted", r)
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
