package e164

import "fmt"

// Style is a way to display a number: the display_format of a customer.
type Style uint8

// The styles. The zero value is UnknownStyle, which Format treats as E164.
const (
	UnknownStyle  Style = iota
	National            // "085 208 7972": the trunk prefix 0 and Dutch digit groups
	E164                // "+31852087972"
	International       // "+31 85 208 7972"
)

// String returns the name ParseStyle reads: "national", "e164", "international", or
// "unknown".
func (s Style) String() string {
	switch s {
	case National:
		return "national"
	case E164:
		return "e164"
	case International:
		return "international"
	}
	return "unknown"
}

// ParseStyle reads a display_format value: "national", "e164" or "international" (lower
// case, as written in the config). Anything else is ErrUnknownStyle.
func ParseStyle(s string) (Style, error) {
	switch s {
	case "national":
		return National, nil
	case "e164":
		return E164, nil
	case "international":
		return International, nil
	}
	return UnknownStyle, fmt.Errorf("%w: %q", ErrUnknownStyle, s)
}

// Format renders the E.164 number e164 in style. Dutch numbers (+31) are grouped by area
// code: "085 208 7972", "06 1234 5678", "0111 123 456", "0800 1234" nationally and
// "+31 85 208 7972" internationally. Other countries get "+CC rest" in International and
// E.164 in National. Unknown Dutch prefixes are not grouped. Input that is not Valid, and
// the styles E164 and UnknownStyle, give e164 back unchanged.
func Format(e164 string, style Style) string {
	if style != National && style != International || !Valid(e164) {
		return e164
	}
	var buf [32]byte
	return string(appendFormat(buf[:0], e164, style))
}

// appendFormat appends Format(e, style) to dst. e must be Valid.
func appendFormat(dst []byte, e string, style Style) []byte {
	l := 1 + ccLen(e[1], e[2])
	cc, nsn := e[1:l], e[l:]
	switch style {
	case National:
		// A national number starting with 00 would read back as international.
		if cc != "31" || nsn[0] == '0' {
			return append(dst, e...)
		}
		dst = append(dst, '0')
		return appendNL(dst, nsn)
	case International:
		dst = append(dst, '+')
		dst = append(dst, cc...)
		dst = append(dst, ' ')
		if cc == "31" {
			return appendNL(dst, nsn)
		}
		return append(dst, nsn...)
	}
	return append(dst, e...)
}

// appendNL appends the Dutch national significant number nsn in digit groups: the area code
// (without its 0), then the subscriber number as 3+4 digits (two-digit area codes), 4+4
// (mobile 6), 3+3 (three-digit area codes) or 4 / 3+4 (service numbers 800, 900, 906, 909).
func appendNL(dst []byte, nsn string) []byte {
	a, b := 0, 0 // lengths of the first two groups; the rest is the last group
	switch {
	case len(nsn) == 9 && nsn[0] == '6':
		a, b = 1, 4
	case len(nsn) == 9 && nlArea2(nsn[:2]):
		a, b = 2, 3
	case len(nsn) == 9 && nlArea3(nsn[:3]):
		a, b = 3, 3
	case len(nsn) == 7 && nlService(nsn[:3]):
		a = 3
	case len(nsn) == 10 && nlService(nsn[:3]):
		a, b = 3, 3
	default:
		return append(dst, nsn...)
	}
	dst = append(dst, nsn[:a]...)
	dst = append(dst, ' ')
	if b > 0 {
		dst = append(dst, nsn[a:a+b]...)
		dst = append(dst, ' ')
	}
	return append(dst, nsn[a+b:]...)
}

// nlArea2 reports whether p is a Dutch two-digit area code (without the 0), geographic or
// non-geographic (84, 85, 87 personal and VoIP, 88 company, 91 pager).
func nlArea2(p string) bool {
	switch p {
	case "10", "13", "15", "20", "23", "24", "26", "30", "33", "35", "36", "38",
		"40", "43", "45", "46", "50", "53", "55", "58",
		"70", "71", "72", "73", "74", "75", "76", "77", "78", "79",
		"84", "85", "87", "88", "91":
		return true
	}
	return false
}

// nlArea3 reports whether p is a Dutch three-digit geographic area code (without the 0).
func nlArea3(p string) bool {
	switch p {
	case "111", "113", "114", "115", "117", "118",
		"161", "162", "164", "165", "166", "167", "168", "172", "174",
		"180", "181", "182", "183", "184", "186", "187",
		"222", "223", "224", "226", "227", "228", "229", "251", "252", "255",
		"294", "297", "299",
		"313", "314", "315", "316", "317", "318", "320", "321",
		"341", "342", "343", "344", "345", "346", "347", "348",
		"411", "412", "413", "416", "418", "475", "478",
		"481", "485", "486", "487", "488", "492", "493", "495", "497", "499",
		"511", "512", "513", "514", "515", "516", "517", "518", "519",
		"521", "522", "523", "524", "525", "527", "528", "529",
		"541", "543", "544", "545", "546", "547", "548", "561", "562", "566",
		"570", "571", "572", "573", "575", "577", "578",
		"591", "592", "593", "594", "595", "596", "597", "598", "599":
		return true
	}
	return false
}

// nlService reports whether p is a Dutch service number prefix: 800 free, 900/906/909 paid.
func nlService(p string) bool {
	return p == "800" || p == "900" || p == "906" || p == "909"
}
