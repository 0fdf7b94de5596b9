package recordings

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// objectMetrics measure the object store of recordings (object.go).
type objectMetrics struct {
	uploads *prometheus.CounterVec // outcome: uploaded, failed, orphaned
	bytes   prometheus.Counter
	deletes *prometheus.CounterVec // outcome: deleted, failed
}

func newObjectMetrics() *objectMetrics {
	m := &objectMetrics{
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_recording_uploads_total",
			Help: "Attempts to move a finished recording to the object store, by outcome: uploaded (confirmed, local copy removed), failed (retried with backoff), orphaned (its record was erased: file and object removed).",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_recording_upload_bytes_total", Help: "Bytes of recordings uploaded to the object store and confirmed.",
		}),
		deletes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_recording_object_deletes_total",
			Help: "Attempts to delete recordings' objects (erasure, retention), by outcome: deleted, failed (kept and retried).",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"uploaded", "failed", "orphaned"} {
		m.uploads.WithLabelValues(o)
	}
	for _, o := range []string{"deleted", "failed"} {
		m.deletes.WithLabelValues(o)
	}
	return m
}

// RegisterObjectMetrics registers the object store's metrics for a node without one: the
// counters stay 0 and the gauges read 0, so that dashboards and alert rules find every
// series on every node.
func RegisterObjectMetrics(reg prometheus.Registerer) error {
	return newObjectMetrics().register(reg, nil)
}

// register registers m and the gauges that read o (nil: no object store, all 0).
func (m *objectMetrics) register(reg prometheus.Registerer, o *Objects) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{m.uploads, m.bytes, m.deletes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trackline_recording_uploads_pending", Help: "Finished recordings on this node's disk waiting for their upload to the object store.",
		}, func() float64 { return float64(o.Pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trackline_recording_upload_oldest_pending_seconds", Help: "Age of the oldest recording waiting for its upload (0 when none waits).",
		}, func() float64 { return o.oldestPending().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trackline_recording_object_deletes_pending", Help: "Deletions of objects not yet confirmed by the object store (kept on disk, retried).",
		}, func() float64 { return float64(o.PendingDeletes()) }),
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("register object store metrics: %w", err)
		}
	}
	return nil
}
