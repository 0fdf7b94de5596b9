package store

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/trackline/trackline/internal/jsonw"
)

// marshalSession is json.Marshal(s), written without reflection when every string of s is
// plain (printable ASCII that encoding/json writes as it is) and Created is a UTC time of
// years 0-9999: a session is encoded for every new visitor. The fuzz test checks that both
// ways give the same bytes.
func marshalSession(s *Session) ([]byte, error) {
	fields := [...]string{s.ID, s.CustomerID, s.Channel, s.LandingPage, s.ReferrerHost, s.UTMSource, s.UTMMedium,
		s.UTMCampaign, s.UTMTerm, s.UTMContent, s.Gclid, s.Gbraid, s.Wbraid, string(s.AdConsent)}
	n := 200
	for _, f := range fields {
		if !jsonw.PlainASCII(f) {
			return json.Marshal(s)
		}
		n += len(f)
	}
	if y := s.Created.Year(); y < 0 || y > 9999 || s.Created.Location() != time.UTC {
		return json.Marshal(s)
	}
	b := make([]byte, 0, n)
	b = jsonw.AppendMember(b, `{"id":`, s.ID)
	b = jsonw.AppendMember(b, `,"customer_id":`, s.CustomerID)
	b = append(s.Created.AppendFormat(append(b, `,"created":"`...), time.RFC3339Nano), '"')
	b = jsonw.AppendMember(b, `,"channel":`, s.Channel)
	for _, f := range [...]struct{ name, v string }{
		{`,"landing_page":`, s.LandingPage}, {`,"referrer_host":`, s.ReferrerHost},
		{`,"utm_source":`, s.UTMSource}, {`,"utm_medium":`, s.UTMMedium}, {`,"utm_campaign":`, s.UTMCampaign},
		{`,"utm_term":`, s.UTMTerm}, {`,"utm_content":`, s.UTMContent},
		{`,"gclid":`, s.Gclid}, {`,"gbraid":`, s.Gbraid}, {`,"wbraid":`, s.Wbraid},
		{`,"ad_consent":`, string(s.AdConsent)},
	} {
		if f.v != "" {
			b = jsonw.AppendMember(b, f.name, f.v)
		}
	}
	return append(b, '}'), nil
}

// marshalCallPayload is json.Marshal(p), written without reflection when every string of p
// is plain (as marshalSession's), its times are UTC times of years 0-9999 and its numbers
// are written by encoding/json without an exponent: a call's event data is encoded in the
// call's write, in the committer. FuzzMarshalCallPayload checks that both ways give the
// same bytes.
func marshalCallPayload(p *callPayload) ([]byte, error) {
	strs := [...]struct{ name, v string }{
		{`{"id":`, p.ID}, {`,"customer_id":`, p.CustomerID}, {`,"dialled":`, p.Dialled},
		{`,"caller":`, p.Caller}, {`,"caller_last_digits":`, p.CallerLastDigits}, {`,"business_line":`, p.BusinessLine},
		{`,"agent_id":`, p.AgentID}, {`,"session_id":`, p.SessionID}, {`,"channel":`, p.Channel},
		{`,"keyword":`, p.Keyword}, {`,"landing_page":`, p.LandingPage}, {`,"referrer_host":`, p.ReferrerHost},
		{`,"gclid":`, p.Gclid},
	}
	ends := [...]struct{ name, v string }{
		{`,"disposition":`, string(p.Disposition)}, {`,"hangup_by":`, string(p.HangupBy)}, {`,"end_reason":`, p.EndReason},
	}
	n := 400 + len(p.Note)
	for _, s := range strs {
		n += len(s.v)
		if !jsonw.PlainASCII(s.v) {
			return json.Marshal(p)
		}
	}
	for _, s := range ends {
		if !jsonw.PlainASCII(s.v) {
			return json.Marshal(p)
		}
	}
	for _, s := range append(p.Tags, p.RecordingID, string(p.LeadStatus), p.Note) {
		n += len(s) + 3
		if !jsonw.PlainASCII(s) {
			return json.Marshal(p)
		}
	}
	for _, t := range [...]time.Time{p.Start, p.Ringing, p.Answer, p.End, p.Updated} {
		if y := t.Year(); !t.IsZero() && (y < 0 || y > 9999 || t.Location() != time.UTC) {
			return json.Marshal(p)
		}
	}
	for _, f := range [...]float64{p.TalkSeconds, p.Value} {
		if a := math.Abs(f); f != 0 && !(a >= 1e-6 && a < 1e21) { // NaN, Inf and exponents too
			return json.Marshal(p)
		}
	}
	b := make([]byte, 0, n)
	for i, s := range strs {
		if i < 3 || s.v != "" {
			b = jsonw.AppendMember(b, s.name, s.v)
		}
	}
	b = append(p.Start.AppendFormat(append(b, `,"start":"`...), time.RFC3339Nano), '"')
	for _, t := range [...]struct {
		name string
		v    time.Time
	}{{`,"ringing":"`, p.Ringing}, {`,"answer":"`, p.Answer}, {`,"end":"`, p.End}} {
		if !t.v.IsZero() {
			b = append(t.v.AppendFormat(append(b, t.name...), time.RFC3339Nano), '"')
		}
	}
	for _, s := range ends {
		if s.v != "" {
			b = jsonw.AppendMember(b, s.name, s.v)
		}
	}
	if p.TalkSeconds != 0 {
		b = strconv.AppendFloat(append(b, `,"talk_seconds":`...), p.TalkSeconds, 'f', -1, 64)
	}
	if p.RecordingID != "" {
		b = jsonw.AppendMember(b, `,"recording_id":`, p.RecordingID)
	}
	if p.LeadStatus != "" {
		b = jsonw.AppendMember(b, `,"lead_status":`, string(p.LeadStatus))
	}
	if len(p.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		for i, tag := range p.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), tag...), '"')
		}
		b = append(b, ']')
	}
	if p.Value != 0 {
		b = strconv.AppendFloat(append(b, `,"value":`...), p.Value, 'f', -1, 64)
	}
	if p.Note != "" {
		b = jsonw.AppendMember(b, `,"note":`, p.Note)
	}
	if !p.Updated.IsZero() {
		b = append(p.Updated.AppendFormat(append(b, `,"updated":"`...), time.RFC3339Nano), '"')
	}
	return append(b, '}'), nil
}
