package ca

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/core"
)

// metrics counts issuance by profile and outcome (issued, rejected: the
// request's fault, failed: ours).
type metrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	if r == nil {
		return nil, nil
	}
	m := &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strongroom_issuance_total", Help: "Certificates requested, by profile and outcome (issued, rejected, failed).",
		}, []string{"profile", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strongroom_issuance_duration_seconds", Help: "Time to issue one certificate (reserve to store), by profile and outcome.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"profile", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.total, m.duration} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("registering issuance metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(profile string, err error, d time.Duration) {
	if m == nil {
		return
	}
	outcome := "issued"
	if err != nil {
		switch core.KindOf(err) {
		case core.KindInternal, core.KindUnavailable:
			outcome = "failed"
		default:
			outcome = "rejected"
		}
	}
	m.total.WithLabelValues(profile, outcome).Inc()
	m.duration.WithLabelValues(profile, outcome).Observe(d.Seconds())
}

func (m *metrics) refused(profile string) {
	if m != nil {
		m.total.WithLabelValues(profile, "rejected").Inc()
	}
}
