package media

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSpillKeepsLightTrafficOnTheFirstLoop(t *testing.T) {
	for _, c := range []struct {
		name  string
		loads []float64
		want  int
	}{
		{"all idle: the first", []float64{0, 0, 0}, 0},
		{"the first below the spill load", []float64{0.29, 0, 0}, 0},
		{"the first at it: the next", []float64{0.3, 0.1, 0}, 1},
		{"the first two over: the third", []float64{0.5, 0.31, 0.2}, 2},
		{"all over: the least loaded", []float64{0.6, 0.35, 0.4}, 1},
		{"one loop takes everything", []float64{0.9}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := spill(len(c.loads), func(i int) float64 { return c.loads[i] }); got != c.want {
				t.Errorf("spill(%v) = %d, want %d", c.loads, got, c.want)
			}
		})
	}
}

func TestLoadCountsSessionsSinceTheMeasurement(t *testing.T) {
	l := &loop{}
	l.busy.Store(math.Float64bits(0.2))
	l.nMeasured.Store(100)
	for _, c := range []struct {
		n    int32
		want float64
	}{{100, 0.2}, {150, 0.25}, {90, 0.19}, {0, 0.1}} {
		l.n.Store(c.n)
		if got := l.load(); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%d sessions: load %v, want %v", c.n, got, c.want)
		}
	}
	l.busy.Store(math.Float64bits(0.01))
	l.n.Store(0) // more sessions left than the busy share covers: never below 0
	if got := l.load(); got != 0 {
		t.Errorf("load %v, want 0", got)
	}
}

// TestLoopsMeasureThemselves: with two idle loops every call goes to the first; each loop
// publishes its sessions and the share of a core its thread used, which a call's packets
// raise above nothing.
func TestLoopsMeasureThemselves(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode, Loops: 2}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, _ := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		s2 := f.anchor(t, newEndpoint(t, "127.0.0.1").sdp("sendrecv", "0"))
		if s.lp != f.e.loops[0] || s2.lp != f.e.loops[0] {
			t.Fatal("a call on an idle engine did not go to the first loop")
		}
		busy := f.e.m.loopBusy.WithLabelValues("0")
		deadline := time.Now().Add(5 * time.Second)
		for i := 0; testutil.ToFloat64(busy) == 0; i++ {
			if time.Now().After(deadline) {
				t.Fatal("loop 0 published no busy share within 5 s")
			}
			a.send(toA, 0, payload(byte(i)))
			b.recv(time.Second)
			time.Sleep(5 * time.Millisecond)
		}
		if got := testutil.ToFloat64(busy); got <= 0 || got >= 1 {
			t.Errorf("loop 0 busy share %v, want within (0, 1)", got)
		}
		if got := testutil.ToFloat64(f.e.m.loopSessions.WithLabelValues("0")); got != 2 {
			t.Errorf("loop 0 sessions %v, want 2", got)
		}
		if got := testutil.ToFloat64(f.e.m.loopSessions.WithLabelValues("1")); got != 0 {
			t.Errorf("loop 1 sessions %v, want 0", got)
		}
		s2.Close(nil)
		if n := f.e.loops[0].n.Load(); n != 1 {
			t.Errorf("loop 0 counts %d sessions after one closed, want 1", n)
		}
	})
}
