package googleads

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trackline/trackline/store"
)

// Request outcomes, the label of trackline_googleads_requests_total.
const (
	requestOK           = "ok"           // 200 (some conversions may have failed: see the conversions' outcomes)
	requestRetryable    = "retryable"    // 429, 5xx or no answer: retried
	requestUnauthorized = "unauthorized" // 401: a fresh access token is got
	requestRefused      = "refused"      // another status: the calls stay pending
	requestTokenError   = "token_error"  // the refresh token exchange failed
)

type metrics struct {
	requests    *prometheus.CounterVec
	conversions *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_googleads_requests_total",
			Help: "Requests to the Google Ads API's uploadClickConversions by outcome.",
		}, []string{"outcome"}),
		conversions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_googleads_conversions_total",
			Help: "Calls whose conversion upload was settled or deferred, by the state they got (pending, uploaded, failed, skipped).",
		}, []string{"state"}),
	}
	for _, o := range []string{requestOK, requestRetryable, requestUnauthorized, requestRefused, requestTokenError} {
		m.requests.WithLabelValues(o)
	}
	for _, s := range []store.UploadState{store.UploadPending, store.UploadUploaded, store.UploadFailed, store.UploadSkipped} {
		m.conversions.WithLabelValues(string(s))
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.requests, m.conversions} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
