package pool

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/store"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }
func numberOf(i int) string          { return fmt.Sprintf("+3185000%04d", i) }

type fixture struct {
	t    testing.TB
	db   *store.DB
	path string
	clk  *clock
	p    *Pool
}

// newFixture opens a store with customer "acme": n pool numbers, a static "Flyer" number
// +31850009999, and a "Newsletter" rule channel.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "t.db"), clk: newClock()}
	f.open()
	ctx := context.Background()
	if _, err := f.p.CreateCustomer(ctx, store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive,
		SiteKey: "acme-site-key", DisplayNumbers: []string{"+31852087972"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.PutChannel(ctx, "acme", store.Channel{Name: "Flyer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.PutChannel(ctx, "acme", store.Channel{Name: "Newsletter", Rules: []store.ChannelRule{{Param: "utm_source", Pattern: "news*"}}}); err != nil {
		t.Fatal(err)
	}
	in := []NumberInput{{Number: "+31850009999", Kind: "static", Channel: "Flyer"}}
	for i := 1; i <= n; i++ {
		in = append(in, NumberInput{Number: numberOf(i)})
	}
	if _, err := f.p.ImportNumbers(ctx, "acme", in); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	db, err := store.Open(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.db = db
	f.t.Cleanup(func() { db.Close() })
	if f.p, err = New(db, Config{Lease: 30 * time.Minute, Grace: 30 * time.Minute}, WithClock(f.clk.now)); err != nil {
		f.t.Fatal(err)
	}
}

// restart closes and reopens the store and rebuilds the pool from it.
func (f *fixture) restart() {
	f.t.Helper()
	f.db.Close()
	f.open()
}

func (f *fixture) assign(v Visit) Lease {
	f.t.Helper()
	l, err := f.p.Assign(context.Background(), "acme", v)
	if err != nil {
		f.t.Fatalf("Assign(%+v): %v", v, err)
	}
	return l
}

func (f *fixture) status() PoolStatus {
	f.t.Helper()
	st, err := f.p.Status("acme")
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func TestAssignLeastRecentlyUsed(t *testing.T) {
	f := newFixture(t, 3)
	a := f.assign(Visit{})
	b := f.assign(Visit{})
	if a.Number != numberOf(1) || b.Number != numberOf(2) || !a.New {
		t.Fatalf("first leases: %s %s", a.Number, b.Number)
	}
	// a's lease ends, and the grace window after it; b is renewed meanwhile.
	f.clk.add(20 * time.Minute)
	if _, err := f.p.Touch(context.Background(), "acme", b.SessionID); err != nil {
		t.Fatal(err)
	}
	f.clk.add(45 * time.Minute)
	c := f.assign(Visit{})
	if c.Number != numberOf(3) {
		t.Fatalf("never-used number should go first, got %s", c.Number)
	}
	d := f.assign(Visit{})
	if d.Number != numberOf(1) {
		t.Fatalf("least recently used available number should be next, got %s", d.Number)
	}
	if st := f.status(); st.Exhaustions != 0 {
		t.Fatalf("exhaustions = %d, want 0", st.Exhaustions)
	}
}

func TestSameSessionKeepsNumber(t *testing.T) {
	f := newFixture(t, 5)
	a := f.assign(Visit{LandingURL: "https://shop.example/?utm_source=newsletter"})
	tests := []struct {
		name    string
		advance time.Duration
		via     string
		want    string
	}{
		{"reload within lease", 10 * time.Minute, "assign", a.Number},
		{"touch renews", 25 * time.Minute, "touch", a.Number},
		{"renewed lease still live", 25 * time.Minute, "assign", a.Number},
		{"expired but nobody took it", 2 * time.Hour, "assign", a.Number},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.clk.add(tt.advance)
			var l Lease
			var err error
			if tt.via == "touch" {
				l, err = f.p.Touch(context.Background(), "acme", a.SessionID)
			} else {
				l, err = f.p.Assign(context.Background(), "acme", Visit{SessionID: a.SessionID})
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.SessionID != a.SessionID || l.New || l.Number != tt.want || l.Channel != "Newsletter" {
				t.Fatalf("got %+v, want session %s number %s", l, a.SessionID, tt.want)
			}
			if want := f.clk.now().Add(30 * time.Minute); !l.Until.Equal(want) {
				t.Fatalf("until = %v, want %v", l.Until, want)
			}
		})
	}
	if st := f.status(); st.SessionsTotal != 1 || st.Assigned != 1 {
		t.Fatalf("status = %+v", st)
	}
}

func TestUnknownSessionIDGetsNewSession(t *testing.T) {
	f := newFixture(t, 2)
	for _, id := range []string{"", "not-an-id", "01M7Y9B7G02XJ06H392AWXD8J6", "0000000000000000000000000'"} {
		l := f.assign(Visit{SessionID: id})
		if !l.New || l.SessionID == id || !validID(l.SessionID) {
			t.Fatalf("session id %q: got %+v", id, l)
		}
	}
	if _, err := f.p.Touch(context.Background(), "acme", "01M7Y9B7G02XJ06H392AWXD8J6"); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("touch unknown = %v", err)
	}
}

func TestExhaustion(t *testing.T) {
	f := newFixture(t, 2)
	a := f.assign(Visit{})
	f.clk.add(time.Minute)
	b := f.assign(Visit{})
	// Both live: the least recently touched one (a) is taken over, and counted.
	f.clk.add(time.Minute)
	c := f.assign(Visit{})
	if c.Number != a.Number {
		t.Fatalf("exhausted pool should reuse the least recently touched number %s, got %s", a.Number, c.Number)
	}
	if st := f.status(); st.Exhaustions != 1 {
		t.Fatalf("exhaustions = %d", st.Exhaustions)
	}
	// a lost its number: its next touch gets another one, again by exhaustion (b's).
	l, err := f.p.Touch(context.Background(), "acme", a.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if l.Number != b.Number {
		t.Fatalf("a's touch: %s, want %s", l.Number, b.Number)
	}
	// All leases end; inside the grace window the number whose lease ended longest ago goes.
	f.clk.add(40 * time.Minute) // b's lease (taken by a at +2m) ended at +32m, c's at +32m too
	d := f.assign(Visit{})
	if st := f.status(); st.Exhaustions != 3 || d.Number == "" {
		t.Fatalf("in grace: exhaustions = %d (want 3), number %q", st.Exhaustions, d.Number)
	}
	// Attribution still knows the session a cut-short lease belonged to, in its window.
	at, err := f.p.Attribute(a.Number, f.clk.now().Add(-41*time.Minute))
	if err != nil || at.Session == nil || at.Session.ID != a.SessionID {
		t.Fatalf("attribution of %s before takeover: %+v %v", a.Number, at, err)
	}
}

func TestAttributionWindows(t *testing.T) {
	f := newFixture(t, 1)
	t0 := f.clk.now()
	a := f.assign(Visit{LandingURL: "https://shop.example/x?gclid=g1"}) // lease t0..t0+30m
	f.clk.add(70 * time.Minute)                                         // a's lease ended at +30m, grace until +60m
	b := f.assign(Visit{Referrer: "https://www.bing.com/"})             // +70m..+100m
	f.clk.add(5 * time.Minute)
	tests := []struct {
		name       string
		at         time.Duration
		session    string
		channel    string
		candidates int
	}{
		{"before any lease", -time.Minute, "", ChannelUnattributed, 0},
		{"inside a's lease", 10 * time.Minute, a.SessionID, ChannelPaidSearch, 1},
		{"a's grace window", 50 * time.Minute, a.SessionID, ChannelPaidSearch, 1},
		{"after a's grace, before b", 65 * time.Minute, "", ChannelUnattributed, 0},
		{"inside b's lease", 72 * time.Minute, b.SessionID, ChannelOrganicSearch, 1},
		{"after everything", 200 * time.Minute, "", ChannelUnattributed, 0},
	}
	check := func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := f.p.Attribute(numberOf(1), t0.Add(tt.at))
				if err != nil {
					t.Fatal(err)
				}
				id := ""
				if got.Session != nil {
					id = got.Session.ID
				}
				if id != tt.session || got.Channel != tt.channel || got.Candidates != tt.candidates {
					t.Fatalf("got session %q channel %q candidates %d, want %q %q %d", id, got.Channel, got.Candidates, tt.session, tt.channel, tt.candidates)
				}
			})
		}
	}
	t.Run("memory", check)
	f.restart()
	t.Run("after restart", check)
}

func TestAttributionCandidatesInGrace(t *testing.T) {
	// One number, two sessions: the second takes it over while the first's lease is live.
	f := newFixture(t, 1)
	a := f.assign(Visit{})
	f.clk.add(10 * time.Minute)
	b := f.assign(Visit{})
	got, err := f.p.Attribute(numberOf(1), f.clk.now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Session == nil || got.Session.ID != b.SessionID || got.Candidates != 2 {
		t.Fatalf("got %+v, want newest session %s of 2 candidates (a=%s)", got, b.SessionID, a.SessionID)
	}
	if len(got.Others) != 1 || got.Others[0] != a.SessionID || got.InGrace || got.LeaseUntil.Before(f.clk.now()) {
		t.Fatalf("others %v, in grace %v, lease %v-%v: want the other candidate %s, in the lease", got.Others, got.InGrace, got.LeaseFrom, got.LeaseUntil, a.SessionID)
	}
	// After the lease ended, within the grace window.
	late, err := f.p.Attribute(numberOf(1), got.LeaseUntil.Add(time.Minute))
	if err != nil || late.Session == nil || !late.InGrace {
		t.Fatalf("after the lease: %+v %v", late, err)
	}
}

func TestExplainChannel(t *testing.T) {
	chs := []store.Channel{{Name: "Newsletter", Rules: []store.ChannelRule{{Param: "utm_source", Pattern: "news*"}}},
		{Name: "Partners", Rules: []store.ChannelRule{{Param: "referrer_host", Pattern: "*.partner.nl"}}}}
	if r, ch := ExplainChannel(chs, &store.Session{ReferrerHost: "www.partner.nl"}); r == nil || ch != "Partners" || r.Pattern != "*.partner.nl" {
		t.Fatalf("partner visit: %v %q", r, ch)
	}
	if r, _ := ExplainChannel(chs, &store.Session{Gclid: "x"}); r != nil {
		t.Fatalf("a built-in channel explained by rule %v", r)
	}
}

func TestAttributionFallsBackToStore(t *testing.T) {
	// More assignments than memory keeps: old moments are answered from the store.
	f := newFixture(t, 1)
	t0 := f.clk.now()
	first := f.assign(Visit{UTMSource: "old"})
	for range recentMax + 3 {
		f.clk.add(2 * time.Hour)
		f.assign(Visit{})
	}
	got, err := f.p.Attribute(numberOf(1), t0.Add(time.Minute))
	if err != nil || got.Session == nil || got.Session.ID != first.SessionID || got.Session.UTMSource != "old" {
		t.Fatalf("old moment: %+v %v", got, err)
	}
}

func TestStaticAndUnknownNumbers(t *testing.T) {
	f := newFixture(t, 1)
	got, err := f.p.Attribute("+31850009999", f.clk.now())
	if err != nil || got.Channel != "Flyer" || got.Kind != store.KindStatic || got.Session != nil {
		t.Fatalf("static: %+v %v", got, err)
	}
	if _, err := f.p.Attribute("+31859999999", f.clk.now()); !errors.Is(err, ErrUnknownNumber) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestQuarantinedNumbersAreNeverHandedOut(t *testing.T) {
	f := newFixture(t, 3)
	ctx := context.Background()
	until := f.clk.now().Add(180 * 24 * time.Hour)
	for _, n := range []string{numberOf(1), numberOf(3)} {
		if err := f.p.Quarantine(ctx, n, until); err != nil {
			t.Fatal(err)
		}
	}
	check := func() {
		for i := range 10 {
			f.clk.add(time.Minute)
			if l := f.assign(Visit{}); l.Number != numberOf(2) {
				t.Fatalf("lease %d got %s, only %s is not quarantined", i, l.Number, numberOf(2))
			}
		}
		if _, err := f.p.Attribute(numberOf(1), f.clk.now()); !errors.Is(err, ErrQuarantined) {
			t.Fatalf("attribute quarantined = %v", err)
		}
		if st := f.status(); st.Quarantined != 2 || st.Total != 3 {
			t.Fatalf("status %+v", st)
		}
	}
	check()
	f.restart()
	check()
}

func TestEndedCustomerGetsNoNumbers(t *testing.T) {
	f := newFixture(t, 2)
	if _, err := f.p.UpdateCustomer(context.Background(), "acme", func(c *store.Customer) { c.Status = store.StatusEnded }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.Assign(context.Background(), "acme", Visit{}); !errors.Is(err, ErrCustomerEnded) {
		t.Fatalf("assign for ended customer = %v", err)
	}
}

func TestLeasesSurviveRestart(t *testing.T) {
	f := newFixture(t, 10)
	var leases []Lease
	for range 6 {
		leases = append(leases, f.assign(Visit{}))
	}
	f.restart()
	for _, l := range leases {
		got, err := f.p.Touch(context.Background(), "acme", l.SessionID)
		if err != nil || got.Number != l.Number {
			t.Fatalf("after restart %s: %+v %v, want %s", l.SessionID, got, err, l.Number)
		}
	}
	if n := f.assign(Visit{}).Number; n != numberOf(7) {
		t.Fatalf("next free after restart = %s", n)
	}
	if st := f.status(); st.SessionsTotal != 7 || st.Assigned != 7 {
		t.Fatalf("status after restart: %+v", st)
	}
}

func TestImportNumbersAllOrNothing(t *testing.T) {
	f := newFixture(t, 1)
	tests := []struct {
		name string
		in   []NumberInput
		line int
	}{
		{"not e164", []NumberInput{{Number: "+31850007001"}, {Number: "0850007002"}}, 2},
		{"duplicate in import", []NumberInput{{Number: "+31850007001"}, {Number: "+31850007003"}, {Number: "+31850007001"}}, 3},
		{"already tracked", []NumberInput{{Number: "+31850007001"}, {Number: numberOf(1)}}, 2},
		{"unknown channel", []NumberInput{{Number: "+31850007001", Kind: "static", Channel: "Radio"}}, 1},
		{"bad kind", []NumberInput{{Number: "+31850007001", Kind: "mobile"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.p.ImportNumbers(context.Background(), "acme", tt.in)
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Line != tt.line {
				t.Fatalf("err = %v, want an InvalidError on line %d", err, tt.line)
			}
			if st := f.status(); st.Total != 1 || st.Static != 1 {
				t.Fatalf("something was imported: %+v", st)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	rules := compileRules([]store.Channel{
		{Name: "Newsletter", Rules: []store.ChannelRule{{Param: "utm_source", Pattern: "Newsletter*"}}},
		{Name: "Radio", Rules: []store.ChannelRule{{Param: "landing_path", Pattern: "/radio*"}, {Param: "utm_campaign", Pattern: "*fm*"}}},
	})
	tests := []struct {
		name string
		v    Visit
		want string
	}{
		{"direct", Visit{LandingURL: "https://shop.example/"}, ChannelDirect},
		{"customer rule beats gclid", Visit{LandingURL: "https://shop.example/?utm_source=newsletter-june&gclid=x"}, "Newsletter"},
		{"landing path rule", Visit{LandingURL: "https://shop.example/radio/spring"}, "Radio"},
		{"glob in the middle", Visit{UTMCampaign: "skyfm-2026"}, "Radio"},
		{"gclid", Visit{LandingURL: "https://shop.example/?gclid=abc"}, ChannelPaidSearch},
		{"wbraid field", Visit{Wbraid: "w"}, ChannelPaidSearch},
		{"cpc medium", Visit{UTMSource: "bing", UTMMedium: "CPC"}, ChannelPaidSearch},
		{"email medium", Visit{UTMMedium: "email"}, ChannelEmail},
		{"google referrer", Visit{Referrer: "https://www.google.nl/", LandingURL: "https://shop.example/"}, ChannelOrganicSearch},
		{"google co.uk", Visit{Referrer: "https://www.google.co.uk/search"}, ChannelOrganicSearch},
		{"duckduckgo", Visit{Referrer: "https://duckduckgo.com/"}, ChannelOrganicSearch},
		{"facebook", Visit{Referrer: "https://l.facebook.com/l.php"}, ChannelSocial},
		{"t.co", Visit{Referrer: "https://t.co/abc"}, ChannelSocial},
		{"not google", Visit{Referrer: "https://google.evil.example.com/"}, ChannelReferral},
		{"referral", Visit{Referrer: "https://blog.example.org/post"}, ChannelReferral},
		{"internal navigation", Visit{Referrer: "https://shop.example/a", LandingURL: "https://shop.example/b"}, ChannelDirect},
		{"other campaign", Visit{UTMSource: "partner"}, ChannelCampaign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := visitSession(&tt.v)
			if got := classify(rules, &s); got != tt.want {
				t.Fatalf("classify = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVisitSessionKeepsNoQuery(t *testing.T) {
	s := visitSession(&Visit{LandingURL: "https://shop.example/p?email=jan@example.nl&utm_term=tegels#x", Referrer: "https://www.Google.nl/search?q=secret"})
	if s.LandingPage != "https://shop.example/p" || s.ReferrerHost != "www.google.nl" || s.UTMTerm != "tegels" {
		t.Fatalf("stored visit = %+v", s)
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"abc", "abc", true}, {"abc", "abcd", false}, {"a*", "abc", true}, {"*c", "abc", true},
		{"a*c", "abc", true}, {"a*c", "ab", false}, {"*", "", true}, {"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false}, {"*fm*", "skyfm", true}, {"a**", "a", true},
	}
	for _, tt := range tests {
		if got := glob(tt.p, tt.s); got != tt.want {
			t.Errorf("glob(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

func TestIDsSortByTime(t *testing.T) {
	t0 := time.Now()
	a, b := NewID(t0), NewID(t0.Add(time.Millisecond))
	if !(a < b) || !validID(a) || !validID(b) || a == NewID(t0) {
		t.Fatalf("ids %s %s", a, b)
	}
}

func TestConcurrentAssignNeverDoubleLeases(t *testing.T) {
	f := newFixture(t, 50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	holder := map[string]string{}
	for range 8 {
		wg.Go(func() {
			for range 5 {
				l, err := f.p.Assign(context.Background(), "acme", Visit{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := holder[l.Number]; dup {
					t.Errorf("%s leased to %s and %s", l.Number, prev, l.SessionID)
				}
				holder[l.Number] = l.SessionID
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if st := f.status(); st.Assigned != 40 || st.Exhaustions != 0 {
		t.Fatalf("status %+v", st)
	}
}

func BenchmarkAssign(b *testing.B) {
	f := newFixture(b, 1000)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.p.Assign(context.Background(), "acme", Visit{LandingURL: "https://shop.example/?utm_source=google&utm_medium=cpc"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAttribute(b *testing.B) {
	f := newFixture(b, 100)
	for range 300 {
		f.clk.add(time.Second)
		f.p.Assign(context.Background(), "acme", Visit{})
	}
	at := f.clk.now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := f.p.Attribute(numberOf(1+i%100), at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttributeFromStore: a moment older than memory holds, read from the customer's
// records of the window before it (here 300 of 100 numbers).
func BenchmarkAttributeFromStore(b *testing.B) {
	f := newFixture(b, 100)
	t0 := f.clk.now()
	for range 300 {
		f.clk.add(time.Second)
		f.p.Assign(context.Background(), "acme", Visit{})
	}
	f.clk.add(24 * time.Hour)
	f.restart()
	at := t0.Add(5 * time.Minute)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if got, err := f.p.Attribute(numberOf(1+i%100), at); err != nil || got.Session == nil {
			b.Fatal(got, err)
		}
	}
}

// FuzzQueryValue: the landing URL's parameters read without url.ParseQuery are the same.
func FuzzQueryValue(f *testing.F) {
	f.Add("utm_source=google&utm_medium=cpc&utm_term=kw1", "utm_term")
	f.Add("a&utm_source&utm_source=x&=y", "utm_source")
	f.Add("gclid=1=2&gclid=3", "gclid")
	f.Add("&=0", "")
	f.Fuzz(func(t *testing.T, q, key string) {
		if strings.ContainsAny(q, "%+;") || len(q) > 10000 {
			return
		}
		want, _ := url.ParseQuery(q)
		if got := queryValue(q, key); got != want.Get(key) {
			t.Fatalf("queryValue(%q, %q) = %q, url.Values.Get %q", q, key, got, want.Get(key))
		}
	})
}

// FuzzValidSiteKey: the check is the documented pattern.
func FuzzValidSiteKey(f *testing.F) {
	f.Add("acme-site-key")
	f.Add("short")
	f.Add("bench-site-key-0001\n")
	re := regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidSiteKey(s), re.MatchString(s); got != want {
			t.Fatalf("ValidSiteKey(%q) = %v, want %v", s, got, want)
		}
	})
}
