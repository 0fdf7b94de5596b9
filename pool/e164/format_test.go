package e164_test

import (
	"errors"
	"testing"

	"github.com/trackline/trackline/pool/e164"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		name          string
		e164          string
		national      string
		international string
	}{
		{"two-digit area 085", "+31852087972", "085 208 7972", "+31 85 208 7972"},
		{"two-digit area 020", "+31201234567", "020 123 4567", "+31 20 123 4567"},
		{"two-digit area 010", "+31101234567", "010 123 4567", "+31 10 123 4567"},
		{"two-digit area 088", "+31881234567", "088 123 4567", "+31 88 123 4567"},
		{"mobile", "+31612345678", "06 1234 5678", "+31 6 1234 5678"},
		{"three-digit area 0111", "+31111123456", "0111 123 456", "+31 111 123 456"},
		{"three-digit area 0591", "+31591123456", "0591 123 456", "+31 591 123 456"},
		{"three-digit area 0172", "+31172123456", "0172 123 456", "+31 172 123 456"},
		{"free service, 4 digits", "+318001234", "0800 1234", "+31 800 1234"},
		{"paid service, 7 digits", "+319001234567", "0900 123 4567", "+31 900 123 4567"},
		{"paid service 0906", "+319061234", "0906 1234", "+31 906 1234"},
		{"unknown Dutch prefix", "+31123456789", "0123456789", "+31 123456789"},
		{"Dutch, unexpected length", "+3185208797", "085208797", "+31 85208797"},
		{"Dutch with leading 0", "+3101234567", "+3101234567", "+31 01234567"},
		{"NANP", "+14155550100", "+14155550100", "+1 4155550100"},
		{"Italy", "+390612345678", "+390612345678", "+39 0612345678"},
		{"UK", "+442079460000", "+442079460000", "+44 2079460000"},
		{"three-digit cc", "+420123456789", "+420123456789", "+420 123456789"},
		{"not E.164", "085 208 7972", "085 208 7972", "085 208 7972"},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				style e164.Style
				want  string
			}{
				{e164.National, tt.national},
				{e164.International, tt.international},
				{e164.E164, tt.e164},
				{e164.UnknownStyle, tt.e164},
			} {
				if got := e164.Format(tt.e164, c.style); got != c.want {
					t.Errorf("Format(%q, %v) = %q, want %q", tt.e164, c.style, got, c.want)
				}
			}
		})
	}
}

func TestParseStyle(t *testing.T) {
	for _, want := range []e164.Style{e164.National, e164.E164, e164.International} {
		t.Run(want.String(), func(t *testing.T) {
			got, err := e164.ParseStyle(want.String())
			if err != nil || got != want {
				t.Fatalf("ParseStyle(%q) = %v, %v; want %v", want.String(), got, err, want)
			}
		})
	}
	for _, bad := range []string{"", "unknown", "National", "e.164", "intl", " national"} {
		t.Run("reject "+bad, func(t *testing.T) {
			got, err := e164.ParseStyle(bad)
			if !errors.Is(err, e164.ErrUnknownStyle) || got != e164.UnknownStyle {
				t.Fatalf("ParseStyle(%q) = %v, %v; want ErrUnknownStyle", bad, got, err)
			}
		})
	}
	if got := e164.Style(42).String(); got != "unknown" {
		t.Errorf("Style(42).String() = %q, want unknown", got)
	}
}
