package sip

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/callseam"
	"github.com/trackline/trackline/store"
)

// heldRecording is an anchor whose sessions pass SDP through and whose recording is
// finished only when the test says so: CloseThen hands its function to the test.
type heldRecording struct{ then chan func(*store.Recording) }

func (h heldRecording) Anchor(context.Context, *callseam.CallInfo, []byte) (callseam.MediaSession, error) {
	ready := make(chan struct{})
	close(ready)
	return &heldSession{h: h, ready: ready}, nil
}

type heldSession struct {
	h     heldRecording
	ready chan struct{}
}

func (*heldSession) Offer() []byte                            { return []byte(offerSDP) }
func (*heldSession) CallerSDP() []byte                        { return []byte(answerSDP) }
func (*heldSession) Early() bool                              { return false }
func (*heldSession) Answered()                                {}
func (s *heldSession) Ready() <-chan struct{}                 { return s.ready }
func (*heldSession) Bridge()                                  {}
func (*heldSession) Done() <-chan struct{}                    { return nil }
func (*heldSession) Close(*store.Call) *store.Recording       { return nil }
func (*heldSession) Rewrite(_ bool, b []byte) ([]byte, error) { return b, nil }
func (*heldSession) Callee([]byte, netip.Addr) error          { return nil }
func (s *heldSession) CloseThen(rec *store.Call, then func(*store.Recording)) bool {
	rec.Media = &store.CallMedia{CallerCodec: "PCMU"}
	s.h.then <- then
	return true
}

// A recorded call's goroutine ends at the hang-up while its recording is still being
// finished; its record is completed, with the recording, once the recording is, and a
// drain waits for that.
func TestRecordedCallEndsBeforeItsRecording(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(100*time.Millisecond)) // the business line hangs up
	held := heldRecording{then: make(chan func(*store.Recording), 1)}
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, media: held})
	if _, err := e.call("+31850000101"); err != nil {
		t.Fatal(err)
	}
	var then func(*store.Recording)
	select {
	case then = <-held.then:
	case <-time.After(10 * time.Second):
		t.Fatal("the call's media was not closed")
	}
	// The call's goroutine ends without the recording: the active calls fall to 0.
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(e.sw.m.active) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the call's goroutine waits for its recording")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var open store.Call
	if err := e.db.View(func(tx *store.Tx) error {
		calls, _, err := tx.Calls(store.CallFilter{Limit: 1})
		if len(calls) == 1 {
			open = calls[0]
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !open.End.IsZero() {
		t.Fatalf("the record was completed before its recording: %+v", open)
	}
	drained := make(chan struct{})
	go func() { e.sw.Drain(context.Background()); close(drained) }()
	select {
	case <-drained:
		t.Fatal("Drain returned before the recorded call's record was complete")
	case <-time.After(200 * time.Millisecond):
	}

	then(&store.Recording{ID: open.ID, CustomerID: open.CustomerID, CallID: open.ID, Path: "acme/x.wav.enc", Duration: time.Second, Size: 44, Created: time.Now().UTC()})
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return once the record was complete")
	}
	rec := e.record()
	if rec.RecordingID != open.ID || rec.Disposition != store.DispAnswered || rec.Media == nil || rec.Media.CallerCodec != "PCMU" {
		t.Fatalf("completed record %+v", rec)
	}
	if err := e.db.View(func(tx *store.Tx) error { _, err := tx.Recording(open.ID); return err }); err != nil {
		t.Fatalf("the recording's record: %v", err)
	}
	if got := testutil.ToFloat64(e.sw.m.calls.WithLabelValues(string(store.DispAnswered))); got != 1 {
		t.Fatalf("answered calls counted: %v, want 1", got)
	}
}

// A recording that could not be finished (nil) still completes the call's record, without
// a recording.
func TestRecordedCallWithoutItsRecording(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(50*time.Millisecond))
	held := heldRecording{then: make(chan func(*store.Recording), 1)}
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, media: held})
	if _, err := e.call("+31850000101"); err != nil {
		t.Fatal(err)
	}
	select {
	case then := <-held.then:
		then(nil)
	case <-time.After(10 * time.Second):
		t.Fatal("the call's media was not closed")
	}
	if rec := e.record(); rec.RecordingID != "" || rec.Disposition != store.DispAnswered {
		t.Fatalf("completed record %+v", rec)
	}
}

// promptAnchor's sessions play a disclaimer (Early) until the test closes ready.
type promptAnchor struct {
	ready    chan struct{}
	answered chan struct{} // closed when the business line's answer reaches the session
}

func (p promptAnchor) Anchor(context.Context, *callseam.CallInfo, []byte) (callseam.MediaSession, error) {
	return &promptSession{heldSession: heldSession{ready: p.ready}, p: p}, nil
}

type promptSession struct {
	heldSession
	p    promptAnchor
	once sync.Once
}

func (*promptSession) Early() bool                                        { return true }
func (s *promptSession) Answered()                                        { s.once.Do(func() { close(s.p.answered) }) }
func (*promptSession) Close(*store.Call) *store.Recording                 { return nil }
func (*promptSession) CloseThen(*store.Call, func(*store.Recording)) bool { return false }

// Admission control counts the switch's own part of a setup past ringing: the business
// line's answer from its arrival at the socket (the drain sees it) until the call's goroutine
// has it, and the bridge after the disclaimer; not the disclaimer still playing when the line
// answered. Nothing stays counted once the call is answered.
func TestLineAnswerCountedApartFromTheDisclaimer(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(2*time.Second))
	p := promptAnchor{ready: make(chan struct{}), answered: make(chan struct{})}
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, media: p})
	called := make(chan error, 1)
	go func() { _, err := e.call("+31850000101"); called <- err }()
	select {
	case <-p.answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the business line's answer did not reach the media session")
	}
	a := e.sw.adm
	counted := func() (inFlight, lines int, base time.Duration) {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.inFlight(), len(a.lines), a.lineBase.least[0]
	}
	// While the disclaimer plays, the call is not a setup in flight.
	deadline := time.Now().Add(2 * time.Second)
	for {
		n, lines, base := counted()
		if n == 0 && lines == 0 {
			if base <= 0 {
				t.Errorf("the line's answer was not timed from its arrival (baseline %v)", base)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("during the disclaimer: %d setups in flight, %d lines; want none", n, lines)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(p.ready) // the disclaimer ends: the switch bridges and answers the caller
	select {
	case err := <-called:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller was not answered after the disclaimer")
	}
	if n, lines, _ := counted(); n != 0 || lines != 0 {
		t.Errorf("after the caller's answer: %d setups in flight, %d lines; want none", n, lines)
	}
}
