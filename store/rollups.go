package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Daily rollups: per customer and UTC day, what its calls came to, so that reports read a
// few keys a day and never the calls. PutCall counts a call in the transaction that
// completes it (the stored record had no End, or there was none, and the new one has an
// End): once, on the UTC day of its Start. A recording linked to a completed call later
// counts then. DeleteCall (a caller's erasure) takes the call out again, as if it had never
// been counted: a landing page or keyword whose count falls to zero loses its key, so that
// nothing of an erased caller's calls stays in the file (after compaction). A deleted call
// counts as first-time or returning by the calls of its caller still indexed, which is how
// it was counted when the caller's calls are deleted newest first (CallsOfCaller's order).
//
// The rollups bucket is keyed customer 0x00 day kind name, the day as the big-endian Unix
// seconds of its midnight (UTC) and kind one byte:
//
//	'c' channel name   ChannelStats, rollupStatsLen bytes (rollupStatsV1 and the fields below)
//	'l' landing page   calls, big-endian uint32
//	'k' keyword        calls, big-endian uint32
//	'n' "l" or "k"     how many landing pages or keywords of the day have a key of their own
//
// so that a day is a run of keys, a range of days a range of keys, and a call's update a few
// small values. A day keeps at most MaxRollupKeys landing pages and as many keywords; the
// calls of the others count under RollupOther.
//
// Schema 3 added the rollups: Open fills them once from the completed calls of an older file
// (backfillRollups), in transactions of rollupBackfillBatch calls.

var (
	bucketRollups = []byte("rollups")
	// keyRollupsAfter in the meta bucket, while the rollups of a file of schema 2 are being
	// filled, holds the id of the last call counted ("" before the first).
	keyRollupsAfter = []byte("rollups_after")
)

// MaxRollupKeys is how many landing pages, and how many keywords, one day of a customer's
// rollups holds by name; the calls of the others count under RollupOther.
const MaxRollupKeys = 200

// RollupOther is the name the landing pages and keywords past MaxRollupKeys count under.
const RollupOther = "(other)"

// maxRollupName bounds a landing page or keyword as a key (bytes, cut at a character).
const maxRollupName = 512

const (
	rollupChannel  = 'c'
	rollupLanding  = 'l'
	rollupKeyword  = 'k'
	rollupDistinct = 'n'
)

// DayStats is one day of a customer's calls.
type DayStats struct {
	Day      time.Time                `json:"day"`           // midnight UTC
	Channels map[string]*ChannelStats `json:"channels"`      // by channel name, "" for none
	Landing  map[string]int           `json:"landing_pages"` // landing page (without its query) -> calls
	Keywords map[string]int           `json:"keywords"`      // keyword -> calls
}

// ChannelStats count the completed calls of one channel on one day.
type ChannelStats struct {
	Calls    int `json:"calls"`
	Answered int `json:"answered"`
	Busy     int `json:"busy"`
	// Missed are neither answered nor busy: no answer, cancelled, rejected, failed.
	Missed int `json:"missed"`
	// FirstTime and Returning count the calls with a caller pseudonym: Returning when the
	// customer had an earlier call (a lower id) from the same pseudonym, FirstTime
	// otherwise. Calls without a pseudonym count in neither.
	FirstTime int `json:"first_time"`
	Returning int `json:"returning"`
	// TalkSeconds is the talk time of the answered calls; TalkHist counts them by talk
	// time, bucket i holding [2^i-1, 2^(i+1)-1) seconds (the last one also what is longer),
	// for a median (MedianTalk).
	TalkSeconds float64 `json:"talk_seconds"`
	TalkHist    [24]int `json:"talk_hist"`
	Recorded    int     `json:"recorded"`
}

// Add adds the counts of o to s (to sum channels or days).
func (s *ChannelStats) Add(o *ChannelStats) {
	s.Calls += o.Calls
	s.Answered += o.Answered
	s.Busy += o.Busy
	s.Missed += o.Missed
	s.FirstTime += o.FirstTime
	s.Returning += o.Returning
	s.TalkSeconds += o.TalkSeconds
	for i := range s.TalkHist {
		s.TalkHist[i] += o.TalkHist[i]
	}
	s.Recorded += o.Recorded
}

// talkBucket is the TalkHist bucket of a talk time in seconds.
func talkBucket(seconds float64) int {
	if !(seconds > 0) {
		return 0
	}
	return min(bits.Len64(uint64(min(seconds, 1<<30)+1))-1, 23)
}

// MedianTalk estimates the median talk time (seconds) from a TalkHist: it finds the bucket
// that holds the middle call and interpolates linearly within it. Zero without calls.
func MedianTalk(h [24]int) float64 {
	n := 0
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return 0
	}
	half, below := float64(n)/2, 0.0
	for i, c := range h {
		if c > 0 && below+float64(c) >= half {
			lo, hi := float64(int(1)<<i-1), float64(int(1)<<(i+1)-1)
			return lo + (half-below)/float64(c)*(hi-lo)
		}
		below += float64(c)
	}
	return 0 // not reached: the buckets add up to n
}

// The ChannelStats value: a version byte, seven uint32 counts (calls, answered, busy,
// missed, first time, returning, recorded), the talk seconds (float64 bits) and the 24
// uint32 buckets, big-endian.
const (
	rollupStatsV1  = 1
	rollupStatsLen = 1 + 7*4 + 8 + 24*4
)

func (s *ChannelStats) marshal(b *[rollupStatsLen]byte) {
	b[0] = rollupStatsV1
	v := b[1:]
	for i, n := range [...]int{s.Calls, s.Answered, s.Busy, s.Missed, s.FirstTime, s.Returning, s.Recorded} {
		binary.BigEndian.PutUint32(v[4*i:], uint32(n))
	}
	binary.BigEndian.PutUint64(v[28:], math.Float64bits(s.TalkSeconds))
	for i, n := range s.TalkHist {
		binary.BigEndian.PutUint32(v[36+4*i:], uint32(n))
	}
}

func (s *ChannelStats) unmarshal(b []byte) error {
	if len(b) != rollupStatsLen || b[0] != rollupStatsV1 {
		return fmt.Errorf("channel rollup: malformed (%d bytes)", len(b))
	}
	v := b[1:]
	for i, p := range [...]*int{&s.Calls, &s.Answered, &s.Busy, &s.Missed, &s.FirstTime, &s.Returning, &s.Recorded} {
		*p = int(binary.BigEndian.Uint32(v[4*i:]))
	}
	s.TalkSeconds = math.Float64frombits(binary.BigEndian.Uint64(v[28:]))
	for i := range s.TalkHist {
		s.TalkHist[i] = int(binary.BigEndian.Uint32(v[36+4*i:]))
	}
	return nil
}

// dayOf is the midnight (UTC) of the day of t.
func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// rollupDay is the key prefix of a customer's day: customer 0x00 day. Its capacity holds a
// kind and a name of up to 128 bytes after it (rollupKey).
func rollupDay(customerID string, day time.Time) []byte {
	k := make([]byte, 0, len(customerID)+1+8+1+128)
	k = append(append(k, customerID...), 0)
	return binary.BigEndian.AppendUint64(k, uint64(day.Unix()))
}

// rollupKey is the key of a name of a kind in the day whose prefix is day, written after
// the prefix in day's array: it is valid until the next rollupKey of that day (bbolt copies
// a key it stores).
func rollupKey(day []byte, kind byte, name string) []byte {
	return append(append(day, kind), name...)
}

// rollupName is a landing page or keyword as the rollups keep it: a landing page without
// its query or fragment, at most maxRollupName bytes.
func rollupName(s string, landing bool) string {
	if landing {
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
	}
	if len(s) > maxRollupName {
		i := maxRollupName
		for i > 0 && s[i]&0xc0 == 0x80 { // not within a character
			i--
		}
		s = s[:i]
	}
	return s
}

// rollupCall counts a completed call in its customer's rollup of the day it started.
func (t *Tx) rollupCall(c *Call) error {
	if !storable(c.Start) {
		return nil // no day to count it on
	}
	b := t.tx.Bucket(bucketRollups)
	day := rollupDay(c.CustomerID, dayOf(c.Start))
	k := rollupKey(day, rollupChannel, c.Channel)
	var st ChannelStats
	if v := b.Get(k); v != nil {
		if err := st.unmarshal(v); err != nil {
			return fmt.Errorf("rollup of %s: %w", c.CustomerID, err)
		}
	}
	st.Calls++
	switch c.Disposition {
	case DispAnswered:
		st.Answered++
		st.TalkSeconds += c.TalkSeconds
		st.TalkHist[talkBucket(c.TalkSeconds)]++
	case DispBusy:
		st.Busy++
	default:
		st.Missed++
	}
	if c.CallerPseudonym != "" {
		if t.returning(c) {
			st.Returning++
		} else {
			st.FirstTime++
		}
	}
	if c.RecordingID != "" {
		st.Recorded++
	}
	var v [rollupStatsLen]byte
	st.marshal(&v)
	if err := b.Put(k, v[:]); err != nil {
		return err
	}
	if name := rollupName(c.LandingPage, true); name != "" {
		if err := t.rollupCount(b, day, rollupLanding, name); err != nil {
			return err
		}
	}
	if name := rollupName(c.Keyword, false); name != "" {
		return t.rollupCount(b, day, rollupKeyword, name)
	}
	return nil
}

// returning tells whether the customer had a call from c's caller before c: the caller
// index holds one below c's id.
func (t *Tx) returning(c *Call) bool {
	prefix := callerKey(c.CustomerID, c.CallerPseudonym, "")
	k, _ := t.tx.Bucket(bucketCallsByCaller).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix) && string(k[len(prefix):]) < c.ID
}

// rollupCount adds a call to a landing page's or keyword's count of the day, under
// RollupOther once the day has MaxRollupKeys names of the kind.
func (t *Tx) rollupCount(b bucket, day []byte, kind byte, name string) error {
	k := rollupKey(day, kind, name)
	v := b.Get(k)
	if v == nil {
		// A new name of the day: it gets a key of its own while there are fewer than
		// MaxRollupKeys. The keys share day's array: k is made again after nk.
		nk := rollupKey(day, rollupDistinct, string(kind))
		var n uint32
		if nv := b.Get(nk); len(nv) == 4 {
			n = binary.BigEndian.Uint32(nv)
		}
		if n < MaxRollupKeys {
			if err := b.Put(nk, binary.BigEndian.AppendUint32(make([]byte, 0, 4), n+1)); err != nil {
				return err
			}
		} else {
			name = RollupOther
		}
		k = rollupKey(day, kind, name)
		v = b.Get(k)
	}
	var n uint32
	if len(v) == 4 {
		n = binary.BigEndian.Uint32(v)
	}
	return b.Put(k, binary.BigEndian.AppendUint32(make([]byte, 0, 4), n+1))
}

// rollupRecorded counts a recording linked to a call that was counted without one.
func (t *Tx) rollupRecorded(c *Call) error {
	if !storable(c.Start) {
		return nil
	}
	b := t.tx.Bucket(bucketRollups)
	k := rollupKey(rollupDay(c.CustomerID, dayOf(c.Start)), rollupChannel, c.Channel)
	v := b.Get(k)
	if v == nil {
		return nil // not counted: nothing to add to
	}
	var st ChannelStats
	if err := st.unmarshal(v); err != nil {
		return fmt.Errorf("rollup of %s: %w", c.CustomerID, err)
	}
	st.Recorded++
	var nv [rollupStatsLen]byte
	st.marshal(&nv)
	return b.Put(k, nv[:])
}

// unrollCall takes a completed call out of its customer's rollup of the day: rollupCall
// undone. Counts do not go below zero; a channel without calls, and a landing page or
// keyword without calls, lose their keys.
func (t *Tx) unrollCall(c *Call) error {
	if !storable(c.Start) || c.End.IsZero() {
		return nil // never counted
	}
	b := t.tx.Bucket(bucketRollups)
	day := rollupDay(c.CustomerID, dayOf(c.Start))
	k := rollupKey(day, rollupChannel, c.Channel)
	if v := b.Get(k); v != nil {
		var st ChannelStats
		if err := st.unmarshal(v); err != nil {
			return fmt.Errorf("rollup of %s: %w", c.CustomerID, err)
		}
		dec := func(n *int) { *n = max(*n-1, 0) }
		dec(&st.Calls)
		switch c.Disposition {
		case DispAnswered:
			dec(&st.Answered)
			st.TalkSeconds = max(st.TalkSeconds-c.TalkSeconds, 0)
			dec(&st.TalkHist[talkBucket(c.TalkSeconds)])
		case DispBusy:
			dec(&st.Busy)
		default:
			dec(&st.Missed)
		}
		if c.CallerPseudonym != "" {
			if t.returning(c) {
				dec(&st.Returning)
			} else {
				dec(&st.FirstTime)
			}
		}
		if c.RecordingID != "" {
			dec(&st.Recorded)
		}
		var err error
		if st.Calls == 0 {
			err = b.Delete(k)
		} else {
			var nv [rollupStatsLen]byte
			st.marshal(&nv)
			err = b.Put(k, nv[:])
		}
		if err != nil {
			return err
		}
	}
	if name := rollupName(c.LandingPage, true); name != "" {
		if err := t.rollupUncount(b, day, rollupLanding, name); err != nil {
			return err
		}
	}
	if name := rollupName(c.Keyword, false); name != "" {
		return t.rollupUncount(b, day, rollupKeyword, name)
	}
	return nil
}

// rollupUncount takes a call from a landing page's or keyword's count of the day (from
// RollupOther when the name has no key); a name whose count falls to zero loses its key and
// its place among the day's MaxRollupKeys.
func (t *Tx) rollupUncount(b bucket, day []byte, kind byte, name string) error {
	k := rollupKey(day, kind, name)
	v := b.Get(k)
	if v == nil {
		name = RollupOther
		k = rollupKey(day, kind, name)
		if v = b.Get(k); v == nil {
			return nil
		}
	}
	if len(v) == 4 && binary.BigEndian.Uint32(v) > 1 {
		return b.Put(k, binary.BigEndian.AppendUint32(make([]byte, 0, 4), binary.BigEndian.Uint32(v)-1))
	}
	if err := b.Delete(k); err != nil || name == RollupOther {
		return err
	}
	nk := rollupKey(day, rollupDistinct, string(kind))
	nv := b.Get(nk)
	if len(nv) != 4 || binary.BigEndian.Uint32(nv) <= 1 {
		return b.Delete(nk)
	}
	return b.Put(nk, binary.BigEndian.AppendUint32(make([]byte, 0, 4), binary.BigEndian.Uint32(nv)-1))
}

// Rollups lists a customer's days that overlap [from, to), oldest first; a day without
// calls is left out.
func (t *Tx) Rollups(customerID string, from, to time.Time) ([]DayStats, error) {
	if t.pg != nil {
		return t.pg.rollups(customerID, from, to)
	}
	first, end := dayOf(from), dayOf(to)
	if end.Before(to) {
		end = end.AddDate(0, 0, 1)
	}
	if customerID == "" || !first.Before(end) {
		return nil, nil
	}
	first, end = clampDay(first), clampDay(end)
	prefix := compose(customerID, "")
	hi := rollupDay(customerID, end)
	var out []DayStats
	var cur *DayStats
	var curDay []byte
	c := t.tx.Bucket(bucketRollups).Cursor()
	for k, v := c.Seek(rollupDay(customerID, first)); k != nil && bytes.Compare(k, hi) < 0; k, v = c.Next() {
		rest := k[len(prefix):]
		if len(rest) < 9 {
			return nil, fmt.Errorf("rollup key %q: malformed", k)
		}
		if cur == nil || !bytes.Equal(rest[:8], curDay) {
			curDay = rest[:8]
			out = append(out, DayStats{Day: time.Unix(int64(binary.BigEndian.Uint64(curDay)), 0).UTC(),
				Channels: map[string]*ChannelStats{}, Landing: map[string]int{}, Keywords: map[string]int{}})
			cur = &out[len(out)-1]
		}
		name := string(rest[9:])
		switch rest[8] {
		case rollupChannel:
			st := new(ChannelStats)
			if err := st.unmarshal(v); err != nil {
				return nil, fmt.Errorf("rollup key %q: %w", k, err)
			}
			cur.Channels[name] = st
		case rollupLanding, rollupKeyword:
			if len(v) != 4 {
				return nil, fmt.Errorf("rollup key %q: malformed", k)
			}
			m := cur.Landing
			if rest[8] == rollupKeyword {
				m = cur.Keywords
			}
			m[name] = int(binary.BigEndian.Uint32(v))
		}
	}
	return out, nil
}

// clampDay keeps a day within what a key holds.
func clampDay(d time.Time) time.Time {
	switch {
	case d.Year() < 1970:
		return time.Unix(0, 0).UTC()
	case d.Year() > 9999:
		return time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	return d
}

// Rollups runs Tx.Rollups in a read-only transaction.
func (db *DB) Rollups(customerID string, from, to time.Time) ([]DayStats, error) {
	var out []DayStats
	err := db.View(func(tx *Tx) (err error) { out, err = tx.Rollups(customerID, from, to); return err })
	return out, err
}

// rollupBackfillBatch is how many calls one transaction of the backfill reads.
const rollupBackfillBatch = 5000

// backfillRollups fills the rollups from the completed calls of a file written before they
// existed, in transactions of batch calls in id order, each noting the last call it read
// (keyRollupsAfter): a backfill cut short (a crash) goes on from there at the next Open. The
// file says schema 3 from the start, so that a build that does not keep rollups leaves it
// alone meanwhile. It answers how many calls it counted.
func (db *DB) backfillRollups(batch int) (int, error) {
	total := 0
	for {
		n, done, err := db.backfillRollupsChunk(batch)
		total += n
		if err != nil || done {
			return total, err
		}
	}
}

// backfillRollupsChunk counts the completed calls among the next batch after the mark, and
// at the end removes the mark.
func (db *DB) backfillRollupsChunk(batch int) (n int, done bool, err error) {
	err = db.cur.Load().b.Update(func(btx *bolt.Tx) error {
		tx := &Tx{tx: boltTx{tx: btx}}
		meta := tx.tx.Bucket(bucketMeta)
		after := meta.Get(keyRollupsAfter)
		if after == nil {
			done = true
			return nil
		}
		after = bytes.Clone(after)
		c := tx.tx.Bucket(bucketCalls).Cursor()
		k, v := c.Seek(after)
		if k != nil && len(after) > 0 && bytes.Equal(k, after) {
			k, v = c.Next()
		}
		var last []byte
		for read := 0; k != nil && read < batch; k, v = c.Next() {
			read++
			last = bytes.Clone(k)
			// What the rollups count, decoded without the rest of the record.
			var r struct {
				ID              string      `json:"id"`
				CustomerID      string      `json:"customer_id"`
				Channel         string      `json:"channel"`
				Keyword         string      `json:"keyword"`
				LandingPage     string      `json:"landing_page"`
				Start           time.Time   `json:"start"`
				End             time.Time   `json:"end"`
				Disposition     Disposition `json:"disposition"`
				TalkSeconds     float64     `json:"talk_seconds"`
				RecordingID     string      `json:"recording_id"`
				CallerPseudonym string      `json:"caller_pseudonym"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode call %q: %w", k, err)
			}
			if r.End.IsZero() {
				continue
			}
			call := Call{ID: r.ID, CustomerID: r.CustomerID, Channel: r.Channel, Keyword: r.Keyword, LandingPage: r.LandingPage,
				Start: r.Start, End: r.End, Disposition: r.Disposition, TalkSeconds: r.TalkSeconds, RecordingID: r.RecordingID,
				CallerPseudonym: r.CallerPseudonym}
			if err := tx.rollupCall(&call); err != nil {
				return err
			}
			n++
		}
		if k == nil {
			done = true
			return meta.Delete(keyRollupsAfter)
		}
		return meta.Put(keyRollupsAfter, last)
	})
	return n, done, err
}
