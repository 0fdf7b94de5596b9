package pool

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trackline/trackline/store"
)

// attributed is the utm_source of the attributed session ("" for none) and the candidates.
func attributed(t *testing.T, p *Pool, number string, at time.Time) (string, int) {
	t.Helper()
	got, err := p.Attribute(number, at)
	if err != nil {
		t.Fatalf("Attribute(%s, %s): %v", number, at, err)
	}
	if got.Session == nil {
		return "", got.Candidates
	}
	return got.Session.UTMSource, got.Candidates
}

func TestLongLeaseAcrossRecordsAndRestart(t *testing.T) {
	// A page open for three hours, touched every 10 minutes: its lease outlives a record's
	// span (store.AssignmentSpan) several times and is still one session, before and after a
	// restart, at every moment of it; a later moment of another number is not it.
	f := newFixture(t, 2)
	t0 := f.clk.now()
	l := f.assign(Visit{UTMSource: "long"})
	for range 18 {
		f.clk.add(10 * time.Minute)
		got, err := f.p.Touch(context.Background(), "acme", l.SessionID)
		if err != nil || got.Number != l.Number {
			t.Fatalf("touch: %+v %v", got, err)
		}
	}
	f.clk.add(time.Minute) // t0+181m; the lease runs until t0+210m
	check := func(t *testing.T) {
		for _, m := range []int{0, 1, 29, 30, 31, 95, 150, 180, 181, 230} {
			if s, n := attributed(t, f.p, l.Number, t0.Add(time.Duration(m)*time.Minute)); s != "long" || n != 1 {
				t.Errorf("at +%dm: session %q of %d candidates, want long of 1", m, s, n)
			}
		}
		if s, n := attributed(t, f.p, l.Number, t0.Add(241*time.Minute)); s != "" || n != 0 {
			t.Errorf("after the grace window: %q of %d", s, n)
		}
		if s, _ := attributed(t, f.p, numberOf(2), t0.Add(100*time.Minute)); s != "" {
			t.Errorf("the other number is attributed to %q", s)
		}
	}
	t.Run("memory", check)
	f.restart()
	t.Run("after restart", check)
	got, err := f.p.Touch(context.Background(), "acme", l.SessionID)
	if err != nil || got.Number != l.Number || !got.Until.Equal(f.clk.now().Add(30*time.Minute)) {
		t.Fatalf("touch after restart: %+v %v, want %s", got, err, l.Number)
	}
	if n := f.assign(Visit{}).Number; n != numberOf(2) {
		t.Fatalf("a new session got %s, held by the long one", n)
	}
}

func TestRestartLoadsOnlyTheWindowAndReadsOlderFromTheStore(t *testing.T) {
	// Leases of a day ago are not in memory after a restart; attribution of their moments
	// reads them from the store, and a number whose lease is long over is free.
	f := newFixture(t, 2)
	t0 := f.clk.now()
	f.assign(Visit{UTMSource: "old1"})
	f.assign(Visit{UTMSource: "old2"})
	f.clk.add(24 * time.Hour)
	f.restart()
	for _, n := range []string{numberOf(1), numberOf(2)} {
		if st := f.p.numbers[n]; len(st.recent) != 0 || st.holder != "" {
			t.Fatalf("%s after restart: %d in memory, holder %q", n, len(st.recent), st.holder)
		}
	}
	if s, n := attributed(t, f.p, numberOf(1), t0.Add(10*time.Minute)); s != "old1" || n != 1 {
		t.Fatalf("a day-old moment: %q of %d", s, n)
	}
	if s, _ := attributed(t, f.p, numberOf(2), f.clk.now()); s != "" {
		t.Fatalf("now: %q", s)
	}
	l := f.assign(Visit{UTMSource: "new"})
	if st := f.status(); st.Exhaustions != 0 || st.Assigned != 1 {
		t.Fatalf("status: %+v", st)
	}
	if s, n := attributed(t, f.p, l.Number, f.clk.now()); s != "new" || n != 1 {
		t.Fatalf("new lease: %q of %d", s, n)
	}
}

func TestSchema1StoreKeepsAttribution(t *testing.T) {
	// A store written by the build of schema 1 (see store's testdata/schema1.db): Open
	// converts it, and the pool attributes and renews as before.
	raw, err := os.ReadFile(filepath.Join("..", "store", "testdata", "schema1.db"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), store.FileName), clk: &clock{t: t0.Add(95 * time.Minute)}}
	if err := os.WriteFile(f.path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	f.open()
	tests := []struct {
		number     string
		at         time.Duration
		session    string
		candidates int
	}{
		{"+31850000001", 10 * time.Minute, "a", 1},
		{"+31850000001", 59 * time.Minute, "a", 1},
		{"+31850000001", 65 * time.Minute, "", 0},
		{"+31850000001", 75 * time.Minute, "d", 1},
		{"+31850000001", 91 * time.Minute, "e", 2},
		{"+31850000002", 30 * time.Minute, "b", 1},
		{"+31850000002", 100 * time.Minute, "b", 1},
		{"+31850000011", 6 * time.Minute, "c", 1},
	}
	for _, tt := range tests {
		if s, n := attributed(t, f.p, tt.number, t0.Add(tt.at)); s != tt.session || n != tt.candidates {
			t.Errorf("%s at +%v: %q of %d, want %q of %d", tt.number, tt.at, s, n, tt.session, tt.candidates)
		}
	}
	if st := f.status(); st.SessionsTotal != 4 || st.Exhaustions != 1 || st.Assigned != 2 {
		t.Fatalf("acme's status: %+v", st)
	}
	// The live leases (b on ...02 until +110m, e on ...01 until +120m) are renewed in place.
	for _, src := range []string{"b", "e"} {
		var id, number string
		for n, num := range f.p.numbers {
			if num.holder != "" && num.n.CustomerID == "acme" {
				s, err := f.p.session("acme", num.holder)
				if err == nil && s.UTMSource == src {
					id, number = s.ID, n
				}
			}
		}
		got, err := f.p.Touch(context.Background(), "acme", id)
		if err != nil || got.Number != number {
			t.Fatalf("touch %s: %+v %v, want %s", src, got, err, number)
		}
	}
}

func TestLeaseCutShortAcrossRestart(t *testing.T) {
	// One number: b takes it over at +10m while a's lease runs (until +30m). a's lease ended
	// at +10m: at +45m only b may have made the call, before and after a restart, from memory
	// and (a day later) from the store.
	f := newFixture(t, 1)
	t0 := f.clk.now()
	f.assign(Visit{UTMSource: "a"})
	f.clk.add(10 * time.Minute)
	f.assign(Visit{UTMSource: "b"})
	f.clk.add(5 * time.Minute)
	tests := []struct {
		at         time.Duration
		session    string
		candidates int
	}{
		{5 * time.Minute, "a", 1},
		{11 * time.Minute, "b", 2},
		{39 * time.Minute, "b", 2},
		{45 * time.Minute, "b", 1},
	}
	check := func(t *testing.T) {
		for _, tt := range tests {
			if s, n := attributed(t, f.p, numberOf(1), t0.Add(tt.at)); s != tt.session || n != tt.candidates {
				t.Errorf("at +%v: %q of %d, want %q of %d", tt.at, s, n, tt.session, tt.candidates)
			}
		}
	}
	t.Run("memory", check)
	f.restart()
	t.Run("after restart", check)
	f.clk.add(24 * time.Hour)
	f.restart()
	t.Run("from the store", check)
}

func TestApplyCuts(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	rec := func(s string, from, until int, cut ...int) store.Assignment {
		a := store.Assignment{SessionID: s, From: at(from), Until: at(until)}
		if len(cut) > 0 {
			a.CutFrom = at(cut[0])
		}
		return a
	}
	tests := []struct {
		name string
		in   []store.Assignment
		want []int // the Until of each, in minutes
	}{
		{"taken over", []store.Assignment{rec("a", 0, 30), rec("b", 10, 40, 0)}, []int{10, 40}},
		{"segments", []store.Assignment{rec("a", 0, 60), rec("a", 30, 90, 0), rec("a", 60, 95, 30)}, []int{30, 60, 95}},
		{"at the same moment", []store.Assignment{rec("b", 0, 30, 0), rec("a", 0, 30)}, []int{30, 0}},
		{"at the same moment, other order", []store.Assignment{rec("a", 0, 30), rec("b", 0, 30, 0)}, []int{0, 30}},
		{"the record cut is not there", []store.Assignment{rec("b", 10, 40, 0)}, []int{40}},
		{"already ended", []store.Assignment{rec("a", 0, 5), rec("b", 10, 40, 0)}, []int{5, 40}},
		{"no cut", []store.Assignment{rec("a", 0, 30), rec("b", 40, 70)}, []int{30, 70}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			applyCuts(tt.in)
			for i, a := range tt.in {
				if !a.Until.Equal(at(tt.want[i])) {
					t.Fatalf("record %d ends at +%v, want +%dm", i, a.Until.Sub(t0), tt.want[i])
				}
			}
		})
	}
}
