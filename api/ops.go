package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/trackline/trackline/store"
)

// Operations endpoints: readiness (/readyz), the hot backup of the store (GET /v1/backup),
// the runtime log level (GET and PUT /v1/log-level) and the SIP drain (GET and PUT /v1/drain).

// Check is one readiness check: Fn returns nil when the part named Name is ready, else why
// not. It gets a context bounded by checkTimeout.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Backuper writes a consistent copy of the store to w and calls size with its length before
// the first byte; *store.DB is one.
type Backuper interface {
	Backup(w io.Writer, size func(int64)) (int64, error)
}

const (
	checkTimeout = 2 * time.Second
	// backupTimeout bounds how long a backup may take to send: the copy holds a read
	// transaction open meanwhile (see store.DB.Backup). It lifts the admin listener's write
	// timeout for this one response.
	backupTimeout = 30 * time.Minute
)

// WithReadiness sets the checks of /readyz. Without any, /readyz answers like /healthz.
func WithReadiness(checks ...Check) Option { return func(a *API) { a.checks = checks } }

// WithBackup serves a hot backup of b at GET /v1/backup on the admin API.
func WithBackup(b Backuper) Option { return func(a *API) { a.backup = b } }

// Drainer is the SIP switch's operator drain (*sip.Switch): SetDraining starts or lifts it and
// reports the state afterwards (a shutdown drain cannot be lifted).
type Drainer interface {
	SetDraining(on bool) bool
	Draining() bool
}

// WithDrain lets the admin API read and set d's drain (GET and PUT /v1/drain), as SIGUSR1
// and SIGUSR2 do (docs/cluster.md).
func WithDrain(d Drainer) Option { return func(a *API) { a.drain = d } }

// WithLogLevel lets the admin API read and change lv (GET and PUT /v1/log-level).
func WithLogLevel(lv *slog.LevelVar) Option { return func(a *API) { a.level = lv } }

// checkResult is one check in the answer of /readyz.
type checkResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Ready is the /readyz handler with details, for a listener other than the API's (metrics).
func (a *API) Ready() http.Handler {
	mux := http.NewServeMux()
	a.route(mux, "GET /readyz", a.readyz(true))
	return mux
}

// readyz answers 200 when every check passes and 503 otherwise, with each check's outcome.
// With detail false (the public listener) the reasons are left out: they name paths.
func (a *API) readyz(detail bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		res := make([]checkResult, 0, len(a.checks))
		ready := true
		for _, c := range a.checks {
			ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
			err := c.Fn(ctx)
			cancel()
			cr := checkResult{Name: c.Name, OK: err == nil}
			if err != nil {
				ready = false
				if detail {
					cr.Error = err.Error()
				}
			}
			res = append(res, cr)
		}
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]any{"ready": ready, "checks": res})
		return nil
	}
}

// getBackup streams a consistent copy of the store: the file to restore from.
func (a *API) getBackup(w http.ResponseWriter, r *http.Request) error {
	if a.backup == nil {
		return errStatus(http.StatusServiceUnavailable, "", "backup is not available")
	}
	// A copy of the store is every customer's personal data.
	if err := a.audit(r, "backup.read", ""); err != nil {
		return err
	}
	start := a.now()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(start.Add(backupTimeout)) // an error: the listener has none
	announced := false
	n, err := a.backup.Backup(w, func(size int64) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="trackline-%s.db"`, start.UTC().Format("20060102T150405Z")))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		announced = true
	})
	if errors.Is(err, store.ErrExternalBackup) {
		// On PostgreSQL: the database is backed up with PostgreSQL's tools.
		return errStatus(http.StatusNotImplemented, "", err.Error())
	}
	if err != nil && !announced {
		return err
	}
	if err != nil {
		// The status is out: cut the connection so the client sees a short body.
		a.log.Error("store backup failed", "bytes", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	// Reading the whole store reads personal data: say so in the log, once.
	a.log.Info("store backup sent", "bytes", n, "duration_ms", a.now().Sub(start).Milliseconds())
	return nil
}

type logLevelBody struct {
	Level string `json:"level"`
}

func (a *API) getLogLevel(w http.ResponseWriter, r *http.Request) error {
	if a.level == nil {
		return errStatus(http.StatusServiceUnavailable, "", "the log level is fixed")
	}
	writeJSON(w, http.StatusOK, logLevelBody{Level: a.level.Level().String()})
	return nil
}

// putLogLevel sets the level: debug, info, warn or error (slog's names, any case).
func (a *API) putLogLevel(w http.ResponseWriter, r *http.Request) error {
	if a.level == nil {
		return errStatus(http.StatusServiceUnavailable, "", "the log level is fixed")
	}
	var b logLevelBody
	if err := decodeBody(w, r, 1<<10, &b, false); err != nil {
		return err
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(b.Level)); err != nil || b.Level == "" {
		return errStatus(http.StatusBadRequest, "level", "level: want debug, info, warn or error")
	}
	old := a.level.Level()
	a.level.Set(l)
	// Logged at a level both the old and the new setting show.
	a.log.Log(r.Context(), max(old, l, slog.LevelInfo), "log level changed", "from", old.String(), "to", l.String(), "by", "admin api")
	writeJSON(w, http.StatusOK, logLevelBody{Level: l.String()})
	return nil
}

type drainBody struct {
	Draining *bool `json:"draining"`
}

func (a *API) getDrain(w http.ResponseWriter, r *http.Request) error {
	if a.drain == nil {
		return errStatus(http.StatusServiceUnavailable, "", "this node has no SIP switch to drain")
	}
	on := a.drain.Draining()
	writeJSON(w, http.StatusOK, drainBody{Draining: &on})
	return nil
}

// putDrain starts ({"draining": true}) or lifts ({"draining": false}) the SIP drain: new
// INVITEs and the dispatcher's OPTIONS get 503 while calls in progress go on. Lifting a
// shutdown drain is refused with 409.
func (a *API) putDrain(w http.ResponseWriter, r *http.Request) error {
	if a.drain == nil {
		return errStatus(http.StatusServiceUnavailable, "", "this node has no SIP switch to drain")
	}
	var b drainBody
	if err := decodeBody(w, r, 1<<10, &b, false); err != nil {
		return err
	}
	if b.Draining == nil {
		return errStatus(http.StatusBadRequest, "draining", "draining: want true or false")
	}
	want := *b.Draining
	if err := a.audit(r, "sip.drain", ""); err != nil {
		return err
	}
	got := a.drain.SetDraining(want)
	if got != want {
		return errStatus(http.StatusConflict, "draining", "the node is shutting down: its drain cannot be lifted")
	}
	a.log.Info("sip drain changed", "draining", got, "by", "admin api")
	writeJSON(w, http.StatusOK, drainBody{Draining: &got})
	return nil
}
