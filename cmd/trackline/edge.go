package main

import (
	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/sip"
)

// edgeConfig maps sip.unknown_sources and sip.edge to the switch's edge.
func edgeConfig(c configs.SIPConfig) sip.EdgeConfig {
	return sip.EdgeConfig{
		MaxHeaderBytes: c.Edge.MaxHeaderBytes, MaxBodyBytes: c.Edge.MaxBodyBytes,
		AnswerUnknown: c.UnknownSources == "answer",
		SourceRate:    c.Edge.SourceRate, SourceBurst: c.Edge.SourceBurst, BanAfter: c.Edge.BanAfter, BanFor: c.Edge.BanFor,
	}
}
