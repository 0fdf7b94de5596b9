package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"github.com/trackline/trackline/g711"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The dashboard never shows a metric that does not exist: every metric name in a query of
// configs/grafana/*.json and configs/prometheus/*.rules.yml must be on the real binary's
// /metrics after a short run with calls and sessions.

// prometheusOwn are series Prometheus makes itself for every target, not the binary.
var prometheusOwn = map[string]bool{"up": true}

// promqlWords are PromQL's keywords and the names that may stand where a metric could:
// aggregation modifiers, binary operators, and the literals.
var promqlWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// metricNames extracts the metric names a PromQL expression selects. Strings, label
// matchers ({...}), ranges and subqueries ([...]) and the label lists of by/without/on/
// ignoring/group_left/group_right are dropped; what is left that reads as a name and is not
// a function call or keyword is a metric. Grafana's label_values(metric, label) counts its
// first argument. Good enough for the expressions we write; promtool checks the syntax.
func metricNames(expr string) []string {
	var b strings.Builder
	// Strings and comments out.
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch c {
		case '"', '\'', '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			i = j
			b.WriteByte(' ')
			continue
		case '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
			continue
		}
		b.WriteByte(c)
	}
	s := dropBracketed(b.String(), '{', '}')
	s = dropBracketed(s, '[', ']')

	var names []string
	toks := tokens(s)
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if !isName(t) {
			continue
		}
		lower := strings.ToLower(t)
		next := ""
		if i+1 < len(toks) {
			next = toks[i+1]
		}
		switch {
		case lower == "by" || lower == "without" || lower == "on" || lower == "ignoring" || lower == "group_left" || lower == "group_right":
			if next == "(" { // skip the label list
				for i++; i < len(toks) && toks[i] != ")"; i++ {
				}
			}
		case t == "label_values" && next == "(" && i+2 < len(toks) && isName(toks[i+2]) && i+3 < len(toks) && toks[i+3] == ",":
			names = append(names, toks[i+2])
			for i++; i < len(toks) && toks[i] != ")"; i++ {
			}
		case next == "(" || promqlWords[lower]:
			// a function or an aggregation, or a keyword
		case strings.EqualFold(next, "by") || strings.EqualFold(next, "without"):
			// an aggregation with its modifier first: sum by (le) (...)
		default:
			names = append(names, t)
		}
	}
	return names
}

// dropBracketed removes everything between open and close, brackets included.
func dropBracketed(s string, open, close byte) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == open:
			depth++
			b.WriteByte(' ')
		case s[i] == close && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// tokens splits s into names (with Grafana's $variables), numbers, and single punctuation.
func tokens(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isNameByte(c, true) || c == '$' || c >= '0' && c <= '9' || c == '.':
			j := i + 1
			for j < len(s) && (isNameByte(s[j], false) || s[j] == '.' || s[j] == '$') {
				j++
			}
			out = append(out, s[i:j])
			i = j
		default:
			out = append(out, string(c))
			i++
		}
	}
	return out
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

func isName(t string) bool {
	if t == "" || !isNameByte(t[0], true) {
		return false
	}
	for i := 1; i < len(t); i++ {
		if !isNameByte(t[i], false) {
			return false
		}
	}
	return true
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"selector", `trackline_calls_active`, []string{"trackline_calls_active"}},
		{"matchers and range", `rate(trackline_calls_total{disposition="answered",instance=~"$instance"}[$__rate_interval])`, []string{"trackline_calls_total"}},
		{"aggregation with by", `sum by (customer, disposition) (increase(trackline_customer_calls_total[1h]))`, []string{"trackline_customer_calls_total"}},
		{"by after", `sum(rate(x_total[5m])) by (le)`, []string{"x_total"}},
		{"histogram quantile", `histogram_quantile(0.95, sum by (le) (rate(trackline_call_setup_seconds_bucket{stage="provisional"}[10m]))) > 2`, []string{"trackline_call_setup_seconds_bucket"}},
		{"binary ops and on", `(sum by (job) (increase(a_total[15m])) or on (job, instance) (up{job="trackline"} == 1) * 0) == 0 and bool b`, []string{"a_total", "up", "b"}},
		{"string with braces", `count(foo{l="a}b"} offset 1h)`, []string{"foo"}},
		{"arithmetic", `time() - process_start_time_seconds > 5 * 1024 * 1024`, []string{"process_start_time_seconds"}},
		{"grafana label_values", `label_values(trackline_numbers, customer)`, []string{"trackline_numbers"}},
		{"subquery", `max_over_time(rate(c_total[1m])[1h:5m])`, []string{"c_total"}},
		{"group_left labels", `a * on (instance) group_left (version) trackline_build_info`, []string{"a", "trackline_build_info"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

// queryFile is one file of queries and the queries in it.
type queryFile struct {
	path    string
	queries []string
}

// dashboardQueries are the targets' exprs and the template variables' queries of a
// Grafana dashboard, rows' nested panels included.
func dashboardQueries(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			if v["type"] == "datasource" { // the data source variable: its query is a plugin type
				return
			}
			for k, x := range v {
				walk(x, k)
			}
		case []any:
			for _, x := range v {
				walk(x, key)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				out = append(out, v)
			}
		}
	}
	walk(d, "")
	return out
}

// ruleQueries are the exprs of a Prometheus rules file.
func ruleQueries(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// opsQueryFiles loads every dashboard and alert-rule file under configs/.
func opsQueryFiles(t *testing.T) []queryFile {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var files []queryFile
	dash, _ := filepath.Glob(filepath.Join(root, "configs", "grafana", "*.json"))
	for _, p := range dash {
		files = append(files, queryFile{p, dashboardQueries(t, p)})
	}
	rules, _ := filepath.Glob(filepath.Join(root, "configs", "prometheus", "*.rules.yml"))
	for _, p := range rules {
		files = append(files, queryFile{p, ruleQueries(t, p)})
	}
	if len(dash) == 0 || len(rules) == 0 {
		t.Fatalf("want dashboards and rules under configs/: %d dashboards, %d rule files", len(dash), len(rules))
	}
	for _, f := range files {
		if len(f.queries) == 0 {
			t.Errorf("%s: no query found", f.path)
		}
	}
	return files
}

// exportedNames are the sample names on a /metrics page (text format).
func exportedNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+addr+"/metrics", "", nil, nil)
	if err != nil || resp.Status != 200 {
		t.Fatalf("GET /metrics: %v %d", err, resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(resp.Body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			names[l[:i]] = true
		}
	}
	return names
}

// TestDashboardMetricsExist runs the binary through sessions (an exhausted pool and a
// refused origin among them) and an answered sipp call, then checks every metric name the
// dashboards and alert rules query against its /metrics.
func TestDashboardMetricsExist(t *testing.T) {
	files := opsQueryFiles(t)

	// A recorded call with audio: the media and recording metrics have samples.
	audio := g711.Encode(nil, testSignal(8000, 4), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true,
		files: map[string][]byte{"callee.pcap": pcapOf(audio, 0xCA11EE)}})
	s := startServer(t, testConfig{poolSize: 2, businessLines: []string{businessLine("+31852087970", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true})
	// Three sessions on a pool of two: one exhaustion.
	var first sessionAnswer
	for i := range 3 {
		a := s.newSession(t, apiOrigin, map[string]string{"site_key": siteKey, "landing_url": apiOrigin + "/?utm_source=newsletter"})
		if i == 0 {
			first = a
		}
	}
	if resp := s.postSession(t, "https://elsewhere.example", map[string]string{"site_key": siteKey}); resp.Status != http.StatusForbidden {
		t.Errorf("session from a foreign origin: %d, want 403", resp.Status)
	}
	uac := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: flyerNumber, remote: s.SIP, pauseMS: 1500,
		media: true, files: map[string][]byte{"caller.pcap": pcapOf(audio, 0xCA11E4)}})
	uac.expectSuccess()
	line.expectSuccess()
	finalCall(t, s, flyerNumber)
	if first.Number == "" {
		t.Fatal("no session")
	}

	exported := exportedNames(t, s.Metrics)
	missing := map[string][]string{} // name -> files using it
	used := 0
	for _, f := range files {
		seen := map[string]bool{}
		for _, q := range f.queries {
			for _, n := range metricNames(q) {
				if seen[n] {
					continue
				}
				seen[n] = true
				used++
				if !exported[n] && !prometheusOwn[n] {
					missing[n] = append(missing[n], filepath.Base(f.path))
				}
			}
		}
	}
	if used < 20 {
		t.Fatalf("only %d metric names found in the queries: the extraction is broken", used)
	}
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, n := range names {
			b.WriteString("\n  " + n + " (" + strings.Join(missing[n], ", ") + ")")
		}
		t.Errorf("%d metric names queried by the dashboards or alert rules are not on the binary's /metrics:%s", len(names), b.String())
	}

	// Each call's log lines carry its call_id.
	sc := bufio.NewScanner(strings.NewReader(s.Logs()))
	ended := 0
	for sc.Scan() {
		var l struct {
			Msg    string `json:"msg"`
			CallID string `json:"call_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "call ended" {
			ended++
			if l.CallID == "" {
				t.Errorf("call log line without call_id: %s", sc.Text())
			}
		}
	}
	if ended != 1 {
		t.Errorf("%d \"call ended\" log lines, want 1", ended)
	}
}
