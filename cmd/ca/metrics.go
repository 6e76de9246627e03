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

// failing is the last signature's error, or nil; with none, the error of
// a key that says it is not there now (a CA key on a PKCS#11 token that
// went away while nothing signed), which then counts as the last error.
func (t *timedSigner) failing() error {
	if p := t.lastErr.Load(); p != nil {
		return *p
	}
	if p, ok := t.Signer.(interface{ Present() error }); ok {
		if err := p.Present(); err != nil {
			t.lastErr.Store(&err)
			return err
		}
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
// Prometheus scrapes, and in the background: a scrape reports the last
// counts and, when they are a minute old, starts counting again for the
// next scrape, so it never waits on the database once the node has counted
// once (one count at a time, however many scrapes come meanwhile). Only a
// scrape with no counts yet waits, at most firstWait, for the count it
// started. A count that fails leaves the last counts in place and is
// tried again at the next scrape.
type expiryMetrics struct {
	issuers func() map[string]time.Time
	count   func(ctx context.Context, now time.Time, windows []time.Duration) ([]int64, error)
	now     func() time.Time
	log     *slog.Logger

	// firstWait bounds how long a scrape waits for the counts when there
	// are none yet; timeout bounds a count.
	firstWait, timeout time.Duration
	// base ends a count in progress when the node closes (stop).
	base context.Context
	stop context.CancelFunc

	issuerDesc, expiringDesc *prometheus.Desc
	mu                       sync.Mutex
	at                       time.Time     // when counts were counted
	counts                   []int64       // by expiryWindows; nil until a count succeeds
	counting                 chan struct{} // closed when the count in progress ends; nil if none is
}

var expiryWindows = []struct {
	name string
	d    time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// expiryEvery is how old the counts are when a scrape starts counting again.
const expiryEvery = time.Minute

func newExpiryMetrics(issuers func() map[string]time.Time, count func(context.Context, time.Time, []time.Duration) ([]int64, error), log *slog.Logger) *expiryMetrics {
	base, stop := context.WithCancel(context.Background())
	return &expiryMetrics{issuers: issuers, count: count, now: time.Now, log: log, firstWait: 5 * time.Second, timeout: 30 * time.Second,
		base: base, stop: stop,
		issuerDesc: prometheus.NewDesc("strongroom_issuer_not_after_timestamp_seconds",
			"When each CA certificate (root and intermediates) expires, Unix seconds.", []string{"issuer"}, nil),
		expiringDesc: prometheus.NewDesc("strongroom_certificates_expiring",
			"Valid certificates that expire within the window (counted at most once a minute, in the background).", []string{"within"}, nil)}
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
	if m.counting == nil && (m.counts == nil || m.now().Sub(m.at) >= expiryEvery) {
		m.counting = make(chan struct{})
		go m.refresh(m.counting)
	}
	counts, counting := m.counts, m.counting
	m.mu.Unlock()
	if counts == nil && counting != nil {
		wait := time.NewTimer(m.firstWait)
		select {
		case <-counting:
		case <-wait.C:
		}
		wait.Stop()
		m.mu.Lock()
		counts = m.counts
		m.mu.Unlock()
	}
	if counts == nil {
		return
	}
	for i, w := range expiryWindows {
		ch <- prometheus.MustNewConstMetric(m.expiringDesc, prometheus.GaugeValue, float64(counts[i]), w.name)
	}
}

// refresh counts the certificates expiring in each window, then closes done.
func (m *expiryMetrics) refresh(done chan struct{}) {
	defer close(done)
	now := m.now()
	windows := make([]time.Duration, len(expiryWindows))
	for i, w := range expiryWindows {
		windows[i] = w.d
	}
	ctx, cancel := context.WithTimeout(m.base, m.timeout)
	defer cancel()
	counts, err := m.count(ctx, now, windows)
	if m.base.Err() != nil {
		return // the node is closing: nothing to report
	}
	if err == nil && len(counts) != len(windows) {
		err = fmt.Errorf("%d counts for %d windows", len(counts), len(windows))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counting = nil
	if err != nil {
		m.log.Warn("counting expiring certificates for /metrics", "err", err)
		return
	}
	m.counts, m.at = counts, now
}
