package e164_test

import (
	"errors"
	"testing"

	"github.com/trackline/trackline/pool/e164"
)

var fuzzSeeds = []string{
	"+31852087972", "0031852087972", "0852087972", "085 208 79 72", "085-2087972",
	"(085) 208 79 72", "+31 85 208 7972", "+31 (0)85 208 7972", "tel:+31852087972",
	"0031 (0)85 208 7972", "085\u00a0208\u00a07972", "06-12345678", "0800 1234",
	"+44 (0)20 7946 0000", "+1 (415) 555-0100", "((085)) 2087972", "+", "00", "tel:",
	"085\r\n2087972", "1085208797299", "+3101234567", "+123456789012345",
	`<a href="tel:+31852087972">085&nbsp;208&nbsp;79&nbsp;72</a>`,
	"Verkoop: 085-208 79 72, service: (020) 123 45 67, mobiel 06 1234 5678.",
	"(+31 85 208 7972) 085 208 7972/020 123 4567 +44 (0)85 208 7972",
}

func FuzzNormalize(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(s, uint8(i))
	}
	countryCodes := []string{"31", "1", "44", "420"}
	styles := []e164.Style{e164.National, e164.E164, e164.International, e164.UnknownStyle}
	f.Fuzz(func(t *testing.T, raw string, cc uint8) {
		code := countryCodes[int(cc)%len(countryCodes)]
		got, err := e164.Normalize(raw, code)
		if err != nil {
			if got != "" {
				t.Fatalf("Normalize(%q) = %q with error %v", raw, got, err)
			}
			for _, known := range []error{e164.ErrEmpty, e164.ErrInvalid, e164.ErrTooLong, e164.ErrTooShort} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("Normalize(%q): unexpected error %v", raw, err)
		}
		if !e164.Valid(got) {
			t.Fatalf("Normalize(%q) = %q, not valid", raw, got)
		}
		if again, err := e164.Normalize(got, code); err != nil || again != got {
			t.Fatalf("Normalize(%q) = %q, %v; want it unchanged", got, again, err)
		}
		// National formats read back with the Dutch country code; other countries are
		// written in E.164 by National, so every valid number must round-trip.
		for _, st := range styles {
			s := e164.Format(got, st)
			if back, err := e164.Normalize(s, "31"); err != nil || back != got {
				t.Fatalf("Normalize(Format(%q, %v) = %q) = %q, %v", got, st, s, back, err)
			}
		}
	})
}
