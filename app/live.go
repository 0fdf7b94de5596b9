package app

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/trackline/trackline/store"
)

// The live view: a page open on the overview or the calls list holds a server-sent event
// stream (GET /c/{cid}/live) that sends the customer's calls in progress and its latest
// calls as an HTML fragment whenever they change. Each stream reads the store's index of
// active calls once a second (a few keys) and its newest calls; streams end when the
// client goes, when the app closes, and after maxLive per app are open new ones are refused.

const (
	livePoll   = time.Second
	liveRecent = 5
	maxLive    = 1000
	// liveMaxAge ends a stream after a while; the browser reconnects by itself, which
	// also re-checks the session.
	liveMaxAge = 10 * time.Minute
)

type liveHub struct {
	ctx    context.Context
	cancel context.CancelFunc
	open   atomic.Int64
}

func newLiveHub(*App) *liveHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &liveHub{ctx: ctx, cancel: cancel}
}

func (h *liveHub) close() { h.cancel() }

// liveStream is the live view's event stream.
func (a *App) liveStream(w http.ResponseWriter, q *request) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return &pageError{status: http.StatusNotImplemented, msg: "streaming is not available"}
	}
	if a.live.open.Add(1) > maxLive {
		a.live.open.Add(-1)
		return &pageError{status: http.StatusServiceUnavailable, msg: "too many live views open"}
	}
	defer a.live.open.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold the events back
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	fl.Flush()

	tick := time.NewTicker(livePoll)
	defer tick.Stop()
	end := time.NewTimer(liveMaxAge)
	defer end.Stop()
	var last []byte
	for {
		frag, err := a.liveFragment(q)
		if err != nil {
			return nil // the stream is open: an error ends it, the browser retries
		}
		if !bytes.Equal(frag, last) {
			last = frag
			var b strings.Builder
			b.WriteString("event: live\n")
			for _, line := range strings.Split(strings.TrimSpace(string(frag)), "\n") {
				b.WriteString("data: ")
				b.WriteString(line)
				b.WriteByte('\n')
			}
			b.WriteByte('\n')
			if _, err := w.Write([]byte(b.String())); err != nil {
				return nil
			}
			fl.Flush()
		}
		select {
		case <-q.r.Context().Done():
			return nil
		case <-a.live.ctx.Done():
			return nil
		case <-end.C:
			return nil
		case <-tick.C:
		}
	}
}

// liveFragment renders the customer's calls in progress and its latest calls.
func (a *App) liveFragment(q *request) ([]byte, error) {
	active := true
	cur, _, err := a.db.Calls(store.CallFilter{CustomerID: q.customer.ID, Active: &active, Limit: 50})
	if err != nil {
		return nil, err
	}
	recent, _, err := a.db.Calls(store.CallFilter{CustomerID: q.customer.ID, Limit: liveRecent})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	v := view{T: messages[q.lang], Lang: q.lang, Customer: &customerView{ID: q.customer.ID, Name: q.customer.Name},
		Data: map[string]any{"Active": cur, "Recent": recent}}
	if err := a.pages["overview"].ExecuteTemplate(&buf, "live", v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
