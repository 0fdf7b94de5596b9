package e164

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxSepRun is the most separators between two digits of one displayed number ("085 - 208").
const maxSepRun = 3

// Match is one occurrence of a target number in a text.
type Match struct {
	Start, End int    // text[Start:End] is the number as written, from its first '+', '(' or digit to its last digit
	Target     string // the target it is, in E.164
}

// Matcher finds a fixed set of numbers in text, in every form the DNI script recognises:
// "+31852087972", "0031852087972", "0852087972", "085 208 79 72", "085-2087972",
// "(085) 208 79 72", "+31 85 208 7972", "+31 (0)85 208 7972", also inside "tel:" links, with
// any grouping of the digits. A Matcher is immutable and safe for concurrent use.
type Matcher struct {
	cc        string         // country code of national numbers
	ccVal     uint64         // cc as a number
	targets   []string       // E.164, deduplicated, in the order given
	index     map[uint64]int // a target's digits read as a number -> its place in targets
	minDigits int            // fewest digits of a target
	maxDigits int            // most digits of a target
	heads     []uint64       // the targets' first headLen digits as numbers, sorted, unique
}

// headLen is how many digits Find reads before it checks that some target starts with them;
// it gives up early on times, dates and prices that start with 0 ("09.00-17.00").
const headLen = 4

// NewMatcher returns a Matcher for targets, read with Normalize(target, countryCode): E.164
// or any other form Normalize accepts. Duplicates are dropped. Match.Target, and the keys
// Replace looks up, are the E.164 forms.
func NewMatcher(targets []string, countryCode string) (*Matcher, error) {
	if !validCountryCode(countryCode) {
		return nil, ErrCountryCode
	}
	m := &Matcher{
		cc:        countryCode,
		index:     make(map[uint64]int, len(targets)),
		minDigits: maxDigits + 1,
	}
	m.ccVal = number(countryCode)
	for i, t := range targets {
		e, err := Normalize(t, countryCode)
		if err != nil {
			return nil, fmt.Errorf("target %d: %w", i, err)
		}
		// E.164 digits do not start with 0, so their value identifies them.
		v := number(e[1:])
		if _, dup := m.index[v]; dup {
			continue
		}
		m.index[v] = len(m.targets)
		m.targets = append(m.targets, e)
		m.minDigits = min(m.minDigits, len(e)-1)
		m.maxDigits = max(m.maxDigits, len(e)-1)
		if h := number(e[1 : 1+headLen]); !slices.Contains(m.heads, h) {
			m.heads = append(m.heads, h)
		}
	}
	slices.Sort(m.heads)
	return m, nil
}

// Find appends to dst every occurrence of a target in text, in order and without overlap,
// and returns the extended slice. It allocates only when dst has to grow.
//
// A number starts at '+', '(' or '0' (national and "00" numbers) that does not follow a
// letter, a digit or '+'; runs over digits and separators (space, tab, NBSP, U+202F, '-',
// U+2011, '.', '/', one level of parentheses, and in HTML "&nbsp;" and "&#160;"; at most
// three in a row); and ends at a digit not followed by a letter or digit. So
// "1085208797299" does not contain 0852087972. Where several targets fit, the longest wins.
// Offsets are in bytes; text need not be valid UTF-8.
func (m *Matcher) Find(text string, dst []Match) []Match {
	if len(m.targets) == 0 {
		return dst
	}
	// Jump from one possible start to the next with IndexByte. next holds the next position of each at or after i
	// (len(text) for none), and is looked up again only once i has passed it.
	needles := [3]byte{'0', '+', '('}
	next := [3]int{-1, -1, -1}
	for i := 0; ; {
		p := len(text)
		for k, c := range needles {
			if next[k] < i {
				next[k] = len(text)
				if d := strings.IndexByte(text[i:], c); d >= 0 {
					next[k] = i + d
				}
			}
			p = min(p, next[k])
		}
		if p == len(text) {
			return dst
		}
		i = p
		if gluedLeft(text, i) {
			i++
			continue
		}
		mt, ok, resume := m.matchAt(text, i)
		if ok {
			dst = append(dst, mt)
			resume = mt.End
		}
		i = resume
	}
}

// Scanner states.
const (
	stStart    = iota // no digit read yet and no "+"
	stZero            // a single "0" read: national or "00"
	stIntl            // after "+" or "00": the E.164 digits
	stNational        // after a single "0": the national significant number
)

// matchAt reads the number that may start at text[start], one of '+', '(' or '0'. It
// returns the longest match, if any, and where to look for the next start.
func (m *Matcher) matchAt(text string, start int) (mt Match, ok bool, next int) {
	next = start + 1
	j := start
	depth, lead := 0, false // lead: the '(' at start is still open
	if text[j] == '(' {
		depth, lead = 1, true
		j++
	}
	st := stStart
	if j < len(text) && text[j] == '+' {
		st = stIntl
		j++
	}
	if j == len(text) || !isDigit(text[j]) {
		return mt, false, next
	}
	var (
		val  uint64 // the E.164 digits read so far, as a number
		n    int    // how many
		cc   [3]byte
		cut  bool // "(0)" dropped
		seps int  // separators since the last digit
	)
scan:
	for j < len(text) {
		c := text[j]
		if isDigit(c) {
			seps = 0
			switch st {
			case stStart:
				if c != '0' {
					break scan
				}
				st = stZero
			case stZero:
				if c == '0' {
					st = stIntl
					break
				}
				st = stNational
				val, n = m.ccVal, len(m.cc)
				val, n = val*10+uint64(c-'0'), n+1
			case stIntl:
				if n == 0 && c == '0' {
					break scan
				}
				if n < len(cc) {
					cc[n] = c
				}
				val, n = val*10+uint64(c-'0'), n+1
			case stNational:
				val, n = val*10+uint64(c-'0'), n+1
			}
			if n > m.maxDigits {
				break
			}
			if n == headLen {
				if _, found := slices.BinarySearch(m.heads, val); !found {
					break
				}
			}
			j++
			if j < len(text) && isDigit(text[j]) {
				continue
			}
			// The end of a group of digits: a number may end here.
			if gluedRight(text, j) {
				break
			}
			if n >= m.minDigits && (depth == 0 || lead) {
				if k, found := m.index[val]; found {
					s := start
					if lead {
						s++ // the '(' is not closed within the number: leave it out
					}
					mt, ok = Match{Start: s, End: j, Target: m.targets[k]}, true
				}
			}
			continue
		}
		if c == '(' && st == stIntl && !cut && strings.HasPrefix(text[j:], trunk) && n <= len(cc) && completeCC(cc[:n]) {
			cut = true
			j += len(trunk)
			next = j // "(0)85 ..." is not a national number of its own
			if seps++; seps > maxSepRun {
				break
			}
			continue
		}
		w := htmlSepLen(text, j)
		if w == 0 {
			break
		}
		switch c {
		case '(':
			if depth != 0 {
				break scan
			}
			depth = 1
		case ')':
			if depth == 0 {
				break scan
			}
			depth, lead = 0, false
		}
		if seps++; seps > maxSepRun {
			break
		}
		j += w
	}
	return mt, ok, next
}

// Replace returns text with every target found by Find replaced by with[target] (an E.164
// number; targets without a valid entry are left alone), written in the form the text used:
// when the new number, written with the same prefix ("+", "00" or the national "0"), has as
// many digits as the old one, its digits take the old ones' places and every separator,
// parenthesis, "+" and "(0)" stays where it was ("(085) 208 79 72" becomes
// "(085) 000 00 07"). Otherwise the match becomes Format(new, National).
// Text without a replacement is returned as is.
func (m *Matcher) Replace(text string, with map[string]string) string {
	var arr [16]Match
	ms := m.Find(text, arr[:0])
	var (
		b       strings.Builder
		scratch [64]byte
		last    int
	)
	for _, mt := range ms {
		nw, ok := with[mt.Target]
		if !ok || !Valid(nw) {
			continue
		}
		if b.Cap() == 0 {
			b.Grow(len(text) + 16)
		}
		b.WriteString(text[last:mt.Start])
		b.Write(m.appendRewrite(scratch[:0], text[mt.Start:mt.End], nw))
		last = mt.End
	}
	if b.Cap() == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// appendRewrite appends nw (Valid) written like old, a match of Find. It reads old with
// matchAt's rules: the form is fixed by a '+' or the first two digits, and a "(0)" right
// after the country code of an international form is not one of the digits.
func (m *Matcher) appendRewrite(dst []byte, old, nw string) []byte {
	var (
		pos  [maxRaw]int // where old's digits are
		n    int
		plus bool
		cut  bool
	)
	for j := 0; j < len(old); {
		c := old[j]
		switch {
		case isDigit(c):
			if n == len(pos) {
				return appendFormat(dst, nw, National)
			}
			pos[n] = j
			n++
			j++
			continue
		case c == '+':
			plus = true
			j++
			continue
		case c == '(' && !cut && strings.HasPrefix(old[j:], trunk):
			o := -1
			switch {
			case plus:
				o = 0
			case n >= 2 && old[pos[0]] == '0' && old[pos[1]] == '0':
				o = 2
			}
			if o >= 0 && n-o >= 1 && n-o <= 3 {
				var cc [3]byte
				for k := o; k < n; k++ {
					cc[k-o] = old[pos[k]]
				}
				if completeCC(cc[:n-o]) {
					cut = true
					j += len(trunk)
					continue
				}
			}
		}
		j += max(htmlSepLen(old, j), 1)
	}

	// nw in old's form: a prefix ("00" or "0") and digits.
	prefix, body := "", nw[1:]
	switch {
	case plus:
	case n >= 2 && old[pos[0]] == '0' && old[pos[1]] == '0':
		prefix = "00"
	default:
		nsn, ok := strings.CutPrefix(body, m.cc)
		if !ok || nsn == "" || nsn[0] == '0' {
			return appendFormat(dst, nw, National)
		}
		prefix, body = "0", nsn
	}
	if len(prefix)+len(body) != n {
		return appendFormat(dst, nw, National)
	}
	base := len(dst)
	dst = append(dst, old...)
	for k := range n {
		var c byte
		if k < len(prefix) {
			c = prefix[k]
		} else {
			c = body[k-len(prefix)]
		}
		dst[base+pos[k]] = c
	}
	return dst
}

// htmlSepLen is sepLen that also reads the HTML entities "&nbsp;" and "&#160;" as spaces.
func htmlSepLen(s string, i int) int {
	if s[i] == '&' {
		if strings.HasPrefix(s[i:], "&nbsp;") || strings.HasPrefix(s[i:], "&#160;") {
			return len("&nbsp;")
		}
		return 0
	}
	return sepLen(s, i)
}

// gluedLeft reports whether a number cannot start at text[i] because a letter, a digit or a
// '+' comes right before it.
func gluedLeft(text string, i int) bool {
	if i == 0 {
		return false
	}
	c := text[i-1]
	if c < utf8.RuneSelf {
		return isDigit(c) || c == '+' || 'a' <= c|0x20 && c|0x20 <= 'z'
	}
	r, _ := utf8.DecodeLastRuneInString(text[:i])
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// gluedRight reports whether a number cannot end before text[j] because a letter or a digit
// comes right after it.
func gluedRight(text string, j int) bool {
	if j == len(text) {
		return false
	}
	c := text[j]
	if c < utf8.RuneSelf {
		return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'z'
	}
	r, _ := utf8.DecodeRuneInString(text[j:])
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// number returns the digits s as a number; s has at most 19 digits.
func number(s string) uint64 {
	var v uint64
	for i := range len(s) {
		v = v*10 + uint64(s[i]-'0')
	}
	return v
}
