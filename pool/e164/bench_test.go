package e164_test

import (
	"strings"
	"testing"

	"github.com/trackline/trackline/pool/e164"
)

// page is about 2 KB of HTML with three displayed numbers and plenty of other digits.
func page(tb testing.TB) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`<header><a href="tel:+31852087972">Bel 085 208 79 72</a></header><main>`)
	for b.Len() < 1900 {
		b.WriteString(`<p class="c-12">Bestel voor 23:59 en ontvang 2 producten binnen 1-2 werkdagen. ` +
			`Artikel 10452, prijs &euro; 19,95. Open ma-vr 09.00-17.00.</p>`)
	}
	b.WriteString(`</main><footer>Service: (020) 123 45 67</footer>`)
	s := b.String()
	if n := len(s); n < 1900 || n > 2200 {
		tb.Fatalf("page is %d bytes", n)
	}
	return s
}

func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e164.Normalize("+31 (0)85 208 7972", "31"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFind(b *testing.B) {
	m := newMatcher(b, sales, support)
	text := page(b)
	dst := make([]e164.Match, 0, 8)
	if n := len(m.Find(text, dst)); n != 3 {
		b.Fatalf("found %d numbers, want 3", n)
	}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		dst = m.Find(text, dst[:0])
	}
}

func BenchmarkReplace(b *testing.B) {
	m := newMatcher(b, sales, support)
	text := page(b)
	with := map[string]string{sales: "+31850000007", support: "+31850000008"}
	want := strings.NewReplacer(
		"+31852087972", "+31850000007", "085 208 79 72", "085 000 00 07", "(020) 123 45 67", "(085) 000 00 08",
	).Replace(text)
	if got := m.Replace(text, with); got != want {
		b.Fatalf("Replace: %q", got)
	}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		m.Replace(text, with)
	}
}
