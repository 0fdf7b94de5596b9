package sip

import (
	"context"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// options pings the switch from the trunk, as a dispatcher does, and returns the answer.
func (e *env) options(t *testing.T) *sipmsg.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	uri := sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.sw.Addr().Port())}
	res, err := e.trunk.cli.Do(ctx, sipmsg.NewRequest(sipmsg.OPTIONS, uri))
	if err != nil {
		t.Fatalf("OPTIONS: %v", err)
	}
	return res
}

// An operator's drain: pings get 503 with Retry-After, new calls 503, the call in progress
// goes on and ends normally; lifted, the switch answers 200 and takes calls again.
func TestOperatorDrainRefusesPingsAndNewCalls(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, drain: 45 * time.Second})
	if res := e.options(t); res.StatusCode != 200 || res.GetHeader("Retry-After") != nil {
		t.Fatalf("ping before the drain: %v", res)
	}
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}

	if !e.sw.SetDraining(true) || !e.sw.Draining() || e.sw.Listening() {
		t.Fatalf("SetDraining(true): draining %v, listening %v", e.sw.Draining(), e.sw.Listening())
	}
	res := e.options(t)
	if res.StatusCode != 503 {
		t.Fatalf("ping while draining: %d, want 503", res.StatusCode)
	}
	if h := res.GetHeader("Retry-After"); h == nil || h.Value() != "45" {
		t.Fatalf("ping while draining: Retry-After %v, want 45", h)
	}
	if _, err := e.call("+31850000101"); statusOf(err) != 503 {
		t.Fatalf("new call while draining: %d (%v), want 503", statusOf(err), err)
	}
	// The call taken before the drain is still up and ends as usual.
	select {
	case <-d.Context().Done():
		t.Fatal("the call in progress ended when the drain began")
	case <-time.After(200 * time.Millisecond):
	}
	hangup(t, d)
	if rec := e.record(); rec.HangupBy != "caller" || rec.EndReason == "shutdown" {
		t.Fatalf("the call in progress: %+v", rec)
	}

	if e.sw.SetDraining(false) || e.sw.Draining() || !e.sw.Listening() {
		t.Fatalf("SetDraining(false): draining %v, listening %v", e.sw.Draining(), e.sw.Listening())
	}
	if res := e.options(t); res.StatusCode != 200 {
		t.Fatalf("ping after the drain: %d, want 200", res.StatusCode)
	}
	d, err = e.call("+31850000101")
	if err != nil {
		t.Fatalf("new call after the drain: %v", err)
	}
	hangup(t, d)
}

// A shutdown drain cannot be lifted: the switch goes on refusing until it closes.
func TestShutdownDrainCannotBeLifted(t *testing.T) {
	e := newEnv(t, envOpts{drain: time.Second})
	e.sw.Drain(context.Background()) // no calls: returns at once
	if !e.sw.SetDraining(false) || !e.sw.Draining() {
		t.Fatal("SetDraining(false) lifted a shutdown drain")
	}
	if res := e.options(t); res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("ping during shutdown: %v, want 503 with Retry-After", res)
	}
}
