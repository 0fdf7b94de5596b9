package sip

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	active      prometheus.Gauge
	calls       *prometheus.CounterVec
	custCalls   *prometheus.CounterVec
	setup       *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	responses   *prometheus.CounterVec
	aclRejected prometheus.Counter
}

func newMetrics() *metrics {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	return &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_calls_active", Help: "Calls in progress (ringing or talking).",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_calls_total", Help: "Calls ended, by disposition.",
		}, []string{"disposition"}),
		custCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_customer_calls_total", Help: "Calls ended, by customer and disposition (the answer ratio per customer).",
		}, []string{"customer", "disposition"}),
		setup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "trackline_call_setup_seconds",
			Help:    "From the trunk's INVITE to the business line's first provisional answer (stage=provisional) and to its answer (stage=answer).",
			Buckets: buckets,
		}, []string{"stage"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_sip_requests_total", Help: "SIP requests received, by method.",
		}, []string{"method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_sip_responses_total", Help: "SIP final and provisional responses, by direction (sent, received) and status class.",
		}, []string{"direction", "class"}),
		aclRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_sip_acl_rejected_total", Help: "INVITEs refused because their source is not a configured trunk.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.active, m.calls, m.custCalls, m.setup, m.requests, m.responses, m.aclRejected} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register sip metrics: %w", err)
		}
	}
	return nil
}

var classes = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx"}

func statusClass(code int) string {
	if c := code / 100; c >= 1 && c <= 6 {
		return classes[c]
	}
	return classes[0]
}

func (m *metrics) response(direction string, code int) {
	m.responses.WithLabelValues(direction, statusClass(code)).Inc()
}
