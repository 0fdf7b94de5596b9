package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// openRecording opens a recording for the player, from this node's disk or the object
// store; a recording or key that is gone answers 410.
func (a *App) openRecording(ctx context.Context, rec store.Recording) (*recordings.Reader, error) {
	rd, err := recordings.Files{Dir: a.recDir, Keys: a.keys, Objects: a.objects}.Open(ctx, rec)
	if errors.Is(err, recordings.ErrGone) {
		return nil, &pageError{status: http.StatusGone, msg: "the recording is gone"}
	}
	if errors.Is(err, recordings.ErrUnavailable) {
		a.log.Error("read a recording from the object store", "recording", rec.ID, "err", err)
		return nil, &pageError{status: http.StatusServiceUnavailable, msg: "the recording cannot be read now; try again later"}
	}
	return rd, err
}

// settingsPage shows what a customer sets for itself: business lines, ring timeout,
// recording and its consent, how numbers are shown, the sites that may show them, and the
// snippet for its pages.
func (a *App) settingsPage(w http.ResponseWriter, q *request) error {
	return a.page(w, q, "settings", a.settingsData(q, q.customer, ""))
}

func (a *App) settingsData(q *request, c store.Customer, errMsg string) map[string]any {
	base := strings.TrimSuffix(a.cfg.PublicURL, "/")
	if base == "" {
		base = "https://track.example.com"
	}
	snippet := fmt.Sprintf(`<script src="%s/v1/script.js" data-site-key="%s" defer></script>`, base, c.SiteKey)
	return map[string]any{"C": c, "Lines": strings.Join(c.BusinessLines, "\n"), "Origins": strings.Join(c.AllowedOrigins, "\n"),
		"RingSeconds": int(c.RingTimeout.Seconds()), "Snippet": snippet, "Error": errMsg, "Saved": q.r.URL.Query().Get("saved") != "",
		"Formats": []string{"national", "e164", "international"}, "PromptKinds": []string{"disclaimer", "whisper"},
		"Prompts": map[string]string{"disclaimer": a.promptState(c.ID, c.Prompts.Disclaimer), "whisper": a.promptState(c.ID, c.Prompts.Whisper)}}
}

// promptState says what a prompt setting is: "" (none), "default" (the built-in one),
// "uploaded" (a file this app keeps, which the page plays) or "file" (a path the config set).
func (a *App) promptState(customerID, path string) string {
	switch {
	case path == "" || path == "default":
		return path
	case a.promptDir != "" && strings.HasPrefix(path, filepath.Join(a.promptDir, customerID)+string(filepath.Separator)):
		return "uploaded"
	}
	return "file"
}

// saveSettings applies the settings form (admins only), validated by the pool's rules as the
// admin API's PATCH is; they take effect on the next call.
func (a *App) saveSettings(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin changes the settings")
	}
	f := q.r.PostForm
	lines := splitLines(f.Get("business_lines"))
	origins := splitLines(f.Get("allowed_origins"))
	var ring time.Duration
	if v := strings.TrimSpace(f.Get("ring_timeout")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 600 {
			return a.settingsError(w, q, "ring timeout: 1 to 600 seconds")
		}
		ring = time.Duration(n) * time.Second
	}
	format := f.Get("display_format")
	record, consent := f.Get("record") == "on", f.Get("consent") == "on"
	e := store.AuditEntry{Time: a.now(), Actor: q.actor(), Action: "customer.update", CustomerID: q.customer.ID}
	_, err := a.pool.UpdateCustomer(q.r.Context(), q.customer.ID, func(c *store.Customer) {
		c.BusinessLines, c.AllowedOrigins, c.RingTimeout, c.DisplayFormat = lines, origins, ring, format
		c.Recording.Enabled = record
		if c.Recording.ProfessionalSecrecy {
			c.Recording.ConsentConfirmed = consent
		}
	})
	var inv *pool.InvalidError
	if errors.As(err, &inv) {
		return a.settingsError(w, q, inv.Error())
	}
	if err != nil {
		return err
	}
	if err := a.db.Audit(q.r.Context(), e); err != nil {
		return err
	}
	http.Redirect(w, q.r, "/c/"+url.PathEscape(q.customer.ID)+"/settings?saved=1", http.StatusSeeOther)
	return nil
}

// settingsError shows the form again as it was sent, with what was wrong.
func (a *App) settingsError(w http.ResponseWriter, q *request, m string) error {
	c := q.customer
	f := q.r.PostForm
	c.BusinessLines, c.AllowedOrigins, c.DisplayFormat = splitLines(f.Get("business_lines")), splitLines(f.Get("allowed_origins")), f.Get("display_format")
	c.Recording.Enabled = f.Get("record") == "on"
	data := a.settingsData(q, c, m)
	data["Saved"] = false
	w.WriteHeader(http.StatusBadRequest)
	return a.page(w, q, "settings", data)
}

// splitLines is the non-empty trimmed lines of a textarea.
func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
