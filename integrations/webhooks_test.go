package integrations

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
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// secretA and secretB are endpoint secrets: whsec_ and the base64 of 32 bytes.
var (
	secretA = store.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5}, 32))
	secretB = store.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5B}, 24))
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// verify checks a delivery as a receiver following the Standard Webhooks specification
// would, written from its text ("Verifying Webhooks"), not from Sign: the secret is the
// base64 after "whsec_"; the signed content is the webhook-id, a full stop, the
// webhook-timestamp, a full stop and the body; the signature is the base64 of its
// HMAC-SHA256; webhook-signature holds space-delimited "v1,<signature>" entries, any one of
// which may match; a timestamp more than five minutes off is refused.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return err
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s too far from now", ts)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

func TestSignMatchesTheSpecification(t *testing.T) {
	// The test vector of the Standard Webhooks reference libraries.
	key, err := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`)); got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("Sign = %s", got)
	}
	if _, err := store.SecretBytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err != nil {
		t.Fatalf("the specification's secret: %v", err)
	}
}

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an HTTP server on loopback that answers with respond (204 when it returns 0)
// and keeps every request.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []delivery
	respond func(n int, w http.ResponseWriter, r *http.Request) int // n counts the requests from 0
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		status := 0
		if rc.respond != nil {
			status = rc.respond(n, w, r)
		}
		if status < 0 {
			return // the handler answered (or hijacked)
		}
		w.WriteHeader(cmpOr(status, http.StatusNoContent))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func (rc *receiver) requests() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// env is a store with customer acme and the delivery workers.
type env struct {
	t   *testing.T
	db  *store.DB
	w   *Webhooks
	reg *prometheus.Registry
	cfg Config
	n   atomic.Int64 // calls made
}

func newEnv(t *testing.T, path string, cfg Config) *env {
	t.Helper()
	// Without a path (no restart of its own): the store of the tests' driver
	// (internal/storetest: bbolt, or PostgreSQL with TRACKLINE_TEST_STORE=postgres).
	var db *store.DB
	if path == "" {
		db = storetest.Open(t)
	} else {
		var err error
		if db, err = store.Open(path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	}
	e := &env{t: t, db: db, cfg: cfg}
	err := db.Write(context.Background(), func(tx *store.Tx) error {
		if _, err := tx.Customer("acme"); err == nil {
			return nil
		}
		return tx.CreateCustomer(&store.Customer{ID: "acme", Name: "Acme", Status: store.StatusActive, SiteKey: "acme-site-key", DisplayFormat: "national"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs the workers until the test ends; it checks that Close leaves no goroutine.
func (e *env) start(opts ...Option) {
	e.t.Helper()
	before := runtime.NumGoroutine()
	e.reg = prometheus.NewRegistry()
	w, err := New(e.db, e.cfg, append(opts, WithRegisterer(e.reg))...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.w = w
	ran := make(chan error, 1)
	go func() { ran <- w.Run(context.Background()) }()
	e.t.Cleanup(func() { e.stop(before, ran) })
}

func (e *env) stop(before int, ran chan error) {
	if err := e.w.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	if err := <-ran; err != nil {
		e.t.Errorf("Run: %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		e.t.Errorf("goroutines leaked: %d before Run, %d after Close\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func (e *env) endpoint(id, url string, types ...store.EventType) {
	e.t.Helper()
	if len(types) == 0 {
		types = store.EventTypes()
	}
	err := e.db.Write(context.Background(), func(tx *store.Tx) error {
		return tx.PutEndpoint(&store.Endpoint{ID: id, CustomerID: "acme", URL: url, EventTypes: types, Secret: secretA, Created: time.Now()})
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// call writes a call's start and, with end, its end: call.ringing, then call.answered and
// call.completed.
func (e *env) call(end bool) store.Call {
	e.t.Helper()
	now := time.Now().UTC()
	c := store.Call{ID: pool.NewID(now), CustomerID: "acme", Dialled: "+31850000001", Caller: "+31612345678", Start: now}
	ctx := context.Background()
	if err := e.db.Write(ctx, func(tx *store.Tx) error { c := c; return tx.PutCall(&c) }); err != nil {
		e.t.Fatal(err)
	}
	if end {
		c.Answer, c.End, c.Disposition, c.TalkSeconds = now.Add(time.Second), now.Add(2*time.Second), store.DispAnswered, 1
		if err := e.db.Write(ctx, func(tx *store.Tx) error { c := c; return tx.PutCall(&c) }); err != nil {
			e.t.Fatal(err)
		}
	}
	e.n.Add(1)
	return c
}

// waitFor polls cond until it holds or 10 s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) deliveries(endpoint string) []store.Delivery {
	e.t.Helper()
	d, _, err := e.db.Deliveries("acme", endpoint, "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) pending() int {
	// Messages are indexed into the queue up to 100 ms after their write (store's
	// outboxindex.go): index them first, so that a message just written counts as pending.
	if err := e.db.IndexOutbox(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	st, err := e.db.OutboxStats()
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Pending
}

// TestDeliveriesAreSignedAndInOrder: every delivery verifies with an independent verifier;
// each call's events arrive in the order of its life; the secret's rotation overlaps.
func TestDeliveriesAreSignedAndInOrder(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, "", Config{AllowCIDRs: loopback, PerEndpoint: 4, Workers: 4})
	e.endpoint("crm", rc.URL+"/hook")
	e.start()
	var calls []store.Call
	for range 10 {
		calls = append(calls, e.call(true))
	}
	waitFor(t, "30 deliveries", func() bool { return len(rc.requests()) >= 30 })
	waitFor(t, "an empty outbox", func() bool { return e.pending() == 0 })
	got := rc.requests()
	if len(got) != 30 {
		t.Fatalf("%d deliveries, want 30", len(got))
	}
	byCall := map[string][]string{}
	for _, d := range got {
		if err := verify(secretA, d.header, d.body, time.Now()); err != nil {
			t.Fatalf("delivery %s: %v", d.header.Get("webhook-id"), err)
		}
		if ct, ua := d.header.Get("Content-Type"), d.header.Get("User-Agent"); ct != "application/json" || ua != UserAgent {
			t.Errorf("Content-Type %q, User-Agent %q", ct, ua)
		}
		var p struct {
			Type    string `json:"type"`
			Version int    `json:"version"`
			ID      string `json:"id"`
			Data    struct {
				ID     string `json:"id"`
				Caller string `json:"caller"`
			} `json:"data"`
		}
		if err := json.Unmarshal(d.body, &p); err != nil {
			t.Fatal(err)
		}
		if p.ID != d.header.Get("webhook-id") || p.Version != 1 || p.Data.Caller != "+31612345678" {
			t.Errorf("payload %s under webhook-id %s", d.body, d.header.Get("webhook-id"))
		}
		byCall[p.Data.ID] = append(byCall[p.Data.ID], p.Type)
	}
	for _, c := range calls {
		if want := []string{"call.ringing", "call.answered", "call.completed"}; !slices.Equal(byCall[c.ID], want) {
			t.Errorf("call %s: events %v, want %v", c.ID, byCall[c.ID], want)
		}
	}
	if v := testutil.ToFloat64(e.w.m.attempts.WithLabelValues(outcomeDelivered)); v != 30 {
		t.Errorf("delivered attempts metric %v", v)
	}

	// Rotation: the new and the old secret both sign until the old one expires.
	ctx := context.Background()
	rotate := func(prevExpires time.Time) {
		t.Helper()
		err := e.db.Write(ctx, func(tx *store.Tx) error {
			ep, err := tx.Endpoint("acme", "crm")
			if err != nil {
				return err
			}
			ep.PreviousSecret, ep.PreviousExpires, ep.Secret = secretA, prevExpires, secretB
			return tx.PutEndpoint(&ep)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rotate(time.Now().Add(time.Hour))
	e.call(false)
	waitFor(t, "the delivery after the rotation", func() bool { return len(rc.requests()) == 31 })
	last := rc.requests()[30]
	if n := len(strings.Fields(last.header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures during the overlap, want 2: %s", n, last.header.Get("webhook-signature"))
	}
	for _, s := range []string{secretA, secretB} {
		if err := verify(s, last.header, last.body, time.Now()); err != nil {
			t.Errorf("during the overlap: %v", err)
		}
	}
	rotate(time.Now().Add(-time.Second))
	e.call(false)
	waitFor(t, "the delivery after the overlap", func() bool { return len(rc.requests()) == 32 })
	last = rc.requests()[31]
	if verify(secretA, last.header, last.body, time.Now()) == nil || verify(secretB, last.header, last.body, time.Now()) != nil {
		t.Errorf("after the overlap the signature is %s", last.header.Get("webhook-signature"))
	}
}

// TestRetriesOnSchedule: a 500, a receiver that hangs past the timeout and a reset
// connection are retried, each after a wait within the backoff's bound, with the same
// webhook-id; then a 2xx delivers. Every attempt is recorded.
func TestRetriesOnSchedule(t *testing.T) {
	const base = 40 * time.Millisecond
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) int {
		switch n {
		case 0:
			return http.StatusInternalServerError
		case 1:
			select { // hang: the attempt times out
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return -1
		case 2:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
				conn.Close()
			}
			return -1
		}
		return http.StatusOK
	})
	e := newEnv(t, "", Config{AllowCIDRs: loopback, Timeout: 300 * time.Millisecond, BackoffBase: base, BackoffMax: time.Second,
		BreakerFailures: 10, PollInterval: 20 * time.Millisecond})
	e.endpoint("crm", rc.URL, store.EventCallRinging)
	e.start(WithJitter(func(n int64) int64 { return n - 1 })) // the longest wait of full jitter
	e.call(false)
	waitFor(t, "the fourth attempt", func() bool { return len(rc.requests()) >= 4 })
	waitFor(t, "the delivery", func() bool { return e.pending() == 0 })
	got := rc.requests()
	if len(got) != 4 {
		t.Fatalf("%d attempts, want 4", len(got))
	}
	for i, d := range got {
		if d.header.Get("webhook-id") != got[0].header.Get("webhook-id") {
			t.Errorf("attempt %d: webhook-id %s, want %s", i, d.header.Get("webhook-id"), got[0].header.Get("webhook-id"))
		}
		if err := verify(secretA, d.header, d.body, time.Now()); err != nil {
			t.Errorf("attempt %d: %v", i, err)
		}
		if i == 0 {
			continue
		}
		// With the top of full jitter's range the wait after the n-th failure is
		// base·2^(n-1), counted from the start of the failed attempt: never sooner, and
		// later by the commit of the outcome and the scheduler only.
		gap, want := d.at.Sub(got[i-1].at), base<<(i-1)
		if gap < want-5*time.Millisecond || gap > want+time.Second {
			t.Errorf("attempt %d came %v after the one before, want the schedule's %v", i, gap, want)
		}
	}
	ds := e.deliveries("crm")
	if len(ds) != 1 || ds[0].State != store.DeliveryDelivered || ds[0].AttemptCount != 4 || len(ds[0].Attempts) != 4 {
		t.Fatalf("delivery %+v", ds)
	}
	a := ds[0].Attempts
	if a[0].Status != 500 || !strings.Contains(a[1].Error, "timeout") || a[2].Status != 0 || a[2].Error == "" || a[3].Status != 200 {
		t.Errorf("attempts %+v", a)
	}
	for _, o := range []string{outcomeStatus, outcomeTimeout, outcomeConnection, outcomeDelivered} {
		if v := testutil.ToFloat64(e.w.m.attempts.WithLabelValues(o)); v != 1 {
			t.Errorf("attempts{outcome=%q} = %v, want 1", o, v)
		}
	}
}

func TestBackoff(t *testing.T) {
	top := func(n int64) int64 { return n - 1 } // the ceiling itself
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{1, 5 * time.Second}, {2, 10 * time.Second}, {5, 80 * time.Second}, {13, 4 * time.Hour}, {70, 4 * time.Hour}} {
		if got := Backoff(5*time.Second, 4*time.Hour, tt.n, top); got != tt.want {
			t.Errorf("Backoff after %d failures: at most %v, want %v", tt.n, got, tt.want)
		}
	}
	if got := Backoff(5*time.Second, 4*time.Hour, 3, func(int64) int64 { return 0 }); got != 0 {
		t.Errorf("full jitter's least wait %v, want 0", got)
	}
	// A message MaxAge old is given up.
	w := &Webhooks{cfg: Config{BackoffBase: time.Second, BackoffMax: time.Hour, MaxAge: 72 * time.Hour}, randN: top}
	now := time.Now()
	if o, _ := w.retry(now, &store.DueDelivery{Message: store.Message{Created: now.Add(-72 * time.Hour)}}, 0); o != store.OutcomeFailed {
		t.Errorf("a 72 h old message: %v", o)
	}
	if o, next := w.retry(now, &store.DueDelivery{Message: store.Message{Created: now.Add(-72*time.Hour + time.Second)}, Attempts: 30}, 0); o != store.OutcomeRetry || next.After(now.Add(time.Second)) {
		t.Errorf("a message a second short of 72 h: %v at %v", o, next.Sub(now))
	}
}

// A receiver's 429 or 503 with Retry-After (seconds, or an HTTP-date) holds the next
// attempt back that long, though the schedule's own wait is shorter; the attempt says so.
func TestRetryAfterIsHonoured(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) int {
		switch n {
		case 0:
			w.Header().Set("Retry-After", "1")
			return http.StatusTooManyRequests
		case 1:
			// An HTTP-date has whole seconds: 2 s from now is 1-2 s away.
			w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	e := newEnv(t, "", Config{AllowCIDRs: loopback, BackoffBase: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond,
		BreakerFailures: 10, PollInterval: 20 * time.Millisecond})
	e.endpoint("crm", rc.URL, store.EventCallRinging)
	e.start(WithJitter(func(n int64) int64 { return n - 1 }))
	e.call(false)
	waitFor(t, "the delivery", func() bool { return len(rc.requests()) >= 3 && e.pending() == 0 })
	got := rc.requests()
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	if gap := got[1].at.Sub(got[0].at); gap < time.Second || gap > 3*time.Second {
		t.Errorf("the attempt after Retry-After: 1 came %v later", gap)
	}
	if gap := got[2].at.Sub(got[1].at); gap < 900*time.Millisecond || gap > 4*time.Second {
		t.Errorf("the attempt after a Retry-After date 2 s ahead came %v later", gap)
	}
	ds := e.deliveries("crm")
	if len(ds) != 1 || ds[0].AttemptCount != 3 || !strings.Contains(ds[0].Attempts[0].Error, "429 Too Many Requests (Retry-After 1s)") ||
		!strings.Contains(ds[0].Attempts[1].Error, "503 Service Unavailable (Retry-After") {
		t.Fatalf("delivery %+v", ds)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"120", 2 * time.Minute}, {" 7 ", 7 * time.Second}, {"0", 0}, {"-5", 0}, {"1.5", 0}, {"soon", 0},
		{"99999999999999999999999", 72 * time.Hour}, {"1000000", 72 * time.Hour},
		{"Fri, 01 May 2026 10:02:00 GMT", 2 * time.Minute},
		{"Fri, 01 May 2026 09:00:00 GMT", 0},                 // passed
		{"Friday, 01-May-26 10:00:30 GMT", 30 * time.Second}, // RFC 850
		{"Fri, 01 May 2027 10:00:00 GMT", 72 * time.Hour},
	} {
		if got := RetryAfter(tt.v, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
	// The longer of the two waits, never past the message's MaxAge.
	w := &Webhooks{cfg: Config{BackoffBase: time.Second, BackoffMax: time.Hour, MaxAge: 72 * time.Hour}, randN: func(n int64) int64 { return n - 1 }}
	d := &store.DueDelivery{Message: store.Message{Created: now}}
	if _, next := w.retry(now, d, time.Minute); !next.Equal(now.Add(time.Minute)) {
		t.Errorf("Retry-After 1 min over a 1 s backoff: next at %v", next.Sub(now))
	}
	if _, next := w.retry(now, d, time.Millisecond); !next.Equal(now.Add(time.Second)) {
		t.Errorf("Retry-After 1 ms under a 1 s backoff: next at %v", next.Sub(now))
	}
	if _, next := w.retry(now.Add(71*time.Hour), d, 72*time.Hour); !next.Equal(now.Add(72 * time.Hour)) {
		t.Errorf("Retry-After past MaxAge: next at %v", next.Sub(now))
	}
}

// countingStore counts the writes the workers queue.
type countingStore struct {
	*store.DB
	writes atomic.Int64
}

func (c *countingStore) Enqueue(ctx context.Context, fn func(*store.Tx) error) (store.Pending, error) {
	c.writes.Add(1)
	return c.DB.Enqueue(ctx, fn)
}

// The outcomes of attempts that end close together are written together: fewer writes (and
// commits) than deliveries, each delivery recorded all the same.
func TestOutcomesShareWrites(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, "", Config{AllowCIDRs: loopback, Workers: 8, PerEndpoint: 8})
	e.endpoint("crm", rc.URL, store.EventCallRinging)
	const calls = 300
	for range calls {
		e.call(false)
	}
	cs := &countingStore{DB: e.db}
	w, err := New(cs, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(context.Background()) }()
	waitFor(t, "the deliveries", func() bool { return e.pending() == 0 })
	w.Close()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if n := len(rc.requests()); n != calls {
		t.Fatalf("%d requests, want %d", n, calls)
	}
	ds := e.deliveries("crm")
	for _, d := range ds {
		if d.State != store.DeliveryDelivered || d.AttemptCount != 1 {
			t.Fatalf("delivery %+v", d)
		}
	}
	if len(ds) != calls {
		t.Fatalf("%d deliveries recorded, want %d", len(ds), calls)
	}
	if n := cs.writes.Load(); n >= calls {
		t.Fatalf("%d writes for %d outcomes: not shared", n, calls)
	} else {
		t.Logf("%d outcomes in %d writes", calls, n)
	}
}

// TestGoneDisablesTheEndpoint: a 410 disables the endpoint; its other pending deliveries
// fail and nothing more is sent to it.
func TestGoneDisablesTheEndpoint(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) int { return http.StatusGone })
	e := newEnv(t, "", Config{AllowCIDRs: loopback, PerEndpoint: 1, Workers: 1, PollInterval: 20 * time.Millisecond})
	e.endpoint("crm", rc.URL)
	for range 5 {
		e.call(false)
	}
	e.start()
	waitFor(t, "the endpoint disabled and its deliveries failed", func() bool {
		ep, err := e.db.Endpoint("acme", "crm")
		return err == nil && ep.Disabled && e.pending() == 0
	})
	if ep, _ := e.db.Endpoint("acme", "crm"); ep.DisabledReason != "gone" {
		t.Errorf("endpoint %+v", ep)
	}
	e.call(true)
	time.Sleep(200 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d requests to an endpoint that answered 410, want 1", n)
	}
	failed := 0
	for _, d := range e.deliveries("crm") {
		if d.State == store.DeliveryFailed {
			failed++
		}
	}
	if failed != 5 {
		t.Errorf("%d failed deliveries, want 5", failed)
	}
	waitFor(t, "the disabled endpoint in the metric", func() bool {
		return testutil.ToFloat64(e.w.m.funcs[2]) == 1
	})
}

// TestRedirectsAreNotFollowed: a 302 is an attempt that failed; its target never sees the
// message.
func TestRedirectsAreNotFollowed(t *testing.T) {
	target := newReceiver(t, nil)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) int {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
		return -1
	})
	e := newEnv(t, "", Config{AllowCIDRs: loopback, BackoffBase: time.Hour})
	e.endpoint("crm", rc.URL, store.EventCallRinging)
	e.start()
	e.call(false)
	waitFor(t, "the attempt recorded", func() bool {
		d := e.deliveries("crm")
		return len(d) == 1 && d[0].AttemptCount == 1
	})
	if n := len(target.requests()); n != 0 {
		t.Fatalf("the redirect's target got %d requests", n)
	}
	d := e.deliveries("crm")[0]
	if d.State != store.DeliveryPending || d.Attempts[0].Status != 302 || d.Next.IsZero() {
		t.Fatalf("delivery after a 302: %+v", d)
	}
}

// TestGuardRefusesLoopback: without webhooks.allow_cidrs nothing reaches 127.0.0.1, given as
// an address or as a name that resolves to it; the attempt says why.
func TestGuardRefusesLoopback(t *testing.T) {
	rc := newReceiver(t, nil)
	port := rc.Listener.Addr().(*net.TCPAddr).Port
	e := newEnv(t, "", Config{BackoffBase: time.Hour})
	e.endpoint("addr", fmt.Sprintf("http://127.0.0.1:%d/", port), store.EventCallRinging)
	e.endpoint("name", fmt.Sprintf("http://localhost:%d/", port), store.EventCallRinging)
	e.start()
	e.call(false)
	for _, ep := range []string{"addr", "name"} {
		waitFor(t, ep+": the attempt recorded", func() bool {
			d := e.deliveries(ep)
			return len(d) == 1 && d[0].AttemptCount == 1
		})
		if a := e.deliveries(ep)[0].Attempts[0]; a.Status != 0 || !strings.Contains(a.Error, "refused") || !strings.Contains(a.Error, "not a public address") {
			t.Errorf("%s: attempt %+v", ep, a)
		}
	}
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
	if v := testutil.ToFloat64(e.w.m.attempts.WithLabelValues(outcomeRefused)); v != 2 {
		t.Errorf("refused attempts %v, want 2", v)
	}
}

func TestGuardAndCheckURL(t *testing.T) {
	g := NewGuard(nil)
	for _, tt := range []struct {
		ip string
		ok bool
	}{
		{"93.184.216.34", true}, {"2606:2800:220:1:248:1893:25c8:1946", true},
		{"127.0.0.1", false}, {"127.9.9.9", false}, {"::1", false}, {"::ffff:127.0.0.1", false},
		{"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false}, {"fc00::1", false}, {"fd12::1", false},
		{"169.254.169.254", false}, {"fd00:ec2::254", false}, {"fe80::1", false},
		{"100.64.0.1", false}, {"100.127.255.254", false}, {"0.0.0.0", false}, {"::", false},
		{"224.0.0.1", false}, {"ff02::1", false}, {"255.255.255.255", false}, {"64:ff9b::7f00:1", false}, {"64:ff9b::5db8:d822", true},
	} {
		if got := g.Allowed(netip.MustParseAddr(tt.ip)); got != tt.ok {
			t.Errorf("Allowed(%s) = %v, want %v", tt.ip, got, tt.ok)
		}
	}
	if !NewGuard(loopback).Allowed(netip.MustParseAddr("127.0.0.1")) || NewGuard(loopback).Allowed(netip.MustParseAddr("10.0.0.1")) {
		t.Error("allow_cidrs: 127.0.0.0/8 allows loopback only")
	}
	for _, tt := range []struct {
		url   string
		allow []netip.Prefix
		ok    bool
	}{
		{"https://crm.example/hook", nil, true},
		{"https://93.184.216.34/hook", nil, true},
		{"http://crm.example/hook", nil, false},
		{"http://127.0.0.1:8080/hook", nil, false},
		{"http://127.0.0.1:8080/hook", loopback, true},
		{"https://127.0.0.1/hook", nil, false},
		{"https://[::1]/hook", nil, false},
		{"https://169.254.169.254/latest/meta-data", nil, false},
		{"http://localhost:8080/", loopback, false}, // a name: http needs an address in the range
		{"ftp://crm.example/", nil, false},
		{"https://user:pw@crm.example/", nil, false},
		{"/relative", nil, false},
	} {
		if err := CheckURL(tt.url, tt.allow); (err == nil) != tt.ok {
			t.Errorf("CheckURL(%s, %v) = %v, want ok %v", tt.url, tt.allow, err, tt.ok)
		}
	}
}

// TestAtLeastOnceAcrossRestart: the store is closed in the middle of a backlog; after it is
// opened again every message is delivered, each with its webhook-id and the same body.
func TestAtLeastOnceAcrossRestart(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) int {
		time.Sleep(2 * time.Millisecond)
		return 0
	})
	path := filepath.Join(t.TempDir(), "trackline.db")
	ctx := context.Background()

	first := newEnv(t, path, Config{AllowCIDRs: loopback, PollInterval: 20 * time.Millisecond})
	first.endpoint("crm", rc.URL, store.EventCallRinging)
	const total = 300
	for range total {
		first.call(false)
	}
	var ids []string
	first.db.View(func(tx *store.Tx) error {
		ms, err := tx.Messages("acme", time.Time{}, time.Time{}, 10*total)
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		return err
	})
	if len(ids) != total {
		t.Fatalf("%d messages, want %d", len(ids), total)
	}
	w, err := New(first.db, first.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	waitFor(t, "a third of the backlog", func() bool { return len(rc.requests()) >= total/3 })
	w.Close()
	<-ran
	if err := first.db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(rc.requests()); n >= total {
		t.Fatalf("all %d delivered before the stop: no backlog left to test", n)
	}

	second := newEnv(t, path, Config{AllowCIDRs: loopback, PollInterval: 20 * time.Millisecond})
	second.start()
	waitFor(t, "the backlog delivered after the restart", func() bool { return second.pending() == 0 })
	bodies := map[string][]byte{}
	for _, d := range rc.requests() {
		id := d.header.Get("webhook-id")
		if prev, ok := bodies[id]; ok && !bytes.Equal(prev, d.body) {
			t.Fatalf("message %s sent with two bodies", id)
		}
		bodies[id] = d.body
		if err := verify(secretA, d.header, d.body, time.Now()); err != nil {
			t.Fatalf("message %s: %v", id, err)
		}
	}
	for _, id := range ids {
		if _, ok := bodies[id]; !ok {
			t.Errorf("message %s never delivered", id)
		}
	}
	if len(bodies) != total {
		t.Errorf("%d distinct webhook-ids delivered, want %d", len(bodies), total)
	}
	t.Logf("%d requests for %d messages", len(rc.requests()), total)
}

// TestReplay: a delivered message is sent again with the same webhook-id and body; so is
// everything since a time.
func TestReplay(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, "", Config{AllowCIDRs: loopback})
	e.endpoint("crm", rc.URL, store.EventCallRinging, store.EventCallCompleted)
	e.start()
	since := time.Now()
	e.call(true)
	waitFor(t, "two deliveries", func() bool { return len(rc.requests()) == 2 && e.pending() == 0 })
	first := rc.requests()[0]
	id := first.header.Get("webhook-id")
	if err := e.db.Write(context.Background(), func(tx *store.Tx) error { return tx.ReplayMessage("acme", "crm", id) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay", func() bool { return len(rc.requests()) == 3 && e.pending() == 0 })
	again := rc.requests()[2]
	if again.header.Get("webhook-id") != id || !bytes.Equal(again.body, first.body) {
		t.Fatalf("replay sent %s %s, want %s %s", again.header.Get("webhook-id"), again.body, id, first.body)
	}
	n, err := e.db.ReplaySince(context.Background(), "acme", "crm", since.Add(-time.Second))
	if err != nil || n != 2 {
		t.Fatalf("ReplaySince = %d, %v", n, err)
	}
	waitFor(t, "the replay since", func() bool { return len(rc.requests()) == 5 })
}

// TestPoolExhaustedFromThePool: a lease given while every number is leased writes
// number.pool_exhausted in its transaction; it is delivered.
func TestPoolExhaustedFromThePool(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, "", Config{AllowCIDRs: loopback})
	ctx := context.Background()
	p, err := pool.New(e.db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ImportNumbers(ctx, "acme", []pool.NumberInput{{Number: "+31850000001"}}); err != nil {
		t.Fatal(err)
	}
	e.endpoint("ops", rc.URL, store.EventPoolExhausted)
	e.start()
	for range 3 {
		if _, err := p.Assign(ctx, "acme", pool.Visit{LandingURL: "https://acme.example/"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "number.pool_exhausted", func() bool { return len(rc.requests()) == 1 })
	var got struct {
		Type string `json:"type"`
		Data struct {
			Number      string `json:"number"`
			Exhaustions int    `json:"exhaustions_total"`
		} `json:"data"`
	}
	json.Unmarshal(rc.requests()[0].body, &got)
	if got.Type != "number.pool_exhausted" || got.Data.Number != "+31850000001" || got.Data.Exhaustions != 1 {
		t.Fatalf("event %s", rc.requests()[0].body)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d pool_exhausted events for two exhaustions within %v, want 1", n, store.PoolExhaustedEvery)
	}
}

// TestBreakerHoldsAFailingEndpointBack: after BreakerFailures consecutive failures nothing
// is sent to the endpoint until the cooldown passed; then one probe.
func TestBreakerHoldsAFailingEndpointBack(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) int { return http.StatusServiceUnavailable })
	e := newEnv(t, "", Config{AllowCIDRs: loopback, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, PerEndpoint: 1,
		BreakerFailures: 3, BreakerCooldown: 400 * time.Millisecond, PollInterval: 10 * time.Millisecond})
	e.endpoint("crm", rc.URL, store.EventCallRinging)
	e.start()
	for range 5 {
		e.call(false)
	}
	waitFor(t, "three failures", func() bool { return len(rc.requests()) >= 3 })
	time.Sleep(200 * time.Millisecond)
	if n := len(rc.requests()); n != 3 {
		t.Fatalf("%d requests while the breaker is open, want 3", n)
	}
	waitFor(t, "the open breaker in the metric", func() bool { return testutil.ToFloat64(e.w.m.funcs[3]) == 1 })
	waitFor(t, "the probe after the cooldown", func() bool { return len(rc.requests()) >= 4 })
	reqs := rc.requests()
	if gap := reqs[len(reqs)-1].at.Sub(reqs[2].at); gap < 300*time.Millisecond {
		t.Errorf("the probe came %v after the third failure, before the cooldown", gap)
	}
}

// BenchmarkDrainBacklog measures how fast a backlog of 100,000 messages (call.ringing, one
// endpoint) drains to a receiver on loopback with the default workers (4, 2 per endpoint).
func BenchmarkDrainBacklog(b *testing.B) {
	const backlog = 100_000
	for b.Loop() {
		b.StopTimer()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}))
		db, err := store.Open(filepath.Join(b.TempDir(), "b.db"))
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		err = db.Write(context.Background(), func(tx *store.Tx) error {
			if err := tx.CreateCustomer(&store.Customer{ID: "acme", Status: store.StatusActive, SiteKey: "acme-key"}); err != nil {
				return err
			}
			return tx.PutEndpoint(&store.Endpoint{ID: "crm", CustomerID: "acme", URL: srv.URL, EventTypes: []store.EventType{store.EventCallRinging}, Secret: secretA})
		})
		if err != nil {
			b.Fatal(err)
		}
		for chunk := 0; chunk < backlog/5000; chunk++ {
			err := db.Write(context.Background(), func(tx *store.Tx) error {
				for i := range 5000 {
					at := t0.Add(time.Duration(chunk*5000+i) * time.Millisecond)
					c := store.Call{ID: pool.NewID(at), CustomerID: "acme", Dialled: "+31850000001", Caller: "+31612345678",
						Channel: "Google Ads", LandingPage: "https://acme.example/offer", Start: at}
					if err := tx.PutCall(&c); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := db.IndexOutbox(context.Background()); err != nil { // the queue entries of the last messages
			b.Fatal(err)
		}
		w, err := New(db, Config{AllowCIDRs: loopback})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		ran := make(chan error, 1)
		go func() { ran <- w.Run(context.Background()) }()
		for {
			st, err := db.OutboxStats()
			if err != nil {
				b.Fatal(err)
			}
			if st.Pending == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		w.Close()
		<-ran
		db.Close()
		srv.Close()
		b.ReportMetric(backlog/elapsed.Seconds(), "deliveries/s")
		b.StartTimer()
	}
}
