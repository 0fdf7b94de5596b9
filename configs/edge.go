package configs

import "time"

// SIPEdge is what the switch's edge reads before sipgo does (docs/sip-edge.md): the size
// limits of a message, and the per-source limit and bans of sources that are no trunk.
// Zero values take the defaults of package sip.
type SIPEdge struct {
	MaxHeaderBytes int           `yaml:"max_header_bytes"` // a longer header section is answered 513 (default 8192)
	MaxBodyBytes   int           `yaml:"max_body_bytes"`   // a longer body is answered 413 (default 16384)
	SourceRate     float64       `yaml:"source_rate"`      // requests a second a source that is no trunk may send (default 20)
	SourceBurst    int           `yaml:"source_burst"`     // and in a burst (default 100)
	BanAfter       int           `yaml:"ban_after"`        // requests over that limit that ban the source (default 200)
	BanFor         time.Duration `yaml:"ban_for"`          // how long a ban lasts (default 10m)
}

// sipgoReadBuffer is the buffer sipgo v1.7.2 reads a datagram or a TCP segment into
// (sip.TransportBufferReadSize): a message must fit.
const sipgoReadBuffer = 32768

// checkEdge checks sip.unknown_sources and sip.edge.
func (c *Config) checkEdge(add adder) {
	switch c.SIP.UnknownSources {
	case "", "drop", "answer":
	default:
		add("sip.unknown_sources", "must be drop or answer")
	}
	e := c.SIP.Edge
	if e.MaxHeaderBytes != 0 && (e.MaxHeaderBytes < 1024 || e.MaxHeaderBytes > 16384) {
		add("sip.edge.max_header_bytes", "must be between 1024 and 16384")
	}
	if e.MaxBodyBytes < 0 || e.MaxBodyBytes > 16384 {
		add("sip.edge.max_body_bytes", "must be between 1 and 16384 (0: the default)")
	}
	h, b := e.MaxHeaderBytes, e.MaxBodyBytes
	if h == 0 {
		h = 8192
	}
	if b == 0 {
		b = 16384
	}
	if h+b >= sipgoReadBuffer {
		add("sip.edge", "max_header_bytes + max_body_bytes must stay below %d (sipgo's read buffer)", sipgoReadBuffer)
	}
	if e.SourceRate < 0 || e.SourceRate > 100000 {
		add("sip.edge.source_rate", "must be between 0 and 100000 (0: the default)")
	}
	if e.SourceBurst < 0 || e.SourceBurst > 1000000 {
		add("sip.edge.source_burst", "must be between 0 and 1000000 (0: the default)")
	}
	if e.BanAfter < 0 {
		add("sip.edge.ban_after", "must not be negative (0: the default)")
	}
	if e.BanFor < 0 || e.BanFor > 7*24*time.Hour {
		add("sip.edge.ban_for", "must be between 0 and 168h (0: the default)")
	}
}
