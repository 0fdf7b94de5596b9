package g711

import (
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for i := range 256 {
		a := byte(i)
		if got := EncodeALaw(ALawToLinear[a]); got != a {
			t.Errorf("A-law %#02x: decoded %d, encoded back %#02x", a, ALawToLinear[a], got)
		}
		u := byte(i)
		if u == 0x7F { // negative zero: encodes back as positive zero (0xFF)
			continue
		}
		if got := EncodeULaw(ULawToLinear[u]); got != u {
			t.Errorf("µ-law %#02x: decoded %d, encoded back %#02x", u, ULawToLinear[u], got)
		}
	}
}

// Known points of the G.711 tables.
func TestKnownValues(t *testing.T) {
	cases := []struct {
		name string
		got  int16
		want int16
	}{
		{"µ 0x00", ULawToLinear[0x00], -32124},
		{"µ 0x80", ULawToLinear[0x80], 32124},
		{"µ 0xFF", ULawToLinear[0xFF], 0},
		{"A 0xD5", ALawToLinear[0xD5], 8},
		{"A 0x55", ALawToLinear[0x55], -8},
		{"A 0xAA", ALawToLinear[0xAA], 32256},
		{"A 0x2A", ALawToLinear[0x2A], -32256},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if EncodeULaw(0) != ULawSilence || EncodeALaw(0) != ALawSilence {
		t.Errorf("silence: µ %#02x A %#02x", EncodeULaw(0), EncodeALaw(0))
	}
}

// Companding keeps a sample within its segment's step: at most ~3.2 % of its magnitude
// (plus the smallest step near zero).
func TestEncodeError(t *testing.T) {
	for s := -32768; s <= 32767; s += 7 {
		for _, l := range []Law{ULaw, ALaw} {
			enc := Encode(nil, []int16{int16(s)}, l)
			dec := Decode(nil, enc, l)[0]
			diff := math.Abs(float64(dec) - float64(s))
			if diff > math.Abs(float64(s))*0.035+34 {
				t.Fatalf("%v: %d -> %#02x -> %d", l, s, enc[0], dec)
			}
		}
	}
}

func TestTranscodeKeepsSignal(t *testing.T) {
	for i := range 256 {
		b := []byte{byte(i)}
		Transcode(b, ULaw, ALaw)
		d := math.Abs(float64(ALawToLinear[b[0]]) - float64(ULawToLinear[i]))
		if d > math.Abs(float64(ULawToLinear[i]))*0.07+16 {
			t.Errorf("µ %#02x (%d) -> A %#02x (%d)", i, ULawToLinear[i], b[0], ALawToLinear[b[0]])
		}
	}
}

func BenchmarkTranscode160(b *testing.B) {
	buf := make([]byte, 160)
	b.ReportAllocs()
	b.SetBytes(160)
	for b.Loop() {
		Transcode(buf, ULaw, ALaw)
	}
}
