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
