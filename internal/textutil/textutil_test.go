package textutil

import (
	"strings"
	"testing"
)

func TestClip(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "GET /x", 100, "GET /x"},
		{"exactly n", "abcd", 4, "abcd"},
		{"cut", "abcdef", 4, "abcd..."},
		{"empty", "", 4, ""},
		{"invalid UTF-8", "a\xffb", 10, "a?b"},
		{"cut through a rune", "aé", 2, "a?..."},
		{"long", strings.Repeat("x", 300), 40, strings.Repeat("x", 40) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Clip(tt.s, tt.n); got != tt.want {
				t.Fatalf("Clip(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
		})
	}
}
