package app

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// The channel rule editor: a channel's rules as lines of "parameter pattern", with a preview
// of what the draft would match among the customer's latest 1,000 visits, before it is saved.

const previewSessions = 1000

// channelOf reads the customer's channel of the URL.
func (a *App) channelOf(q *request) ([]store.Channel, store.Channel, error) {
	chs, err := a.pool.Channels(q.customer.ID)
	if err != nil {
		return nil, store.Channel{}, err
	}
	id := q.r.PathValue("ch")
	for _, c := range chs {
		if c.ID == id {
			return chs, c, nil
		}
	}
	return nil, store.Channel{}, errNotFound
}

// parseRules reads the editor's lines; each is a parameter and a pattern.
func parseRules(text string) ([]store.ChannelRule, string) {
	var out []store.ChannelRule
	for i, l := range splitLines(text) {
		param, pattern, ok := strings.Cut(l, " ")
		pattern = strings.TrimSpace(pattern)
		if !ok || pattern == "" {
			return nil, "line " + itoa(i+1) + ": a parameter, a space, then a pattern"
		}
		if !pool.ValidRuleParam(param) {
			return nil, "line " + itoa(i+1) + ": unknown parameter " + param
		}
		if len(pattern) > 256 {
			return nil, "line " + itoa(i+1) + ": the pattern is longer than 256 characters"
		}
		out = append(out, store.ChannelRule{Param: param, Pattern: pattern})
	}
	if len(out) > 50 {
		return nil, "at most 50 rules"
	}
	return out, ""
}

func itoa(n int) string { return strconv.Itoa(n) }

func rulesText(rs []store.ChannelRule) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Param + " " + r.Pattern + "\n")
	}
	return b.String()
}

// channelPage shows a channel's rules and, for a draft (?rules=...), what it would match.
func (a *App) channelPage(w http.ResponseWriter, q *request) error {
	chs, ch, err := a.channelOf(q)
	if err != nil {
		return err
	}
	text := rulesText(ch.Rules)
	if v, ok := q.r.URL.Query()["rules"]; ok {
		text = v[0]
	}
	return a.channelView(w, q, chs, ch, text, "")
}

func (a *App) channelView(w http.ResponseWriter, q *request, chs []store.Channel, ch store.Channel, text, errMsg string) error {
	data := map[string]any{"Channel": ch, "Rules": text, "Params": pool.RuleParams(), "Error": errMsg,
		"Saved": q.r.URL.Query().Get("saved") != ""}
	if errMsg == "" && len(text) <= 16<<10 {
		rules, perr := parseRules(text)
		if perr != "" {
			data["Error"] = perr
		} else {
			sessions, err := a.pool.Sessions(q.customer.ID, "", previewSessions)
			if err != nil {
				return err
			}
			if err := a.auditWrite(q, "sessions.read"); err != nil {
				return err
			}
			draft := ch
			draft.Rules = rules
			data["Preview"] = pool.PreviewRules(chs, draft, sessions)
			data["Sessions"] = len(sessions)
		}
	}
	if data["Error"] != "" {
		w.WriteHeader(http.StatusBadRequest)
	}
	return a.page(w, q, "channel", data)
}

// saveChannel stores a channel's rules (admins only), validated by the pool.
func (a *App) saveChannel(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin changes channel rules")
	}
	chs, ch, err := a.channelOf(q)
	if err != nil {
		return err
	}
	text := q.r.PostFormValue("rules")
	rules, perr := parseRules(text)
	if perr != "" {
		return a.channelView(w, q, chs, ch, text, perr)
	}
	ch.Rules = rules
	if _, err := a.pool.PutChannel(q.r.Context(), q.customer.ID, ch); err != nil {
		return err
	}
	a.auditAs(q.r.Context(), q.actor(), "channel.update", q.customer.ID, ch.ID)
	http.Redirect(w, q.r, "/c/"+url.PathEscape(q.customer.ID)+"/channels/"+url.PathEscape(ch.ID)+"?saved=1", http.StatusSeeOther)
	return nil
}
