package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// issuanceConfig is the `issuance:` section of strongroom.yaml.
type issuanceConfig struct {
	// URLs written into every certificate; {issuer} is replaced by the
	// issuer's id. Each list left out is the default, on this CA's plain
	// HTTP listener (urls.http): caIssuers, OCSP and CRL; an empty list
	// ([]) leaves that URL out of certificates.
	URLs *ca.URLs `yaml:"urls"`
	// ExcludeLints names extra zlint lints to skip. Zero: only the
	// built-in exclusions (see package ca).
	ExcludeLints []string `yaml:"exclude_lints"`
	// DefaultProfile is used when a request names none. Zero: tls-server.
	DefaultProfile string `yaml:"default_profile"`
	// Backdate sets NotBefore this far before now. Zero: 1m.
	Backdate time.Duration `yaml:"backdate"`
}

// issuanceSettings decodes the issuance section and checks it as the
// config package checks its own sections: each error names its key. (The
// config package cannot: the lints are zlint's, known to package ca.)
func issuanceSettings(cfg *config.Config) (issuanceConfig, error) {
	var ic issuanceConfig
	if err := cfg.Issuance.Decode("issuance", &ic); err != nil {
		return ic, err
	}
	for _, n := range ic.ExcludeLints {
		if !ca.KnownLint(n) {
			return ic, fmt.Errorf("issuance.exclude_lints: %q is not a zlint lint (names look like e_sub_cert_aia_missing)", n)
		}
	}
	if ic.DefaultProfile != "" {
		known, err := configuredProfiles(cfg)
		if err != nil {
			return ic, err
		}
		if !slices.Contains(known, ic.DefaultProfile) {
			return ic, fmt.Errorf("issuance.default_profile: the CA has no profile %q (it has %s)", ic.DefaultProfile, strings.Join(known, ", "))
		}
	}
	if u := ic.URLs; u != nil && u.CAIssuers != nil && len(u.CAIssuers) == 0 && u.OCSP != nil && len(u.OCSP) == 0 {
		return ic, errors.New("issuance.urls: ca_issuers and ocsp are both empty: certificates must carry an authority information access URL (zlint's e_sub_cert_aia_missing refuses them); leave either out for its default")
	}
	return ic, noNegative("issuance", map[string]time.Duration{"backdate": ic.Backdate})
}

// certURLs are the URLs certificates carry: each list the section sets,
// else the default on this node's plain HTTP listener at base.
func (ic issuanceConfig) certURLs(base string) ca.URLs {
	u := ca.URLs{
		CAIssuers: []string{base + "/issuers/{issuer}.crt"},
		OCSP:      []string{base + "/ocsp"},
		CRL:       []string{base + "/crl/{issuer}.crl"},
	}
	if c := ic.URLs; c != nil {
		for _, f := range []struct{ set, def *[]string }{{&c.CAIssuers, &u.CAIssuers}, {&c.OCSP, &u.OCSP}, {&c.CRL, &u.CRL}} {
			if *f.set != nil {
				*f.def = *f.set
			}
		}
	}
	return u
}

// apiConfig is the `api:` section of strongroom.yaml.
type apiConfig struct {
	// ClientCertScopes grants scopes to client certificates issued by
	// this CA with the api-client profile (closed by default: grant it in
	// policy.profile_access), by principal pattern: "mtls:deploy" (the
	// certificate's common name) or a prefix ending in "*". Zero: client
	// certificates give no access.
	ClientCertScopes map[string][]string `yaml:"client_cert_scopes"`
	// ClientCertLimits narrows, by the same patterns, the names and
	// profiles a client certificate may ask for ({names: [...], profiles:
	// [...]}, as `ca apikey create --names --profiles`). Zero: only the
	// policy.
	ClientCertLimits map[string]api.Limits `yaml:"client_cert_limits"`
	// IssuePerHour caps the certificates one API key or client
	// certificate may issue through POST /certificates per hour (429 with
	// Retry-After beyond; counted across nodes when Redis is configured).
	// Zero: no cap.
	IssuePerHour int `yaml:"issue_per_hour"`
	// KeysPerCredential caps the keys one API key or client certificate
	// may keep in the key service (/keys; 409 beyond, until it destroys
	// one). Zero: 1000.
	KeysPerCredential int `yaml:"keys_per_credential"`
	// VersionsPerKey caps the versions one key service key may have (a
	// rotation beyond is 409). Zero: 100.
	VersionsPerKey int `yaml:"versions_per_key"`
}

// mountFrontEnds builds the pipeline (ca), the policy (ra) and every front
// end, and mounts them on the server.
func (a *app) mountFrontEnds(ctx context.Context) error {
	cfg := a.n.cfg
	ic, err := issuanceSettings(cfg)
	if err != nil {
		return err
	}
	var profiles []ca.Profile
	if err := cfg.Profiles.Decode("profiles", &profiles); err != nil {
		return err
	}
	var policy ra.Policy
	if err := cfg.Policy.Decode("policy", &policy); err != nil {
		return err
	}
	urls := ic.certURLs(a.HTTPURL())
	if cfg.Database.Driver == "postgres" && (ic.URLs == nil || ic.URLs.CRL == nil || ic.URLs.OCSP == nil || ic.URLs.CAIssuers == nil) {
		// Nodes share the CRLs: one built by another node names that
		// node's URL as its scope, and OpenSSL refuses it for this node's
		// certificates; and a certificate naming a node outlives it.
		a.n.log.Warn("issuance.urls: ca_issuers, ocsp and crl should each name the cluster's shared address (a load balancer) on every node; "+
			"certificates now name this node's urls.http, which the CRLs other nodes build do not cover (OpenSSL: \"different CRL scope\")",
			"http", a.HTTPURL())
	}
	if len(urls.OCSP)+len(urls.CRL) == 0 {
		a.n.log.Warn("issuance.urls: ocsp and crl are both empty: certificates carry no revocation information, so relying parties cannot learn that one was revoked")
	}
	issuers := append([]*ca.Issuer{}, a.inters...)
	// The pipeline's writes go through a group-commit writer: concurrent
	// issuances share SQLite transactions instead of queueing on its lock.
	writer := storage.NewCertWriter(a.n.db)
	a.closers = append(a.closers, func() { writer.Close() })
	a.pipeline, err = ca.New(ca.Options{
		Store:      writer,
		Issuers:    issuers,
		Profiles:   profiles,
		URLs:       urls,
		Lint:       ca.LintOptions{ExtraExcluded: ic.ExcludeLints},
		Backdate:   ic.Backdate,
		Logger:     a.n.log,
		Registerer: a.reg,
	})
	if err != nil {
		return fmt.Errorf("building the issuance pipeline: %w", err)
	}
	// An intermediate revoked with `ca cert revoke --ca` elsewhere (another
	// node, or offline) stops issuing here within 15 s; through this node,
	// at once.
	if err := a.pipeline.CheckIssuers(ctx); err != nil {
		return fmt.Errorf("checking the issuers' certificates: %w", err)
	}
	a.background = append(a.background, func(ctx context.Context) { a.pipeline.WatchIssuers(ctx, 15*time.Second) })
	a.ra, err = a.newAuthority(policy, ic.DefaultProfile)
	if err != nil {
		return err // ra's errors name the policy field
	}
	a.background = append(a.background, a.watchBlockedKeys)
	a.tls.issue, a.tls.usable = a.issueServerCert, a.issuerUsable
	a.tls.keyTypes = func() []string {
		p, _ := a.pipeline.Profile("tls-server")
		return p.KeyTypes
	}
	if err := a.mountAPI(); err != nil {
		return err
	}
	if err := a.mountACME(policy, ic.DefaultProfile); err != nil {
		return err
	}
	if err := a.mountConsole(ctx, ic.DefaultProfile); err != nil {
		return err
	}
	return a.mountRevocation(ctx)
}

// newAuthority is ra over the pipeline with a policy; revocations publish.
func (a *app) newAuthority(policy ra.Policy, defaultProfile string) (*ra.Authority, error) {
	return ra.New(ra.Options{CA: a.pipeline, Policy: policy, DefaultProfile: defaultProfile,
		Logger: a.n.log, OnRevoke: a.publishRevoked})
}

func (a *app) mountAPI() error {
	var ac apiConfig
	if err := a.n.cfg.API.Decode("api", &ac); err != nil {
		return err
	}
	opts := api.Options{Authority: a.ra, Store: a.n.db, Issuers: a.pipeline,
		ClientCertScopes: ac.ClientCertScopes, ClientCertLimits: ac.ClientCertLimits, MaxBodyBytes: a.n.cfg.Limits.BodyBytes, Logger: a.n.log,
		IssuePerHour: ac.IssuePerHour, RateLimiter: a.shared.limiter,
		KeysPerCredential: ac.KeysPerCredential, VersionsPerKey: ac.VersionsPerKey}
	if ac.IssuePerHour < 0 {
		return fmt.Errorf("api.issue_per_hour must not be negative")
	}
	if a.apps != nil {
		opts.Keys = a.hsmMetrics.keys(a.apps)
	}
	rest, err := api.New(opts)
	if err != nil {
		return err // "api: ..."
	}
	a.rest = rest
	rest.Register(a.srv.Engine().Group("/api/v1"))
	rest.RegisterMetrics(a.srv.Engine(), a.srv.MetricsHandler())
	return nil
}

// issueServerCert issues the HTTPS listener's own certificate through the
// pipeline (bypassing ra: the CA's own name need not be in the policy).
func (a *app) issueServerCert(ctx context.Context, csrDER []byte) ([][]byte, string, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, "", err
	}
	iss, err := a.pipeline.Issue(ctx, ca.Request{CSR: csr, Profile: "tls-server", Lifetime: a.serverCertLifetime(),
		Requester: ra.SystemRequester + "https-listener", CSRChecked: false})
	if err != nil {
		return nil, "", err
	}
	chain := make([][]byte, len(iss.Chain))
	for i, c := range iss.Chain {
		chain[i] = c.Raw
	}
	return chain, iss.IssuerID, nil
}

// issuerUsable reports whether issuer may sign new certificates; for ""
// whether any issuer may (tlsCert.usable).
func (a *app) issuerUsable(issuer string) bool {
	if issuer == "" {
		return a.pipeline.DefaultIssuer() != ""
	}
	return a.pipeline.IssuerStatus(issuer).Usable()
}

// serverCertLifetime is a week, or less when the tls-server profile's
// maximum or the default issuer's own remaining validity is shorter: a
// stricter profile, or an intermediate in its last week, must not stop the
// server from starting or renewing (issuance refuses a lifetime over
// either).
func (a *app) serverCertLifetime() time.Duration {
	life := 7 * 24 * time.Hour
	if p, err := a.pipeline.Profile("tls-server"); err == nil {
		life = min(life, p.MaxLifetime)
	}
	if is, err := a.pipeline.Issuer(""); err == nil {
		life = min(life, time.Until(is.NotAfter())-time.Minute)
	}
	return life
}

func (a *app) defaultACMEEndpoint() string { return "default" }
