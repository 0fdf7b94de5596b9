package store

import (
	"encoding/json"
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
