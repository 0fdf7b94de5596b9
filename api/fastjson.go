package api

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/trackline/trackline/internal/jsonw"
)

// The session endpoints are the hot path of the public API. These read and write their
// bodies without reflection for the plain case (string values without escapes); anything
// else takes encoding/json, which gives the same result (the fuzz tests check it) and the
// error messages of every other endpoint.

// parseSessionRequest reads b into req if b is a plain session body: one object whose
// members are known fields, each at most once, with string values that need no unescaping
// and are valid UTF-8. It answers false for anything else, leaving req to encoding/json.
func parseSessionRequest(b []byte, req *sessionRequest) bool {
	var r sessionRequest
	var seen uint16
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := plainString(b, i)
			if !ok {
				return false
			}
			if j = skipSpace(b, j); j == len(b) || b[j] != ':' {
				return false
			}
			val, j, ok := plainString(b, skipSpace(b, j+1))
			if !ok || !utf8.Valid(val) {
				return false
			}
			var dst *string
			var bit uint16
			switch string(key) {
			case "site_key":
				dst, bit = &r.SiteKey, 1<<0
			case "session_id":
				dst, bit = &r.SessionID, 1<<1
			case "landing_url":
				dst, bit = &r.LandingURL, 1<<2
			case "referrer":
				dst, bit = &r.Referrer, 1<<3
			case "utm_source":
				dst, bit = &r.UTMSource, 1<<4
			case "utm_medium":
				dst, bit = &r.UTMMedium, 1<<5
			case "utm_campaign":
				dst, bit = &r.UTMCampaign, 1<<6
			case "utm_term":
				dst, bit = &r.UTMTerm, 1<<7
			case "utm_content":
				dst, bit = &r.UTMContent, 1<<8
			case "gclid":
				dst, bit = &r.Gclid, 1<<9
			case "gbraid":
				dst, bit = &r.Gbraid, 1<<10
			case "wbraid":
				dst, bit = &r.Wbraid, 1<<11
			default:
				return false
			}
			if seen&bit != 0 {
				return false
			}
			seen |= bit
			*dst = string(val)
			if i = skipSpace(b, j); i == len(b) {
				return false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return false
			}
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i) != len(b) {
		return false
	}
	*req = r
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] that has no escapes and no control characters,
// and answers its contents and the index after it.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, j, false
		}
	}
	return nil, len(b), false
}

// appendSessionResponse appends what json.NewEncoder(w).Encode(r) writes, if every string
// of r is plain (printable ASCII that encoding/json writes as it is) and the expiry a UTC
// time of years 0-9999; else it answers false.
func appendSessionResponse(dst []byte, r *sessionResponse) ([]byte, bool) {
	if y := r.ExpiresAt.Year(); y < 0 || y > 9999 || r.ExpiresAt.Location() != time.UTC {
		return dst, false
	}
	for _, s := range [...]string{r.SessionID, r.Number, r.FormattedNumber, r.Channel, r.Campaign} {
		if !jsonw.PlainASCII(s) {
			return dst, false
		}
	}
	for _, s := range r.Replace {
		if !jsonw.PlainASCII(s) {
			return dst, false
		}
	}
	dst = jsonw.AppendMember(dst, `{"session_id":`, r.SessionID)
	dst = jsonw.AppendMember(dst, `,"number":`, r.Number)
	dst = jsonw.AppendMember(dst, `,"formatted_number":`, r.FormattedNumber)
	dst = append(dst, `,"expires_at":"`...)
	dst = append(r.ExpiresAt.AppendFormat(dst, time.RFC3339Nano), '"')
	dst = jsonw.AppendMember(dst, `,"channel":`, r.Channel)
	if r.Campaign != "" {
		dst = jsonw.AppendMember(dst, `,"campaign":`, r.Campaign)
	}
	dst = append(dst, `,"replace":`...)
	if r.Replace == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, s := range r.Replace {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(append(append(dst, '"'), s...), '"')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"touch_interval":`...)
	dst = strconv.AppendInt(dst, int64(r.TouchInterval), 10)
	return append(dst, "}\n"...), true
}
