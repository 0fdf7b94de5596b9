package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Call records are keyed by their id in the calls bucket. Call ids are time-ordered: 26
// Crockford base32 characters whose first ten encode the Unix milliseconds (pool.NewID), so a
// reverse walk of the bucket, or of the calls_by_customer index (customer 0x00 id), is a walk
// from the newest call back. The calls_active index (customer 0x00 id) holds the calls whose
// End is zero. An id's time and the call's Start may differ by a little: startSlack bounds
// that difference where the walk relies on it.

const (
	// DefaultCallLimit is the page size of Calls when the filter sets none.
	DefaultCallLimit = 100
	// MaxCallScan is the most records one Calls examines before it returns with a cursor.
	MaxCallScan = 100_000
	// startSlack is how far a call's Start may be from the time in its id.
	startSlack = time.Minute
)

// CallFilter selects call records. The zero value selects every call, newest first.
type CallFilter struct {
	CustomerID string // "" for every customer
	// From and To bound Start to [From, To); a zero time leaves that side open. To is found
	// by the time in the call ids, so it requires ids made like pool.NewID.
	From, To     time.Time
	Channel      string      // exact match, "" for any
	Dialled      string      // exact match, "" for any
	Disposition  Disposition // exact match, "" for any
	Tag          string      // one of the call's tags (exact match), "" for any
	HasRecording *bool       // true: the call has a recording; false: it has none; nil: both
	Active       *bool       // true: End is zero; false: ended; nil: both
	Before       string      // cursor: only calls with an id below this one ("" for the newest)
	Limit        int         // page size; 0 means DefaultCallLimit

	scan int // records examined at most; 0 means MaxCallScan (tests lower it)
}

func (f *CallFilter) match(c *Call) bool {
	switch {
	case f.CustomerID != "" && c.CustomerID != f.CustomerID,
		!f.From.IsZero() && c.Start.Before(f.From),
		!f.To.IsZero() && !c.Start.Before(f.To),
		f.Channel != "" && c.Channel != f.Channel,
		f.Dialled != "" && c.Dialled != f.Dialled,
		f.Disposition != "" && c.Disposition != f.Disposition,
		f.Tag != "" && !slices.Contains(c.Tags, f.Tag),
		f.HasRecording != nil && *f.HasRecording != (c.RecordingID != ""),
		f.Active != nil && *f.Active != c.End.IsZero():
		return false
	}
	return true
}

// needles are byte strings that a call's JSON record must hold to match f: the filter's
// exact string values, quoted, where encoding/json writes them unescaped. Values with other
// characters are not searched for (match decides).
func (f *CallFilter) needles() [][]byte {
	var out [][]byte
	for _, v := range []string{f.Channel, f.Dialled, string(f.Disposition), f.Tag} {
		if v != "" && plainJSON(v) {
			out = append(out, []byte(`"`+v+`"`))
		}
	}
	if f.HasRecording != nil && *f.HasRecording {
		out = append(out, []byte(`"recording_id":"`))
	}
	return out
}

// plainJSON reports whether encoding/json writes s as it is between its quotes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// mayMatch reports whether raw holds every needle.
func mayMatch(raw []byte, needles [][]byte) bool {
	for _, n := range needles {
		if !bytes.Contains(raw, n) {
			return false
		}
	}
	return true
}

// Calls lists the calls f selects, newest first (by id), at most f.Limit of them. next is the
// cursor for the following page (f.Before of the next call), "" when the walk reached the
// end. A page may hold fewer than f.Limit calls and still have a next cursor: one call
// examines at most MaxCallScan records, so that a selective filter over a long history does
// not hold the read transaction for long.
func (t *Tx) Calls(f CallFilter) (calls []Call, next string, err error) {
	if t.pg != nil {
		return t.pg.calls(f)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultCallLimit
	}
	scan := f.scan
	if scan <= 0 {
		scan = MaxCallScan
	}
	// Ids are time-ordered: once a call started well before From, every older one did too.
	var floor time.Time
	var lower []byte // the ids of calls made before the floor sort below this
	if !f.From.IsZero() {
		floor = f.From.Add(-startSlack)
		if ms := floor.Add(-startSlack).UnixMilli(); ms >= 0 && ms < 1<<48 {
			lower = idTimePrefix(ms)
		}
	}
	needles := f.needles()
	var last []byte
	examined := 0
	for id, raw := range t.callsDesc(&f) {
		if examined == scan {
			return calls, string(last), nil
		}
		examined++
		last = id
		if raw == nil {
			return nil, "", fmt.Errorf("call index entry %q: %w", id, ErrNotFound)
		}
		// A record that cannot match is not decoded (decoding is most of a filtered walk's
		// cost), unless its id says it may lie before the floor, which only its Start tells.
		if !mayMatch(raw, needles) && (lower == nil || bytes.Compare(id, lower) >= 0) {
			continue
		}
		var c Call
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, "", fmt.Errorf("decode call %q: %w", id, err)
		}
		if !floor.IsZero() && c.Start.Before(floor) {
			return calls, "", nil
		}
		if !f.match(&c) {
			continue
		}
		calls = append(calls, c)
		if len(calls) == limit {
			return calls, string(id), nil
		}
	}
	return calls, "", nil
}

// callsDesc yields the ids below f's upper bound, newest first, with the raw call record (nil
// if the record is missing). It walks the smallest source that holds every call f can match.
func (t *Tx) callsDesc(f *CallFilter) iter.Seq2[[]byte, []byte] {
	upper := f.upper()
	calls := t.tx.Bucket(bucketCalls)
	active := f.Active != nil && *f.Active
	switch {
	case f.CustomerID != "":
		index := bucketCallsByCust
		if active {
			index = bucketCallsActive
		}
		return func(yield func([]byte, []byte) bool) {
			prefix := compose(f.CustomerID, "")
			start := append(compose(f.CustomerID), 1) // sorts after every key of the customer
			if upper != nil {
				start = append(compose(f.CustomerID, ""), upper...)
			}
			c := t.tx.Bucket(index).Cursor()
			for k, _ := seekBefore(c, start); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
				id := k[len(prefix):]
				if !yield(id, calls.Get(id)) {
					return
				}
			}
		}
	case active:
		// The active index is ordered by customer first. It holds only the calls in
		// progress, bounded by the switch's capacity: sort all of their ids.
		return func(yield func([]byte, []byte) bool) {
			var ids [][]byte
			t.tx.Bucket(bucketCallsActive).ForEach(func(k, _ []byte) error {
				if i := bytes.IndexByte(k, 0); i >= 0 && (upper == nil || bytes.Compare(k[i+1:], upper) < 0) {
					ids = append(ids, k[i+1:])
				}
				return nil
			})
			slices.SortFunc(ids, func(a, b []byte) int { return bytes.Compare(b, a) })
			for _, id := range ids {
				if !yield(id, calls.Get(id)) {
					return
				}
			}
		}
	default:
		return func(yield func([]byte, []byte) bool) {
			c := calls.Cursor()
			k, v := c.Last()
			if upper != nil {
				k, v = seekBefore(c, upper)
			}
			for ; k != nil; k, v = c.Prev() {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// upper is the exclusive upper bound on the ids f can match: the cursor, or the first id
// after To (with slack), whichever is lower; nil for none.
func (f *CallFilter) upper() []byte {
	var u []byte
	if f.Before != "" {
		u = []byte(f.Before)
	}
	if !f.To.IsZero() {
		ms := f.To.Add(startSlack).UnixMilli() + 1
		if ms >= 0 && ms < 1<<48 {
			if k := idTimePrefix(ms); u == nil || bytes.Compare(k, u) < 0 {
				u = k
			}
		}
	}
	return u
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// idTimePrefix is the first ten characters of an id made at ms (see pool.NewID): every id made
// before ms sorts below it, every id made at or after ms at or above it.
func idTimePrefix(ms int64) []byte {
	var b [10]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	return b[:]
}

// ActiveCalls calls fn for every call whose End is zero, ordered by customer and id, until fn
// returns false. After a crash these are the calls the switch did not finish recording. fn
// must not write through the transaction: collect the calls, then write in another one.
func (t *Tx) ActiveCalls(fn func(Call) bool) error {
	if t.pg != nil {
		return t.pg.activeCalls(fn)
	}
	calls := t.tx.Bucket(bucketCalls)
	c := t.tx.Bucket(bucketCallsActive).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return fmt.Errorf("malformed active call key %q", k)
		}
		raw := calls.Get(k[i+1:])
		if raw == nil {
			return fmt.Errorf("active call index entry %q: %w", k, ErrNotFound)
		}
		var call Call
		if err := json.Unmarshal(raw, &call); err != nil {
			return fmt.Errorf("decode call %q: %w", k[i+1:], err)
		}
		if !fn(call) {
			return nil
		}
	}
	return nil
}

// Calls runs Tx.Calls in a read-only transaction.
func (db *DB) Calls(f CallFilter) ([]Call, string, error) {
	var calls []Call
	var next string
	err := db.View(func(tx *Tx) (err error) {
		calls, next, err = tx.Calls(f)
		return err
	})
	return calls, next, err
}

// Call reads one call record in a read-only transaction; ErrNotFound if there is none.
func (db *DB) Call(id string) (Call, error) {
	var c Call
	err := db.View(func(tx *Tx) (err error) {
		c, err = tx.Call(id)
		return err
	})
	return c, err
}

// Recording reads one recording's metadata; an error wrapping ErrNotFound if there is none.
func (db *DB) Recording(id string) (Recording, error) {
	var r Recording
	err := db.View(func(tx *Tx) error {
		var err error
		r, err = tx.Recording(id)
		return err
	})
	return r, err
}

// The bounds of a call's annotations (Call.CheckAnnotation).
const (
	MaxTags      = 20
	MaxTagLen    = 32   // characters
	MaxNoteLen   = 2000 // characters
	MaxCallValue = 1e9
)

// CheckAnnotation answers a *FieldError (an ErrInvalid) for annotations the store does not
// take: a lead status it does not know; more than MaxTags tags, a tag of no or more than
// MaxTagLen characters, with a control character, or twice; a value that is negative, above
// MaxCallValue or not a number; a note of more than MaxNoteLen characters or with a control
// character other than a line break or a tab. Text must be UTF-8.
func (c *Call) CheckAnnotation() error {
	if _, err := ParseLeadStatus(string(c.LeadStatus)); err != nil {
		return invalid("lead_status", "must be lead, qualified, customer, not_a_lead or empty")
	}
	if len(c.Tags) > MaxTags {
		return invalid("tags", "at most %d tags", MaxTags)
	}
	for i, tag := range c.Tags {
		if n := utf8.RuneCountInString(tag); n == 0 || n > MaxTagLen || !utf8.ValidString(tag) || strings.ContainsFunc(tag, unicode.IsControl) {
			return invalid("tags", "tag %d: must be 1-%d characters of UTF-8 text without control characters", i+1, MaxTagLen)
		}
		if slices.Contains(c.Tags[:i], tag) {
			return invalid("tags", "tag %d: %q is there twice", i+1, tag)
		}
	}
	if !(c.Value >= 0 && c.Value <= MaxCallValue) {
		return invalid("value", "must be a number from 0 to %g", float64(MaxCallValue))
	}
	if utf8.RuneCountInString(c.Note) > MaxNoteLen || !utf8.ValidString(c.Note) ||
		strings.ContainsFunc(c.Note, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }) {
		return invalid("note", "must be at most %d characters of UTF-8 text without control characters but line breaks and tabs", MaxNoteLen)
	}
	return nil
}

// annotation is the annotations of a stored call, read without the rest of the record.
type annotation struct {
	LeadStatus LeadStatus `json:"lead_status"`
	Tags       []string   `json:"tags"`
	Value      float64    `json:"value"`
	Note       string     `json:"note"`
	Updated    time.Time  `json:"updated"`
}

// annotationMembers are the JSON members of a call's annotations.
var annotationMembers = [...][]byte{[]byte(`"lead_status":`), []byte(`"tags":`), []byte(`"value":`), []byte(`"note":`), []byte(`"updated":`)}

// annotated tells whether a stored call record may hold annotations. Their members are
// written only when set (omitempty), so a record that names none of them has none, and is
// not decoded for them: a call is written again when it ends.
func annotated(raw []byte) bool {
	for _, m := range annotationMembers {
		if bytes.Contains(raw, m) {
			return true
		}
	}
	return false
}

// storedAnnotation reads the annotations of a stored call record.
func storedAnnotation(raw []byte) (annotation, error) {
	if !annotated(raw) {
		return annotation{}, nil
	}
	var a annotation
	err := json.Unmarshal(raw, &a)
	return a, err
}

// of tells whether c holds the annotations a.
func (a *annotation) of(c *Call) bool {
	return a.LeadStatus == c.LeadStatus && slices.Equal(a.Tags, c.Tags) && a.Value == c.Value && a.Note == c.Note && a.Updated.Equal(c.Updated)
}

// to sets c's annotations to a.
func (a *annotation) to(c *Call) {
	c.LeadStatus, c.Tags, c.Value, c.Note, c.Updated = a.LeadStatus, a.Tags, a.Value, a.Note, a.Updated
}

// AnnotateCall changes the annotations of a customer's call (LeadStatus, Tags, Value, Note,
// Updated): it reads the call, runs f on it, checks the annotations f left
// (CheckAnnotation), writes the call back and returns it. Only the annotations are taken
// from f: the rest of the record, and every index PutCall keeps, stay as they are. The store
// has no clock: f sets Updated. A call of another customer answers ErrNotFound, as a missing
// one does, so that a customer does not learn another's ids; f's error is returned as it is.
// It writes the webhooks' call.updated event of the change (events.go).
func (t *Tx) AnnotateCall(customerID, id string, f func(*Call) error) (Call, error) {
	c, err := t.Call(id)
	if err == nil && (customerID == "" || c.CustomerID != customerID) {
		err = ErrNotFound
	}
	if err != nil {
		return Call{}, fmt.Errorf("call %q: %w", id, err)
	}
	work := c
	work.Tags = slices.Clone(c.Tags)
	if err := f(&work); err != nil {
		return Call{}, err
	}
	a := annotation{LeadStatus: work.LeadStatus, Tags: work.Tags, Value: work.Value, Note: work.Note, Updated: work.Updated}
	a.to(&c)
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	if err := c.CheckAnnotation(); err != nil {
		return Call{}, fmt.Errorf("call %q: %w", id, err)
	}
	if t.pg != nil {
		if err := t.pg.updateCall(&c); err != nil {
			return Call{}, err
		}
		return c, t.pgCallUpdated(&c) // the webhooks' call.updated (pg_outbox_events.go)
	}
	if err := t.put(bucketCalls, []byte(c.ID), &c); err != nil {
		return Call{}, err
	}
	return c, t.callUpdated(&c) // the webhooks' call.updated (events.go)
}
