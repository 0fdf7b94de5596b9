package e164_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/trackline/trackline/pool/e164"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		cc   string
		want string
	}{
		{"e164", "+31852087972", "31", "+31852087972"},
		{"00 prefix", "0031852087972", "31", "+31852087972"},
		{"national", "0852087972", "31", "+31852087972"},
		{"national spaced", "085 208 79 72", "31", "+31852087972"},
		{"national dash", "085-2087972", "31", "+31852087972"},
		{"national parens", "(085) 208 79 72", "31", "+31852087972"},
		{"international spaced", "+31 85 208 7972", "31", "+31852087972"},
		{"international trunk", "+31 (0)85 208 7972", "31", "+31852087972"},
		{"international trunk unspaced", "+31(0)852087972", "31", "+31852087972"},
		{"00 trunk", "0031 (0)85 208 7972", "31", "+31852087972"},
		{"tel uri", "tel:+31852087972", "31", "+31852087972"},
		{"tel uri upper case with separators", "TEL:+31-85-208-7972", "31", "+31852087972"},
		{"tel uri national", "tel:0852087972", "31", "+31852087972"},
		{"sip user e164", "+31852087972", "31", "+31852087972"},
		{"sip user 00", "0031852087972", "31", "+31852087972"},
		{"surrounding blanks", " \t085 208 7972\u00a0 ", "31", "+31852087972"},
		{"nbsp", "085\u00a0208\u00a07972", "31", "+31852087972"},
		{"narrow nbsp", "085\u202f208\u202f7972", "31", "+31852087972"},
		{"non-breaking hyphen", "085\u20112087972", "31", "+31852087972"},
		{"dots", "085.208.79.72", "31", "+31852087972"},
		{"slash", "085/2087972", "31", "+31852087972"},
		{"mobile", "06-12345678", "31", "+31612345678"},
		{"service", "0800 1234", "31", "+318001234"},
		{"other country with national cc 31", "+1 (415) 555-0100", "31", "+14155550100"},
		{"uk trunk", "+44 (0)20 7946 0000", "31", "+442079460000"},
		{"uk national", "020 7946 0000", "44", "+442079460000"},
		{"three digit cc trunk", "+420 (0)123 456 789", "31", "+420123456789"},
		{"fifteen digits", "+123456789012345", "31", "+123456789012345"},
		{"fifteen digits from 00", "00 123 456 789 012 345", "31", "+123456789012345"},
		{"eight digits national", "0123456", "31", "+31123456"},
		{"parens mid number", "085 (208) 7972", "31", "+31852087972"},
		{"zero in parens after the area code", "+31 85 (0)20 879 72", "31", "+318502087972"},
		{"parenthesised country code", "(+31) 85 208 7972", "31", "+31852087972"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e164.Normalize(tt.raw, tt.cc)
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q, %q) = %q, %v; want %q", tt.raw, tt.cc, got, err, tt.want)
			}
			if !e164.Valid(got) {
				t.Fatalf("Valid(%q) = false", got)
			}
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		cc   string
		want error
	}{
		{"empty", "", "31", e164.ErrEmpty},
		{"blanks", " \t\u00a0", "31", e164.ErrEmpty},
		{"tel only", "tel:", "31", e164.ErrEmpty},
		{"letter", "085 208 79 7a", "31", e164.ErrInvalid},
		{"vanity", "085-CALL-NOW", "31", e164.ErrInvalid},
		{"crlf at end", "0852087972\r\n", "31", e164.ErrInvalid},
		{"lf inside", "085\n2087972", "31", e164.ErrInvalid},
		{"nul", "085\x002087972", "31", e164.ErrInvalid},
		{"plus inside", "+31 85 +208 7972", "31", e164.ErrInvalid},
		{"double plus", "++31852087972", "31", e164.ErrInvalid},
		{"plus then space", "+ 31 85 208 7972", "31", e164.ErrInvalid},
		{"plus alone", "+", "31", e164.ErrInvalid},
		{"paren plus", "(+", "31", e164.ErrInvalid},
		{"paren plus unclosed", "(+31 85 208 7972", "31", e164.ErrInvalid},
		{"no prefix", "31852087972", "31", e164.ErrInvalid},
		{"subscriber only", "852087972", "31", e164.ErrInvalid},
		{"cc starting with 0", "+031852087972", "31", e164.ErrInvalid},
		{"000", "000852087972", "31", e164.ErrInvalid},
		{"nested parens", "((085)) 2087972", "31", e164.ErrInvalid},
		{"paren opened inside", "(0(85) 208 7972", "31", e164.ErrInvalid},
		{"unclosed paren", "(085 2087972", "31", e164.ErrInvalid},
		{"unopened paren", "085) 2087972", "31", e164.ErrInvalid},
		{"tel parameter", "tel:+31852087972;ext=1", "31", e164.ErrInvalid},
		{"sip uri", "sip:+31852087972@example.com", "31", e164.ErrInvalid},
		{"separators only", "- -", "31", e164.ErrInvalid},
		{"line separator", "085\u2028208 7972", "31", e164.ErrInvalid},
		{"comma", "085,2087972", "31", e164.ErrInvalid},
		{"seven digits", "+3185208", "31", e164.ErrTooShort},
		{"seven digits national", "012345", "31", e164.ErrTooShort},
		{"zero", "0", "31", e164.ErrTooShort},
		{"00 alone", "00", "31", e164.ErrTooShort},
		{"sixteen digits", "+1234567890123456", "31", e164.ErrTooLong},
		{"sixteen digits national", "012345678901234", "31", e164.ErrTooLong},
		{"many digits", "00" + strings.Repeat("1", 30), "31", e164.ErrTooLong},
		{"65 bytes", strings.Repeat(" ", 55) + "0852087972", "31", e164.ErrTooLong},
		{"cc empty", "0852087972", "", e164.ErrCountryCode},
		{"cc zero", "0852087972", "0", e164.ErrCountryCode},
		{"cc incomplete", "0852087972", "3", e164.ErrCountryCode},
		{"cc too long", "0852087972", "312", e164.ErrCountryCode},
		{"cc leading zero", "0852087972", "031", e164.ErrCountryCode},
		{"cc plus", "0852087972", "+31", e164.ErrCountryCode},
		{"cc letters", "0852087972", "3a", e164.ErrCountryCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e164.Normalize(tt.raw, tt.cc)
			if !errors.Is(err, tt.want) || got != "" {
				t.Fatalf("Normalize(%q, %q) = %q, %v; want %v", tt.raw, tt.cc, got, err, tt.want)
			}
		})
	}
}

func TestNormalizeAllocs(t *testing.T) {
	tests := []struct {
		raw  string
		want float64
	}{
		{"+31852087972", 0}, // already E.164: returned as is
		{"+31 (0)85 208 7972", 1},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got := testing.AllocsPerRun(100, func() {
				if _, err := e164.Normalize(tt.raw, "31"); err != nil {
					t.Fatal(err)
				}
			})
			if got != tt.want {
				t.Errorf("Normalize(%q): %v allocs, want %v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"+31852087972", true},
		{"+12345678", true},
		{"+123456789012345", true},
		{"+1234567", false},
		{"+1234567890123456", false},
		{"+01234567", false},
		{"31852087972", false},
		{"0852087972", false},
		{"+31 852087972", false},
		{"+3185208797a", false},
		{"+31852087972\n", false},
		{"", false},
		{"+", false},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			if got := e164.Valid(tt.s); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}
