package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/crl"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/ra"
)

// ocspConfig is the `ocsp:` section of strongroom.yaml.
type ocspConfig struct {
	// Validity is nextUpdate - thisUpdate of each response. Zero: 24h.
	Validity time.Duration `yaml:"validity"`
	// RefreshBefore replaces a cached response this long before its
	// nextUpdate. Zero: a quarter of Validity, at most 1h.
	RefreshBefore time.Duration `yaml:"refresh_before"`
	// ResponderValidity is the lifetime of the delegated responder
	// certificates (renewed when a third is left). Zero: 720h.
	ResponderValidity time.Duration `yaml:"responder_validity"`
	// SignWithIssuer signs responses with the issuer key instead of a
	// delegated responder certificate. Zero: delegated.
	SignWithIssuer bool `yaml:"sign_with_issuer"`
	// CacheEntries bounds the in-memory cache of signed answers on a node
	// without Redis (about 1 KiB each with P-256 responder certificates).
	// Zero: 250,000.
	CacheEntries int `yaml:"cache_entries"`
	// SweepInterval is how often each node checks the database for
	// revocations and drops their cached answers (the durable path behind
	// revocation events, which a Redis outage can lose). Zero: 5s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// LaneEntries is how many GET answers each node keeps ready to write
	// by request target for the plain listener's fast lane. Zero: 65,536;
	// negative: none (every GET is answered from the cache or signed).
	LaneEntries int `yaml:"lane_entries"`
}

// ocspSettings decodes the `ocsp:` section.
func ocspSettings(cfg *config.Config) (ocspConfig, error) {
	var oc ocspConfig
	if err := cfg.OCSP.Decode("ocsp", &oc); err != nil {
		return oc, err
	}
	if oc.CacheEntries < 0 {
		return oc, fmt.Errorf("ocsp.cache_entries: %d is negative", oc.CacheEntries)
	}
	if oc.SweepInterval == 0 {
		oc.SweepInterval = 5 * time.Second
	}
	if oc.Validity > 0 && oc.RefreshBefore >= oc.Validity {
		return oc, fmt.Errorf("ocsp.refresh_before: %s must be shorter than ocsp.validity (%s)", oc.RefreshBefore, oc.Validity)
	}
	return oc, noNegative("ocsp", map[string]time.Duration{"validity": oc.Validity,
		"refresh_before": oc.RefreshBefore, "responder_validity": oc.ResponderValidity, "sweep_interval": oc.SweepInterval})
}

// crlConfig is the `crl:` section of strongroom.yaml.
type crlConfig struct {
	// Validity is nextUpdate - thisUpdate. Zero: 24h.
	Validity time.Duration `yaml:"validity"`
	// Interval between scheduled full (base) CRLs. Zero: 1h.
	Interval time.Duration `yaml:"interval"`
	// Debounce is how long after a revocation the CRLs are rebuilt, so a
	// burst makes one build. Zero: 2s.
	Debounce time.Duration `yaml:"debounce"`
}

// mountRevocation builds the OCSP responder and the CRL builder for the root
// and every intermediate and mounts them on the plain HTTP listener.
func (a *app) mountRevocation(ctx context.Context) error {
	oc, err := ocspSettings(a.n.cfg)
	if err != nil {
		return err
	}
	var cc crlConfig
	if err := a.n.cfg.CRL.Decode("crl", &cc); err != nil {
		return err
	}
	if err := noNegative("crl", map[string]time.Duration{"validity": cc.Validity, "interval": cc.Interval, "debounce": cc.Debounce}); err != nil {
		return err
	}
	ic, err := issuanceSettings(a.n.cfg)
	if err != nil {
		return err
	}
	crlURLs := ic.certURLs(a.HTTPURL()).CRL
	// An external root publishes its own CRL and OCSP (it signs here
	// nothing at all).
	all := a.signingIssuers()
	var oIssuers []ocsp.Issuer
	var cIssuers []crl.Issuer
	for _, is := range all {
		oIssuers = append(oIssuers, ocsp.Issuer{ID: is.ID(), Cert: is.Certificate(), Signer: is.Signer()})
		ci := crl.Issuer{ID: is.ID(), Cert: is.Certificate(), Signer: is.Signer()}
		if is != a.root {
			// The root's CRLs carry no issuing distribution point: the
			// root certificate itself names none, and verifiers that
			// check the root against its own CRL (openssl -crl_check_all)
			// refuse a scoped CRL for it ("different CRL scope").
			// The scope is the distribution point the certificates name
			// (issuance.urls.crl, else this node's): OpenSSL refuses a
			// CRL whose issuing distribution point is not among the
			// certificate's ("different CRL scope"). Certificates that
			// name none (crl: []) are in scope only of a CRL without one.
			if dp := ca.ExpandURLs(crlURLs, is.ID()); len(dp) > 0 {
				ci.URL = dp[0]
			}
			ci.DeltaURL = a.HTTPURL() + "/crl/" + is.ID() + "-delta.crl"
		}
		cIssuers = append(cIssuers, ci)
	}
	rs := newResponders(a, a.n.log)
	resp, err := ocsp.New(ocsp.Options{
		Issuers:           oIssuers,
		Status:            a.n.db,
		Cache:             a.shared.ocspCache,
		SignWithIssuer:    oc.SignWithIssuer,
		Keys:              rs,
		CertIssuer:        rs,
		Validity:          oc.Validity,
		RefreshBefore:     oc.RefreshBefore,
		ResponderValidity: oc.ResponderValidity,
		FastEntries:       oc.LaneEntries,
		Log:               a.n.log,
	})
	if err != nil {
		return err // "ocsp: ..."
	}
	a.responder = resp
	stop, err := resp.Subscribe(ctx, a.shared.events)
	if err != nil {
		return fmt.Errorf("ocsp: subscribing to revocations: %w", err)
	}
	a.closers = append(a.closers, stop)
	a.background = append(a.background, func(ctx context.Context) { resp.RunSweeper(ctx, a.n.db, oc.SweepInterval) })
	// The responder certificates are made at start, not at the first
	// request: a review's CA whose disk filled before anyone asked
	// answered every OCSP request tryLater, as its responder key could
	// not be made, though every status could be read.
	a.background = append(a.background, func(ctx context.Context) {
		if err := resp.Warm(ctx); err != nil && ctx.Err() == nil {
			a.n.log.Warn("ocsp: making the responder certificates at start failed; the first request tries again", "err", err)
		}
	})
	ids := make([]string, len(all))
	for i, is := range all {
		ids[i] = is.ID()
	}
	mark := openCRLMark(a.n.dir, a.n.log)
	builder, err := crl.New(crl.Options{
		Issuers:  cIssuers,
		Source:   a.n.db,
		Store:    a.n.db,
		Validity: cc.Validity,
		Interval: cc.Interval,
		Debounce: cc.Debounce,
		Log:      a.n.log,
		Served:   mark.record, Published: mark.published,
	})
	if err != nil {
		return err // "crl: ..."
	}
	mark.check(ctx, a.n.db, ids) // before Load serves, and records, what the database holds
	if err := builder.Load(ctx); err != nil {
		return fmt.Errorf("crl: loading stored CRLs: %w", err)
	}
	builder.BuildMissing(ctx)
	stop, err = builder.Subscribe(ctx, a.shared.events)
	if err != nil {
		return fmt.Errorf("crl: subscribing to revocations: %w", err)
	}
	a.closers = append(a.closers, stop)
	a.background = append(a.background, func(ctx context.Context) {
		if err := builder.Run(ctx); err != nil && ctx.Err() == nil {
			a.n.log.Error("CRL builder stopped", "err", err)
		}
	})
	a.reg.MustRegister(newRevocationMetrics(ids, builder.Current, resp.ResponderCert, resp.Unanswered))
	a.srv.MountPlain("/ocsp", resp)
	a.srv.MountFast("/ocsp/", resp)
	a.srv.MountPlain("/crl/", builder)
	a.srv.MountPlain("/issuers/", builder)
	return nil
}

// responders keeps each issuer's OCSP responder key in the HSM under the
// label "ocsp-responder-{issuer}" — generated the first time, rotated (a new
// version; the old stays for verification) at every later renewal, replaced
// by a fresh key when it is damaged (responderkey.go) — and certifies it. An
// intermediate's responder certificate goes through the issuance pipeline
// (profile ocsp-signing: linted, recorded, revocable) from a CSR the HSM key
// signs; the root is not a pipeline issuer, so its responder certificate is
// signed directly from the responder's template, then recorded (profile
// ocsp-signing too), so it is revocable as well.
type responders struct {
	a       *app
	log     *slog.Logger
	mu      sync.Mutex
	signers map[string]crypto.Signer
	// replaced is when this node last made a fresh responder key for an
	// issuer in place of a damaged one (responderkey.go).
	replaced map[string]time.Time
}

// ReusableResponder offers the issuer's last recorded responder
// certificate with the signer of the responder key's current version
// (ocsp.ResponderStore): a restart, or a second node, then certifies
// nothing new and rotates nothing. A recorded certificate revoked since is
// not offered.
func (r *responders) ReusableResponder(ctx context.Context, issuerID string) (crypto.Signer, []byte, error) {
	der, err := r.a.n.db.GetSetting(ctx, responderSetting(issuerID))
	if core.IsNotFound(err) || len(der) == 0 {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil
	}
	rec, err := r.a.n.db.GetCertificate(ctx, core.SerialFromBig(cert.SerialNumber))
	if core.IsNotFound(err) || err == nil && rec.Status != core.StatusValid {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	info, err := findResponderKey(ctx, r.a.sess, issuerID)
	if core.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	signer, err := r.a.sess.Signer(ctx, info.ID)
	if err != nil {
		return nil, nil, err
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, nil, nil // rotated since: a new certificate is due
	}
	signer = r.keep(issuerID, signer)
	return signer, der, nil
}

// RecordResponder keeps the issuer's newest responder certificate for
// ReusableResponder (shared by every node through the database).
func (r *responders) RecordResponder(ctx context.Context, issuerID string, der []byte) error {
	return r.a.n.db.PutSetting(ctx, responderSetting(issuerID), der)
}

func responderSetting(issuerID string) string { return "ocsp-responder-certificate/" + issuerID }

func (r *responders) SignCertificate(ctx context.Context, issuerID string, tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	root := r.a.root
	if issuerID == root.ID() {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Certificate(), pub, root.Signer())
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		return der, recordSignedCert(ctx, r.a.n.db, issuerID, "ocsp-signing", responderRequester, cert)
	}
	r.mu.Lock()
	signer := r.signers[issuerID]
	r.mu.Unlock()
	if signer == nil || !publicKeysEqual(signer.Public(), pub) {
		return nil, fmt.Errorf("no HSM key for the %s responder key being certified", issuerID)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: tmpl.Subject}, signer)
	if err != nil {
		return nil, fmt.Errorf("making the responder CSR: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, err
	}
	iss, err := r.a.pipeline.Issue(ctx, ca.Request{CSR: csr, Profile: "ocsp-signing", Issuer: issuerID,
		Lifetime: tmpl.NotAfter.Sub(tmpl.NotBefore), Requester: responderRequester})
	if err != nil {
		return nil, fmt.Errorf("issuing the %s responder certificate: %w", issuerID, err)
	}
	return iss.Certificate.Raw, nil
}

// responderRequester is recorded as the requester of responder certificates.
const responderRequester = ra.SystemRequester + "ocsp-responder"

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// noNegative refuses a negative duration among a section's settings (zero
// means the default; a negative one would be taken as it is).
func noNegative(section string, settings map[string]time.Duration) error {
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		if settings[k] < 0 {
			return fmt.Errorf("%s.%s: %s is negative", section, k, settings[k])
		}
	}
	return nil
}
