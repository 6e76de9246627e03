package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// signingProblem is the generic reason /readyz gives (anyone may ask);
// the log names the user and the cause. What fails depends on where the CA
// keys are: with the embedded module, certificates, CRLs and fresh OCSP
// responses; with CA keys on a PKCS#11 token, the OCSP responder keys
// (kept in the embedded module).
const signingProblem = "the CA's HSM user cannot sign (see the log)"

// degraded is /readyz's note on a ready node: its CA session cannot sign,
// because the CA's HSM user was altered outside the HSM (`ca hsm users
// list` says TAMPERED), deleted or given another role. The node stays
// ready: the record is shared by every node, so all would leave a load
// balancer together, and stored OCSP responses, CRLs and the rest of the
// API still serve. A change is logged once, as readiness changes are.
func (a *app) degraded() string {
	err := a.sess.Check()
	reason := ""
	if err != nil {
		reason = signingProblem
	}
	if prev := a.signingReason.Swap(&reason); prev == nil || *prev != reason {
		switch {
		case err != nil:
			a.n.log.Error("degraded: the CA's HSM session cannot sign", "user", a.sess.User(), "err", err)
		case prev != nil:
			a.n.log.Info("the CA's HSM session signs again", "user", a.sess.User())
		}
	}
	return reason
}

// signingGauge is 1 while the CA's HSM session can sign, 0 otherwise
// (sealed, failed, or its user refused): what to alert on beside
// /readyz's "degraded".
func (a *app) signingGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strongroom_ca_signing_available",
		Help: "1 while this node's CA session with the embedded HSM can sign (the CA keys, or with CA keys on a PKCS#11 token the OCSP responder keys); 0 when the module is sealed or failed, or the CA's HSM user was altered, deleted or re-roled.",
	}, func() float64 {
		if a.sess.Check() != nil {
			return 0
		}
		return 1
	})
}
