package sip

import (
	"context"
	"log/slog"
)

// edgeLogHandler is the log handler of sipgo's transport layer. sipgo v1.7.2 logs a
// message it cannot parse at ERROR with the message's raw bytes ("failed to parse",
// data=...), and drops it. Raw bytes from anyone at ERROR would let anyone fill the disk,
// so this handler takes that record out of the log: it hands the bytes to the edge, which
// answers the message when it is a request it passed and an answer can be addressed
// (counting it otherwise), and logs only its size and the parser's error, at DEBUG.
// Everything else goes to the switch's logger unchanged.
type edgeLogHandler struct {
	slog.Handler
	e *edge
}

// sipgoParseFailed is the message sipgo v1.7.2 logs for a message it cannot parse (UDP and
// TCP transports). The RFC 4475 corpus test fails if a new sipgo version renames it.
const sipgoParseFailed = "failed to parse"

// sipgoTxRefused is what sipgo's transaction layer logs at ERROR, with the request's start
// line, for a request it cannot make a transaction of (and answers 400 itself): demoted.
const sipgoTxRefused = "Server tx failed to handle request"

func (h *edgeLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == sipgoTxRefused && r.Level >= slog.LevelError {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		d := slog.NewRecord(r.Time, slog.LevelDebug, "sip request refused by the transaction layer", r.PC)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" {
				d.AddAttrs(slog.String("err", truncate(a.Value.String(), 200)))
			}
			return true
		})
		return h.Handler.Handle(ctx, d)
	}
	if r.Message != sipgoParseFailed {
		return h.Handler.Handle(ctx, r)
	}
	var data, perr string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "data":
			data = a.Value.String()
		case "error":
			perr = a.Value.String()
		}
		return true
	})
	h.e.parseFailed(data)
	if !h.Handler.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	d := slog.NewRecord(r.Time, slog.LevelDebug, "sip message unparsable", r.PC)
	d.AddAttrs(slog.Int("bytes", len(data)), slog.String("err", truncate(perr, 200)))
	return h.Handler.Handle(ctx, d)
}

// Enabled lets the parse failure through whatever the level: it must reach Handle.
func (h *edgeLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.Handler.Enabled(ctx, l)
}

func (h *edgeLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &edgeLogHandler{Handler: h.Handler.WithAttrs(as), e: h.e}
}

func (h *edgeLogHandler) WithGroup(name string) slog.Handler {
	return &edgeLogHandler{Handler: h.Handler.WithGroup(name), e: h.e}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
