package jsonw

import (
	"encoding/json"
	"testing"
)

// PlainASCII must be true exactly when encoding/json writes the string unchanged.
func TestPlainASCIIAgreesWithEncodingJSON(t *testing.T) {
	for c := 0; c < 0x100; c++ {
		s := "a" + string(rune(c)) + "z"
		if c >= 0x80 {
			s = "a" + string([]byte{byte(c)}) + "z" // a lone byte, not a rune
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		same := string(b) == `"`+s+`"`
		if got := PlainASCII(s); got && !same {
			t.Errorf("PlainASCII(%q) = true, but encoding/json writes %s", s, b)
		}
		if c < 0x7f && same != PlainASCII(s) {
			t.Errorf("PlainASCII(%q) = %v, encoding/json unchanged: %v", s, PlainASCII(s), same)
		}
	}
}

func FuzzAppendMember(f *testing.F) {
	for _, s := range []string{"", "acme", `a"b`, "<script>", "\x7f", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !PlainASCII(s) {
			return
		}
		got := string(AppendMember([]byte("{"), `"k":`, s)) + "}"
		want, err := json.Marshal(map[string]string{"k": s})
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Fatalf("AppendMember = %s, encoding/json %s", got, want)
		}
	})
}
