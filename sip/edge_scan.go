package sip

import (
	"bytes"
)

// This file is the edge's one-pass reader of a SIP message's bytes (hand-written: sipgo's
// parser either accepts a message or drops it, and tells no one what was wrong or where
// the answer should go). It reads the start line and the header lines in place, without
// allocating, finds what an answer needs (Via, From, To, Call-ID, CSeq) even when other
// parts are broken, and names the first fault that RFC 3261 asks a UAS to answer. It does
// not build a message: messages it finds well formed go on to sipgo's parser.

// span is a part of the message: b[off:off+n].
type span struct{ off, n int }

func (s span) of(b []byte) []byte { return b[s.off : s.off+s.n] }

// fault is what the edge answers a request with: the status and a reason phrase that
// names the fault (RFC 3261 §21.4: the phrase is for the human; the code is what counts).
type fault struct {
	code   int
	reason string
}

// Faults the scan finds. Reason phrases name the fault, in the style of RFC 3261's.
var (
	faultRequestLine   = fault{400, "Malformed Request-Line"}
	faultRequestURI    = fault{400, "Malformed Request-URI"}
	faultURIHeaders    = fault{400, "Headers In Request-URI"}
	faultVersion       = fault{505, "Version Not Supported"}
	faultScheme        = fault{416, "Unsupported URI Scheme"}
	faultLineEnding    = fault{400, "Line Not Ended By CRLF"}
	faultHeaderLine    = fault{400, "Malformed Header Line"}
	faultNoBlankLine   = fault{400, "Header Section Not Ended"}
	faultCSeq          = fault{400, "Malformed CSeq"}
	faultCSeqMethod    = fault{400, "CSeq Method Mismatch"}
	faultContentLength = fault{400, "Malformed Content-Length"}
	faultCLTooLong     = fault{400, "Content-Length Exceeds Datagram"}
	faultCLMissing     = fault{400, "Missing Content-Length"}
	faultBodyTooLarge  = fault{413, "Request Entity Too Large"}
	faultTooLarge      = fault{513, "Message Too Large"}
	faultExtension     = fault{420, "Bad Extension"}
	faultNotAcceptable = fault{406, "Not Acceptable"}
	faultMediaType     = fault{415, "Unsupported Media Type"}
	faultUnparsable    = fault{400, "Malformed Message"}
)

// hdr identifies the header fields the edge looks at.
type hdr uint8

const (
	hdrOther hdr = iota
	hdrVia
	hdrFrom
	hdrTo
	hdrCallID
	hdrCSeq
	hdrContentLength
	hdrMaxForwards
	hdrContact
	hdrRequire
	hdrAccept
	hdrContentType
	hdrCount
)

var hdrNames = [hdrCount]string{"", "Via", "From", "To", "Call-ID", "CSeq", "Content-Length", "Max-Forwards", "Contact", "Require", "Accept", "Content-Type"}

// Faults of the fields that may appear once, and of fields that are malformed.
var (
	faultMissing   [hdrCount]fault
	faultMultiple  [hdrCount]fault
	faultMalformed [hdrCount]fault
)

func init() {
	for h := hdrVia; h < hdrCount; h++ {
		faultMissing[h] = fault{400, "Missing " + hdrNames[h] + " Header"}
		faultMultiple[h] = fault{400, "Multiple " + hdrNames[h] + " Headers"}
		faultMalformed[h] = fault{400, "Malformed " + hdrNames[h] + " Header"}
	}
}

// hdrOf maps a field name (long or compact form, any case; RFC 3261 §7.3.3) to the
// fields the edge reads.
func hdrOf(name []byte) hdr {
	switch len(name) {
	case 1:
		switch name[0] | 0x20 {
		case 'v':
			return hdrVia
		case 'f':
			return hdrFrom
		case 't':
			return hdrTo
		case 'i':
			return hdrCallID
		case 'l':
			return hdrContentLength
		case 'm':
			return hdrContact
		case 'c':
			return hdrContentType
		}
	case 2:
		if bytes.EqualFold(name, []byte("to")) {
			return hdrTo
		}
	case 3:
		if bytes.EqualFold(name, []byte("via")) {
			return hdrVia
		}
	case 4:
		switch {
		case bytes.EqualFold(name, []byte("from")):
			return hdrFrom
		case bytes.EqualFold(name, []byte("cseq")):
			return hdrCSeq
		}
	case 6:
		if bytes.EqualFold(name, []byte("accept")) {
			return hdrAccept
		}
	case 7:
		switch {
		case bytes.EqualFold(name, []byte("call-id")):
			return hdrCallID
		case bytes.EqualFold(name, []byte("contact")):
			return hdrContact
		case bytes.EqualFold(name, []byte("require")):
			return hdrRequire
		}
	case 14:
		if bytes.EqualFold(name, []byte("content-length")) {
			return hdrContentLength
		}
	case 12:
		switch {
		case bytes.EqualFold(name, []byte("max-forwards")):
			return hdrMaxForwards
		case bytes.EqualFold(name, []byte("content-type")):
			return hdrContentType
		}
	}
	return hdrOther
}

// scan is the edge's reading of one message. A scan is reused: reset clears it without
// giving up its slices.
type scan struct {
	request  bool
	response bool
	status   int // a response's status code; 0 when unreadable
	method   span
	uri      span
	// fields[h] is the last line of field h (name to end of value, folded lines included);
	// count[h] how many lines of it there were.
	fields [hdrCount]span
	count  [hdrCount]int
	vias   []span // every Via line, in order: an answer copies them all
	// values
	callID  span
	require span // the Require values: what an answer's Unsupported lists
	clen    int  // Content-Length, -1 when absent
	headEnd int  // offset of the body (after the blank line), -1 when the header section has no end
	fault   fault
	// lax: valid, but written in ways sipgo v1.7.2 misreads (folded lines, white space
	// around the ; = , / of parameters): the edge hands sipgo a tightened copy (normalize).
	lax bool
	// answerTag, when not 0, is the To tag of the edge's answer (appendAnswer): set by the
	// caller, so that every retransmission of a request gets the same answer.
	answerTag uint64
}

func (s *scan) reset() {
	vias := s.vias[:0]
	*s = scan{vias: vias, clen: -1, headEnd: -1}
}

// setFault keeps the first fault found.
func (s *scan) setFault(f fault) {
	if s.fault.code == 0 {
		s.fault = f
	}
}

// answerable: an answer can be matched by the client to its request only with the top Via
// (the transaction, RFC 3261 §17.2.3) and the CSeq (§8.1.3.3).
func (s *scan) answerable() bool { return len(s.vias) > 0 && s.count[hdrCSeq] > 0 }

// readMessage scans b, one whole datagram (stream false) or a stream message whose header
// section is complete (stream true: the Content-Length is checked against limits, not
// against b). It sets s.fault to the first fault a request has; responses are only
// classified (a response is never answered, RFC 3261 §18.1.2 drops bad ones).
func (s *scan) readMessage(b []byte, stream bool, lim *edgeLimits) {
	s.reset()
	eol, next, bare := lineEnd(b, 0)
	if eol < 0 {
		s.setFault(faultNoBlankLine)
		eol, next = len(b), len(b)
	}
	if bare {
		s.setFault(faultLineEnding)
	}
	s.startLine(b, eol)
	if s.response && !stream && s.status < 200 {
		// A datagram's response needs no framing, and is never answered; a final one's
		// Call-ID and CSeq tell admission control a business line's answer (inviteRef).
		return
	}
	s.headers(b, next, lim)
	if s.count[hdrContentLength] == 1 {
		if v, ok := number(valueSpan(b, s.fields[hdrContentLength]).of(b)); ok {
			s.clen = v
		} else {
			s.setFault(faultContentLength)
		}
	}
	if !s.request {
		return
	}
	s.checkFields(b, stream, lim)
}

// lineEnd finds the end of the line that starts at i: eol is where its CR (or bare LF) is,
// next where the next line starts; bare reports a line ended by LF alone or a CR not
// followed by LF. eol is -1 when b ends without a line end.
func lineEnd(b []byte, i int) (eol, next int, bare bool) {
	j := bytes.IndexByte(b[i:], '\n')
	if j < 0 {
		if k := bytes.IndexByte(b[i:], '\r'); k >= 0 {
			return i + k, len(b), true
		}
		return -1, len(b), false
	}
	eol = i + j
	next = eol + 1
	if eol > i && b[eol-1] == '\r' {
		eol--
	} else {
		bare = true
	}
	if bytes.IndexByte(b[i:eol], '\r') >= 0 {
		bare = true
	}
	return eol, next, bare
}

// startLine reads the Request-Line (RFC 3261 §25.1: Method SP Request-URI SP SIP-Version,
// single spaces) or recognises a Status-Line.
func (s *scan) startLine(b []byte, eol int) {
	line := b[:eol]
	if len(line) >= 4 && bytes.EqualFold(line[:4], []byte("SIP/")) {
		s.response = true
		if sp := bytes.IndexByte(line, ' '); sp > 0 && len(line) >= sp+4 {
			if n, ok := number(line[sp+1 : sp+4]); ok && (len(line) == sp+4 || line[sp+4] == ' ') {
				s.status = n
			}
		}
		return
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		s.setFault(faultRequestLine)
		return
	}
	s.request = true
	s.method = span{0, sp1}
	for _, c := range line[:sp1] {
		if !isToken(c) {
			s.setFault(faultRequestLine)
			return
		}
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 || bytes.IndexByte(rest[sp2+1:], ' ') >= 0 || bytes.IndexByte(rest, '\t') >= 0 {
		s.setFault(faultRequestLine) // several spaces, a space in the URI, a trailing space
		return
	}
	s.uri = span{sp1 + 1, sp2}
	version := rest[sp2+1:]
	switch {
	case bytes.EqualFold(version, []byte("SIP/2.0")):
	case len(version) > 4 && bytes.EqualFold(version[:4], []byte("SIP/")):
		s.setFault(faultVersion) // RFC 3261 §21.5.7
		return
	default:
		s.setFault(faultRequestLine)
		return
	}
	s.checkURI(rest[:sp2])
}

// checkURI checks the Request-URI's scheme (RFC 3261 §8.2.2.1: 416 for a scheme we do not
// serve; this switch routes sip: and sips: only) and that it carries no headers (§19.1.5:
// they are not allowed in a Request-URI).
func (s *scan) checkURI(u []byte) {
	colon := bytes.IndexByte(u, ':')
	if colon <= 0 {
		s.setFault(faultRequestURI)
		return
	}
	scheme := u[:colon]
	if !isAlpha(scheme[0]) {
		s.setFault(faultRequestURI) // "<sip:...>" and the like
		return
	}
	for _, c := range scheme[1:] {
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			s.setFault(faultRequestURI)
			return
		}
	}
	if !bytes.EqualFold(scheme, []byte("sip")) && !bytes.EqualFold(scheme, []byte("sips")) {
		s.setFault(faultScheme)
		return
	}
	hostpart := u[colon+1:]
	if at := bytes.LastIndexByte(hostpart, '@'); at >= 0 {
		hostpart = hostpart[at+1:]
	}
	if len(hostpart) == 0 || hostpart[0] == ';' || hostpart[0] == '?' {
		s.setFault(faultRequestURI)
		return
	}
	if bytes.IndexByte(hostpart, '?') >= 0 {
		s.setFault(faultURIHeaders)
	}
}

// headers reads the header lines from i to the blank line, with their folded
// continuation lines (RFC 3261 §7.3.1).
func (s *scan) headers(b []byte, i int, lim *edgeLimits) {
	cur := hdrOther
	curStart := -1
	for i < len(b) {
		eol, next, bare := lineEnd(b, i)
		if eol < 0 {
			s.setFault(faultNoBlankLine)
			s.finishField(b, cur, curStart, len(b))
			return
		}
		if bare {
			s.setFault(faultLineEnding)
		}
		if eol == i { // the blank line
			s.finishField(b, cur, curStart, i)
			s.headEnd = next
			return
		}
		if b[i] == ' ' || b[i] == '\t' {
			if curStart < 0 {
				s.setFault(faultHeaderLine) // a continuation with nothing to continue
			}
			s.lax = true
			i = next
			continue
		}
		s.finishField(b, cur, curStart, i)
		colon := bytes.IndexByte(b[i:eol], ':')
		if colon <= 0 {
			s.setFault(faultHeaderLine)
			cur, curStart = hdrOther, -1
			i = next
			continue
		}
		name := trimLWS(b[i : i+colon])
		for _, c := range name {
			if !isToken(c) {
				s.setFault(faultHeaderLine)
				break
			}
		}
		cur, curStart = hdrOf(name), i
		i = next
	}
	s.finishField(b, cur, curStart, len(b))
	s.setFault(faultNoBlankLine)
}

// finishField records the field that runs from start to end (its line end included).
func (s *scan) finishField(b []byte, h hdr, start, end int) {
	if start < 0 {
		return
	}
	// Trim the line end: the span is the field without its final CRLF.
	for end > start && (b[end-1] == '\n' || b[end-1] == '\r') {
		end--
	}
	f := span{start, end - start}
	s.count[h]++
	s.fields[h] = f
	switch h {
	case hdrVia:
		s.vias = append(s.vias, f)
	case hdrCallID:
		s.callID = valueSpan(b, f)
	case hdrRequire:
		if s.require.n == 0 {
			s.require = valueSpan(b, f)
		}
	}
}

// valueSpan is a field's value: after the colon, without surrounding LWS.
func valueSpan(b []byte, f span) span {
	line := f.of(b)
	colon := bytes.IndexByte(line, ':')
	off := f.off + colon + 1
	end := f.off + f.n
	for off < end && isLWS(b[off]) {
		off++
	}
	for end > off && isLWS(b[end-1]) {
		end--
	}
	return span{off, end - off}
}

// checkFields checks the fields a UAS relies on (RFC 3261 §8.1.1, §8.2.2, §18.3, §20).
func (s *scan) checkFields(b []byte, stream bool, lim *edgeLimits) {
	if s.headEnd > lim.maxHeader || (s.headEnd < 0 && len(b) > lim.maxHeader) {
		s.fault = faultTooLarge // size first: nothing else of a message over the limit matters
		return
	}
	for _, h := range [...]hdr{hdrVia, hdrFrom, hdrTo, hdrCallID, hdrCSeq} {
		if s.count[h] == 0 {
			s.setFault(faultMissing[h])
		}
	}
	for _, h := range [...]hdr{hdrFrom, hdrTo, hdrCallID, hdrCSeq, hdrContentLength, hdrMaxForwards} {
		if s.count[h] > 1 {
			s.setFault(faultMultiple[h])
		}
	}
	if s.count[hdrCSeq] == 1 {
		s.checkCSeq(b)
	}
	if s.count[hdrMaxForwards] == 1 {
		if v, ok := number(valueSpan(b, s.fields[hdrMaxForwards]).of(b)); !ok || v > 255 {
			s.setFault(faultMalformed[hdrMaxForwards])
		}
	}
	for _, h := range [...]hdr{hdrFrom, hdrTo} {
		if s.count[h] == 1 && !nameAddrOK(valueSpan(b, s.fields[h]).of(b), false, &s.lax) {
			s.setFault(faultMalformed[h])
		}
	}
	if s.count[hdrContact] > 0 && !nameAddrOK(valueSpan(b, s.fields[hdrContact]).of(b), true, &s.lax) {
		s.setFault(faultMalformed[hdrContact])
	}
	for _, v := range s.vias {
		if !paramsOK(valueSpan(b, v).of(b), true, &s.lax) {
			s.setFault(faultMalformed[hdrVia])
			break
		}
	}
	if s.count[hdrCallID] == 1 && s.callID.n == 0 {
		s.setFault(faultMalformed[hdrCallID])
	}
	s.checkLength(b, stream, lim)
	if s.fault.code == 0 {
		s.checkNegotiation(b)
	}
}

func (s *scan) checkCSeq(b []byte) {
	v := valueSpan(b, s.fields[hdrCSeq]).of(b)
	i := 0
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	n, ok := number(v[:i])
	if i == 0 || !ok || n > 1<<31-1 || i == len(v) || !isLWS(v[i]) {
		s.setFault(faultCSeq) // RFC 3261 §8.1.1.5: a 32-bit number below 2**31
		return
	}
	method := trimLWS(v[i:])
	for _, c := range method {
		if !isToken(c) {
			s.setFault(faultCSeq)
			return
		}
	}
	if !bytes.Equal(method, s.method.of(b)) {
		s.setFault(faultCSeqMethod) // §8.1.1.5: the method must match the request's
	}
}

// checkLength checks Content-Length against the datagram (RFC 3261 §18.3) and the body and
// header sizes against the limits.
func (s *scan) checkLength(b []byte, stream bool, lim *edgeLimits) {
	if s.count[hdrContentLength] == 1 && s.clen < 0 {
		return // malformed: faulted already
	}
	switch {
	case s.headEnd < 0:
		return
	case s.clen > lim.maxBody:
		s.setFault(faultBodyTooLarge)
	case s.clen < 0 && stream:
		s.setFault(faultCLMissing) // §18.3: it MUST be there on a stream
	case s.clen < 0 && len(b)-s.headEnd > lim.maxBody:
		s.setFault(faultBodyTooLarge)
	case !stream && s.clen > len(b)-s.headEnd:
		s.setFault(faultCLTooLong)
	}
}

// checkNegotiation answers what a UAS must refuse outside a dialog: option tags it does
// not support (RFC 3261 §8.2.2.3, never for ACK or CANCEL), and an INVITE whose answer
// could not carry SDP (§21.4.7: 406; RFC 4475 §3.3.15) or whose body is no SDP (415).
func (s *scan) checkNegotiation(b []byte) {
	method := s.method.of(b)
	if isMethod(method, "ACK") || isMethod(method, "CANCEL") {
		return
	}
	if s.toTagged(b) {
		return // in a dialog: the other leg decides (the switch forwards Require)
	}
	if s.count[hdrRequire] > 0 && s.require.n > 0 {
		s.setFault(faultExtension)
		return
	}
	if !isMethod(method, "INVITE") {
		return
	}
	if s.count[hdrAccept] > 0 && !acceptsSDP(valueSpan(b, s.fields[hdrAccept]).of(b)) {
		s.setFault(faultNotAcceptable)
		return
	}
	// §21.4.13: a body the switch cannot take (an offer is SDP) is answered 415, with the
	// types it takes in Accept.
	if s.clen != 0 && s.headEnd >= 0 && len(b) > s.headEnd && s.count[hdrContentType] > 0 {
		ct := valueSpan(b, s.fields[hdrContentType]).of(b)
		if i := bytes.IndexByte(ct, ';'); i >= 0 {
			ct = trimLWS(ct[:i])
		}
		if !bytes.EqualFold(ct, []byte("application/sdp")) {
			s.setFault(faultMediaType)
		}
	}
}

func isMethod(m []byte, name string) bool { return string(m) == name }

// acceptsSDP: an Accept value that lists application/sdp, application/* or */*.
func acceptsSDP(v []byte) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if i := bytes.IndexByte(item, ';'); i >= 0 {
			item = item[:i]
		}
		item = trimLWS(item)
		if bytes.EqualFold(item, []byte("application/sdp")) || bytes.EqualFold(item, []byte("application/*")) || string(item) == "*/*" {
			return true
		}
	}
	return false
}

// toTagged tells whether the To field has a tag (the request is in a dialog).
func (s *scan) toTagged(b []byte) bool {
	if s.count[hdrTo] == 0 {
		return false
	}
	_, ok := fieldParam(valueSpan(b, s.fields[hdrTo]).of(b), "tag")
	return ok
}

// tag is the value of a From or To field's tag parameter.
func (s *scan) tag(b []byte, h hdr) []byte {
	if s.count[h] == 0 {
		return nil
	}
	v, _ := fieldParam(valueSpan(b, s.fields[h]).of(b), "tag")
	return v
}

// fieldParam finds a header parameter of a name-addr or addr-spec field value: after the
// closing '>' (or, without one, after the URI), outside quoted strings.
func fieldParam(v []byte, name string) ([]byte, bool) {
	i := 0
	if j := indexOutsideQuotes(v, '<'); j >= 0 {
		k := bytes.IndexByte(v[j:], '>')
		if k < 0 {
			return nil, false
		}
		i = j + k + 1
	} else if j := bytes.IndexByte(v, ';'); j >= 0 {
		i = j
	} else {
		return nil, false
	}
	rest := v[i:]
	for {
		semi := indexOutsideQuotes(rest, ';')
		if semi < 0 {
			return nil, false
		}
		rest = rest[semi+1:]
		end := indexOutsideQuotes(rest, ';')
		p := rest
		if end >= 0 {
			p = rest[:end]
		}
		key, val := p, []byte(nil)
		if eq := bytes.IndexByte(p, '='); eq >= 0 {
			key, val = p[:eq], trimLWS(p[eq+1:])
		}
		if bytes.EqualFold(trimLWS(key), []byte(name)) {
			return val, true
		}
	}
}

// indexOutsideQuotes is the index of c in v outside quoted strings (with their \-escapes).
func indexOutsideQuotes(v []byte, c byte) int {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch {
		case quoted && v[i] == '\\':
			i++
		case v[i] == '"':
			quoted = !quoted
		case !quoted && v[i] == c:
			return i
		}
	}
	return -1
}

// nameAddrOK checks a From, To or Contact value (RFC 3261 §20.10, §25.1): quoted strings
// closed, a display name outside quotes made of tokens, no whitespace just inside < and >,
// no empty parameter. Contact may list several values (comma separated), or be "*".
func nameAddrOK(v []byte, list bool, loose *bool) bool {
	if list && string(v) == "*" {
		return true
	}
	for len(v) > 0 {
		item := v
		if list {
			if i := indexOutsideBrackets(v, ','); i >= 0 {
				item, v = v[:i], v[i+1:]
			} else {
				v = nil
			}
		} else {
			v = nil
		}
		if !oneNameAddrOK(trimLWS(item), loose) {
			return false
		}
	}
	return true
}

func oneNameAddrOK(v []byte, loose *bool) bool {
	if len(v) == 0 {
		return false
	}
	lt := indexOutsideQuotes(v, '<')
	if lt < 0 {
		if quotesOpen(v) {
			return false
		}
		return paramsOK(v, false, loose)
	}
	display := trimLWS(v[:lt])
	if len(display) > 0 && display[0] == '"' {
		if end := closingQuote(display); end != len(display)-1 {
			return false
		}
	} else {
		for _, c := range display {
			if !isToken(c) && !isLWS(c) {
				return false // RFC 4475 §3.1.2.15: Bell, Alexander <sip:...>
			}
		}
	}
	gt := bytes.IndexByte(v[lt:], '>')
	if gt < 0 {
		return false
	}
	gt += lt
	if gt == lt+1 || isLWS(v[lt+1]) || isLWS(v[gt-1]) {
		return false // §3.1.2.14: no spaces within the addr-spec
	}
	return paramsOK(v[gt+1:], false, loose)
}

// paramsOK tells whether v has no empty parameter (";;", "; ,", a trailing ';') and no
// open quoted string. via: also checks a Via list (comma separated). It sets *loose when
// white space stands next to a ";" or "=" (or, in a Via, a "/"), outside quoted strings:
// valid, but misread by sipgo (edge_normalize.go).
func paramsOK(v []byte, via bool, loose *bool) bool {
	quoted := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !quoted && (c == ';' || c == '=' || (via && c == '/')) && !*loose &&
			((i > 0 && isLWS(v[i-1])) || (i+1 < len(v) && isLWS(v[i+1]))) {
			*loose = true
		}
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ';':
			j := i + 1
			for j < len(v) && isLWS(v[j]) {
				j++
			}
			if j == len(v) || v[j] == ';' || v[j] == ',' || v[j] == '=' {
				return false
			}
		case !quoted && via && c == ',':
			j := i + 1
			for j < len(v) && isLWS(v[j]) {
				j++
			}
			if j == len(v) || v[j] == ';' || v[j] == ',' {
				return false
			}
		}
	}
	return !quoted
}

// closingQuote is the index of the quote that closes the quoted string v starts with, or -1.
func closingQuote(v []byte) int {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

func quotesOpen(v []byte) bool {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch {
		case quoted && v[i] == '\\':
			i++
		case v[i] == '"':
			quoted = !quoted
		}
	}
	return quoted
}

// indexOutsideBrackets is the index of c outside quoted strings and <...>.
func indexOutsideBrackets(v []byte, c byte) int {
	quoted, angle := false, false
	for i := 0; i < len(v); i++ {
		switch {
		case quoted && v[i] == '\\':
			i++
		case v[i] == '"' && !angle:
			quoted = !quoted
		case quoted:
		case v[i] == '<':
			angle = true
		case v[i] == '>':
			angle = false
		case !angle && v[i] == c:
			return i
		}
	}
	return -1
}

// number parses a decimal number of at most 10 digits (larger is not a valid length,
// CSeq or Max-Forwards here).
func number(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func trimLWS(v []byte) []byte {
	for len(v) > 0 && isLWS(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isLWS(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	return v
}

// isLWS: linear white space, folded line ends included (RFC 3261 §25.1).
func isLWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isToken: RFC 3261 §25.1 token characters.
func isToken(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	switch c {
	case '-', '.', '!', '%', '*', '_', '+', '`', '\'', '~':
		return true
	}
	return false
}
