package sip

import "bytes"

// sipgo v1.7.2 misreads some valid messages (docs/sip-edge.md): it keeps the white space
// RFC 3261 §25.1 allows around the ";" and "=" of parameters (SEMI and EQUAL are
// SWS ";" SWS and SWS "=" SWS), so "; tag = x" is no tag to it, and a Via written
// "SIP / 2.0 / UDP" gets the transport " UDP". For such a message (scan.lax) the edge
// hands sipgo a tightened copy: folded lines joined (§7.3.1: a fold is one SP), and in
// Via, From, To, Contact, Route and Record-Route the white space around ";", "=", ","
// and "/" removed and other runs made one SP, outside quoted strings. The meaning does
// not change; the body is copied as it is. Hand-written: this is the part of sipgo's
// reading that the edge has to make up for until sipgo allows the white space itself.

// tightHeader tells whether a field's parameters are tightened (the fields sipgo parses
// with parameters).
func tightHeader(name []byte) bool {
	switch hdrOf(name) {
	case hdrVia, hdrFrom, hdrTo, hdrContact:
		return true
	}
	return bytes.EqualFold(name, []byte("route")) || bytes.EqualFold(name, []byte("record-route"))
}

// normalize appends to dst the tightened copy of message b (whose header section the scan
// found complete: sc.headEnd >= 0).
func normalize(dst, b []byte, sc *scan) []byte {
	eol, next, _ := lineEnd(b, 0)
	dst = append(dst, b[:eol]...)
	dst = append(dst, "\r\n"...)
	i := next
	for i < sc.headEnd {
		eol, next, _ = lineEnd(b, i)
		if eol == i {
			break // the blank line
		}
		// The field and its continuation lines.
		end := next
		for end < sc.headEnd {
			if b[end] != ' ' && b[end] != '\t' {
				break
			}
			_, end, _ = lineEnd(b, end)
		}
		dst = appendField(dst, b[i:end])
		i = end
	}
	dst = append(dst, "\r\n"...)
	return append(dst, b[sc.headEnd:]...)
}

// appendField appends "Name: value" CRLF for the field f (its lines, CRLFs included).
func appendField(dst, f []byte) []byte {
	colon := bytes.IndexByte(f, ':')
	if colon < 0 {
		return append(dst, f...) // the scan faulted such a line already; never reached
	}
	name := trimLWS(f[:colon])
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	v := trimLWS(f[colon+1:])
	tight := tightHeader(name)
	quoted, angle, space := false, false, false
	for k := 0; k < len(v); k++ {
		c := v[k]
		switch {
		case quoted:
			dst = append(dst, c)
			if c == '\\' && k+1 < len(v) {
				k++
				dst = append(dst, v[k])
			} else if c == '"' {
				quoted = false
			}
			continue
		case isLWS(c):
			space = true
			continue
		}
		sep := tight && !angle && (c == ';' || c == '=' || c == ',' || c == '/')
		if space && !sep && !(tight && !angle && len(dst) > 0 && isSep(dst[len(dst)-1])) {
			dst = append(dst, ' ')
		}
		space = false
		dst = append(dst, c)
		switch c {
		case '"':
			quoted = true
		case '<':
			angle = true
		case '>':
			angle = false
		}
	}
	return append(dst, "\r\n"...)
}

func isSep(c byte) bool { return c == ';' || c == '=' || c == ',' || c == '/' }
