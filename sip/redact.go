package sip

import (
	"context"
	"log/slog"
)

// A caller's number must never reach the logs. The switch's own log lines do not carry it,
// but text from SIP does: sipgo logs a datagram it cannot parse whole (attribute "data"),
// and its errors, which we log, can quote a request or response with its From header.
// RedactHandler is the last line: it drops raw message attributes and masks every run of
// seven or more digits in the text of a record, which is how SIP carries a number
// (sip:+31612345678@host, tel:0612345678). Numbers are masked whoever they belong to (a
// dialled number too); ids that mix digits and letters (call ids) pass as long as they have
// no such run, and the attributes in keepKeys are never masked. Numeric attributes (counts,
// durations) are not text and pass untouched.

// keepKeys are attributes that never hold a number: ids the switch makes.
var keepKeys = map[string]bool{"call_id": true, "customer": true, "recording": true}

// RedactHandler wraps h so that raw SIP messages and digit runs that may be phone numbers
// never reach it. Use it for the switch's logger and for sipgo's (sip.SetDefaultLogger).
func RedactHandler(h slog.Handler) slog.Handler { return redactHandler{h} }

type redactHandler struct{ h slog.Handler }

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, maskDigits(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redactHandler{r.h.WithAttrs(red)}
}

func (r redactHandler) WithGroup(name string) slog.Handler { return redactHandler{r.h.WithGroup(name)} }

// redactAttr masks one attribute (groups recursively).
func redactAttr(a slog.Attr) slog.Attr {
	if keepKeys[a.Key] {
		return a
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		red := make([]slog.Attr, len(g))
		for i, ga := range g {
			red[i] = redactAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindString, slog.KindAny:
		if a.Key == "data" {
			return slog.String(a.Key, "[SIP message withheld]")
		}
		s := v.String()
		if err, ok := v.Any().(error); ok && v.Kind() == slog.KindAny {
			s = err.Error()
		}
		if m := maskDigits(s); m != s {
			return slog.String(a.Key, m)
		}
	}
	return a
}

// maskDigits replaces every run of seven or more digits in s with "[number]".
func maskDigits(s string) string {
	run, start := 0, 0
	var out []byte
	last := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if run == 0 {
				start = i
			}
			run++
			continue
		}
		if run >= 7 {
			out = append(out, s[last:start]...)
			out = append(out, "[number]"...)
			last = i
		}
		run = 0
	}
	if out == nil {
		return s
	}
	return string(append(out, s[last:]...))
}
