package app

import (
	"bytes"
	"embed"
	"encoding/base32"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/trackline/trackline/store"
)

//go:embed templates
var templateFS embed.FS

// b32 is the TOTP secrets' encoding.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// parsePages parses each page with the layout it renders in.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"date":     func(t time.Time) string { return fmtTime(t, "2006-01-02") },
		"datetime": func(t time.Time) string { return fmtTime(t, "2006-01-02 15:04") },
		"clock":    func(t time.Time) string { return fmtTime(t, "15:04:05") },
		"seconds":  fmtSeconds,
		"money":    func(v float64) string { return fmt.Sprintf("%.2f", v) },
		"pct":      func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) },
		"join":     strings.Join,
		"hasLead":  func(ls []store.LeadStatus, l store.LeadStatus) bool { return slices.Contains(ls, l) },
		"lastAttempt": func(as []store.Attempt) *store.Attempt {
			if len(as) == 0 {
				return nil
			}
			return &as[len(as)-1]
		},
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

func fmtTime(t time.Time, layout string) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(layout)
}

// fmtSeconds shows a duration as m:ss (h:mm:ss from an hour).
func fmtSeconds(s float64) string {
	if s <= 0 || math.IsNaN(s) {
		return "0:00"
	}
	n := int(s + 0.5)
	if n >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", n/3600, n/60%60, n%60)
	}
	return fmt.Sprintf("%d:%02d", n/60, n%60)
}

// view is what every page's template gets besides its own data.
type view struct {
	T        map[string]string // the messages in the page's language
	Lang     string
	User     *userView
	Customer *customerView
	CSRF     string
	Nav      string // the current section, for aria-current
	Data     map[string]any
}

type userView struct {
	ID, Email, Role string
	Operator, Admin bool
}

type customerView struct{ ID, Name string }

// render executes a page into w with status. Pages of a logged-in user go through page.
func (a *App) render(w http.ResponseWriter, r *http.Request, status int, name, lang string, data map[string]any) {
	a.write(w, status, name, view{T: messages[lang], Lang: lang, Data: data})
}

// page renders a logged-in user's page.
func (a *App) page(w http.ResponseWriter, q *request, name string, data map[string]any) error {
	return a.pageStatus(w, q, http.StatusOK, name, data)
}

// pageStatus renders a page with a status other than 200 (a form sent back with its error).
func (a *App) pageStatus(w http.ResponseWriter, q *request, status int, name string, data map[string]any) error {
	v := view{T: messages[q.lang], Lang: q.lang, CSRF: q.session.CSRF, Nav: name, Data: data,
		User: &userView{ID: q.user.ID, Email: q.user.Email, Role: string(q.user.Role), Operator: q.user.Role == "operator", Admin: q.isAdmin()}}
	if q.customer.ID != "" {
		v.Customer = &customerView{ID: q.customer.ID, Name: q.customer.Name}
	}
	a.write(w, status, name, v)
	return nil
}

func (a *App) write(w http.ResponseWriter, status int, name string, v view) {
	t := a.pages[name]
	if t == nil {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		a.log.Error("render page", "page", name, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "private, no-store")
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fragment renders one named template of a page (an htmx partial) without the layout.
func (a *App) fragment(w http.ResponseWriter, q *request, page, block string, data map[string]any) error {
	t := a.pages[page]
	v := view{T: messages[q.lang], Lang: q.lang, CSRF: q.session.CSRF, Data: data}
	if q.customer.ID != "" {
		v.Customer = &customerView{ID: q.customer.ID, Name: q.customer.Name}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "private, no-store")
	w.Write(buf.Bytes())
	return nil
}
