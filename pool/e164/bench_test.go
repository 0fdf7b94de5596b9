package e164_test

import (
	"testing"

	"github.com/trackline/trackline/pool/e164"
)

func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e164.Normalize("+31 (0)85 208 7972", "31"); err != nil {
			b.Fatal(err)
		}
	}
}
