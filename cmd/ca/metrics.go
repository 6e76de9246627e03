package main

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// hsmMetrics times every signature the HSM makes for the CA, by key label,
// and the key service's operations (keymetrics.go):
// strongroom_hsm_operation_duration_seconds{key, op, outcome}.
type hsmMetrics struct {
	latency *prometheus.HistogramVec
}

func newHSMMetrics(reg prometheus.Registerer) *hsmMetrics {
	m := &hsmMetrics{latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strongroom_hsm_operation_duration_seconds",
		Help:    "Latency of HSM operations, by key (the CA's key labels; keyservice for applications' keys) and operation.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05},
	}, []string{"key", "op", "outcome"})}
	reg.MustRegister(m.latency)
	return m
}

// signer wraps an HSM signer so each Sign is timed under the key's label.
func (m *hsmMetrics) signer(label string, s crypto.Signer) crypto.Signer {
	return &timedSigner{Signer: s, ok: m.latency.WithLabelValues(label, "sign", "ok"),
		failed: m.latency.WithLabelValues(label, "sign", "error")}
}

type timedSigner struct {
	crypto.Signer
	ok, failed prometheus.Observer
	// lastErr is the last signature's error, nil after a success: what
	// /readyz and strongroom_ca_signing_available report for keys the
	// HSM session check does not cover (CA keys on a PKCS#11 token).
	lastErr atomic.Pointer[error]
}

func (t *timedSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	start := time.Now()
	sig, err := t.Signer.Sign(rand, digest, opts)
	if err != nil {
		t.failed.Observe(time.Since(start).Seconds())
		t.lastErr.Store(&err)
	} else {
		t.ok.Observe(time.Since(start).Seconds())
		t.lastErr.Store(nil)
	}
	return sig, err
}

// failing is the last signature's error, or nil.
func (t *timedSigner) failing() error {
	if p := t.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// expiryMetrics answers the question operators alert on — what is about
// to expire — at scrape time:
//
//	strongroom_issuer_not_after_timestamp_seconds{issuer}   each CA certificate's end
//	strongroom_certificates_expiring{within="24h|7d|30d"}   valid certificates ending that soon
//
// The counts come from one query for the three windows (an index-only
// count, storage.CountExpiring), at most once a minute however often
// Prometheus scrapes.
type expiryMetrics struct {
	issuers func() map[string]time.Time
	count   func(ctx context.Context, now time.Time, windows []time.Duration) ([]int64, error)
	now     func() time.Time
	log     *slog.Logger

	issuerDesc, expiringDesc *prometheus.Desc
	mu                       sync.Mutex
	at                       time.Time
	counts                   []int64 // by expiryWindows
}

var expiryWindows = []struct {
	name string
	d    time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

func newExpiryMetrics(issuers func() map[string]time.Time, count func(context.Context, time.Time, []time.Duration) ([]int64, error), log *slog.Logger) *expiryMetrics {
	return &expiryMetrics{issuers: issuers, count: count, now: time.Now, log: log,
		issuerDesc: prometheus.NewDesc("strongroom_issuer_not_after_timestamp_seconds",
			"When each CA certificate (root and intermediates) expires, Unix seconds.", []string{"issuer"}, nil),
		expiringDesc: prometheus.NewDesc("strongroom_certificates_expiring",
			"Valid certificates that expire within the window (counted at most once a minute).", []string{"within"}, nil)}
}

func (m *expiryMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.issuerDesc
	ch <- m.expiringDesc
}

func (m *expiryMetrics) Collect(ch chan<- prometheus.Metric) {
	for id, end := range m.issuers() {
		ch <- prometheus.MustNewConstMetric(m.issuerDesc, prometheus.GaugeValue, float64(end.Unix()), id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.counts == nil || now.Sub(m.at) >= time.Minute {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		windows := make([]time.Duration, len(expiryWindows))
		for i, w := range expiryWindows {
			windows[i] = w.d
		}
		counts, err := m.count(ctx, now, windows)
		if err == nil && len(counts) != len(windows) {
			err = fmt.Errorf("%d counts for %d windows", len(counts), len(windows))
		}
		if err != nil {
			m.log.Warn("counting expiring certificates for /metrics", "err", err)
		} else {
			m.counts, m.at = counts, now
		}
	}
	if m.counts == nil {
		return
	}
	for i, w := range expiryWindows {
		ch <- prometheus.MustNewConstMetric(m.expiringDesc, prometheus.GaugeValue, float64(m.counts[i]), w.name)
	}
}
