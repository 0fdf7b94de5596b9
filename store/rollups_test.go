package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// benchCall is the i-th call of a customer's busy day: mixed channels, landing pages,
// keywords, dispositions and callers, a quarter of them recorded.
func benchCall(customerID string, start time.Time, i int) Call {
	c := Call{ID: testCallID(start, i), CustomerID: customerID, Dialled: "+31850000001", Caller: fmt.Sprintf("+316%08d", i%1000),
		CallerPseudonym: fmt.Sprintf("%032x", i%1000), BusinessLine: "sip:+31201234567@pbx.example",
		Channel: []string{"Google Ads", "Organic", "Direct", "Newspaper", ""}[i%5], Keyword: fmt.Sprintf("keyword %d", i%70),
		LandingPage: fmt.Sprintf("https://shop.example/page-%d", i%40), Candidates: 1, Start: start, CallIDA: fmt.Sprintf("a-%d@trunk", i)}
	return c
}

// complete ends c as the call layer does.
func complete(c Call, i int) Call {
	c.Ringing = c.Start.Add(time.Second)
	c.End = c.Start.Add(3 * time.Minute)
	c.HangupBy = PartyCaller
	switch i % 4 {
	case 0, 1:
		c.Answer, c.Disposition, c.TalkSeconds, c.FinalStatus = c.Start.Add(5*time.Second), DispAnswered, 175, 200
		c.Media = &CallMedia{CallerCodec: "PCMA", CalleeCodec: "PCMA", FromCaller: StreamStats{Packets: 8750, Bytes: 1505000, JitterMs: 1.2},
			FromCallee: StreamStats{Packets: 8750, Bytes: 1505000, JitterMs: 0.8}}
		if i%4 == 0 {
			c.RecordingID = c.ID
		}
	case 2:
		c.Disposition, c.FinalStatus = DispBusy, 486
	default:
		c.Disposition, c.FinalStatus = DispNoAnswer, 408
	}
	return c
}

// BenchmarkPutCallComplete measures the write that completes a call (Tx.PutCall of a call
// in progress), without the commit: each round of 1,000 completions is rolled back, so
// every round completes the same calls in progress. The store holds 5,000 earlier calls
// of the customer from 1,000 callers.
func BenchmarkPutCallComplete(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const earlier, open = 5000, 1000
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	done := make([]Call, open)
	err = db.Write(context.Background(), func(tx *Tx) error {
		for i := range earlier + open {
			c := benchCall("acme", t0.Add(time.Duration(i)*5*time.Second), i)
			if i < earlier {
				c = complete(c, i)
			} else {
				done[i-earlier] = complete(c, i)
			}
			if err := tx.PutCall(&c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var btx *bolt.Tx
	var tx *Tx
	for i := 0; i < b.N; i++ {
		if i%open == 0 {
			b.StopTimer()
			if btx != nil {
				btx.Rollback()
			}
			if btx, err = db.raw().Begin(true); err != nil {
				b.Fatal(err)
			}
			tx = &Tx{tx: boltTx{tx: btx}}
			b.StartTimer()
		}
		c := done[i%open]
		if err := tx.PutCall(&c); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	btx.Rollback()
}

// rollupDays are the days of rollupFixture: May 1, 2 and 4 (none on May 3).
var rollupDays = [...]time.Time{
	time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC),
}

// rollupFixture writes calls of acme and bakery as the call layer does: most once when they
// start and again when they end, some complete in one write, one still in progress.
func rollupFixture(t *testing.T, db *DB) {
	t.Helper()
	d0, d1, d2 := rollupDays[0], rollupDays[1], rollupDays[2]
	type call struct {
		customer  string
		start     time.Time
		channel   string
		disp      Disposition
		talk      float64
		pseudonym string
		landing   string
		keyword   string
		recorded  bool
		oneWrite  bool // written once, complete
		active    bool // never ends
	}
	calls := []call{
		{"acme", d0.Add(9 * time.Hour), "Google Ads", DispAnswered, 100, "p1", "https://acme.example/a?gclid=x", "loodgieter", true, false, false},
		{"acme", d0.Add(10 * time.Hour), "Google Ads", DispBusy, 0, "p1", "", "", false, true, false},
		{"acme", d0.Add(11 * time.Hour), "", DispNoAnswer, 0, "", "https://acme.example/b#top", "", false, false, false},
		{"bakery", d0.Add(12 * time.Hour), "Google Ads", DispAnswered, 30, "p1", "https://bakery.example/", "", false, false, false},
		{"acme", d0.Add(24*time.Hour - 30*time.Second), "Organic", DispAnswered, 2, "p2", "", "", false, false, false}, // ends on May 2
		{"acme", d1.Add(8 * time.Hour), "Organic", DispCancelled, 0, "p2", "", "loodgieter", false, true, false},
		{"acme", d1.Add(9 * time.Hour), "Google Ads", DispRejected, 0, "p3", "", "", false, false, false},
		{"acme", d2.Add(12 * time.Hour), "Organic", DispFailed, 0, "p1", "", "", false, false, false},
		{"acme", d2.Add(13 * time.Hour), "Organic", "", 0, "p4", "", "", false, false, true},
	}
	for i, d := range calls {
		c := Call{ID: testCallID(d.start, i), CustomerID: d.customer, Dialled: "+31850000001", Channel: d.channel,
			CallerPseudonym: d.pseudonym, LandingPage: d.landing, Keyword: d.keyword, Start: d.start}
		if !d.oneWrite {
			putCalls(t, db, c)
		}
		if d.active {
			continue
		}
		c.End, c.Disposition, c.TalkSeconds = d.start.Add(time.Minute), d.disp, d.talk
		if d.recorded {
			c.RecordingID = c.ID
		}
		putCalls(t, db, c)
	}
}

// rollupFixtureDays are the rollups of rollupFixture's acme and bakery.
func rollupFixtureDays() map[string][]DayStats {
	d0, d1, d2 := rollupDays[0], rollupDays[1], rollupDays[2]
	hist := func(i int) (h [24]int) { h[i] = 1; return h }
	return map[string][]DayStats{
		"acme": {
			{Day: d0, Channels: map[string]*ChannelStats{
				"Google Ads": {Calls: 2, Answered: 1, Busy: 1, FirstTime: 1, Returning: 1, TalkSeconds: 100, TalkHist: hist(6), Recorded: 1},
				"":           {Calls: 1, Missed: 1},
				"Organic":    {Calls: 1, Answered: 1, FirstTime: 1, TalkSeconds: 2, TalkHist: hist(1)},
			}, Landing: map[string]int{"https://acme.example/a": 1, "https://acme.example/b": 1}, Keywords: map[string]int{"loodgieter": 1}},
			{Day: d1, Channels: map[string]*ChannelStats{
				"Organic":    {Calls: 1, Missed: 1, Returning: 1},
				"Google Ads": {Calls: 1, Missed: 1, FirstTime: 1},
			}, Landing: map[string]int{}, Keywords: map[string]int{"loodgieter": 1}},
			{Day: d2, Channels: map[string]*ChannelStats{
				"Organic": {Calls: 1, Missed: 1, Returning: 1},
			}, Landing: map[string]int{}, Keywords: map[string]int{}},
		},
		"bakery": {
			{Day: d0, Channels: map[string]*ChannelStats{
				"Google Ads": {Calls: 1, Answered: 1, FirstTime: 1, TalkSeconds: 30, TalkHist: hist(4)},
			}, Landing: map[string]int{"https://bakery.example/": 1}, Keywords: map[string]int{}},
		},
	}
}

func TestRollups(t *testing.T) {
	db := openTest(t)
	rollupFixture(t, db)
	want := rollupFixtureDays()
	acme := want["acme"]
	d0, d1, d2 := rollupDays[0], rollupDays[1], rollupDays[2]
	tests := []struct {
		name     string
		customer string
		from, to time.Time
		want     []DayStats
	}{
		{"every day", "acme", d0, d2.AddDate(0, 0, 1), acme},
		{"a wide range", "acme", d0.AddDate(-1, 0, 0), d2.AddDate(1, 0, 0), acme},
		{"one day", "acme", d1, d1.AddDate(0, 0, 1), acme[1:2]},
		{"days overlapping the bounds", "acme", d0.Add(23 * time.Hour), d1.Add(time.Hour), acme[:2]},
		{"to is exclusive", "acme", d0, d1, acme[:1]},
		{"a day without calls is left out", "acme", d1, d2.Add(time.Hour), acme[1:]},
		{"no day", "acme", d1, d1, nil},
		{"to before from", "acme", d2, d0, nil},
		{"another customer", "bakery", d0, d2, want["bakery"]},
		{"a customer whose id begins another's", "acm", d0, d2, nil},
		{"no customer", "", d0, d2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Rollups(tt.customer, tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Rollups(%s, %v, %v) =\n%s\nwant\n%s", tt.customer, tt.from, tt.to, dump(got), dump(tt.want))
			}
		})
	}
}

func dump(days []DayStats) string {
	b, _ := json.MarshalIndent(days, "", " ")
	return string(b)
}

// Erasing a caller takes their calls out of the rollups, as if they had never been counted,
// and leaves no landing page or keyword of theirs that no other call has.
func TestRollupsErasure(t *testing.T) {
	all := rollupFixtureDays()
	tests := []struct {
		pseudonym string
		want      func(acme []DayStats) []DayStats
		gone      []string // in no bucket afterwards
	}{
		{"p1", func(acme []DayStats) []DayStats {
			// The ad's two calls on May 1 and the failed one on May 4 (that day's only one).
			delete(acme[0].Channels, "Google Ads")
			delete(acme[0].Landing, "https://acme.example/a")
			delete(acme[0].Keywords, "loodgieter")
			return acme[:2]
		}, []string{"https://acme.example/a"}},
		{"p2", func(acme []DayStats) []DayStats {
			// The answered call at midnight and the cancelled one the next morning.
			delete(acme[0].Channels, "Organic")
			delete(acme[1].Channels, "Organic")
			delete(acme[1].Keywords, "loodgieter")
			return acme
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.pseudonym, func(t *testing.T) {
			db := openTest(t)
			rollupFixture(t, db)
			err := db.Write(context.Background(), func(tx *Tx) error {
				calls, err := tx.CallsOfCaller("acme", tt.pseudonym) // newest first
				if err != nil {
					return err
				}
				for _, c := range calls {
					if c.End.IsZero() {
						continue
					}
					if _, _, err := tx.DeleteCall(c.ID); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want(rollupFixtureDays()["acme"])
			got, err := db.Rollups("acme", rollupDays[0], rollupDays[2].AddDate(0, 0, 1))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("acme's rollups after erasing %s:\n%s\n%v\nwant\n%s", tt.pseudonym, dump(got), err, dump(want))
			}
			if got, _ := db.Rollups("bakery", rollupDays[0], rollupDays[2]); !reflect.DeepEqual(got, all["bakery"]) {
				t.Fatalf("bakery's rollups changed: %s", dump(got))
			}
			for _, needle := range tt.gone {
				if w := rawHolds(t, db, needle); len(w) != 0 {
					t.Errorf("%q is still in %v", needle, w)
				}
			}
		})
	}
}

// A call counts once, when it completes, however often it is written; a recording linked
// later counts then; annotations change nothing.
func TestRollupsCountOnce(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	c := Call{ID: testCallID(t0, 1), CustomerID: "acme", Channel: "Direct", CallerPseudonym: "p1", Start: t0}
	ended := c
	ended.End, ended.Disposition, ended.TalkSeconds = t0.Add(time.Minute), DispAnswered, 50
	linked := ended
	linked.RecordingID = "rec-1"
	steps := []struct {
		name  string
		write func(tx *Tx) error
		want  ChannelStats // of Direct on May 1; zero: no rollup
	}{
		{"started", func(tx *Tx) error { return tx.PutCall(&c) }, ChannelStats{}},
		{"ringing", func(tx *Tx) error { r := c; r.Ringing = t0.Add(time.Second); return tx.PutCall(&r) }, ChannelStats{}},
		{"ended", func(tx *Tx) error { return tx.PutCall(&ended) }, ChannelStats{Calls: 1, Answered: 1, FirstTime: 1, TalkSeconds: 50, TalkHist: [24]int{5: 1}}},
		{"written again", func(tx *Tx) error { return tx.PutCall(&ended) }, ChannelStats{Calls: 1, Answered: 1, FirstTime: 1, TalkSeconds: 50, TalkHist: [24]int{5: 1}}},
		{"its recording linked", func(tx *Tx) error { return tx.PutCall(&linked) }, ChannelStats{Calls: 1, Answered: 1, FirstTime: 1, TalkSeconds: 50, TalkHist: [24]int{5: 1}, Recorded: 1}},
		{"linked again", func(tx *Tx) error { return tx.PutCall(&linked) }, ChannelStats{Calls: 1, Answered: 1, FirstTime: 1, TalkSeconds: 50, TalkHist: [24]int{5: 1}, Recorded: 1}},
		{"annotated", func(tx *Tx) error {
			_, err := tx.AnnotateCall("acme", c.ID, func(c *Call) error { c.Tags = []string{"vip"}; return nil })
			return err
		}, ChannelStats{Calls: 1, Answered: 1, FirstTime: 1, TalkSeconds: 50, TalkHist: [24]int{5: 1}, Recorded: 1}},
		{"a second call of the caller, in one write", func(tx *Tx) error {
			again := ended
			again.ID, again.Start, again.End, again.Disposition, again.TalkSeconds = testCallID(t0.Add(time.Hour), 2), t0.Add(time.Hour), t0.Add(time.Hour+time.Minute), DispBusy, 0
			return tx.PutCall(&again)
		}, ChannelStats{Calls: 2, Answered: 1, Busy: 1, FirstTime: 1, Returning: 1, TalkSeconds: 50, TalkHist: [24]int{5: 1}, Recorded: 1}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := db.Write(context.Background(), st.write); err != nil {
				t.Fatal(err)
			}
			days, err := db.Rollups("acme", t0, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			var got ChannelStats
			if len(days) == 1 && days[0].Channels["Direct"] != nil {
				got = *days[0].Channels["Direct"]
			}
			if got != st.want || len(days) > 1 {
				t.Fatalf("after %s: %+v (%d days), want %+v", st.name, got, len(days), st.want)
			}
		})
	}
}

// A day keeps MaxRollupKeys landing pages and keywords by name; the others count as one.
func TestRollupsCap(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var calls []Call
	for i := range MaxRollupKeys + 5 {
		at := t0.Add(time.Duration(i) * time.Second)
		calls = append(calls, Call{ID: testCallID(at, i), CustomerID: "acme", Start: at, End: at.Add(time.Minute), Disposition: DispNoAnswer,
			LandingPage: fmt.Sprintf("https://acme.example/p%d?utm_source=x", i%(MaxRollupKeys+3)), Keyword: fmt.Sprint("kw", i)})
	}
	// The next day starts afresh; a long name is cut at a character.
	long := "https://acme.example/" + strings.Repeat("é", 400)
	next := t0.AddDate(0, 0, 1)
	calls = append(calls, Call{ID: testCallID(next, 999), CustomerID: "acme", Start: next, End: next.Add(time.Minute), LandingPage: long, Keyword: "kw1"})
	putCalls(t, db, calls...)
	days, err := db.Rollups("acme", t0, next.Add(time.Hour))
	if err != nil || len(days) != 2 {
		t.Fatalf("Rollups = %d days, %v", len(days), err)
	}
	tests := []struct {
		name         string
		m            map[string]int
		keys, others int
		first        int // calls of the first name
	}{
		{"landing pages", days[0].Landing, MaxRollupKeys + 1, 3, 2}, // p200-p202 are past the cap; p0 and p1 have two calls
		{"keywords", days[0].Keywords, MaxRollupKeys + 1, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total := 0
			for _, n := range tt.m {
				total += n
			}
			first := tt.m["https://acme.example/p0"] + tt.m["kw0"]
			if len(tt.m) != tt.keys || tt.m[RollupOther] != tt.others || first != tt.first || total != MaxRollupKeys+5 {
				t.Fatalf("%d keys, %d others, %d of the first, %d in all", len(tt.m), tt.m[RollupOther], first, total)
			}
		})
	}
	if len(days[1].Landing) != 1 || len(days[1].Keywords) != 1 || days[1].Keywords["kw1"] != 1 {
		t.Fatalf("the next day: %v %v", days[1].Landing, days[1].Keywords)
	}
	for name := range days[1].Landing {
		if len(name) > maxRollupName || !utf8.ValidString(name) || !strings.HasPrefix(long, name) {
			t.Fatalf("a long landing page is kept as %d bytes %q", len(name), name)
		}
	}
}

func TestMedianTalk(t *testing.T) {
	tests := []struct {
		name string
		h    [24]int
		want float64
	}{
		{"no calls", [24]int{}, 0},
		{"one call of 100 s", [24]int{6: 1}, 95},                             // [63, 127): half-way in
		{"three calls under a second", [24]int{0: 3}, 0.5},                   // [0, 1)
		{"the middle in the upper bucket", [24]int{3: 4, 5: 6}, 31 + 32.0/6}, // the 5th of 10 is the 1st of 6 in [31, 63)
		{"the middle at a bucket's end", [24]int{2: 1, 4: 1}, 7},             // [3, 7) holds the 1st of 2
		{"the longest bucket", [24]int{23: 2}, 1<<23 - 1 + 1<<22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MedianTalk(tt.h); math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("MedianTalk = %v, want %v", got, tt.want)
			}
		})
	}
	buckets := []struct {
		seconds float64
		want    int
	}{{-5, 0}, {math.NaN(), 0}, {0, 0}, {0.99, 0}, {1, 1}, {2.99, 1}, {3, 2}, {100, 6}, {126.9, 6}, {127, 7}, {1 << 23, 23}, {1e12, 23}}
	for _, b := range buckets {
		if got := talkBucket(b.seconds); got != b.want {
			t.Errorf("talkBucket(%v) = %d, want %d", b.seconds, got, b.want)
		}
	}
}

// A file of schema 2 gets its rollups at Open: the same as if they had been counted as the
// calls were written, also when the filling was cut short and goes on at the next Open.
func TestRollupsBackfill(t *testing.T) {
	skipOnPostgres(t, "the rollups built from an earlier build's file; PostgreSQL's rollups exist from its first migration")
	tests := []struct {
		name   string
		chunks int // of 2 calls each, before the filling is cut short; -1: not begun
	}{
		{"in one go", -1},
		{"cut short at the start", 0},
		{"cut short after a chunk", 1},
		{"cut short after three", 3},
		{"cut short at the end", 5}, // 9 calls: the fifth chunk reads the last one and ends
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "trackline.db")
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			rollupFixture(t, db)
			// The file as a build of schema 2 left it.
			err = db.raw().Update(func(tx *bolt.Tx) error {
				if err := tx.DeleteBucket(bucketRollups); err != nil {
					return err
				}
				return tx.Bucket(bucketMeta).Put(keySchema, []byte{0, 0, 0, 2})
			})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			if err := Verify(path); err != nil {
				t.Fatalf("Verify of a schema 2 file: %v", err)
			}
			if tt.chunks >= 0 {
				b, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				err = b.Update(func(tx *bolt.Tx) error {
					if _, err := tx.CreateBucket(bucketRollups); err != nil {
						return err
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				half := &DB{}
				half.cur.Store(newHandle(b))
				if err := half.startSchema3(); err != nil {
					t.Fatal(err)
				}
				for range tt.chunks {
					if _, _, err := half.backfillRollupsChunk(2); err != nil {
						t.Fatal(err)
					}
				}
				b.Close()
				if err := Verify(path); err != nil {
					t.Fatalf("Verify halfway: %v", err)
				}
			}
			if db, err = Open(path); err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if v := schemaOf(t, db); v != SchemaVersion {
				t.Fatalf("schema after Open = %d", v)
			}
			db.View(func(tx *Tx) error {
				if tx.tx.Bucket(bucketMeta).Get(keyRollupsAfter) != nil {
					t.Error("the filling's mark is left")
				}
				return nil
			})
			for customer, want := range rollupFixtureDays() {
				got, err := db.Rollups(customer, rollupDays[0], rollupDays[2].AddDate(0, 0, 1))
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("rollups of %s after the filling:\n%s\n%v\nwant\n%s", customer, dump(got), err, dump(want))
				}
			}
		})
	}
}

// BenchmarkRollups reads a year of a customer's rollups (365 days), as a report over a year
// does: "typical" with 100 calls a day from 5 channels, 40 landing pages and 70 keywords;
// "capped" with 500 calls a day from 250 landing pages and 250 keywords, so that every day
// holds the most names it can (MaxRollupKeys of each and RollupOther).
func BenchmarkRollups(b *testing.B) {
	for _, bc := range []struct {
		name            string
		perDay, landing int
	}{
		{"typical", 100, 40},
		{"capped", 500, 250},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "b.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			day0 := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
			var calls []Call
			flush := func() {
				err := db.Write(context.Background(), func(tx *Tx) error {
					for i := range calls {
						if err := tx.PutCall(&calls[i]); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				calls = calls[:0]
			}
			n := 0
			for d := range 365 {
				for j := range bc.perDay {
					start := day0.AddDate(0, 0, d).Add(time.Duration(j) * 86400 * time.Second / time.Duration(bc.perDay))
					c := complete(benchCall("acme", start, n), n)
					c.LandingPage = fmt.Sprintf("https://shop.example/page-%d?utm_source=x", j%bc.landing)
					if bc.landing > 40 {
						c.Keyword = fmt.Sprintf("keyword %d", j%bc.landing)
					}
					calls = append(calls, c)
					n++
				}
				if len(calls) >= 5000 {
					flush()
				}
			}
			flush()
			b.ReportAllocs()
			for b.Loop() {
				days, err := db.Rollups("acme", day0, day0.AddDate(0, 0, 365))
				if err != nil || len(days) != 365 {
					b.Fatal(len(days), err)
				}
			}
		})
	}
}

// BenchmarkRollupsBackfill fills the rollups of 100,000 completed calls (20 days of 5,000),
// as Open does once for a file of schema 2; ns/call is the time per call.
func BenchmarkRollupsBackfill(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const total = 100_000
	day0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	calls := make([]Call, 0, 5000)
	for i := range total {
		start := day0.Add(time.Duration(i) * 17 * time.Second)
		calls = append(calls, complete(benchCall(fmt.Sprintf("c%02d", i%10), start, i), i))
		if len(calls) == cap(calls) || i == total-1 {
			err := db.Write(context.Background(), func(tx *Tx) error {
				for i := range calls {
					if err := tx.PutCall(&calls[i]); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			calls = calls[:0]
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		err := db.raw().Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketRollups); err != nil {
				return err
			}
			_, err := tx.CreateBucket(bucketRollups)
			return err
		})
		if err == nil {
			err = db.startSchema3()
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n, err := db.backfillRollups(rollupBackfillBatch); err != nil || n != total {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/total, "ns/call")
}
