package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestParseSessionRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		fast bool
		want sessionRequest
	}{
		{"as the script sends it", `{"site_key":"k-0001","landing_url":"https://shop.example/p/1?utm_source=google&utm_term=kw1","referrer":"https://www.google.com/"}`,
			true, sessionRequest{SiteKey: "k-0001", LandingURL: "https://shop.example/p/1?utm_source=google&utm_term=kw1", Referrer: "https://www.google.com/"}},
		{"every field, spaced", " {\n\t\"site_key\" : \"k\", \"session_id\":\"s\",\"landing_url\":\"l\",\"referrer\":\"r\",\"utm_source\":\"a\",\"utm_medium\":\"b\"," +
			"\"utm_campaign\":\"c\",\"utm_term\":\"d\",\"utm_content\":\"e\",\"gclid\":\"f\",\"gbraid\":\"g\",\"wbraid\":\"h\"\r\n} ",
			true, sessionRequest{"k", "s", "l", "r", "a", "b", "c", "d", "e", "f", "g", "h"}},
		{"empty object", `{}`, true, sessionRequest{}},
		{"non-ASCII", `{"utm_term":"tegels é"}`, true, sessionRequest{UTMTerm: "tegels é"}},
		{"escape", `{"utm_term":"a\"b"}`, false, sessionRequest{}},
		{"unicode escape", `{"utm_term":"\u0041"}`, false, sessionRequest{}},
		{"control character", "{\"utm_term\":\"a\x01\"}", false, sessionRequest{}},
		{"invalid UTF-8", "{\"utm_term\":\"\xff\"}", false, sessionRequest{}},
		{"unknown field", `{"site_key":"k","ip":"1.2.3.4"}`, false, sessionRequest{}},
		{"field in another case", `{"Site_Key":"k"}`, false, sessionRequest{}},
		{"twice", `{"site_key":"k","site_key":"j"}`, false, sessionRequest{}},
		{"null", `{"site_key":null}`, false, sessionRequest{}},
		{"number", `{"site_key":1}`, false, sessionRequest{}},
		{"trailing data", `{"site_key":"k"}{}`, false, sessionRequest{}},
		{"trailing comma", `{"site_key":"k",}`, false, sessionRequest{}},
		{"unterminated", `{"site_key":"k"`, false, sessionRequest{}},
		{"array", `[]`, false, sessionRequest{}},
		{"empty", ``, false, sessionRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got sessionRequest
			if ok := parseSessionRequest([]byte(tt.body), &got); ok != tt.fast || got != tt.want {
				t.Fatalf("parseSessionRequest = %v %+v, want %v %+v", ok, got, tt.fast, tt.want)
			}
		})
	}
}

// FuzzParseSessionRequest: whatever the plain path reads, encoding/json reads the same.
func FuzzParseSessionRequest(f *testing.F) {
	f.Add(`{"site_key":"k-0001","landing_url":"https://shop.example/p/1?utm_source=google","referrer":""}`)
	f.Add(`{ "utm_term" : "tegels é" , "gclid":"x"}`)
	f.Add(`{"site_key":"a","site_key":"b"}`)
	f.Add(`{"site_key":"a\u0000"}`)
	f.Fuzz(func(t *testing.T, body string) {
		var fast sessionRequest
		if !parseSessionRequest([]byte(body), &fast) {
			return
		}
		var slow sessionRequest
		if err := decodeJSON([]byte(body), &slow); err != nil || slow != fast {
			t.Fatalf("%q: plain path %+v, encoding/json %+v %v", body, fast, slow, err)
		}
	})
}

// FuzzAppendSessionResponse: what the plain path writes is what encoding/json writes.
func FuzzAppendSessionResponse(f *testing.F) {
	f.Add("01KJPWD6M04Y3C0ND8FTDB9R0D", "+31850100042", "085 010 0042", "Paid search", "", "+31852087972", int64(1790000000123456789))
	f.Add("x", "<b>", "a&b", "é", "c\"d", "\u2028", int64(-62135596801))
	f.Add("", "", "", "", "spring", "", int64(253402300800))
	f.Fuzz(func(t *testing.T, id, number, formatted, channel, campaign, replace string, unixNano int64) {
		resp := sessionResponse{SessionID: id, Number: number, FormattedNumber: formatted,
			ExpiresAt: time.Unix(0, unixNano).UTC(), Channel: channel, Campaign: campaign, TouchInterval: 60}
		if replace != "" {
			resp.Replace = []string{replace, number}
		}
		for _, r := range []sessionResponse{resp, func() sessionResponse { r := resp; r.ExpiresAt = r.ExpiresAt.Local(); return r }()} {
			got, ok := appendSessionResponse(nil, &r)
			if !ok {
				continue
			}
			var want bytes.Buffer
			if err := json.NewEncoder(&want).Encode(r); err != nil {
				t.Fatalf("%+v: plain path wrote %s, encoding/json failed: %v", r, got, err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("plain path:\n%s\nencoding/json:\n%s", got, want.Bytes())
			}
		}
	})
}

func TestAppendSessionResponseFallsBack(t *testing.T) {
	plain := sessionResponse{SessionID: "s", Number: "+31850000001", FormattedNumber: "085 000 0001",
		ExpiresAt: time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC), Channel: "Direct", TouchInterval: 60}
	if _, ok := appendSessionResponse(nil, &plain); !ok {
		t.Fatal("a plain response took encoding/json")
	}
	for name, r := range map[string]sessionResponse{
		"html":      func() sessionResponse { r := plain; r.Channel = "A&B"; return r }(),
		"non-ASCII": func() sessionResponse { r := plain; r.Campaign = "zoë"; return r }(),
		"year": func() sessionResponse {
			r := plain
			r.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			return r
		}(),
		"zone": func() sessionResponse { r := plain; r.ExpiresAt = r.ExpiresAt.In(time.FixedZone("x", 3600)); return r }(),
	} {
		if _, ok := appendSessionResponse(nil, &r); ok {
			t.Errorf("%s: not left to encoding/json", name)
		}
	}
}
