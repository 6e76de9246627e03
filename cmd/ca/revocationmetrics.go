package main

import (
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/storage"
)

// revocationMetrics shows whether revocation information is fresh, the
// thing to alert on before clients see it: a CRL past its nextUpdate makes
// every relying party that checks CRLs fail closed, and an OCSP responder
// certificate that expires makes every OCSP answer unverifiable.
//
//	strongroom_crl_this_update_timestamp_seconds{issuer, kind}
//	strongroom_crl_next_update_timestamp_seconds{issuer, kind}
//	strongroom_crl_number{issuer, kind}
//	strongroom_ocsp_responder_not_after_timestamp_seconds{issuer}
//	strongroom_ocsp_unanswered_total{kind}
//
// The CRL's kind is "full" or "delta"; the unanswered kinds are "status"
// (the certificate store failed), "key" (no signing key or responder
// certificate) and "sign": OCSP clients get tryLater or internalError
// inside a 200, so a responder that cannot sign shows only here and in the
// log. Values are read from what this node serves at
// scrape time; an issuer with no CRL yet, or whose OCSP answers its own key
// signs, has no series.
type revocationMetrics struct {
	issuers    []string
	crl        func(issuerID string, delta bool) *storage.CRL
	responder  func(issuerID string) *x509.Certificate
	unanswered func() map[string]uint64

	thisUpdate, nextUpdate, number, responderEnd, unansweredDesc *prometheus.Desc
}

func newRevocationMetrics(issuers []string, crl func(string, bool) *storage.CRL, responder func(string) *x509.Certificate, unanswered func() map[string]uint64) *revocationMetrics {
	crlLabels := []string{"issuer", "kind"}
	return &revocationMetrics{issuers: issuers, crl: crl, responder: responder, unanswered: unanswered,
		thisUpdate: prometheus.NewDesc("strongroom_crl_this_update_timestamp_seconds",
			"thisUpdate of the CRL this node serves, Unix seconds.", crlLabels, nil),
		nextUpdate: prometheus.NewDesc("strongroom_crl_next_update_timestamp_seconds",
			"nextUpdate of the CRL this node serves, Unix seconds: relying parties refuse it after this.", crlLabels, nil),
		number: prometheus.NewDesc("strongroom_crl_number",
			"CRL number of the CRL this node serves.", crlLabels, nil),
		responderEnd: prometheus.NewDesc("strongroom_ocsp_responder_not_after_timestamp_seconds",
			"When the delegated OCSP responder certificate this node signs with expires, Unix seconds.", []string{"issuer"}, nil),
		unansweredDesc: prometheus.NewDesc("strongroom_ocsp_unanswered_total",
			"OCSP requests this node answered tryLater or internalError because it failed, by kind: status (certificate store), key (signing key or responder certificate), sign.", []string{"kind"}, nil),
	}
}

func (m *revocationMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.thisUpdate
	ch <- m.nextUpdate
	ch <- m.number
	ch <- m.responderEnd
	ch <- m.unansweredDesc
}

func (m *revocationMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, id := range m.issuers {
		for _, delta := range []bool{false, true} {
			c := m.crl(id, delta)
			if c == nil {
				continue
			}
			kind := "full"
			if delta {
				kind = "delta"
			}
			ch <- prometheus.MustNewConstMetric(m.thisUpdate, prometheus.GaugeValue, float64(c.ThisUpdate.Unix()), id, kind)
			ch <- prometheus.MustNewConstMetric(m.nextUpdate, prometheus.GaugeValue, float64(c.NextUpdate.Unix()), id, kind)
			ch <- prometheus.MustNewConstMetric(m.number, prometheus.GaugeValue, float64(c.Number), id, kind)
		}
		if cert := m.responder(id); cert != nil {
			ch <- prometheus.MustNewConstMetric(m.responderEnd, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), id)
		}
	}
	for kind, n := range m.unanswered() {
		ch <- prometheus.MustNewConstMetric(m.unansweredDesc, prometheus.CounterValue, float64(n), kind)
	}
}
