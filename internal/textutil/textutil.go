package textutil

import "strings"

// Clip cuts s to its first n bytes, marking a cut with "...", and replaces every byte that
// is not valid UTF-8 (also a rune split by the cut) with '?'.
func Clip(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
