package recordings

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are always kept; they are registered only when a Registerer is given.
type metrics struct {
	active       prometheus.Gauge
	written      prometheus.Counter
	bytes        prometheus.Counter
	dropped      prometheus.Counter
	repaired     prometheus.Counter
	writeSeconds prometheus.Histogram
	migrated     *prometheus.CounterVec // result: encrypted, removed, failed (MigratePlain)
	plain        prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_recordings_active", Help: "Recordings open for writing.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_recordings_written_total", Help: "Recordings finished into a .wav file.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_recording_bytes_total", Help: "Bytes written to recording files (headers, audio, gap silence).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_recording_dropped_chunks_total", Help: "One-second recording chunks dropped: writer queue full, out of order, invalid or after a write error.",
		}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_recordings_repaired_total", Help: "Unfinished .wav.part files turned into .wav by Repair.",
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trackline_recording_write_seconds",
			Help:    "Time to decode and write one one-second chunk (including gap silence before it).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14), // 50µs .. 410ms
		}),
		migrated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_recordings_migrated_total",
			Help: "Plain recordings of builds before encryption at rest handled at start: encrypted, removed (customer gone) or failed (left as they were).",
		}, []string{"result"}),
		plain: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_recordings_plain_files",
			Help: "Recordings still stored in the clear (plain .wav of an earlier build) after the migration at start.",
		}),
	}
	for _, result := range []string{"encrypted", "removed", "failed"} {
		m.migrated.WithLabelValues(result)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{m.active, m.written, m.bytes, m.dropped, m.repaired, m.writeSeconds, m.migrated, m.plain}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("register recording metrics: %w", err)
		}
	}
	return nil
}
