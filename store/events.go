package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Events: what PutCall, AnnotateCall and PoolExhausted write to the outbox (outbox.go), in
// their own transaction, for a customer with an enabled endpoint that wants the type. A
// call's events, in the order of its life:
//
//	call.ringing     the record is made (the switch accepted the call and rings the line)
//	call.answered    Answer is set (it was not)
//	call.completed   End is set on a call in progress (or a new record has one)
//	recording.ready  a completed call has a RecordingID (it had none, or just completed)
//	call.updated     AnnotateCall changed the customer's annotations
//
// One write may make several (the call layer writes a call when it starts and when it ends:
// the end writes answered, completed and recording.ready). Every payload is versioned JSON
// (docs/webhooks.md): {"type", "version": 1, "id" (the message id, the webhook-id),
// "timestamp" (when the event happened), "data"}. The caller's number is in a call's data
// only when the customer does not have pseudonymous callers.

// PayloadVersion is the version of the payloads' layout.
const PayloadVersion = 1

// PoolExhaustedEvery is the least time between two number.pool_exhausted events of one
// customer: an exhausted pool is exhausted for every visitor at once.
const PoolExhaustedEvery = 10 * time.Minute

// envelope is every payload.
type envelope struct {
	Type      EventType `json:"type"`
	Version   int       `json:"version"`
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// envelopeJSON makes a payload of its data's JSON: the bytes json.Marshal makes of the
// envelope (the types and ids need no escaping), so that the outbox keeps the data alone
// and the envelope is the same however often it is made.
func envelopeJSON(typ EventType, id string, at time.Time, data []byte) []byte {
	ts, err := at.UTC().MarshalJSON()
	if err != nil { // a year outside 0-9999: no call or event has one
		ts = []byte(`"0001-01-01T00:00:00Z"`)
	}
	b := make([]byte, 0, 56+len(typ)+len(id)+len(ts)+len(data))
	b = append(append(append(b, `{"type":"`...), typ...), `","version":`...)
	b = strconv.AppendInt(b, PayloadVersion, 10)
	b = append(append(append(b, `,"id":"`...), id...), `","timestamp":`...)
	b = append(append(append(b, ts...), `,"data":`...), data...)
	return append(b, '}')
}

// callPayload is a call as its events show it: the record without the switch's internals
// (SIP Call-IDs, media statistics, the caller's pseudonym).
type callPayload struct {
	ID               string      `json:"id"`
	CustomerID       string      `json:"customer_id"`
	Dialled          string      `json:"dialled"`
	Caller           string      `json:"caller,omitempty"`
	CallerLastDigits string      `json:"caller_last_digits,omitempty"`
	BusinessLine     string      `json:"business_line,omitempty"`
	AgentID          string      `json:"agent_id,omitempty"`
	SessionID        string      `json:"session_id,omitempty"`
	Channel          string      `json:"channel,omitempty"`
	Keyword          string      `json:"keyword,omitempty"`
	LandingPage      string      `json:"landing_page,omitempty"`
	ReferrerHost     string      `json:"referrer_host,omitempty"`
	Gclid            string      `json:"gclid,omitempty"`
	Start            time.Time   `json:"start"`
	Ringing          time.Time   `json:"ringing,omitzero"`
	Answer           time.Time   `json:"answer,omitzero"`
	End              time.Time   `json:"end,omitzero"`
	Disposition      Disposition `json:"disposition,omitempty"`
	HangupBy         Party       `json:"hangup_by,omitempty"`
	EndReason        string      `json:"end_reason,omitempty"`
	TalkSeconds      float64     `json:"talk_seconds,omitempty"`
	RecordingID      string      `json:"recording_id,omitempty"`
	LeadStatus       LeadStatus  `json:"lead_status,omitempty"`
	Tags             []string    `json:"tags,omitempty"`
	Value            float64     `json:"value,omitempty"`
	Note             string      `json:"note,omitempty"`
	Updated          time.Time   `json:"updated,omitzero"`
}

func newCallPayload(c *Call, pseudonymous bool) *callPayload {
	p := &callPayload{ID: c.ID, CustomerID: c.CustomerID, Dialled: c.Dialled, CallerLastDigits: c.CallerLastDigits,
		BusinessLine: c.BusinessLine, AgentID: c.AgentID, SessionID: c.SessionID, Channel: c.Channel, Keyword: c.Keyword,
		LandingPage: c.LandingPage, ReferrerHost: c.ReferrerHost, Gclid: c.Gclid, Start: c.Start.UTC(), Ringing: c.Ringing.UTC(),
		Answer: c.Answer.UTC(), End: c.End.UTC(), Disposition: c.Disposition, HangupBy: c.HangupBy, EndReason: c.EndReason,
		TalkSeconds: c.TalkSeconds, RecordingID: c.RecordingID, LeadStatus: c.LeadStatus, Tags: c.Tags, Value: c.Value,
		Note: c.Note, Updated: c.Updated.UTC()}
	if !pseudonymous {
		p.Caller = c.Caller
	}
	return p
}

// recordingPayload is recording.ready's data.
type recordingPayload struct {
	CallID          string  `json:"call_id"`
	RecordingID     string  `json:"recording_id"`
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
	Bytes           int64   `json:"bytes,omitempty"`
	SHA256          string  `json:"sha256,omitempty"`
	// Path is where the admin API serves the recording (GET, with a token of the customer).
	Path string `json:"path"`
}

// exhaustedPayload is number.pool_exhausted's data.
type exhaustedPayload struct {
	CustomerID string `json:"customer_id"`
	// Number is the pool number a new lease took from a live (or just ended) one.
	Number string `json:"number"`
	// Exhaustions counts every lease given so while the customer existed.
	Exhaustions uint64 `json:"exhaustions_total"`
}

// callEventsMask is the bits of the events PutCall writes.
var callEventsMask = EventCallRinging.bit() | EventCallAnswered.bit() | EventCallCompleted.bit() | EventRecordingReady.bit()

// pseudonymous tells whether the customer has pseudonymous callers (a missing customer is
// taken to: its calls' callers are then left out). The record is encoding/json's, which
// writes the member only when it is true (omitempty) and whose strings hold no unescaped
// quote: the member is looked for in the bytes, without decoding the record, which every
// write of a subscribed customer's call would do.
func (t *Tx) pseudonymous(customerID string) (bool, error) {
	raw := t.tx.Bucket(bucketCustomers).Get([]byte(customerID))
	if raw == nil {
		return true, nil
	}
	const member = `"pseudonymous_callers":`
	i := bytes.Index(raw, []byte(member))
	switch {
	case i < 0:
		return false, nil
	case bytes.HasPrefix(raw[i+len(member):], []byte("true")):
		return true, nil
	case bytes.HasPrefix(raw[i+len(member):], []byte("false")):
		return false, nil
	}
	var c struct {
		PseudonymousCallers bool `json:"pseudonymous_callers"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return false, err
	}
	return c.PseudonymousCallers, nil
}

// callTransition is what a write of a call changed: the events it makes.
type callTransition struct {
	isNew, open, hadAnswer, hadRecording bool
}

// callEvents writes the events of a write of c (PutCall); subKey is customer 0x00.
func (t *Tx) callEvents(subKey []byte, c *Call, tr callTransition) error {
	subs := t.subscribers(subKey, callEventsMask)
	if subs == nil {
		return nil
	}
	var evs [4]EventType
	n := 0
	if tr.isNew {
		evs[n], n = EventCallRinging, n+1
	}
	if !c.Answer.IsZero() && (tr.isNew || !tr.hadAnswer) {
		evs[n], n = EventCallAnswered, n+1
	}
	completed := !c.End.IsZero() && (tr.isNew || tr.open)
	if completed {
		evs[n], n = EventCallCompleted, n+1
	}
	if !c.End.IsZero() && c.RecordingID != "" && (completed || !tr.hadRecording) {
		evs[n], n = EventRecordingReady, n+1
	}
	wanted := binary.BigEndian.Uint64(subs[1:])
	var pseudo, read bool
	var callData []byte // the call's data, written once: the others of this write refer to it
	var callMsg string
	for _, typ := range evs[:n] {
		if wanted&typ.bit() == 0 {
			continue
		}
		if !read {
			var err error
			if pseudo, err = t.pseudonymous(c.CustomerID); err != nil {
				return err
			}
			read = true
		}
		var data any
		var at time.Time
		switch typ {
		case EventCallRinging:
			at = c.Start
		case EventCallAnswered:
			at = c.Answer
		case EventCallCompleted:
			at = c.End
		case EventRecordingReady:
			r := recordingPayload{CallID: c.ID, RecordingID: c.RecordingID, Path: "/v1/recordings/" + c.RecordingID}
			switch rec, err := t.Recording(c.RecordingID); {
			case err == nil:
				r.DurationSeconds, r.Bytes, r.SHA256, at = rec.Duration.Seconds(), rec.Size, rec.SHA256, rec.Created
			case !errors.Is(err, ErrNotFound):
				return err
			}
			data = r
			if at.IsZero() {
				at = c.End
			}
		}
		if data != nil {
			raw, err := json.Marshal(data)
			if err != nil {
				return fmt.Errorf("encode %s event: %w", typ, err)
			}
			if _, err := t.addMessage(c.CustomerID, typ, c.ID, at, raw, ""); err != nil {
				return err
			}
			continue
		}
		if callData == nil {
			raw, err := marshalCallPayload(newCallPayload(c, pseudo))
			if err != nil {
				return fmt.Errorf("encode %s event: %w", typ, err)
			}
			id, err := t.addMessage(c.CustomerID, typ, c.ID, at, raw, "")
			if err != nil {
				return err
			}
			callData, callMsg = raw, id
			continue
		}
		if _, err := t.addMessage(c.CustomerID, typ, c.ID, at, nil, callMsg); err != nil {
			return err
		}
	}
	return nil
}

// callUpdated writes call.updated for c, whose annotations AnnotateCall changed.
func (t *Tx) callUpdated(c *Call) error {
	subs := t.subscribers(compose(c.CustomerID, ""), EventCallUpdated.bit())
	if subs == nil {
		return nil
	}
	pseudo, err := t.pseudonymous(c.CustomerID)
	if err != nil {
		return err
	}
	at := c.Updated
	if at.IsZero() {
		at = t.now()
	}
	raw, err := marshalCallPayload(newCallPayload(c, pseudo))
	if err != nil {
		return fmt.Errorf("encode %s event: %w", EventCallUpdated, err)
	}
	_, err = t.addMessage(c.CustomerID, EventCallUpdated, c.ID, at, raw, "")
	return err
}

// PoolExhausted writes number.pool_exhausted for a lease given at `at` while no pool number
// of the customer was free (it took number): at most one per PoolExhaustedEvery. Package
// pool calls it in the transaction that counts the exhaustion (AddStats), after it.
func (t *Tx) PoolExhausted(customerID, number string, at time.Time) error {
	if t.pg != nil {
		return t.pgPoolExhausted(customerID, number, at)
	}
	key := compose(customerID, "")
	subs := t.subscribers(key, EventPoolExhausted.bit())
	if subs == nil {
		return nil
	}
	if last := int64(binary.BigEndian.Uint64(subs[9:])); last != 0 {
		if d := at.Sub(time.Unix(0, last)); d >= 0 && d < PoolExhaustedEvery {
			return nil
		}
	}
	subs = bytes.Clone(subs)
	binary.BigEndian.PutUint64(subs[9:], uint64(at.UnixNano()))
	if err := t.tx.Bucket(bucketSubscriptions).Put(key, subs); err != nil {
		return err
	}
	st, err := t.Stats(customerID)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(exhaustedPayload{CustomerID: customerID, Number: number, Exhaustions: st.Exhaustions})
	if err != nil {
		return fmt.Errorf("encode %s event: %w", EventPoolExhausted, err)
	}
	_, err = t.addMessage(customerID, EventPoolExhausted, "", at, raw, "")
	return err
}
