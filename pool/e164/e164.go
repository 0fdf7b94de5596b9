package e164

import "strings"

const (
	maxInput  = 64 // bytes Normalize reads
	maxDigits = 15 // digits after "+" (ITU-T E.164 §6.1)
	minDigits = 8  // fewest digits after "+" that we accept
	// maxRaw is the most digits a written number may hold: "00" and fifteen more.
	maxRaw = maxDigits + 2
	// trunk is the national trunk prefix some write after the country code: "+31 (0)85".
	trunk = "(0)"
	// blanks are trimmed from both ends of Normalize's input.
	blanks = " \t\u00a0\u202f"
)

// Valid reports whether s is a number in canonical E.164 form: "+", a digit 1-9, and 7 to 14
// more digits, nothing else.
func Valid(s string) bool {
	if len(s) < 1+minDigits || len(s) > 1+maxDigits || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// Normalize turns a dialled or displayed number into E.164. countryCode ("31") replaces the
// national prefix 0 of a national number ("085 208 79 72" becomes "+31852087972").
//
// Accepted: "+31852087972", "0031852087972", "0852087972", "085 208 79 72", "085-2087972",
// "(085) 208 79 72", "+31 85 208 7972", "+31 (0)85 208 7972", "tel:+31852087972", and the
// user part of a SIP URI in any of these forms. The errors are ErrEmpty, ErrInvalid,
// ErrTooLong, ErrTooShort and ErrCountryCode; see the package documentation for the rules.
// An input already in E.164 form is returned as is, without allocating.
func Normalize(raw, countryCode string) (string, error) {
	if !validCountryCode(countryCode) {
		return "", ErrCountryCode
	}
	if len(raw) > maxInput {
		return "", ErrTooLong
	}
	s := strings.Trim(raw, blanks)
	if s == "" {
		return "", ErrEmpty
	}
	if Valid(s) {
		return s, nil
	}
	// RFC 3966 §3: a tel URI without parameters; its visual separators are ours.
	if len(s) >= 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
		if s == "" {
			return "", ErrEmpty
		}
	}

	var (
		d     [maxRaw]byte // the digits as written, without a dropped "(0)"
		n     int
		plus  bool
		depth int
		cut   bool // "(0)" dropped
	)
	i := 0
	if strings.HasPrefix(s, "(+") { // "(+31) 85 208 7972"
		depth = 1
		i++
	}
	if s[i] == '+' {
		plus = true
		i++
		if i == len(s) || !isDigit(s[i]) {
			return "", ErrInvalid
		}
	}
	for i < len(s) {
		c := s[i]
		if isDigit(c) {
			if n == len(d) {
				return "", ErrTooLong
			}
			d[n] = c
			n++
			i++
			continue
		}
		if c == '(' && !cut && strings.HasPrefix(s[i:], trunk) {
			if o := intlOffset(plus, d[:n]); o >= 0 && completeCC(d[o:n]) {
				cut = true
				i += len(trunk)
				continue
			}
		}
		w := sepLen(s, i)
		if w == 0 {
			return "", ErrInvalid
		}
		switch c {
		case '(':
			if depth != 0 {
				return "", ErrInvalid
			}
			depth = 1
		case ')':
			if depth != 1 {
				return "", ErrInvalid
			}
			depth = 0
		}
		i += w
	}
	if depth != 0 || n == 0 {
		return "", ErrInvalid
	}

	var out [1 + maxRaw + 3]byte
	out[0] = '+'
	m := 1
	switch o := intlOffset(plus, d[:n]); {
	case o >= 0:
		if n == o {
			return "", ErrTooShort
		}
		if d[o] == '0' {
			return "", ErrInvalid
		}
		m += copy(out[m:], d[o:n])
	case d[0] == '0':
		// A national number: the country code takes the place of the trunk prefix 0.
		m += copy(out[m:], countryCode)
		m += copy(out[m:], d[1:n])
	default:
		return "", ErrInvalid
	}
	switch {
	case m-1 < minDigits:
		return "", ErrTooShort
	case m-1 > maxDigits:
		return "", ErrTooLong
	}
	return string(out[:m]), nil
}

// intlOffset returns where the country code starts in the digits d of a number written with
// "+" (0) or "00" (2), or -1 for a number that is not (yet) international.
func intlOffset(plus bool, d []byte) int {
	switch {
	case plus:
		return 0
	case len(d) >= 2 && d[0] == '0' && d[1] == '0':
		return 2
	}
	return -1
}

// completeCC reports whether d is exactly a country calling code. Codes are prefix-free:
// 1 and 7 have one digit, the two-digit ones are listed in twoDigitCC, all others have three.
func completeCC(d []byte) bool {
	switch len(d) {
	case 1:
		return d[0] == '1' || d[0] == '7'
	case 2:
		return d[0] != '1' && d[0] != '7' && twoDigitCC(d[0], d[1])
	case 3:
		return d[0] != '1' && d[0] != '7' && !twoDigitCC(d[0], d[1])
	}
	return false
}

// ccLen returns the length of the country calling code that digits (at least two, not
// starting with 0) begin with.
func ccLen(a, b byte) int {
	switch {
	case a == '1' || a == '7':
		return 1
	case twoDigitCC(a, b):
		return 2
	}
	return 3
}

// twoDigitCC reports whether ab is a two-digit country calling code (ITU-T E.164 Annex to
// OB 1114: zones 2 to 9).
func twoDigitCC(a, b byte) bool {
	switch a {
	case '2':
		return b == '0' || b == '7'
	case '3':
		return b <= '4' || b == '6' || b == '9'
	case '4':
		return b != '2'
	case '5':
		return b != '0' && b != '9'
	case '6':
		return b <= '6'
	case '8':
		return b == '1' || b == '2' || b == '4' || b == '6'
	case '9':
		return b <= '5' || b == '8'
	}
	return false
}

// validCountryCode reports whether cc is a country calling code written in digits.
func validCountryCode(cc string) bool {
	if len(cc) == 0 || len(cc) > 3 || cc[0] == '0' {
		return false
	}
	var d [3]byte
	for i := range len(cc) {
		if !isDigit(cc[i]) {
			return false
		}
		d[i] = cc[i]
	}
	return completeCC(d[:len(cc)])
}

// sepLen returns the length in bytes of the visual separator at s[i], or 0: space, tab,
// '-', '.', '/', '(', ')', U+00A0 NO-BREAK SPACE, U+2011 NON-BREAKING HYPHEN,
// U+202F NARROW NO-BREAK SPACE.
func sepLen(s string, i int) int {
	switch s[i] {
	case ' ', '\t', '-', '.', '/', '(', ')':
		return 1
	case 0xc2:
		if i+1 < len(s) && s[i+1] == 0xa0 {
			return 2
		}
	case 0xe2:
		if i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0x91 || s[i+2] == 0xaf) {
			return 3
		}
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
