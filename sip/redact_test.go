package sip

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestRedactHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(RedactHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	msg := "INVITE sip:+31850000101@127.0.0.1 SIP/2.0\r\nFrom: <sip:+31612345678@10.0.0.1>;tag=1\r\n"
	log.Error("failed to parse", "data", msg, "error", errors.New("bad header From: <sip:0612345678@x>"))
	log.With("caller", "tel:0031612345678").Info("x", slog.Group("g", "from", "+31612345678"))
	log.Warn("call 0612345678 ended", "call_id", "01JD0612345678", "err", errors.New("no route"), "line_index", 2,
		"addr", "192.168.100.200:5060", "small", "123456")
	out := buf.String()
	// call_id is kept as it is: ids are not numbers, and this one only looks like one.
	for _, leak := range []string{"612345678", "INVITE sip"} {
		if strings.Contains(strings.ReplaceAll(out, `"call_id":"01JD0612345678"`, ""), leak) {
			t.Errorf("%q in the log:\n%s", leak, out)
		}
	}
	for _, kept := range []string{`"data":"[SIP message withheld]"`, `"error":"bad header From: <sip:[number]@x>"`,
		`"call_id":"01JD0612345678"`, `"err":"no route"`, `"line_index":2`, `"addr":"192.168.100.200:5060"`,
		`"small":"123456"`, `"msg":"call [number] ended"`, `"caller":"tel:[number]"`, `"from":"+[number]"`} {
		if !strings.Contains(out, kept) {
			t.Errorf("log lacks %s:\n%s", kept, out)
		}
	}
}

func TestMaskDigits(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"+31612345678":        "+[number]",
		"a1234567b12345678":   "a[number]b[number]",
		"123456":              "123456",
		"06 1234 5678":        "06 1234 5678",
		"x9999999":            "x[number]",
		"1234567 and 7654321": "[number] and [number]",
	} {
		if got := maskDigits(in); got != want {
			t.Errorf("maskDigits(%q) = %q, want %q", in, got, want)
		}
	}
}
