package integrations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/internal/textutil"
	"github.com/trackline/trackline/store"
)

// Store is the outbox the workers deliver from; *store.DB is one.
type Store interface {
	// AllEndpoints lists every customer's endpoints; EndpointsVersion counts their changes.
	AllEndpoints() ([]store.Endpoint, error)
	EndpointsVersion() uint64
	// OutboxSignal receives after commits that made deliveries due (TakeDueEndpoints says
	// to which endpoints) or changed endpoints.
	OutboxSignal() <-chan struct{}
	TakeDueEndpoints() []store.EndpointRef
	// DueDeliveries answers an endpoint's deliveries due at now and when the next is due.
	DueDeliveries(customerID, endpointID string, now time.Time, limit int, skip func(messageID string) bool) ([]store.DueDelivery, time.Time, error)
	// Enqueue queues a write (store.Tx.RecordDelivery) to be committed in order.
	Enqueue(ctx context.Context, fn func(*store.Tx) error) (store.Pending, error)
	// FailPending fails the pending deliveries of a disabled endpoint.
	FailPending(ctx context.Context, customerID, endpointID, reason string) (int, error)
	// OutboxStats reads the queue's depth and age (metrics).
	OutboxStats() (store.OutboxStats, error)
}

// Config tunes the delivery of webhooks. The zero value of a field is its default.
type Config struct {
	Workers     int            // attempts in flight at most (default 4)
	PerEndpoint int            // attempts in flight to one endpoint at most (default 2)
	AllowCIDRs  []netip.Prefix // ranges a webhook may connect to though the guard refuses them (default none)
	Timeout     time.Duration  // one attempt, from connecting to the answer's end (default 10s)
	// The retry schedule: after the n-th failed attempt the next one is made after a random
	// time up to min(BackoffMax, BackoffBase·2^(n-1)) (full jitter), until the message is
	// MaxAge old; then the delivery is given up.
	BackoffBase time.Duration // default 5s
	BackoffMax  time.Duration // default 4h
	MaxAge      time.Duration // default 72h
	// The circuit breaker: BreakerFailures consecutive failures of an endpoint hold its
	// deliveries back for BreakerCooldown (doubling while its probes fail, up to 10 minutes),
	// then one attempt probes it.
	BreakerFailures int           // default 5
	BreakerCooldown time.Duration // default 30s
	// PollInterval is how often the dispatcher looks at the time without a signal (default 1s).
	PollInterval time.Duration
}

func (c *Config) defaults() {
	for _, d := range []struct {
		dst *int
		v   int
	}{{&c.Workers, 4}, {&c.PerEndpoint, 2}, {&c.BreakerFailures, 5}} {
		if *d.dst <= 0 {
			*d.dst = d.v
		}
	}
	for _, d := range []struct {
		dst *time.Duration
		v   time.Duration
	}{{&c.Timeout, 10 * time.Second}, {&c.BackoffBase, 5 * time.Second}, {&c.BackoffMax, 4 * time.Hour}, {&c.MaxAge, 72 * time.Hour},
		{&c.BreakerCooldown, 30 * time.Second}, {&c.PollInterval, time.Second}} {
		if *d.dst <= 0 {
			*d.dst = d.v
		}
	}
}

// maxCooldown bounds an open circuit breaker's wait.
const maxCooldown = 10 * time.Minute

// Option configures New.
type Option func(*Webhooks)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(w *Webhooks) { w.log = l } }

// WithRegisterer registers the metrics on r.
func WithRegisterer(r prometheus.Registerer) Option { return func(w *Webhooks) { w.reg = r } }

// WithClock sets the clock of the schedule (tests); attempts' latencies are measured on the
// real one.
func WithClock(now func() time.Time) Option { return func(w *Webhooks) { w.now = now } }

// WithJitter sets how a retry's wait is drawn from [0, n) (default rand.Int64N); tests
// take the top of the range to see the schedule.
func WithJitter(randN func(n int64) int64) Option { return func(w *Webhooks) { w.randN = randN } }

// UserAgent is the User-Agent of every delivery.
const UserAgent = "trackline-webhooks/1"

// Webhooks delivers the outbox's messages to the customers' endpoints.
type Webhooks struct {
	cfg    Config
	db     Store
	log    *slog.Logger
	reg    prometheus.Registerer
	now    func() time.Time
	randN  func(int64) int64
	guard  *Guard
	client *http.Client
	tr     *http.Transport
	m      *metrics
	wake   chan struct{} // an attempt ended or its outcome was committed

	mu        sync.Mutex
	endpoints map[store.EndpointRef]*endpoint
	list      []*endpoint // the endpoints in a fixed order, dispatched from rr on
	rr        int
	gen       uint64 // the EndpointsVersion the endpoints were read at
	loaded    bool
	busy      int // attempts in flight
	running   bool
	closed    bool
	cancel    context.CancelFunc
	done      chan struct{} // closed when Run returns
}

// endpoint is an endpoint with what the dispatcher knows of it.
type endpoint struct {
	ref      store.EndpointRef
	ep       store.Endpoint
	keys     [][]byte // the secrets' bytes: current, then the previous one
	active   int      // attempts in flight
	inflight map[string]bool
	dirty    bool      // may have deliveries due that no scan has seen
	next     time.Time // when its next known delivery is due (zero: none known)
	// The circuit breaker: consecutive failures, and while open, until when.
	failures  int
	cooldown  time.Duration
	openUntil time.Time
}

// New makes the delivery workers of db's outbox; Run starts them.
func New(db Store, cfg Config, opts ...Option) (*Webhooks, error) {
	cfg.defaults()
	// On PostgreSQL a node's claim of a delivery lasts three attempts' timeouts (30 s by
	// default): an attempt in flight and the write of its outcome, with room to spare. A
	// node killed with claims leaves those deliveries to the other nodes that long.
	if c, ok := db.(interface{ SetWebhookClaim(time.Duration) }); ok {
		c.SetWebhookClaim(3 * cfg.Timeout)
	}
	w := &Webhooks{cfg: cfg, db: db, log: slog.New(slog.DiscardHandler), now: time.Now, randN: rand.Int64N, guard: NewGuard(cfg.AllowCIDRs),
		wake: make(chan struct{}, 1), endpoints: map[store.EndpointRef]*endpoint{}, done: make(chan struct{})}
	for _, o := range opts {
		o(w)
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: w.guard.control}
	w.tr = &http.Transport{
		Proxy:                 nil, // a proxy would connect where the guard cannot look
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   cfg.PerEndpoint,
		IdleConnTimeout:       90 * time.Second,
	}
	w.client = &http.Client{
		Transport: w.tr,
		Timeout:   cfg.Timeout,
		// Redirects are not followed: a 3xx is an answer that is not 2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	w.m = newMetrics(w)
	if w.reg != nil {
		for _, c := range w.m.collectors() {
			if err := w.reg.Register(c); err != nil {
				return nil, fmt.Errorf("register webhook metrics: %w", err)
			}
		}
	}
	return w, nil
}

// job is one attempt for a worker.
type job struct {
	e    *endpoint
	url  string
	keys [][]byte
	d    store.DueDelivery
}

// outcome is what a worker hands the recorder: an attempt's result, to be written.
type outcome struct {
	e   *endpoint
	res store.DeliveryResult
}

// The recorder writes the outcomes that arrive within outcomeDelay of the first one, at most
// outcomeBatch, as one write: at thousands of deliveries a second they would otherwise come
// one by one to an idle committer, each with a commit (and its fsync) of its own.
const (
	outcomeDelay = 2 * time.Millisecond
	outcomeBatch = 256
)

// Run delivers until ctx ends or Close is called. It returns ErrRunning if it runs already
// or Close was called.
func (w *Webhooks) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running || w.closed {
		w.mu.Unlock()
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	w.running, w.cancel = true, cancel
	w.mu.Unlock()
	defer close(w.done)
	defer cancel()

	jobs := make(chan job, w.cfg.Workers) // never more than Workers queued or in flight (busy)
	outcomes := make(chan outcome, 1024)
	var workers sync.WaitGroup
	for range w.cfg.Workers {
		workers.Go(func() { w.worker(ctx, jobs, outcomes) })
	}
	recorded := make(chan struct{})
	go func() { w.record(outcomes); close(recorded) }()

	w.dispatch(ctx, jobs)
	close(jobs)
	workers.Wait()
	close(outcomes)
	<-recorded
	w.tr.CloseIdleConnections()
	return nil
}

// Close stops Run and waits for it; attempts in flight are cancelled and made again after a
// restart. It is idempotent and works whether Run was called or not.
func (w *Webhooks) Close() error {
	w.mu.Lock()
	running := w.running
	w.closed = true
	if w.cancel != nil {
		w.cancel()
	}
	w.mu.Unlock()
	if running {
		<-w.done
	}
	w.tr.CloseIdleConnections()
	return nil
}

// dispatch hands due deliveries to the workers until ctx ends. It reads the endpoints again
// when they changed, looks at an endpoint when a commit made a delivery of it due, when one
// of its attempts ended, and when its next delivery's time comes; and at all of them every
// 30 polls (a safety net: nothing should be missed without it).
func (w *Webhooks) dispatch(ctx context.Context, jobs chan<- job) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	polls := 0
	for {
		if w.db.EndpointsVersion() != w.gen || !w.loaded {
			if err := w.reload(ctx); err != nil {
				w.log.Error("read webhook endpoints", "err", err)
			}
		}
		w.markDue(w.db.TakeDueEndpoints(), polls%30 == 0)
		polls++
		wait := w.round(ctx, jobs)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.db.OutboxSignal():
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// reload reads the endpoints, keeping what the dispatcher knows of those it knew; it fails
// the pending deliveries of disabled endpoints.
func (w *Webhooks) reload(ctx context.Context) error {
	gen := w.db.EndpointsVersion() // before the read: a change during it reads again
	eps, err := w.db.AllEndpoints()
	if err != nil {
		return err
	}
	var disabled []store.EndpointRef
	w.mu.Lock()
	next := make(map[store.EndpointRef]*endpoint, len(eps))
	list := make([]*endpoint, 0, len(eps))
	for _, ep := range eps {
		ref := store.EndpointRef{CustomerID: ep.CustomerID, EndpointID: ep.ID}
		e := w.endpoints[ref]
		if e == nil {
			e = &endpoint{ref: ref, inflight: map[string]bool{}}
		}
		e.ep, e.keys, e.dirty = ep, nil, true
		for _, s := range []string{ep.Secret, ep.PreviousSecret} {
			if k, err := store.SecretBytes(s); err == nil {
				e.keys = append(e.keys, k)
			}
		}
		if ep.Disabled && !ep.Deleting {
			disabled = append(disabled, ref)
		}
		next[ref] = e
		list = append(list, e)
	}
	w.endpoints, w.list, w.gen, w.loaded = next, list, gen, true
	w.mu.Unlock()
	for _, ref := range disabled {
		n, err := w.db.FailPending(ctx, ref.CustomerID, ref.EndpointID, "endpoint disabled")
		if err != nil {
			return err
		}
		if n > 0 {
			w.log.Info("failed the pending webhook deliveries of a disabled endpoint", "customer", ref.CustomerID, "endpoint", ref.EndpointID, "deliveries", n)
		}
	}
	return nil
}

// markDue marks the endpoints (or with all, every endpoint) as having deliveries due.
func (w *Webhooks) markDue(refs []store.EndpointRef, all bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range refs {
		if e := w.endpoints[r]; e != nil {
			e.dirty = true
		}
	}
	if all {
		for _, e := range w.list {
			e.dirty = true
		}
	}
}

// round hands the workers what is due of each endpoint that may have something due and a
// free slot, and answers how long until the next known delivery or breaker is due.
func (w *Webhooks) round(ctx context.Context, jobs chan<- job) time.Duration {
	now := w.now()
	wait := w.cfg.PollInterval
	later := func(t time.Time) {
		if d := t.Sub(now); d > 0 && d < wait {
			wait = d
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.list)
	w.rr++
	for i := range n {
		if w.busy >= w.cfg.Workers || ctx.Err() != nil {
			break
		}
		e := w.list[(w.rr+i)%n]
		if !e.ep.Enabled() || len(e.keys) == 0 {
			continue
		}
		if e.openUntil.After(now) {
			later(e.openUntil)
			continue
		}
		if !e.dirty && (e.next.IsZero() || e.next.After(now)) {
			if !e.next.IsZero() {
				later(e.next)
			}
			continue
		}
		limit := w.cfg.PerEndpoint - e.active
		probe := e.failures >= w.cfg.BreakerFailures // half open: one attempt probes it
		if probe {
			limit = min(limit, 1-e.active)
		}
		limit = min(limit, w.cfg.Workers-w.busy)
		if limit <= 0 {
			continue // an attempt of it ends first, and wakes the dispatcher
		}
		due, next, err := w.db.DueDeliveries(e.ref.CustomerID, e.ref.EndpointID, now, limit, func(id string) bool { return e.inflight[id] })
		if err != nil {
			w.log.Error("read due webhook deliveries", "customer", e.ref.CustomerID, "endpoint", e.ref.EndpointID, "err", err)
			e.dirty, e.next = false, now.Add(w.cfg.PollInterval)
			continue
		}
		e.dirty, e.next = false, next
		if !next.IsZero() {
			later(next)
		}
		for _, d := range due {
			e.inflight[d.ID] = true
			e.active++
			w.busy++
			jobs <- job{e: e, url: e.ep.URL, keys: e.signingKeys(now), d: d}
		}
	}
	return wait
}

// signingKeys are the keys that sign at now: the previous secret's only while its overlap
// lasts.
func (e *endpoint) signingKeys(now time.Time) [][]byte {
	if len(e.keys) > 1 && !now.Before(e.ep.PreviousExpires) {
		return e.keys[:1]
	}
	return e.keys
}

// worker makes the attempts of jobs until jobs is closed, and queues each outcome's write.
func (w *Webhooks) worker(ctx context.Context, jobs <-chan job, outcomes chan<- outcome) {
	for j := range jobs {
		res, label := w.attempt(ctx, &j)
		if label == "" { // cancelled by Close: made again after the restart
			w.finish(&j, nil, "")
			w.release(j.e, j.d.ID)
			continue
		}
		w.m.attempts.WithLabelValues(label).Inc()
		if res.Outcome == store.OutcomeFailed {
			w.m.gaveUp.Inc()
			w.log.Warn("webhook delivery given up", "customer", j.e.ref.CustomerID, "endpoint", j.e.ref.EndpointID,
				"message", j.d.ID, "attempts", j.d.Attempts+1)
		}
		w.finish(&j, &res, label)
		outcomes <- outcome{e: j.e, res: res}
	}
}

// record writes the outcomes in batches (outcomeDelay, outcomeBatch), in the order they came,
// waits for each batch's commit, and then lets the dispatcher see their deliveries again. It
// returns when outcomes is closed and what came is written.
func (w *Webhooks) record(outcomes <-chan outcome) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []outcome
	for o := range outcomes {
		batch = append(batch[:0], o)
		timer.Reset(outcomeDelay)
	fill:
		for len(batch) < outcomeBatch {
			select {
			case o, ok := <-outcomes:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		results := make([]store.DeliveryResult, len(batch))
		for i := range batch {
			results[i] = batch[i].res
		}
		pend, err := w.db.Enqueue(context.Background(), func(tx *store.Tx) error {
			for i := range results {
				if err := tx.RecordDelivery(&results[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = pend.Wait()
		}
		if err != nil {
			w.log.Error("record webhook attempts", "attempts", len(batch), "err", err)
		}
		for _, o := range batch {
			w.release(o.e, o.res.MessageID)
		}
	}
}

// release lets the dispatcher see a delivery again.
func (w *Webhooks) release(e *endpoint, id string) {
	w.mu.Lock()
	delete(e.inflight, id)
	w.mu.Unlock()
	w.poke()
}

func (w *Webhooks) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// finish frees an attempt's slots and feeds its result to the endpoint's breaker; res is nil
// for an attempt cancelled by Close.
func (w *Webhooks) finish(j *job, res *store.DeliveryResult, label string) {
	w.mu.Lock()
	e := j.e
	e.active--
	w.busy--
	if res != nil {
		switch label {
		case outcomeGone:
			// Disabled by the outcome's write: nothing more is sent meanwhile.
			e.ep.Disabled, e.ep.DisabledReason = true, "gone"
			e.failures, e.cooldown, e.openUntil = 0, 0, time.Time{}
		case outcomeDelivered:
			e.failures, e.cooldown, e.openUntil = 0, 0, time.Time{}
		default:
			e.failures++
			if e.failures >= w.cfg.BreakerFailures {
				e.cooldown = min(max(2*e.cooldown, w.cfg.BreakerCooldown), max(maxCooldown, w.cfg.BreakerCooldown))
				e.openUntil = w.now().Add(e.cooldown)
				w.log.Warn("webhook endpoint failing: held back", "customer", e.ref.CustomerID, "endpoint", e.ref.EndpointID,
					"failures", e.failures, "for", e.cooldown)
			}
		}
		if res.Outcome == store.OutcomeRetry && (e.next.IsZero() || res.Next.Before(e.next)) {
			e.next = res.Next
		}
	}
	w.mu.Unlock()
	w.poke()
}

// attempt delivers one message and answers the result to record and the outcome's label
// ("" when ctx ended: the attempt is not recorded).
func (w *Webhooks) attempt(ctx context.Context, j *job) (store.DeliveryResult, string) {
	d := &j.d
	now := w.now()
	res := store.DeliveryResult{CustomerID: j.e.ref.CustomerID, EndpointID: j.e.ref.EndpointID, MessageID: d.ID, Scheduled: d.Scheduled,
		Attempt: store.Attempt{Time: now.UTC()}}
	actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, j.url, bytes.NewReader(d.Payload))
	label := ""
	var status int
	var retryAfter string // a 429's or 503's Retry-After
	start := time.Now()
	if err == nil {
		// Standard Webhooks' header names, as the specification writes them.
		req.Header["Content-Type"] = []string{"application/json"}
		req.Header["User-Agent"] = []string{UserAgent}
		req.Header[HeaderID] = []string{d.ID}
		req.Header[HeaderTimestamp] = []string{strconv.FormatInt(now.Unix(), 10)}
		req.Header[HeaderSignature] = []string{Sign(j.keys, d.ID, now.Unix(), d.Payload)}
		var resp *http.Response
		resp, err = w.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so that the connection is reused
			resp.Body.Close()
			status = resp.StatusCode
			if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
				retryAfter = resp.Header.Get("Retry-After")
			}
		}
	}
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return res, ""
	}
	// The wait a Retry-After asks for counts from the answer; the schedule's from the
	// attempt's start (now).
	wait := RetryAfter(retryAfter, now.Add(elapsed))
	var after time.Duration
	if wait > 0 {
		after = elapsed + wait
	}
	w.m.duration.Observe(elapsed.Seconds())
	res.Attempt.LatencyMS = float64(elapsed.Microseconds()) / 1000
	res.Attempt.Status = status
	var ne net.Error
	switch {
	case err == nil && status >= 200 && status < 300:
		res.Outcome, label = store.OutcomeDelivered, outcomeDelivered
		return res, label
	case err == nil && status == http.StatusGone:
		res.Outcome, label = store.OutcomeGone, outcomeGone
		res.Attempt.Error = "410 Gone: the endpoint is disabled"
		return res, label
	case err == nil:
		label = outcomeStatus
		res.Attempt.Error = textutil.Clip(strconv.Itoa(status)+" "+http.StatusText(status), 100)
		if wait > 0 {
			res.Attempt.Error += " (Retry-After " + wait.String() + ")"
		}
	case errors.Is(err, ErrForbiddenAddress):
		label = outcomeRefused
		var ae *AddressError
		if errors.As(err, &ae) {
			res.Attempt.Error = "refused: " + ae.Addr.String() + " is not a public address"
		} else {
			res.Attempt.Error = "refused: not a public address"
		}
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		label = outcomeTimeout
		res.Attempt.Error = "timeout after " + w.cfg.Timeout.String()
	default:
		label = outcomeConnection
		res.Attempt.Error = textutil.Clip(errText(err), 200)
	}
	res.Outcome, res.Next = w.retry(now, d, after)
	return res, label
}

// errText is an attempt's error without the URL that net/http puts in front.
func errText(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner.Error()
		}
	}
	return err.Error()
}

// retry answers when a failed delivery is tried again, or OutcomeFailed once its message is
// MaxAge old: after the schedule's wait, or after the wait the receiver asked for (after,
// its Retry-After) if that is longer; never after the message is MaxAge old.
func (w *Webhooks) retry(now time.Time, d *store.DueDelivery, after time.Duration) (store.DeliveryOutcome, time.Time) {
	deadline := d.Created.Add(w.cfg.MaxAge)
	if !now.Before(deadline) {
		return store.OutcomeFailed, time.Time{}
	}
	next := now.Add(max(Backoff(w.cfg.BackoffBase, w.cfg.BackoffMax, d.Attempts+1, w.randN), after))
	if next.After(deadline) {
		next = deadline
	}
	return store.OutcomeRetry, next
}

// maxRetryAfter bounds the wait a Retry-After asks for (the message's MaxAge bounds it too).
const maxRetryAfter = 72 * time.Hour

// RetryAfter reads a Retry-After header (RFC 9110 10.2.3: a number of seconds, or an
// HTTP-date) as the wait from now it asks for; 0 when there is none, it cannot be read or
// it has passed. It is at most 72 hours.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return 0
			}
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(at.Sub(now), 0), maxRetryAfter)
}

// Backoff is the wait after the n-th failed attempt (n ≥ 1): a random time from 0 to
// min(max, base·2^(n-1)) (full jitter), drawn by randN (rand.Int64N).
func Backoff(base, maxWait time.Duration, n int, randN func(int64) int64) time.Duration {
	ceiling := maxWait
	if n < 1 {
		n = 1
	}
	if n-1 < 62 && base <= maxWait>>(n-1) {
		ceiling = base << (n - 1)
	}
	return time.Duration(randN(int64(ceiling) + 1))
}

// counts answers how many endpoints are disabled and how many have their breaker open.
func (w *Webhooks) counts() (disabled, open int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	for _, e := range w.list {
		if e.ep.Disabled {
			disabled++
		}
		if e.openUntil.After(now) {
			open++
		}
	}
	return disabled, open
}
