package main

import (
	"crypto"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// hsmMetrics times every signature the HSM makes for the CA, by key label:
// strongroom_hsm_operation_duration_seconds{key, op}.
type hsmMetrics struct {
	latency *prometheus.HistogramVec
}

func newHSMMetrics(reg prometheus.Registerer) *hsmMetrics {
	m := &hsmMetrics{latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strongroom_hsm_operation_duration_seconds",
		Help:    "Latency of HSM operations made by the CA, by key label and operation.",
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
}

func (t *timedSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	start := time.Now()
	sig, err := t.Signer.Sign(rand, digest, opts)
	if err != nil {
		t.failed.Observe(time.Since(start).Seconds())
	} else {
		t.ok.Observe(time.Since(start).Seconds())
	}
	return sig, err
}
