package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestSessionsClientLimitThroughBinary: behind a reverse proxy (trusted at 127.0.0.1), one
// client hammering POST /v1/sessions gets a quarter of the pool (5 of 20 numbers) and then
// 429 problems with Retry-After, while the site's other visitors still get numbers; the
// refusals are counted in /metrics and no client address reaches the logs.
func TestSessionsClientLimitThroughBinary(t *testing.T) {
	s := startServer(t, testConfig{clientShare: "0.25", trustedProxies: []string{"127.0.0.1/32"}}, "--log-level", "debug")
	ctx := context.Background()
	post := func(client string) response {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"site_key": siteKey, "landing_url": apiOrigin + "/"})
		r, err := do(ctx, httpClient, "POST", "http://"+s.HTTP+"/v1/sessions", "text/plain;charset=UTF-8", body,
			http.Header{"Origin": {apiOrigin}, "X-Forwarded-For": {"6.6.6.6, " + client}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	codes := map[int]int{}
	for range 60 {
		r := post("203.0.113.45")
		codes[r.Status]++
		if r.Status == 429 {
			if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("429 with Retry-After %q", r.Header.Get("Retry-After"))
			}
			checkProblem(t, r, 429)
		}
	}
	if codes[201] != 5 || codes[429] != 55 {
		t.Fatalf("the hammering client: %v, want 5 created and 55 refused", codes)
	}
	for i := range 10 {
		if r := post("198.51.100." + strconv.Itoa(i+1)); r.Status != 201 {
			t.Fatalf("visitor %d while the hammering goes on: %d %s", i, r.Status, r.Body)
		}
	}
	m, err := do(ctx, httpClient, "GET", "http://"+s.Metrics+"/metrics", "", nil, nil)
	if err != nil || !bytes.Contains(m.Body, []byte(`trackline_http_rejected_total{reason="client_limit"} 55`)) {
		t.Errorf("/metrics lacks the 55 refusals: %v", err)
	}
	for _, addr := range []string{"203.0.113.45", "198.51.100.", "6.6.6.6"} {
		if strings.Contains(s.Logs(), addr) {
			t.Errorf("the logs hold the client address %s", addr)
		}
	}
}

// TestAMPThroughBinary fetches the AMP endpoint of the real binary as the AMP runtime does
// from the Google AMP cache: the CORS answer AMP needs, one session for one visitor across
// page views (the same CLIENT_ID), a session of its own for another.
func TestAMPThroughBinary(t *testing.T) {
	s := startServer(t, testConfig{origins: []string{"https://www.shop-e2e.example"}})
	ctx := context.Background()
	const cache = "https://www-shop--e2e-example.cdn.ampproject.org"
	fetch := func(clientID, origin string) response {
		t.Helper()
		q := url.Values{"site_key": {siteKey}, "session_id": {clientID}, "utm_source": {"newsletter"},
			"__amp_source_origin": {"https://www.shop-e2e.example"}}
		r, err := do(ctx, httpClient, "GET", "http://"+s.HTTP+"/v1/amp/number?"+q.Encode(), "", nil, http.Header{"Origin": {origin}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var first struct {
		PhoneNumber string `json:"phoneNumber"`
	}
	r := fetch("amp-e2e-visitor-one", cache)
	if r.Status != 200 || json.Unmarshal(r.Body, &first) != nil || first.PhoneNumber == "" ||
		r.Header.Get("Access-Control-Allow-Origin") != cache || r.Header.Get("Access-Control-Allow-Credentials") != "true" ||
		r.Header.Get("AMP-Access-Control-Allow-Source-Origin") != "https://www.shop-e2e.example" {
		t.Fatalf("from the AMP cache: %d %v %s", r.Status, r.Header, r.Body)
	}
	for range 3 {
		if r := fetch("amp-e2e-visitor-one", cache); r.Status != 200 || !bytes.Contains(r.Body, []byte(first.PhoneNumber)) {
			t.Fatalf("the same visitor again: %d %s", r.Status, r.Body)
		}
	}
	if r := fetch("amp-e2e-visitor-two", cache); r.Status != 200 || bytes.Contains(r.Body, []byte(first.PhoneNumber)) {
		t.Fatalf("another visitor: %d %s", r.Status, r.Body)
	}
	if r := fetch("amp-e2e-visitor-three", "https://www-other-example.cdn.ampproject.org"); r.Status != 403 {
		t.Fatalf("another site's cache origin: %d %s", r.Status, r.Body)
	}
	sess, err := do(ctx, httpClient, "GET", "http://"+s.Admin+"/v1/customers/"+customerID+"/sessions", "", nil,
		http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil || sess.Status != 200 {
		t.Fatalf("sessions: %v %d", err, sess.Status)
	}
	var list struct {
		Sessions []struct {
			Channel string `json:"channel"`
		} `json:"sessions"`
	}
	if json.Unmarshal(sess.Body, &list) != nil || len(list.Sessions) != 2 || list.Sessions[0].Channel != "Newsletter" {
		t.Fatalf("sessions after five fetches of two visitors: %s", sess.Body)
	}
}
