package agents

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a call offered to an agent group (trackline_webrtc_calls_total).
const (
	outAnswered    = "answered"     // an agent accepted and its media connected
	outNoAgent     = "no_agent"     // no idle agent of the group was online
	outNoAnswer    = "no_answer"    // the ring timeout passed
	outRejected    = "rejected"     // every ringing agent rejected or left
	outCancelled   = "cancelled"    // the caller hung up while it rang
	outMediaFailed = "media_failed" // an agent accepted, its media did not connect
)

var outcomes = []string{outAnswered, outNoAgent, outNoAnswer, outRejected, outCancelled, outMediaFailed}

type metrics struct {
	online   prometheus.Gauge
	calls    *prometheus.CounterVec
	failures *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		online: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_agents_online",
			Help: "Browser agent pages logged in.",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_webrtc_calls_total",
			Help: "Calls offered to browser agent groups, by outcome.",
		}, []string{"outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_webrtc_failures_total",
			Help: "Accepted agent calls whose media did not connect or broke, by stage (ice or dtls).",
		}, []string{"stage"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_agent_signalling_errors_total",
			Help: "Signalling messages from agent pages refused, by error code.",
		}, []string{"error"}),
	}
	// Every label value is on /metrics from the start, at zero.
	for _, o := range outcomes {
		m.calls.WithLabelValues(o)
	}
	for _, s := range []string{"ice", "dtls"} {
		m.failures.WithLabelValues(s)
	}
	for _, e := range errorCodes {
		m.errors.WithLabelValues(e)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.online, m.calls, m.failures, m.errors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register agents metrics: %w", err)
			}
		}
	}
	return m, nil
}
