package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzMarshalSession: the plain path writes what json.Marshal writes.
func FuzzMarshalSession(f *testing.F) {
	f.Add("01KJPWD6M04Y3C0ND8FTDB9R0D", "acme", "Paid search", "https://shop.example/p/1", "www.google.com", "google", "cpc", "", "kw1", "", "Cj0KCQ", int64(1790000000123456789))
	f.Add("x", "a&b", "<", "é", "\u2028", "\"", "\\", "\x00", "", "", "", int64(-62135596801))
	f.Fuzz(func(t *testing.T, id, cust, channel, landing, referrer, source, medium, campaign, term, content, gclid string, unixNano int64) {
		s := Session{ID: id, CustomerID: cust, Created: time.Unix(0, unixNano).UTC(), Channel: channel, LandingPage: landing,
			ReferrerHost: referrer, UTMSource: source, UTMMedium: medium, UTMCampaign: campaign, UTMTerm: term,
			UTMContent: content, Gclid: gclid, Gbraid: term, Wbraid: content, AdConsent: Consent(medium)}
		for _, s := range []Session{s, func() Session { l := s; l.Created = l.Created.Local(); return l }()} {
			got, gerr := marshalSession(&s)
			want, werr := json.Marshal(&s)
			if !bytes.Equal(got, want) || (gerr == nil) != (werr == nil) {
				t.Fatalf("plain path %s %v\njson.Marshal %s %v", got, gerr, want, werr)
			}
		}
	})
}

// FuzzMarshalCallPayload: the plain path writes what json.Marshal writes.
func FuzzMarshalCallPayload(f *testing.F) {
	f.Add("01KJPWD6M04Y3C0ND8FTDB9R0D", "acme", "+31850000001", "+31612345678", "sip:+31201234567@pbx.example", "Paid search", "https://shop.example/p/1", "answered", "lead", "vip", int64(1790000000123456789), int64(7_000_000_000), 91.658, 0.0)
	f.Add("x", "a&b", "<", "é", "\u2028", "\"", "\\", "\x00", "", "", int64(-62135596801), int64(0), 1e-7, 1e21)
	f.Add("", "", "", "", "", "", "", "", "", "", int64(0), int64(1), 175.0, -3.5)
	f.Fuzz(func(t *testing.T, id, cust, dialled, caller, line, channel, landing, disp, lead, tag string, startNano, d int64, talk, value float64) {
		start := time.Unix(0, startNano).UTC()
		c := Call{ID: id, CustomerID: cust, Dialled: dialled, Caller: caller, CallerLastDigits: caller, BusinessLine: line,
			AgentID: tag, SessionID: id, Channel: channel, Keyword: tag, LandingPage: landing, ReferrerHost: channel, Gclid: lead,
			Start: start, Ringing: start.Add(time.Duration(d)), Answer: start.Add(2 * time.Duration(d)), End: start.Add(3 * time.Duration(d)),
			Disposition: Disposition(disp), HangupBy: Party(lead), EndReason: disp, TalkSeconds: talk, RecordingID: id,
			LeadStatus: LeadStatus(lead), Value: value, Note: landing, Updated: start.Add(time.Duration(d) / 2)}
		if tag != "" {
			c.Tags = []string{tag, lead}
		}
		other := c
		other.Ringing, other.Answer, other.Updated, other.Tags = time.Time{}, time.Time{}, time.Time{}, nil
		for _, c := range []Call{c, other} {
			for _, pseudo := range []bool{false, true} {
				p := newCallPayload(&c, pseudo)
				got, gerr := marshalCallPayload(p)
				want, werr := json.Marshal(p)
				if !bytes.Equal(got, want) || (gerr == nil) != (werr == nil) {
					t.Fatalf("plain path %s %v\njson.Marshal %s %v", got, gerr, want, werr)
				}
			}
		}
	})
}
