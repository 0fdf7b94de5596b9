package sip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/trackline/trackline/store"
)

// TestNotInService: calls to the numbers of an ended contract, of a lapsed trial and to
// numbers held after their customer's data was deleted get 480; a number the operator took
// out of a running contract is not found (404). The business line never rings.
func TestNotInService(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	ctx := context.Background()
	tests := []struct {
		name   string
		opts   envOpts
		setup  func(e *env)
		number string
		want   int
	}{
		{"contract ended, static number", envOpts{}, func(e *env) {
			if _, err := e.pool.EndContract(ctx, "acme", time.Now()); err != nil {
				t.Fatal(err)
			}
		}, "+31850000101", 480},
		{"contract ended, pool number", envOpts{}, func(e *env) {
			if _, err := e.pool.EndContract(ctx, "acme", time.Now()); err != nil {
				t.Fatal(err)
			}
		}, "+31850000001", 480},
		{"contract end date passed", envOpts{}, func(e *env) {
			if _, err := e.pool.UpdateCustomer(ctx, "acme", func(c *store.Customer) { c.ContractEnds = time.Now().Add(-time.Minute) }); err != nil {
				t.Fatal(err)
			}
		}, "+31850000101", 480},
		{"trial lapsed", envOpts{status: store.StatusTrial, trialEnds: time.Now().Add(-time.Hour)}, nil, "+31850000101", 480},
		{"held after the customer was deleted", envOpts{}, func(e *env) {
			if _, err := e.pool.EndContract(ctx, "acme", time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := e.pool.Purge(ctx, "acme", true); err != nil {
				t.Fatal(err)
			}
		}, "+31850000101", 480},
		{"trial running", envOpts{status: store.StatusTrial, trialEnds: time.Now().Add(time.Hour)}, func(e *env) {
			if err := e.pool.Quarantine(ctx, "+31850000101", time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, "+31850000101", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.lines = []string{lineURI(line)}
			e := newEnv(t, tt.opts)
			if tt.setup != nil {
				tt.setup(e)
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			d, err := e.invite(cctx, tt.number, nil)
			if err == nil {
				err = d.WaitAnswer(cctx, sipgo.AnswerOptions{})
			}
			if got := statusOf(err); got != tt.want {
				t.Fatalf("got %d (%v), want %d", got, err, tt.want)
			}
			if tt.want == 480 && !strings.Contains(err.Error(), "Not In Service") {
				t.Errorf("480 without the reason Not In Service: %v", err)
			}
			calls, _, _ := e.db.Calls(store.CallFilter{})
			if len(calls) != 0 {
				t.Fatalf("a refused call left a record: %+v", calls)
			}
		})
	}
	if strings.Contains(line.history(), "INVITE") {
		t.Fatalf("business line rang for a call not in service: %q", line.history())
	}
}

// TestFairUseLimit: the customer's maximum call duration ends the call; without one the
// switch's default does.
func TestFairUseLimit(t *testing.T) {
	line := newPeer(t, "127.0.0.1", answer(0))
	e := newEnv(t, envOpts{lines: []string{lineURI(line)}, switchMax: 1500 * time.Millisecond})
	d, err := e.call("+31850000101")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("caller not hung up at the switch's maximum duration")
	}
	rec := e.record()
	if rec.EndReason != "max_duration" || rec.HangupBy != "switch" || rec.TalkSeconds < 1.4 || rec.TalkSeconds > 3 {
		t.Fatalf("record %+v", rec)
	}
}
