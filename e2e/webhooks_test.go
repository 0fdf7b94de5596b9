package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trackline/trackline/g711"
)

// The webhook tests run the binary with webhooks.allow_cidrs set to loopback and a receiver
// in the test process on 127.0.0.1: real calls through sipp produce the events, which the
// receiver verifies as the Standard Webhooks specification says.

// startWebhookServer starts the binary as startServer does, with loopback allowed for
// webhooks.
func startWebhookServer(t *testing.T, c testConfig) *server {
	t.Helper()
	path := writeConfig(t, c)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, "webhooks:\n  allow_cidrs: [\"127.0.0.0/8\"]\n"...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerOn(t, path, t.TempDir())
	return s
}

// verifyWebhook checks a delivery as the Standard Webhooks specification tells a receiver
// to: the secret's bytes are the base64 after "whsec_"; the signed content is
// "<webhook-id>.<webhook-timestamp>.<body>"; webhook-signature holds space-delimited
// "v1,<base64 HMAC-SHA256>" entries, one of which must match; the timestamp must be within
// five minutes of now.
func verifyWebhook(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return fmt.Errorf("webhook-id %q, webhook-timestamp %q", id, ts)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %v off", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(h.Get("webhook-signature")) {
		if v, sig, ok := strings.Cut(s, ","); ok && v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no signature in %q matches", h.Get("webhook-signature"))
}

// hookEvent is a delivery the receiver got.
type hookEvent struct {
	ID       string // webhook-id
	Type     string
	Body     []byte
	Verified error
	Data     struct {
		ID          string  `json:"id"`
		Caller      string  `json:"caller"`
		Channel     string  `json:"channel"`
		Keyword     string  `json:"keyword"`
		Gclid       string  `json:"gclid"`
		Disposition string  `json:"disposition"`
		TalkSeconds float64 `json:"talk_seconds"`
		Note        string  `json:"note"`
		CallID      string  `json:"call_id"`
		RecordingID string  `json:"recording_id"`
	}
}

// hookReceiver is a webhook endpoint on loopback; delay slows its answers.
type hookReceiver struct {
	*httptest.Server
	secret atomic.Value // string, set once the endpoint is made
	delay  time.Duration
	mu     sync.Mutex
	events []hookEvent
}

func newHookReceiver(t *testing.T, delay time.Duration) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{delay: delay}
	rc.secret.Store("")
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		ev := hookEvent{ID: r.Header.Get("webhook-id"), Body: body, Verified: verifyWebhook(rc.secret.Load().(string), r.Header, body)}
		var p struct {
			Type string          `json:"type"`
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.ID != ev.ID {
			ev.Verified = errors.Join(ev.Verified, fmt.Errorf("payload %s under webhook-id %s", body, ev.ID))
		}
		ev.Type = p.Type
		json.Unmarshal(p.Data, &ev.Data)
		time.Sleep(rc.delay)
		rc.mu.Lock()
		rc.events = append(rc.events, ev)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *hookReceiver) got() []hookEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.events)
}

// adminDo sends a request to the admin API with the operator token.
func (s *server) adminDo(t *testing.T, method, path, body string) response {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	resp, err := do(context.Background(), httpClient, method, "http://"+s.Admin+path, ct, []byte(body),
		http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// addWebhook makes an endpoint of the customer at the receiver and hands it its secret.
func (s *server) addWebhook(t *testing.T, rc *hookReceiver, types ...string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"url": rc.URL + "/hook", "event_types": types, "description": "e2e receiver"})
	resp := s.adminDo(t, "POST", "/v1/customers/"+customerID+"/webhooks", string(b))
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if resp.Status != http.StatusCreated || json.Unmarshal(resp.Body, &ep) != nil || !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("POST webhooks: %d %s", resp.Status, resp.Body)
	}
	rc.secret.Store(ep.Secret)
	return ep.ID
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A recorded call through sipp: call.ringing, call.answered, call.completed (with the
// attribution) and recording.ready reach the receiver in the order of the call's life,
// signed; the deliveries and their attempts are in the admin API; a replay sends a message
// again with its webhook-id; bad endpoints are refused naming the field.
func TestWebhookCallEvents(t *testing.T) {
	audio := g711.Encode(nil, testSignal(2*8000, 5), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true,
		files: map[string][]byte{"callee.pcap": pcapOf(audio, 0xCA11EE)}})
	s := startWebhookServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)}, record: true})
	rc := newHookReceiver(t, 0)
	wid := s.addWebhook(t, rc, "call.ringing", "call.answered", "call.completed", "recording.ready", "call.updated")

	// Bad endpoints: 400 problems that name the field.
	for _, tt := range []struct{ body, field string }{
		{`{"url":"http://crm.example/hook","event_types":["call.completed"]}`, "url"},
		{`{"url":"https://10.1.2.3/hook","event_types":["call.completed"]}`, "url"},
		{`{"url":"https://169.254.169.254/latest","event_types":["call.completed"]}`, "url"},
		{`{"url":"https://crm.example/hook","event_types":["call.exploded"]}`, "event_types"},
		{`{"url":"https://crm.example/hook"}`, "event_types"},
		{`{"url":"https://crm.example/hook","event_types":["call.completed"],"secret":"whsec_dG9vc2hvcnQ="}`, "secret"},
		{`{"url":"https://crm.example/hook","event_types":["call.completed"],"secret":"sk_live_abc"}`, "secret"},
	} {
		p := checkProblem(t, s.adminDo(t, "POST", "/v1/customers/"+customerID+"/webhooks", tt.body), http.StatusBadRequest)
		if p.Field != tt.field {
			t.Errorf("POST %s: problem names %q, want %q (%s)", tt.body, p.Field, tt.field, p.Detail)
		}
	}

	sess := attributedSession(t, s)
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: sess.Number, remote: s.SIP, pauseMS: 2000, media: true,
		files: map[string][]byte{"caller.pcap": pcapOf(audio, 0xCA11E4)}})
	trunk.expectSuccess()
	line.expectSuccess()
	call := finalCall(t, s, sess.Number)
	if call.RecordingID == "" {
		t.Fatalf("the call was not recorded: %+v", call)
	}
	waitUntil(t, 15*time.Second, "four events", func() bool { return len(rc.got()) >= 4 })
	evs := rc.got()
	var types []string
	for _, ev := range evs {
		if ev.Verified != nil {
			t.Errorf("%s %s: %v", ev.Type, ev.ID, ev.Verified)
		}
		types = append(types, ev.Type)
	}
	if want := []string{"call.ringing", "call.answered", "call.completed", "recording.ready"}; !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	done := evs[2].Data
	if done.ID != call.ID || done.Caller != callerNumber || done.Channel != "Newsletter" || done.Keyword != "loodgieter" ||
		done.Gclid != "e2e-gclid-0001" || done.Disposition != "answered" || done.TalkSeconds < 1 {
		t.Errorf("call.completed %s", evs[2].Body)
	}
	if evs[0].Data.ID != call.ID || evs[1].Data.ID != call.ID || evs[3].Data.CallID != call.ID || evs[3].Data.RecordingID != call.RecordingID {
		t.Errorf("events of other calls: %s %s %s", evs[0].Body, evs[1].Body, evs[3].Body)
	}

	// An annotation: call.updated.
	if r := s.adminDo(t, "PATCH", "/v1/calls/"+call.ID, `{"note":"called back"}`); r.Status != 200 {
		t.Fatalf("PATCH call: %d %s", r.Status, r.Body)
	}
	waitUntil(t, 10*time.Second, "call.updated", func() bool { return len(rc.got()) == 5 })
	if ev := rc.got()[4]; ev.Type != "call.updated" || ev.Data.Note != "called back" || ev.Verified != nil {
		t.Errorf("call.updated %s (%v)", ev.Body, ev.Verified)
	}

	// The deliveries with their attempts, newest first.
	var page struct {
		Deliveries []struct {
			MessageID string `json:"message_id"`
			Type      string `json:"type"`
			State     string `json:"state"`
			Attempts  []struct {
				Status int `json:"status"`
			} `json:"attempts"`
		} `json:"deliveries"`
	}
	waitUntil(t, 5*time.Second, "every delivery recorded", func() bool {
		s.adminGet(t, "/v1/customers/"+customerID+"/webhooks/"+wid+"/deliveries", &page)
		return len(page.Deliveries) == 5 && page.Deliveries[0].State == "delivered"
	})
	all := rc.got()
	for i, d := range page.Deliveries {
		if want := all[4-i]; d.MessageID != want.ID || d.Type != want.Type || d.State != "delivered" || len(d.Attempts) != 1 || d.Attempts[0].Status != 204 {
			t.Errorf("delivery %d: %+v, want %s %s delivered in one attempt", i, d, want.Type, want.ID)
		}
	}

	// A replay sends the same message again.
	if r := s.adminDo(t, "POST", "/v1/customers/"+customerID+"/webhooks/"+wid+"/replay", `{"message_id":"`+evs[2].ID+`"}`); r.Status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	waitUntil(t, 10*time.Second, "the replay", func() bool { return len(rc.got()) == 6 })
	if again := rc.got()[5]; again.ID != evs[2].ID || !bytes.Equal(again.Body, evs[2].Body) || again.Verified != nil {
		t.Errorf("replay: %s %s, want %s %s", again.ID, again.Body, evs[2].ID, evs[2].Body)
	}
	if got := s.metric(t, `trackline_webhook_attempts_total{outcome="delivered"}`); got != 6 {
		t.Errorf("delivered attempts %v, want 6", got)
	}
	if got := s.metric(t, "trackline_webhook_queue_depth"); got != 0 {
		t.Errorf("queue depth %v after everything was delivered", got)
	}
}

// kill -9 during a burst of events: every event the switch acknowledged (a PATCH of a call
// answered 200 writes call.updated in its transaction) is delivered after the restart, at
// least once, signed, with one body per webhook-id.
func TestWebhookBurstSurvivesKill(t *testing.T) {
	const burst, killAt, writers = 10_000, 7_000, 8
	line := startSipp(t, "line", sippSpec{scenario: "uas-answer.xml"})
	s := startWebhookServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)}, flyerNumbers: []string{flyerNumber}})
	// A slow receiver: the backlog grows while the burst is written.
	rc := newHookReceiver(t, 2*time.Millisecond)
	s.addWebhook(t, rc, "call.updated")
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-answer.xml", service: flyerNumber, remote: s.SIP, pauseMS: 200})
	trunk.expectSuccess()
	line.expectSuccess()
	call := finalCall(t, s, flyerNumber)

	var next, acked atomic.Int64
	var mu sync.Mutex
	ackedNotes := map[string]bool{}
	killed := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	admin := "http://" + s.Admin
	client := &http.Client{Timeout: 10 * time.Second}
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > burst {
					return
				}
				note := fmt.Sprintf("burst-%05d", i)
				resp, err := do(context.Background(), client, "PATCH", admin+"/v1/calls/"+url.PathEscape(call.ID), "application/json",
					[]byte(`{"note":"`+note+`"}`), http.Header{"Authorization": {"Bearer " + adminToken}})
				if err != nil {
					return // the switch is gone
				}
				if resp.Status != http.StatusOK {
					t.Errorf("PATCH %s: %d %s", note, resp.Status, resp.Body)
					return
				}
				mu.Lock()
				ackedNotes[note] = true
				mu.Unlock()
				if acked.Add(1) == killAt {
					once.Do(func() { close(killed) })
				}
			}
		})
	}
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d of %d PATCHes answered within 60 s", acked.Load(), killAt)
	}
	before := len(rc.got())
	s.Kill()
	wg.Wait()
	n := int(acked.Load())
	t.Logf("killed with %d events acknowledged, %d delivered", n, before)
	if before >= n {
		t.Fatalf("every event was delivered before the kill: no backlog to test")
	}
	s.Restart()

	missing := func() []string {
		seen := map[string]bool{}
		for _, ev := range rc.got() {
			seen[ev.Data.Note] = true
		}
		var out []string
		mu.Lock()
		defer mu.Unlock()
		for note := range ackedNotes {
			if !seen[note] {
				out = append(out, note)
			}
		}
		return out
	}
	deadline := time.Now().Add(120 * time.Second)
	for m := missing(); len(m) > 0; m = missing() {
		if time.Now().After(deadline) {
			slices.Sort(m)
			t.Fatalf("%d acknowledged events never delivered, e.g. %v", len(m), m[:min(len(m), 5)])
		}
		time.Sleep(100 * time.Millisecond)
	}
	bodies := map[string][]byte{}
	dups := 0
	for _, ev := range rc.got() {
		if ev.Verified != nil {
			t.Fatalf("event %s: %v", ev.ID, ev.Verified)
		}
		if prev, ok := bodies[ev.ID]; ok {
			dups++
			if !bytes.Equal(prev, ev.Body) {
				t.Fatalf("webhook-id %s delivered with two bodies", ev.ID)
			}
		}
		bodies[ev.ID] = ev.Body
	}
	t.Logf("%d deliveries of %d messages (%d again after the restart) for %d acknowledged events", len(rc.got()), len(bodies), dups, n)
}
