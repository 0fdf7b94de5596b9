package pool

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trackline/trackline/store"
)

type metrics struct {
	reg         prometheus.Registerer
	sessions    *prometheus.CounterVec
	assignments *prometheus.CounterVec
	exhaustions *prometheus.CounterVec
	numbers     *prometheus.GaugeVec
}

func newMetrics() *metrics {
	return &metrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_sessions_created_total", Help: "Website sessions created.",
		}, []string{"customer"}),
		assignments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_assignments_total", Help: "Leases handed out or renewed.",
		}, []string{"customer"}),
		exhaustions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_pool_exhaustions_total", Help: "Leases given while no number was free (the pool is too small).",
		}, []string{"customer"}),
		numbers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "trackline_numbers", Help: "Tracked numbers by customer, kind and state (sampled every 10s).",
		}, []string{"customer", "kind", "state"}),
	}
}

func (m *metrics) register(p *Pool) error {
	if m.reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.sessions, m.assignments, m.exhaustions, m.numbers} {
		if err := m.reg.Register(c); err != nil {
			return fmt.Errorf("register pool metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) leased(customer string, isNew, exhausted bool) {
	m.assignments.WithLabelValues(customer).Inc()
	if isNew {
		m.sessions.WithLabelValues(customer).Inc()
	}
	if exhausted {
		m.exhaustions.WithLabelValues(customer).Inc()
	}
}

// sample updates the number gauges and persists a raised peak of assigned numbers.
func (p *Pool) sample(ctx context.Context) {
	for _, c := range p.Customers() {
		st, err := p.Status(c.ID)
		if err != nil {
			continue
		}
		p.m.numbers.WithLabelValues(c.ID, "pool", "available").Set(float64(st.Available))
		p.m.numbers.WithLabelValues(c.ID, "pool", "assigned").Set(float64(st.Assigned))
		p.m.numbers.WithLabelValues(c.ID, "pool", "grace").Set(float64(st.InGrace))
		p.m.numbers.WithLabelValues(c.ID, "pool", "quarantined").Set(float64(st.Quarantined))
		p.m.numbers.WithLabelValues(c.ID, "static", "available").Set(float64(st.Static))
		cu, err := p.customerByID(c.ID)
		if err != nil {
			continue
		}
		cu.mu.Lock()
		raised := st.Assigned > cu.stats.PeakAssigned
		if raised {
			cu.stats.PeakAssigned = st.Assigned
		}
		cu.mu.Unlock()
		if raised {
			id, n := c.ID, st.Assigned
			if err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.AddStats(id, 0, 0, n) }); err != nil {
				p.log.Warn("persist pool peak", "customer", id, "err", err)
			}
		}
	}
}
