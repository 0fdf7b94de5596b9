package jsonw

// AppendMember appends name (the member's key with its colon and any leading comma, e.g.
// `,"channel":`) and v between quotes. v must be plain (PlainASCII): it is not escaped.
func AppendMember(dst []byte, name, v string) []byte {
	dst = append(dst, name...)
	return append(append(append(dst, '"'), v...), '"')
}

// PlainASCII reports whether encoding/json writes s between quotes as it is: printable
// ASCII without the characters it escapes (quote, backslash, and <, > and & for HTML).
func PlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
