package e164_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/trackline/trackline/pool/e164"
)

const (
	sales   = "+31852087972" // shown as 085 208 7972
	support = "+31201234567" // shown as 020 123 4567
)

func newMatcher(t testing.TB, targets ...string) *e164.Matcher {
	t.Helper()
	m, err := e164.NewMatcher(targets, "31")
	if err != nil {
		t.Fatalf("NewMatcher(%q): %v", targets, err)
	}
	return m
}

// found is one expected match: the text it covers and its target.
type found struct{ text, target string }

func matches(text string, ms []e164.Match) []found {
	var out []found
	for _, m := range ms {
		out = append(out, found{text[m.Start:m.End], m.Target})
	}
	return out
}

func TestMatcherFind(t *testing.T) {
	m := newMatcher(t, sales, support, "+123456789012345")
	tests := []struct {
		name string
		text string
		want []found
	}{
		{"e164", "Bel +31852087972.", []found{{"+31852087972", sales}}},
		{"00", "Bel 0031852087972.", []found{{"0031852087972", sales}}},
		{"national", "Bel 0852087972.", []found{{"0852087972", sales}}},
		{"national spaced", "Bel 085 208 79 72!", []found{{"085 208 79 72", sales}}},
		{"national 3-4", "<p>Bel 085 208 7972</p>", []found{{"085 208 7972", sales}}},
		{"national dash", "Bel 085-2087972 of mail", []found{{"085-2087972", sales}}},
		{"national parens", "Bel (085) 208 79 72.", []found{{"(085) 208 79 72", sales}}},
		{"international", "Call +31 85 208 7972 now", []found{{"+31 85 208 7972", sales}}},
		{"international trunk", "Call +31 (0)85 208 7972.", []found{{"+31 (0)85 208 7972", sales}}},
		{"00 trunk", "Call 0031 (0)85 208 7972.", []found{{"0031 (0)85 208 7972", sales}}},
		{"whole text", "0852087972", []found{{"0852087972", sales}}},
		{"dots", "T. 085.208.79.72", []found{{"085.208.79.72", sales}}},
		{"slash", "Tel.:085/2087972", []found{{"085/2087972", sales}}},
		{"nbsp", "Bel\u00a0085\u00a0208\u00a07972\u00a0nu", []found{{"085\u00a0208\u00a07972", sales}}},
		{"narrow nbsp", "085\u202f208\u202f7972", []found{{"085\u202f208\u202f7972", sales}}},
		{"html nbsp entity", "<b>085&nbsp;208&nbsp;7972</b>", []found{{"085&nbsp;208&nbsp;7972", sales}}},
		{"html numeric entity", "<b>085&#160;208&#160;7972</b>", []found{{"085&#160;208&#160;7972", sales}}},
		{"spaced dash", "085 - 208 - 7972", []found{{"085 - 208 - 7972", sales}}},
		{
			"tel link and text",
			`<a href="tel:+31852087972" class="phone">085 208 79 72</a>`,
			[]found{{"+31852087972", sales}, {"085 208 79 72", sales}},
		},
		{
			"two targets",
			"<li>Verkoop: 085-208 79 72</li>\n<li>Service: (020) 123 45 67</li>",
			[]found{{"085-208 79 72", sales}, {"(020) 123 45 67", support}},
		},
		{"two targets, one run", "085 208 7972/020 123 4567", []found{{"085 208 7972", sales}, {"020 123 4567", support}}},
		{"parenthesised number", "(085 208 7972)", []found{{"085 208 7972", sales}}},
		{"parenthesised international", "(+31 85 208 7972)", []found{{"+31 85 208 7972", sales}}},
		{"parenthesised country code", "(+31) 85 208 7972", []found{{"(+31) 85 208 7972", sales}}},
		{"followed by more digits", "+31 85 208 7972 12", []found{{"+31 85 208 7972", sales}}},
		{"after other digits", "KvK 12 085 208 7972", []found{{"085 208 7972", sales}}},
		{"opening hours", "ma-vr 09.00-17.00: 085 208 7972", []found{{"085 208 7972", sales}}},
		{"sip uri", "sip:+31852087972@trunk.example", []found{{"+31852087972", sales}}},

		{"inside a digit run", "ref 1085208797299", nil},
		{"digits after", "ref 08520879721", nil},
		{"letter before", "ref a0852087972", nil},
		{"letter after", "0852087972b", nil},
		{"unicode letter before", "é0852087972", nil},
		{"unicode letter after", "0852087972é", nil},
		{"plus before national", "+0852087972", nil},
		{"other number", "085 208 7973", nil},
		{"truncated", "Bel 085 208 79", nil},
		{"no prefix", "31852087972", nil},
		{"foreign trunk", "+44 (0)85 208 7972", nil},
		{"too many separators", "085 -- - 208 7972", nil},
		{"closing paren inside", "085 (208 7972)", nil},
		{"nested parens", "((085)) 208 7972", nil},
		{"paren opened inside", "(085 (208) 7972", []found{{"085 (208) 7972", sales}}},
		{"cc starting with 0", "+031852087972", nil},
		{"00 then 0", "000031852087972", nil},
		{"zero in parens in a national number", "08 (0)52087972", nil},
		{"comma", "085,208,7972", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := matches(tt.text, m.Find(tt.text, nil))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Find(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

// TestMatcherFindFormatted checks that Find finds what Format writes, in every style and
// with the "00" and "(0)" variants, and that Replace writes it back the same way.
func TestMatcherFindFormatted(t *testing.T) {
	targets := []string{sales, "+31612345678", "+31591123456", "+318001234", "+319001234567", "+14155550100", "+420123456789"}
	m := newMatcher(t, targets...)
	for _, n := range targets {
		intl := e164.Format(n, e164.International)
		cc, rest, _ := strings.Cut(intl, " ")
		forms := []string{
			e164.Format(n, e164.National),
			e164.Format(n, e164.International),
			e164.Format(n, e164.E164),
			"00" + n[1:],
			cc + " (0)" + rest,
		}
		for _, f := range forms {
			t.Run(f, func(t *testing.T) {
				text := "<p>Bel " + f + ".</p>"
				want := []found{{f, n}}
				if got := matches(text, m.Find(text, nil)); !slices.Equal(got, want) {
					t.Fatalf("Find(%q) = %q, want %q", text, got, want)
				}
				if got := m.Replace(text, map[string]string{n: n}); got != text {
					t.Errorf("Replace(%q) with the same number = %q", text, got)
				}
			})
		}
	}
}

func TestMatcherFindLongest(t *testing.T) {
	m := newMatcher(t, "+3185208797", sales)
	text := "085 208 797 2 and 085 208 797"
	want := []found{{"085 208 797 2", sales}, {"085 208 797", "+3185208797"}}
	if got := matches(text, m.Find(text, nil)); !slices.Equal(got, want) {
		t.Errorf("Find(%q) = %q, want %q", text, got, want)
	}
}

func TestMatcherFindAppends(t *testing.T) {
	m := newMatcher(t, sales)
	dst := []e164.Match{{Start: 1, End: 2, Target: "x"}}
	got := m.Find("085 208 7972", dst)
	if len(got) != 2 || got[0] != dst[0] || got[1].Target != sales {
		t.Errorf("Find appended wrongly: %+v", got)
	}
}

func TestMatcherFindAllocs(t *testing.T) {
	m := newMatcher(t, sales, support)
	text := strings.Repeat("Bel ons op 085 208 79 72 of mail naar info@example.com. ", 20) + "Service: +31 (0)20 123 4567."
	dst := make([]e164.Match, 0, 32)
	if got := len(m.Find(text, dst)); got != 21 {
		t.Fatalf("Find found %d numbers, want 21", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { dst = m.Find(text, dst[:0]) }); allocs != 0 {
		t.Errorf("Find: %v allocs per call, want 0", allocs)
	}
}

func TestNewMatcher(t *testing.T) {
	t.Run("normalises and deduplicates", func(t *testing.T) {
		m := newMatcher(t, "085 208 79 72", sales, "0031852087972")
		got := m.Find("+31852087972 0852087972", nil)
		if len(got) != 2 || got[0].Target != sales || got[1].Target != sales {
			t.Errorf("Find = %+v, want two matches of %s", got, sales)
		}
	})
	t.Run("no targets", func(t *testing.T) {
		m := newMatcher(t)
		if got := m.Find("085 208 7972", nil); len(got) != 0 {
			t.Errorf("Find = %+v, want none", got)
		}
	})
	t.Run("bad target", func(t *testing.T) {
		_, err := e164.NewMatcher([]string{sales, "085-CALL-NOW"}, "31")
		if !errors.Is(err, e164.ErrInvalid) || !strings.Contains(err.Error(), "target 1") {
			t.Errorf("NewMatcher: %v, want ErrInvalid naming target 1", err)
		}
	})
	t.Run("bad country code", func(t *testing.T) {
		if _, err := e164.NewMatcher([]string{sales}, "3"); !errors.Is(err, e164.ErrCountryCode) {
			t.Errorf("NewMatcher: %v, want ErrCountryCode", err)
		}
	})
}

func TestMatcherReplace(t *testing.T) {
	m := newMatcher(t, sales, support, "+318001234")
	with := map[string]string{
		sales:   "+31850000007",
		support: "+31612345678",
	}
	tests := []struct {
		name string
		text string
		with map[string]string
		want string
	}{
		{"e164", "Bel +31852087972.", with, "Bel +31850000007."},
		{"00", "Bel 0031852087972.", with, "Bel 0031850000007."},
		{"national", "Bel 0852087972.", with, "Bel 0850000007."},
		{"national spaced", "Bel 085 208 79 72!", with, "Bel 085 000 00 07!"},
		{"national 3-4", "Bel 085 208 7972", with, "Bel 085 000 0007"},
		{"national dash", "Bel 085-2087972", with, "Bel 085-0000007"},
		{"national parens", "Bel (085) 208 79 72.", with, "Bel (085) 000 00 07."},
		{"international", "Call +31 85 208 7972 now", with, "Call +31 85 000 0007 now"},
		{"international trunk", "Call +31 (0)85 208 7972.", with, "Call +31 (0)85 000 0007."},
		{"00 trunk", "0031 (0)85 208 7972", with, "0031 (0)85 000 0007"},
		{"nbsp", "085\u00a0208\u00a07972", with, "085\u00a0000\u00a00007"},
		{"html entity", "085&#160;208&#160;7972", with, "085&#160;000&#160;0007"},
		{
			"tel link and text",
			`<a href="tel:+31852087972">085 208 79 72</a>`,
			with,
			`<a href="tel:+31850000007">085 000 00 07</a>`,
		},
		{
			"two targets",
			"Verkoop 085 208 7972, service 020 123 4567.",
			with,
			"Verkoop 085 000 0007, service 061 234 5678.",
		},
		{"other digit count falls back to national", "Bel 085 208 7972", map[string]string{sales: "+318001234"}, "Bel 0800 1234"},
		{"other country, national form", "Bel 085 208 7972", map[string]string{sales: "+442079460000"}, "Bel +442079460000"},
		{"other country, same digit count", "+31 85 208 7972", map[string]string{sales: "+44207946001"}, "+44 20 794 6001"},
		{"parenthesised number falls back", "(085 208 79 72)", map[string]string{sales: "+318001234"}, "(0800 1234)"},
		{"new number would read as international", "Bel 0800 1234", map[string]string{"+318001234": "+310123456"}, "Bel +310123456"},
		{"not in map", "Service 020 123 4567", map[string]string{sales: "+31850000007"}, "Service 020 123 4567"},
		{"invalid replacement", "Bel 085 208 7972", map[string]string{sales: "085 000 0007"}, "Bel 085 208 7972"},
		{"inside a digit run", "ref 1085208797299", with, "ref 1085208797299"},
		{"no number", "Geen nummer hier.", with, "Geen nummer hier."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Replace(tt.text, tt.with); got != tt.want {
				t.Errorf("Replace(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestMatcherReplaceAllocs(t *testing.T) {
	m := newMatcher(t, sales, support)
	with := map[string]string{sales: "+31850000007"}
	tests := []struct {
		name string
		text string
		want float64
	}{
		{"no number", strings.Repeat("Geen nummer, wel 12 cijfers. ", 50), 0},
		{"one number", strings.Repeat("Geen nummer. ", 50) + "Bel 085 208 7972.", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, func() { m.Replace(tt.text, with) }); got != tt.want {
				t.Errorf("Replace: %v allocs, want %v", got, tt.want)
			}
		})
	}
}
