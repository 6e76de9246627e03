package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

// signingProblem is the generic reason /readyz gives (anyone may ask);
// the log names the user and the cause. What fails depends on where the CA
// keys are: with the embedded module, certificates, CRLs and fresh OCSP
// responses; with CA keys on a PKCS#11 token, the OCSP responder keys
// (kept in the embedded module).
const signingProblem = "the CA's HSM user cannot sign (see the log)"

// redisProblem is /readyz's reason when Redis cannot be reached. What it
// refuses is what needs Redis: ACME (its nonces) and requests an hourly
// limit counts (api.issue_per_hour); other REST issuance goes on (a review
// saw the reason say it was refused while 5,000 certificates were issued).
const redisProblem = "Redis cannot be reached: ACME, and issuance an hourly limit counts (api.issue_per_hour), are refused until it can; other REST issuance, OCSP and CRLs still serve"

// noIssuerProblem is /readyz's reason when no intermediate may issue.
const noIssuerProblem = "no issuer can sign new certificates: every intermediate is revoked or expired"

// lowDisk is lowDisk for the node's database, on SQLite (PostgreSQL's
// disk is its server's to watch).
func (a *app) lowDisk() (string, error) {
	if a.n.cfg.Database.Driver != "sqlite" {
		return "", nil
	}
	return lowDisk(a.n.cfg.DatabaseDSN(a.n.dir))
}

// canIssue reports whether a request naming no issuer has one.
func (a *app) canIssue() bool { return a.pipeline == nil || a.pipeline.DefaultIssuer() != "" }

// degraded is /readyz's note on a ready node that cannot sign: its CA
// session is refused, because the CA's HSM user was altered outside the
// HSM (`ca hsm users list` says TAMPERED), deleted or given another role;
// or an issuer's key fails (a PKCS#11 token away); or no intermediate may
// issue (each revoked or expired: the HTTPS listener is self-signed then,
// see tlsCert). The node stays
// ready: the record is shared by every node, so all would leave a load
// balancer together, and stored OCSP responses, CRLs and the rest of the
// API still serve. A change is logged once, as readiness changes are.
func (a *app) degraded() string {
	err := a.sess.Check()
	reason := ""
	if err != nil {
		reason = signingProblem
	} else if id, ferr := a.failingIssuer(); ferr != nil {
		// A CA key on a PKCS#11 token whose last signature failed (the
		// token away); it reconnects by itself when the token is back.
		err, reason = ferr, "the signing key of issuer "+id+" cannot sign (see the log)"
	} else if !a.canIssue() {
		// Every intermediate revoked or expired: shared by every node
		// too, and OCSP and CRLs still serve.
		err, reason = core.ErrNoIssuer, noIssuerProblem
	} else if r, derr := a.lowDisk(); r != "" {
		err, reason = derr, r
	} else if a.shared != nil && a.shared.ping != nil {
		p := a.shared.ping
		// Redis holds the rate limits and ACME nonces: without it the
		// node refuses issuance, renewal and ACME (503), while OCSP and
		// CRLs serve. Shared by every node as well (found by a review:
		// /readyz said ready throughout).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if perr := p(ctx); perr != nil {
			err, reason = perr, redisProblem
		}
		cancel()
	}
	if prev := a.signingReason.Swap(&reason); prev == nil || *prev != reason {
		switch {
		case err != nil:
			a.n.log.Error("degraded: "+reason, "user", a.sess.User(), "err", err)
		case prev != nil:
			a.n.log.Info("the CA signs again", "user", a.sess.User())
		}
	}
	return reason
}

// signingGauge is 1 while the CA can sign, 0 otherwise (the module sealed
// or failed, its CA user refused, or an issuer's key failing): what to
// alert on beside /readyz's "degraded".
func (a *app) signingGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strongroom_ca_signing_available",
		Help: "1 while this node can sign with its CA keys and its embedded HSM session; 0 when the module is sealed or failed, the CA's HSM user was altered, deleted or re-roled, an issuer's key fails (a PKCS#11 token away), or no intermediate may issue (each revoked or expired).",
	}, func() float64 {
		if a.sess.Check() != nil {
			return 0
		}
		if _, err := a.failingIssuer(); err != nil {
			return 0
		}
		if !a.canIssue() {
			return 0
		}
		return 1
	})
}

// failingIssuer names an issuer whose key's last signature failed and
// still fails: a key whose last signature failed signs a probe digest
// first, so a key that works again (a PKCS#11 token put back, an HSM user
// record restored) is not reported until something else signs with it.
func (a *app) failingIssuer() (string, error) {
	if f := a.failingIssuers(false); len(f) > 0 {
		return f[0].id, f[0].err
	}
	return "", nil
}

// issuerFailure is an issuer whose key fails, and why.
type issuerFailure struct {
	id  string
	err error
}

// failingIssuers is failingIssuer for every issuer (all), or up to the
// first that fails.
func (a *app) failingIssuers(all bool) []issuerFailure {
	var out []issuerFailure
	for _, is := range a.signingIssuers() {
		f, ok := is.Signer().(interface{ failing() error })
		if !ok || f.failing() == nil {
			continue
		}
		if _, err := is.Signer().Sign(rand.Reader, probeDigest[:], crypto.SHA256); err != nil {
			if out = append(out, issuerFailure{is.ID(), err}); !all {
				break
			}
		}
	}
	return out
}

// probeDigest is what failingIssuer has a failing key sign.
var probeDigest = sha256.Sum256([]byte("strongroom signing probe"))

// signingIssuers are the issuers whose keys are here: the root unless it
// is external, then the intermediates.
func (a *app) signingIssuers() []*ca.Issuer {
	if a.root.External() {
		return slices.Clone(a.inters)
	}
	return append([]*ca.Issuer{a.root}, a.inters...)
}
