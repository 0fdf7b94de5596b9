package pool

import (
	"net/url"
	"slices"
	"strings"

	"github.com/trackline/trackline/store"
)

// Visit is what the website snippet reports about a page view. No IP address, no user agent.
type Visit struct {
	SessionID   string // from the visitor's cookie, if any
	LandingURL  string
	Referrer    string
	UTMSource   string
	UTMMedium   string
	UTMCampaign string
	UTMTerm     string
	UTMContent  string
	Gclid       string
	Gbraid      string
	Wbraid      string
	// AdConsent is the visitor's ad consent as the page's consent state told the script
	// (store.Session.AdConsent); unknown when the page told none.
	AdConsent store.Consent
	// Admit, when set, is asked just before a new session would be made (never when the
	// visit keeps a known session), with the number of the customer's pool numbers; an error
	// refuses the session and Assign answers it. The public API limits new sessions per
	// client with it.
	Admit func(poolNumbers int) error
}

// Built-in channel names, used after a customer's own rules.
const (
	ChannelPaidSearch    = "Paid search"
	ChannelOrganicSearch = "Organic search"
	ChannelSocial        = "Social"
	ChannelEmail         = "Email"
	ChannelCampaign      = "Campaign"
	ChannelReferral      = "Referral"
	ChannelDirect        = "Direct"
	ChannelUnattributed  = "Unattributed"
)

// visitFields is the classified, privacy-reduced form of a visit as it is stored.
func visitSession(v *Visit) store.Session {
	s := store.Session{
		UTMSource: v.UTMSource, UTMMedium: v.UTMMedium, UTMCampaign: v.UTMCampaign,
		UTMTerm: v.UTMTerm, UTMContent: v.UTMContent,
		Gclid: v.Gclid, Gbraid: v.Gbraid, Wbraid: v.Wbraid, AdConsent: v.AdConsent,
	}
	if u, err := url.Parse(v.LandingURL); err == nil && u.Host != "" {
		get := func(key string) string { return queryValue(u.RawQuery, key) }
		if strings.ContainsAny(u.RawQuery, "%+;") || len(u.RawQuery) > 10000 {
			q := u.Query() // values to unescape, separators to refuse, or a limit to apply
			get = q.Get
		}
		fill := func(dst *string, key string) {
			if *dst == "" {
				*dst = get(key)
			}
		}
		fill(&s.UTMSource, "utm_source")
		fill(&s.UTMMedium, "utm_medium")
		fill(&s.UTMCampaign, "utm_campaign")
		fill(&s.UTMTerm, "utm_term")
		fill(&s.UTMContent, "utm_content")
		fill(&s.Gclid, "gclid")
		fill(&s.Gbraid, "gbraid")
		fill(&s.Wbraid, "wbraid")
		// Only scheme, host and path: a query string can carry personal data.
		s.LandingPage = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	if u, err := url.Parse(v.Referrer); err == nil {
		s.ReferrerHost = strings.ToLower(u.Hostname())
	}
	return s
}

// queryValue is url.Values.Get of the parsed query q for a query of at most 10,000 bytes
// without escapes ('%', '+') and semicolons: the value of the first non-empty key=value pair,
// split at '&', whose key is key.
func queryValue(q, key string) string {
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if k, v, _ := strings.Cut(pair, "="); k == key && pair != "" {
			return v
		}
	}
	return ""
}

// rule is a compiled channel rule.
type rule struct {
	channel string
	param   string
	pattern string // lower-case glob
}

func compileRules(chs []store.Channel) []rule {
	var out []rule
	for _, ch := range chs {
		for _, r := range ch.Rules {
			out = append(out, rule{channel: ch.Name, param: r.Param, pattern: strings.ToLower(r.Pattern)})
		}
	}
	return out
}

// RuleParams are the visit parameters a channel rule may test.
var ruleParams = map[string]func(s *store.Session) string{
	"utm_source":    func(s *store.Session) string { return s.UTMSource },
	"utm_medium":    func(s *store.Session) string { return s.UTMMedium },
	"utm_campaign":  func(s *store.Session) string { return s.UTMCampaign },
	"utm_term":      func(s *store.Session) string { return s.UTMTerm },
	"utm_content":   func(s *store.Session) string { return s.UTMContent },
	"gclid":         func(s *store.Session) string { return s.Gclid },
	"gbraid":        func(s *store.Session) string { return s.Gbraid },
	"wbraid":        func(s *store.Session) string { return s.Wbraid },
	"referrer_host": func(s *store.Session) string { return s.ReferrerHost },
	"landing_path": func(s *store.Session) string {
		if u, err := url.Parse(s.LandingPage); err == nil {
			return u.Path
		}
		return ""
	},
}

// ValidRuleParam reports whether a channel rule may test param.
func ValidRuleParam(param string) bool { _, ok := ruleParams[param]; return ok }

var (
	paidMedia   = []string{"cpc", "ppc", "paidsearch", "paid_search", "paid-search", "sem"}
	emailMedia  = []string{"email", "e-mail", "e_mail", "newsletter"}
	socialMedia = []string{"social", "social-network", "social_network", "paid_social", "paidsocial", "social-media"}
	// Registrable-domain labels (before the public suffix) of search engines and social networks.
	searchHosts = []string{"google", "bing", "duckduckgo", "yahoo", "ecosia", "baidu", "yandex", "startpage", "qwant", "search.brave"}
	socialHosts = []string{"facebook", "instagram", "linkedin", "lnkd", "t", "twitter", "x", "youtube", "tiktok", "pinterest", "reddit", "threads", "m.facebook", "l.facebook", "lm.facebook"}
)

// classify returns the channel of a visit: the customer's rules in order, then built-ins.
func classify(rules []rule, s *store.Session) string {
	if i := firstMatch(rules, s); i >= 0 {
		return rules[i].channel
	}
	medium := strings.ToLower(s.UTMMedium)
	switch {
	case s.Gclid != "" || s.Gbraid != "" || s.Wbraid != "" || oneOf(medium, paidMedia):
		return ChannelPaidSearch
	case oneOf(medium, emailMedia):
		return ChannelEmail
	case oneOf(medium, socialMedia):
		return ChannelSocial
	}
	if h := s.ReferrerHost; h != "" && h != landingHost(s.LandingPage) {
		switch {
		case hostIn(h, searchHosts):
			return ChannelOrganicSearch
		case hostIn(h, socialHosts):
			return ChannelSocial
		}
		if s.UTMSource == "" && medium == "" {
			return ChannelReferral
		}
	}
	if s.UTMSource != "" || medium != "" || s.UTMCampaign != "" {
		return ChannelCampaign
	}
	return ChannelDirect
}

func landingHost(page string) string {
	if u, err := url.Parse(page); err == nil {
		return strings.ToLower(u.Hostname())
	}
	return ""
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// hostIn reports whether host is name.<suffix> or a subdomain of it for some name in names,
// where the suffix is one or two labels (google.nl, google.co.uk, www.google.com).
func hostIn(host string, names []string) bool {
	host = strings.TrimPrefix(host, "www.")
	for _, n := range names {
		rest, ok := strings.CutPrefix(host, n+".")
		if !ok {
			if i := strings.Index(host, "."+n+"."); i >= 0 {
				rest, ok = host[i+len(n)+2:], true
			}
		}
		if ok && rest != "" && strings.Count(rest, ".") <= 1 {
			return true
		}
	}
	return false
}

// glob matches s against a pattern where '*' matches any run of characters.
func glob(pattern, s string) bool {
	for {
		star := strings.IndexByte(pattern, '*')
		if star < 0 {
			return pattern == s
		}
		if !strings.HasPrefix(s, pattern[:star]) {
			return false
		}
		s = s[star:]
		pattern = pattern[star+1:]
		if pattern == "" {
			return true
		}
		next := strings.IndexByte(pattern, '*')
		lit := pattern
		if next >= 0 {
			lit = pattern[:next]
		} else {
			return strings.HasSuffix(s, lit)
		}
		i := strings.Index(s, lit)
		if i < 0 {
			return false
		}
		s = s[i+len(lit):]
		pattern = pattern[len(lit):]
	}
}

// RuleParams lists the visit parameters a channel rule may test, sorted.
func RuleParams() []string {
	out := make([]string, 0, len(ruleParams))
	for p := range ruleParams {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// RulePreview is what a draft rule would do to a set of visits.
type RulePreview struct {
	Rule    store.ChannelRule
	Matches int             // visits the rule matches on its own
	Takes   int             // visits that would get the channel through this rule, with the rules before it in place
	Samples []store.Session // up to 5 of the visits it takes
}

// PreviewRules shows what a channel's draft rules would match among sessions (the customer's
// latest visits): each rule on its own, and what it takes with the customer's other
// channels' rules before it, in rule order, as classify would. ch's rules are the draft.
func PreviewRules(channels []store.Channel, ch store.Channel, sessions []store.Session) []RulePreview {
	var before []rule
	for _, c := range channels {
		if c.ID == ch.ID {
			break
		}
		before = append(before, compileRules([]store.Channel{c})...)
	}
	out := make([]RulePreview, len(ch.Rules))
	for i, r := range ch.Rules {
		out[i].Rule = r
	}
	draft := compileRules([]store.Channel{ch})
	for si := range sessions {
		s := &sessions[si]
		taken := firstMatch(before, s) >= 0
		for i, r := range draft {
			if !matches(r, s) {
				continue
			}
			out[i].Matches++
			if !taken {
				taken = true
				out[i].Takes++
				if len(out[i].Samples) < 5 {
					out[i].Samples = append(out[i].Samples, *s)
				}
			}
		}
	}
	return out
}

// matches reports whether one rule matches a visit.
func matches(r rule, s *store.Session) bool {
	get := ruleParams[r.param]
	if get == nil {
		return false
	}
	v := get(s)
	return v != "" && glob(r.pattern, strings.ToLower(v))
}

// firstMatch is the index of the first of rules that matches s, or -1.
func firstMatch(rules []rule, s *store.Session) int {
	for i, r := range rules {
		if matches(r, s) {
			return i
		}
	}
	return -1
}

// ExplainChannel says why a visit has the channel it has under channels' rules: the first
// customer rule that matches it (and its channel's name), or nil when a built-in rule
// classified it (classify's order).
func ExplainChannel(channels []store.Channel, s *store.Session) (*store.ChannelRule, string) {
	for _, ch := range channels {
		for i := range ch.Rules {
			r := &ch.Rules[i]
			if matches(rule{channel: ch.Name, param: r.Param, pattern: strings.ToLower(r.Pattern)}, s) {
				return r, ch.Name
			}
		}
	}
	return nil, ""
}
