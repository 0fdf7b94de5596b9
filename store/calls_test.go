package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testCallID makes an id like pool.NewID's, made at t, with n in place of the random part.
func testCallID(t time.Time, n int) string {
	return string(idTimePrefix(t.UnixMilli())) + fmt.Sprintf("%016d", n)
}

func putCalls(t *testing.T, db *DB, calls ...Call) {
	t.Helper()
	err := db.Write(context.Background(), func(tx *Tx) error {
		for i := range calls {
			if err := tx.PutCall(&calls[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestCallsFilters(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	at := func(m float64) time.Time { return t0.Add(time.Duration(m * float64(time.Minute))) }
	type call struct {
		label                         string
		idAt, start                   float64 // minutes after t0
		customer, dialled, ch, dispos string
		active                        bool
	}
	// b1's id was made 30s after its Start: the To bound must still find it.
	data := []call{
		{"a1", 0, 0, "acme", "+31850000001", "Google Ads", "answered", false},
		{"a2", 10, 10, "acme", "+31850000002", "Direct", "busy", false},
		{"b1", 20, 19.5, "bakery", "+31850000011", "Google Ads", "answered", false},
		{"a3", 30, 30, "acme", "+31850000001", "Google Ads", "no-answer", false},
		{"b2", 40, 40, "bakery", "+31850000011", "Direct", "", true},
		{"a4", 50, 50, "acme", "+31850000001", "Direct", "", true},
		{"a5", 60, 60, "acme", "+31850000002", "Google Ads", "answered", false},
	}
	tags := map[string][]string{"a1": {"vip"}, "a3": {"spam", "vip"}, "b1": {"vip"}, "a4": {"vipp"}}
	ids := map[string]string{}
	labels := map[string]string{}
	for i, d := range data {
		c := Call{ID: testCallID(at(d.idAt), i), CustomerID: d.customer, Dialled: d.dialled, Caller: "+31612345678",
			Channel: d.ch, Disposition: Disposition(d.dispos), Start: at(d.start)}
		if !d.active {
			c.End = c.Start.Add(time.Minute)
		}
		c.Tags = tags[d.label]
		if d.label == "a1" || d.label == "a5" {
			c.RecordingID = "rec-" + d.label
		}
		putCalls(t, db, c)
		ids[d.label], labels[c.ID] = c.ID, d.label
	}
	tests := []struct {
		name string
		f    CallFilter
		want string
		next string // label of the next cursor, "" for none
	}{
		{"all", CallFilter{}, "a5 a4 b2 a3 b1 a2 a1", ""},
		{"customer acme", CallFilter{CustomerID: "acme"}, "a5 a4 a3 a2 a1", ""},
		{"customer bakery", CallFilter{CustomerID: "bakery"}, "b2 b1", ""},
		{"customer prefix of another", CallFilter{CustomerID: "acm"}, "", ""},
		{"from", CallFilter{From: at(19.5)}, "a5 a4 b2 a3 b1", ""},
		{"from just after a start", CallFilter{From: at(19.5).Add(time.Nanosecond)}, "a5 a4 b2 a3", ""},
		{"to is exclusive", CallFilter{To: at(30)}, "b1 a2 a1", ""},
		{"to before the id time", CallFilter{To: at(19.75)}, "b1 a2 a1", ""},
		{"from and to", CallFilter{From: at(10), To: at(40)}, "a3 b1 a2", ""},
		{"channel", CallFilter{Channel: "Direct"}, "a4 b2 a2", ""},
		{"dialled", CallFilter{Dialled: "+31850000001"}, "a4 a3 a1", ""},
		{"disposition", CallFilter{Disposition: "answered"}, "a5 b1 a1", ""},
		{"active", CallFilter{Active: ptr(true)}, "a4 b2", ""},
		{"ended", CallFilter{Active: ptr(false)}, "a5 a3 b1 a2 a1", ""},
		{"active of a customer", CallFilter{CustomerID: "bakery", Active: ptr(true)}, "b2", ""},
		{"active before to", CallFilter{Active: ptr(true), To: at(45)}, "b2", ""},
		{"active below the cursor", CallFilter{Active: ptr(true), Before: ids["a4"]}, "b2", ""},
		{"customer, channel, disposition", CallFilter{CustomerID: "acme", Channel: "Google Ads", Disposition: "answered"}, "a5 a1", ""},
		{"customer, dialled, from, ended", CallFilter{CustomerID: "acme", Dialled: "+31850000001", From: at(25), Active: ptr(false)}, "a3", ""},
		{"cursor", CallFilter{Before: ids["a3"]}, "b1 a2 a1", ""},
		{"cursor of another customer", CallFilter{CustomerID: "acme", Before: ids["b1"]}, "a2 a1", ""},
		{"cursor and to", CallFilter{Before: ids["a5"], To: at(15)}, "a2 a1", ""},
		{"limit", CallFilter{Limit: 2}, "a5 a4", "a4"},
		{"limit of a customer", CallFilter{CustomerID: "bakery", Limit: 1}, "b2", "b2"},
		{"scan bound", CallFilter{Disposition: "busy", scan: 3}, "", "b2"},
		{"scan bound after a match", CallFilter{Channel: "Direct", scan: 4}, "a4 b2", "a3"},
		{"nothing", CallFilter{Dialled: "+31850000099"}, "", ""},
		{"tag", CallFilter{Tag: "vip"}, "a3 b1 a1", ""},
		{"tag of a customer", CallFilter{CustomerID: "acme", Tag: "vip"}, "a3 a1", ""},
		{"tag is an exact match", CallFilter{Tag: "vi"}, "", ""},
		{"recorded", CallFilter{HasRecording: ptr(true)}, "a5 a1", ""},
		{"not recorded", CallFilter{HasRecording: ptr(false)}, "a4 b2 a3 b1 a2", ""},
		{"recorded with a tag", CallFilter{HasRecording: ptr(true), Tag: "vip"}, "a1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.f.scan > 0 && db.Driver() == "postgres" {
				t.Skip("bbolt's bound on the records one page examines: PostgreSQL selects by the filter itself")
			}
			var got []Call
			var next string
			err := db.View(func(tx *Tx) (err error) { got, next, err = tx.Calls(tt.f); return err })
			if err != nil {
				t.Fatal(err)
			}
			var gl []string
			for _, c := range got {
				gl = append(gl, labels[c.ID])
			}
			if strings.Join(gl, " ") != tt.want {
				t.Errorf("calls = %v, want %s", gl, tt.want)
			}
			if labels[next] != tt.next || (next == "") != (tt.next == "") {
				t.Errorf("next = %q (%s), want %s", next, labels[next], tt.next)
			}
		})
	}
}

// The walk stops at the first call that started well before From: a broken older record
// behind it is never read.
func TestCallsStopAtFrom(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	// On bbolt an older record that does not decode: the walk stops at From before it. On
	// PostgreSQL a row is valid by its columns' types, and From is a bound of the query: the
	// old call is a valid one there, left out by From.
	old := testCallID(t0.Add(-48*time.Hour), 0)
	if db.pg == nil {
		if err := db.raw().Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketCalls).Put([]byte(old), []byte("{broken")); err != nil {
				return err
			}
			return tx.Bucket(bucketCallsByCust).Put(compose("acme", old), nil)
		}); err != nil {
			t.Fatal(err)
		}
	} else {
		at := t0.Add(-48 * time.Hour)
		putCalls(t, db, Call{ID: old, CustomerID: "acme", Start: at, End: at.Add(time.Minute)})
	}
	for i, m := range []int{-120, 0, 5} {
		at := t0.Add(time.Duration(m) * time.Minute)
		putCalls(t, db, Call{ID: testCallID(at, i+1), CustomerID: "acme", Start: at, End: at.Add(time.Minute)})
	}
	for _, f := range []CallFilter{{From: t0}, {CustomerID: "acme", From: t0}} {
		got, next, err := db.Calls(f)
		if err != nil || len(got) != 2 || next != "" {
			t.Fatalf("Calls(%+v) = %d calls, next %q, %v", f, len(got), next, err)
		}
	}
	if db.pg != nil {
		if got, _, err := db.Calls(CallFilter{}); err != nil || len(got) != 4 {
			t.Fatalf("Calls() = %d calls, %v; want the 4", len(got), err)
		}
		return
	}
	if _, _, err := db.Calls(CallFilter{}); err == nil || !strings.Contains(err.Error(), "decode call") {
		t.Fatalf("walk over the broken record = %v, want a decode error", err)
	}
}

// Paging with the cursor returns every selected call exactly once, newest first, and only
// calls of the selected customer, also when pages end at the scan bound.
func TestCallsPaging(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	customers := []string{"a", "ab", "b"}
	var all []Call
	for i := range 300 {
		start := t0.Add(time.Duration(i) * 7 * time.Second)
		c := Call{ID: testCallID(start, i), CustomerID: customers[i%3], Start: start, Dialled: "+3185000000" + fmt.Sprint(i%4)}
		if i%5 != 0 {
			c.End, c.Disposition = start.Add(time.Minute), "answered"
		}
		all = append(all, c)
	}
	putCalls(t, db, all...)
	tests := []struct {
		name string
		f    CallFilter
		want func(Call) bool
	}{
		{"everything", CallFilter{}, func(Call) bool { return true }},
		{"customer a", CallFilter{CustomerID: "a"}, func(c Call) bool { return c.CustomerID == "a" }},
		{"customer ab, dialled", CallFilter{CustomerID: "ab", Dialled: "+31850000001"},
			func(c Call) bool { return c.CustomerID == "ab" && c.Dialled == "+31850000001" }},
		{"active", CallFilter{Active: ptr(true)}, func(c Call) bool { return c.End.IsZero() }},
		{"active of b", CallFilter{CustomerID: "b", Active: ptr(true)}, func(c Call) bool { return c.CustomerID == "b" && c.End.IsZero() }},
		{"window", CallFilter{From: t0.Add(10 * time.Minute), To: t0.Add(20 * time.Minute)},
			func(c Call) bool {
				return !c.Start.Before(t0.Add(10*time.Minute)) && c.Start.Before(t0.Add(20*time.Minute))
			}},
	}
	for _, tt := range tests {
		for _, scan := range []int{0, 11} {
			t.Run(fmt.Sprintf("%s/scan %d", tt.name, scan), func(t *testing.T) {
				var want, got []string
				for _, c := range slices.Backward(all) {
					if tt.want(c) {
						want = append(want, c.ID)
					}
				}
				f := tt.f
				f.Limit, f.scan = 7, scan
				for page := 0; ; page++ {
					if page > len(all) {
						t.Fatal("paging does not end")
					}
					calls, next, err := db.Calls(f)
					if err != nil {
						t.Fatal(err)
					}
					if len(calls) > f.Limit {
						t.Fatalf("page %d holds %d calls", page, len(calls))
					}
					for _, c := range calls {
						if !tt.want(c) {
							t.Fatalf("page %d holds %+v", page, c)
						}
						got = append(got, c.ID)
					}
					if next == "" {
						break
					}
					f.Before = next
				}
				if len(want) == 0 || !slices.Equal(got, want) {
					t.Fatalf("paged %d calls, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
				}
			})
		}
	}
}

func TestActiveCallsIndex(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	c1 := Call{ID: testCallID(t0, 1), CustomerID: "acme", Start: t0}
	c2 := Call{ID: testCallID(t0, 2), CustomerID: "bakery", Start: t0}
	c3 := Call{ID: testCallID(t0, 3), CustomerID: "acme", Start: t0, End: t0.Add(time.Minute), Disposition: "busy"}
	putCalls(t, db, c1, c2, c3)
	active := func() string {
		t.Helper()
		var ids []string
		if err := db.View(func(tx *Tx) error {
			return tx.ActiveCalls(func(c Call) bool { ids = append(ids, c.ID[len(c.ID)-1:]); return true })
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(ids, " ")
	}
	steps := []struct {
		name string
		put  []Call
		want string
	}{
		{"written while active", nil, "1 2"},
		{"first ends", []Call{{ID: c1.ID, CustomerID: "acme", Start: t0, End: t0.Add(time.Minute), Disposition: "answered"}}, "2"},
		{"rewritten while active", []Call{c2}, "2"},
		{"second ends", []Call{{ID: c2.ID, CustomerID: "bakery", Start: t0, End: t0.Add(time.Minute), Disposition: "cancelled"}}, ""},
	}
	for _, s := range steps {
		putCalls(t, db, s.put...)
		if got := active(); got != s.want {
			t.Fatalf("%s: active calls %q, want %q", s.name, got, s.want)
		}
		n := len(strings.Fields(s.want))
		if db.pg == nil { // bbolt's index of the active calls; PostgreSQL's is a partial index of calls
			db.raw().View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketCallsActive).Stats().KeyN; return nil })
			if n != len(strings.Fields(s.want)) {
				t.Fatalf("%s: %d keys in calls_active, want %d", s.name, n, len(strings.Fields(s.want)))
			}
		}
		got, _, err := db.Calls(CallFilter{Active: ptr(true)})
		if err != nil || len(got) != n {
			t.Fatalf("%s: Calls(active) = %d calls, %v", s.name, len(got), err)
		}
	}
	// ActiveCalls stops when fn returns false.
	putCalls(t, db, c1, c2)
	n := 0
	db.View(func(tx *Tx) error { return tx.ActiveCalls(func(Call) bool { n++; return false }) })
	if n != 1 {
		t.Fatalf("ActiveCalls went on after false: %d calls", n)
	}
}

// A file made before calls_active existed gets the bucket at open; the schema is unchanged.
func TestOpenCreatesCallsActive(t *testing.T) {
	skipOnPostgres(t, "an earlier build's file without the calls_active bucket; PostgreSQL's schema is goose's migrations, TestPostgresMigratesReopensAndChecksSchema")
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.raw().Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketCallsActive) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := Call{ID: testCallID(time.Now(), 1), CustomerID: "acme", Start: time.Now()}
	putCalls(t, db, c)
	got, _, err := db.Calls(CallFilter{Active: ptr(true)})
	if err != nil || len(got) != 1 {
		t.Fatalf("Calls(active) after reopen = %v, %v", got, err)
	}
	if _, err := db.Call("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Call(unknown) = %v", err)
	}
}

func BenchmarkCallsFiltered(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var calls []Call
	for i := range 20_000 {
		start := t0.Add(time.Duration(i) * time.Second)
		calls = append(calls, Call{ID: testCallID(start, i), CustomerID: fmt.Sprintf("c%02d", i%20), Start: start,
			End: start.Add(time.Minute), Channel: "Google Ads", Disposition: "answered", Dialled: "+31850000001"})
	}
	if err := db.Write(context.Background(), func(tx *Tx) error {
		for i := range calls {
			if err := tx.PutCall(&calls[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if got, _, err := db.Calls(CallFilter{CustomerID: "c07", Limit: 100}); err != nil || len(got) != 100 {
			b.Fatal(len(got), err)
		}
	}
}

func TestAnnotateCall(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	call := Call{ID: testCallID(t0, 1), CustomerID: "acme", Caller: "+31612345678", CallerPseudonym: "pa", Channel: "Direct", Start: t0}
	putCalls(t, db, call)
	annotate := func(customerID, id string, f func(*Call) error) (Call, error) {
		var got Call
		err := db.Write(context.Background(), func(tx *Tx) (err error) { got, err = tx.AnnotateCall(customerID, id, f); return err })
		return got, err
	}
	boom := errors.New("boom")
	set := func(c Call) func(*Call) error {
		return func(into *Call) error {
			into.LeadStatus, into.Tags, into.Value, into.Note, into.Updated = c.LeadStatus, c.Tags, c.Value, c.Note, c.Updated
			return nil
		}
	}
	many := make([]string, MaxTags+1)
	for i := range many {
		many[i] = fmt.Sprint("t", i)
	}
	tests := []struct {
		name     string
		customer string
		id       string
		f        func(*Call) error
		want     error
		field    string
	}{
		{"annotations", "acme", call.ID, set(Call{LeadStatus: LeadStatusQualified, Tags: []string{"vip", "offerte"}, Value: 1250.5,
			Note: "Belt terug:\n\tdinsdag", Updated: t0.Add(time.Hour)}), nil, ""},
		{"another customer's call", "bakery", call.ID, set(Call{Note: "x"}), ErrNotFound, ""},
		{"no customer", "", call.ID, set(Call{Note: "x"}), ErrNotFound, ""},
		{"no such call", "acme", testCallID(t0, 2), set(Call{Note: "x"}), ErrNotFound, ""},
		{"f fails", "acme", call.ID, func(*Call) error { return boom }, boom, ""},
		{"lead status", "acme", call.ID, set(Call{LeadStatus: "hot"}), ErrInvalid, "lead_status"},
		{"too many tags", "acme", call.ID, set(Call{Tags: many}), ErrInvalid, "tags"},
		{"empty tag", "acme", call.ID, set(Call{Tags: []string{"a", ""}}), ErrInvalid, "tags"},
		{"long tag", "acme", call.ID, set(Call{Tags: []string{strings.Repeat("é", MaxTagLen+1)}}), ErrInvalid, "tags"},
		{"tag with a control character", "acme", call.ID, set(Call{Tags: []string{"a\nb"}}), ErrInvalid, "tags"},
		{"tag twice", "acme", call.ID, set(Call{Tags: []string{"a", "b", "a"}}), ErrInvalid, "tags"},
		{"tag not UTF-8", "acme", call.ID, set(Call{Tags: []string{"a\xff"}}), ErrInvalid, "tags"},
		{"negative value", "acme", call.ID, set(Call{Value: -1}), ErrInvalid, "value"},
		{"value too high", "acme", call.ID, set(Call{Value: MaxCallValue + 1}), ErrInvalid, "value"},
		{"value not a number", "acme", call.ID, set(Call{Value: math.NaN()}), ErrInvalid, "value"},
		{"long note", "acme", call.ID, set(Call{Note: strings.Repeat("ß", MaxNoteLen+1)}), ErrInvalid, "note"},
		{"note with a control character", "acme", call.ID, set(Call{Note: "a\x00b"}), ErrInvalid, "note"},
		// f may change anything; only the annotations are taken.
		{"only the annotations", "acme", call.ID, func(c *Call) error {
			c.CustomerID, c.Channel, c.End, c.Tags = "bakery", "Google Ads", t0, append(c.Tags, "terug")
			return nil
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := annotate(tt.customer, tt.id, tt.f)
			if !errors.Is(err, tt.want) {
				t.Fatalf("AnnotateCall = %v, want %v", err, tt.want)
			}
			var fe *FieldError
			if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Fatalf("AnnotateCall = %v, want a FieldError of %q", err, tt.field)
			}
		})
	}
	want := call
	want.LeadStatus, want.Tags, want.Value, want.Note, want.Updated = LeadStatusQualified, []string{"vip", "offerte", "terug"}, 1250.5, "Belt terug:\n\tdinsdag", t0.Add(time.Hour)
	got, err := db.Call(call.ID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after the annotations:\n%+v %v\nwant\n%+v", got, err, want)
	}
	// The call layer's write at the end of the call, from its own copy without annotations,
	// keeps them, and its indexes are kept as ever.
	ended := call
	ended.End, ended.Disposition, ended.TalkSeconds = t0.Add(2*time.Minute), DispAnswered, 100
	putCalls(t, db, ended)
	got, err = db.Call(call.ID)
	want.End, want.Disposition, want.TalkSeconds = ended.End, ended.Disposition, ended.TalkSeconds
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after the call ended:\n%+v %v\nwant\n%+v", got, err, want)
	}
	if ended.Tags != nil {
		t.Fatal("PutCall changed the caller's record")
	}
	if active, _, _ := db.Calls(CallFilter{Active: ptr(true)}); len(active) != 0 {
		t.Fatalf("the ended call is still active: %v", active)
	}
	if byCaller, _ := db.CallsOfCaller("acme", "pa"); len(byCaller) != 1 {
		t.Fatalf("CallsOfCaller = %v", byCaller)
	}
	if tagged, _, _ := db.Calls(CallFilter{CustomerID: "acme", Tag: "terug"}); len(tagged) != 1 {
		t.Fatalf("Calls by tag = %v", tagged)
	}
	if u, _ := db.Usage("acme", "2026-05"); u.Calls != 1 || u.TalkSeconds != 100 {
		t.Fatalf("usage %+v", u)
	}
	// Clearing: no tags are stored as none.
	got, err = annotate("acme", call.ID, set(Call{Updated: t0.Add(2 * time.Hour)}))
	if err != nil || got.Tags != nil || got.LeadStatus != "" || got.Note != "" || got.Value != 0 {
		t.Fatalf("cleared: %+v %v", got, err)
	}
	raw := rawHolds(t, db, "terug")
	if len(raw) != 0 {
		t.Fatalf("cleared annotations are still in %v", raw)
	}
}

// TestCallsSparseFilter: a filter whose value a record holds elsewhere (a note quoting a tag)
// still decides by the field, and the walk stops at From as before.
func TestCallsSparseFilter(t *testing.T) {
	skipOnPostgres(t, "bbolt's bound on the records one page of calls examines; PostgreSQL selects by the filter itself (TestCallsFilters)")
	db, err := Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var calls []Call
	for i := range 50 {
		start := t0.Add(time.Duration(i) * time.Hour)
		c := Call{ID: testCallID(start, i), CustomerID: "c", Start: start, End: start.Add(time.Minute), Dialled: "+31850000001"}
		switch i {
		case 10:
			c.Tags = []string{"rare"}
		case 20:
			c.Note = `said "rare" on the phone`
		case 30:
			c.Tags, c.Channel = []string{"rare"}, `Ads "special" <b>`
		}
		calls = append(calls, c)
	}
	putCalls(t, db, calls...)
	got, _, err := db.Calls(CallFilter{CustomerID: "c", Tag: "rare"})
	if err != nil || len(got) != 2 || got[0].ID != calls[30].ID || got[1].ID != calls[10].ID {
		t.Fatalf("tag rare: %d calls %v", len(got), err)
	}
	got, _, _ = db.Calls(CallFilter{CustomerID: "c", Channel: `Ads "special" <b>`})
	if len(got) != 1 || got[0].ID != calls[30].ID {
		t.Fatalf("a channel with characters JSON escapes: %d calls", len(got))
	}
	got, next, _ := db.Calls(CallFilter{CustomerID: "c", Tag: "rare", From: t0.Add(15 * time.Hour)})
	if len(got) != 1 || got[0].ID != calls[30].ID || next != "" {
		t.Fatalf("from hour 15: %d calls, next %q", len(got), next)
	}
}

// BenchmarkCallsSparse is a filter that matches nothing over 20,000 calls: the walk's cost.
func BenchmarkCallsSparse(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var calls []Call
	for i := range 20_000 {
		start := t0.Add(time.Duration(i) * time.Second)
		calls = append(calls, Call{ID: testCallID(start, i), CustomerID: "c", Start: start, End: start.Add(time.Minute),
			Channel: "Google Ads", Disposition: "answered", Dialled: "+31850000001", Tags: []string{"lead"}, LandingPage: "https://shop.example/a/b?c=d"})
	}
	if err := db.Write(context.Background(), func(tx *Tx) error {
		for i := range calls {
			if err := tx.PutCall(&calls[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if got, _, err := db.Calls(CallFilter{CustomerID: "c", Tag: "no-such-tag", From: t0}); err != nil || len(got) != 0 {
			b.Fatal(len(got), err)
		}
	}
}
