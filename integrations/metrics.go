package integrations

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Attempt outcomes, the label of trackline_webhook_attempts_total.
const (
	outcomeDelivered  = "delivered"        // a 2xx
	outcomeStatus     = "status_error"     // another status (3xx: redirects are not followed)
	outcomeTimeout    = "timeout"          // no answer within Config.Timeout
	outcomeConnection = "connection_error" // refused, reset, TLS, DNS
	outcomeRefused    = "refused_address"  // the guard refused the address
	outcomeGone       = "gone"             // a 410: the endpoint is disabled
)

type metrics struct {
	attempts *prometheus.CounterVec
	duration prometheus.Histogram
	gaveUp   prometheus.Counter
	funcs    []prometheus.Collector
}

func newMetrics(w *Webhooks) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_webhook_attempts_total",
			Help: "Webhook delivery attempts by outcome.",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trackline_webhook_attempt_duration_seconds",
			Help:    "Time from connecting to a webhook endpoint to its answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		gaveUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_webhook_given_up_total",
			Help: "Webhook deliveries given up after retrying for webhooks' max age (3 days).",
		}),
	}
	for _, o := range []string{outcomeDelivered, outcomeStatus, outcomeTimeout, outcomeConnection, outcomeRefused, outcomeGone} {
		m.attempts.WithLabelValues(o)
	}
	m.funcs = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trackline_webhook_queue_depth",
			Help: "Webhook deliveries not made yet (pending, retrying or waiting for an earlier message of their call).",
		}, func() float64 {
			st, err := w.db.OutboxStats()
			if err != nil {
				return 0
			}
			return float64(st.Pending)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trackline_webhook_oldest_undelivered_seconds",
			Help: "Age of the oldest webhook message with a delivery not made yet (0: none).",
		}, func() float64 {
			st, err := w.db.OutboxStats()
			if err != nil || st.Oldest.IsZero() {
				return 0
			}
			return max(w.now().Sub(st.Oldest).Seconds(), 0)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trackline_webhook_endpoints_disabled",
			Help: "Webhook endpoints disabled (by a 410 Gone or by their customer).",
		}, func() float64 { d, _ := w.counts(); return float64(d) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trackline_webhook_circuits_open",
			Help: "Webhook endpoints whose circuit breaker holds deliveries back after consecutive failures.",
		}, func() float64 { _, o := w.counts(); return float64(o) }),
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.attempts, m.duration, m.gaveUp}, m.funcs...)
}
