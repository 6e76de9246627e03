package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// Request asks for one certificate. The CSR's signature must already be
// checked (ra does it, once); Issue checks it again only if NotChecked.
type Request struct {
	CSR      *x509.CertificateRequest
	Profile  string
	Issuer   string        // zero: the default issuer
	Lifetime time.Duration // zero: the profile's default
	// ExtraSANs are names added to the CSR's (policy has allowed them).
	ExtraSANs []string
	// Requester says who asked: "apikey:<id>", "acme:<endpoint>/<account>".
	Requester string
	// Origin is, for a renewal, who asked for the first certificate of
	// its line (core.Certificate.Origin).
	Origin string
	// CSRChecked says the caller verified the CSR's signature.
	CSRChecked bool
	// CommonNameRefusal, when set, says why the certificate may not carry
	// cn as its common name ("" when it may). It is asked about a common
	// name that is none of the certificate's names, as the profile built
	// it: services that authorize TLS clients by common name take it as
	// who the client is, so a credential kept to some names must not get
	// others there (policy sets it for such credentials).
	CommonNameRefusal func(cn string) string
}

// Issued is a signed and stored certificate.
type Issued struct {
	Serial      core.Serial
	Certificate *x509.Certificate
	// Chain is the certificate followed by its issuer's chain, without
	// the self-signed root.
	Chain    []*x509.Certificate
	IssuerID string
	Profile  string
	Origin   string // Request.Origin
}

// Draft is what DryRun would have signed.
type Draft struct {
	// Certificate is the certificate as built, signed by a throwaway key
	// (its signature is worthless; everything else is what the HSM would
	// sign, except the serial, which is not reserved).
	Certificate *x509.Certificate
	Findings    Findings
	IssuerID    string
}

// prepared is a certificate built from a profile, before its serial.
type prepared struct {
	issuer  *Issuer
	profile *Profile
	tmpl    *x509.Certificate
	names   []string
	life    time.Duration
}

// Issue runs the pipeline: reserve the serial → build → lint a
// throwaway-signed copy → record the intent → sign the linted TBS in the
// HSM → check the signed TBS equals the linted one and verify the signature
// → store → return the chain.
func (c *CA) Issue(ctx context.Context, req Request) (iss *Issued, err error) {
	start := time.Now()
	defer func() { c.metrics.observe(c.profileLabel(req.Profile), err, time.Since(start)) }()
	p, err := c.prepare(req)
	if err != nil {
		return nil, err
	}
	now := c.now().UTC()
	rec := &core.Certificate{IssuerID: p.issuer.ID(), Profile: p.profile.Name, Requester: req.Requester, Origin: req.Origin, CreatedAt: now}
	if err := c.reserve(ctx, rec); err != nil {
		return nil, err
	}
	log := c.log.With("serial", string(rec.Serial), "issuer", rec.IssuerID, "profile", rec.Profile)
	p.tmpl.SerialNumber = rec.Serial.Big()
	b, findings, err := c.lint(p)
	if err != nil {
		return nil, err
	}
	if bad := findings.Refusals(); len(bad) > 0 {
		log.WarnContext(ctx, "issuance refused by lints", "lints", joinComma(bad))
		return nil, core.Errorf(core.KindRejected, "certificate refused by lints: %s", joinComma(bad))
	}
	tbs := b.tbs
	spki, err := tbsSPKI(tbs)
	if err != nil {
		return nil, err
	}
	rec.TBS, rec.KeyHash, rec.Names, rec.Subject = tbs, core.KeyHash(spki), p.names, p.tmpl.Subject.CommonName
	rec.NotBefore, rec.NotAfter = p.tmpl.NotBefore, p.tmpl.NotAfter
	if err := c.store.RecordIntent(ctx, rec, now); err != nil {
		if errors.Is(err, core.ErrKeyBlocked) {
			return nil, err
		}
		return nil, fmt.Errorf("recording intent for %s: %w", rec.Serial, err)
	}
	// From here the certificate is signed and stored whatever becomes of
	// the caller: a client that hangs up must not leave a signed
	// certificate unstored (its retry, or its Idempotency-Key, finds it).
	ctx = context.WithoutCancel(ctx)
	if c.afterIntent != nil {
		if err := c.afterIntent(); err != nil {
			return nil, fmt.Errorf("after recording intent for %s: %w", rec.Serial, err)
		}
	}
	// The HSM signs exactly the linted bytes.
	der, err := signTBS(p.issuer.signer, tbs, b.sigAlgDER, b.opts)
	if err != nil {
		log.ErrorContext(ctx, "HSM signing failed", "err", err)
		// No signature came back, so none exists to be handed out: the
		// intent is withdrawn. Kept, a token outage left one per
		// request (1,400 in a review), burying the intents a crash
		// leaves among rows reported as perhaps signed.
		if aerr := c.store.AbandonIntent(ctx, rec.Serial, c.now().UTC()); aerr != nil {
			log.WarnContext(ctx, "withdrawing the intent of a certificate the HSM did not sign", "err", aerr)
		}
		return nil, core.Wrap(core.KindUnavailable, err, "the signing key is not available")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing signed certificate %s: %w", rec.Serial, err)
	}
	// By construction the HSM signed the linted bytes; assert it anyway,
	// and check the signature, so a faulty signer can never produce a
	// certificate we hand out.
	if !bytes.Equal(cert.RawTBSCertificate, tbs) {
		return nil, fmt.Errorf("signed TBS of %s differs from the linted one", rec.Serial)
	}
	if err := cert.CheckSignatureFrom(p.issuer.Certificate()); err != nil {
		log.ErrorContext(ctx, "HSM signature does not verify", "err", err)
		return nil, fmt.Errorf("signature on %s does not verify: %w", rec.Serial, err)
	}
	if err := c.store.StoreIssued(ctx, rec.Serial, der, c.now().UTC()); err != nil {
		return nil, fmt.Errorf("storing %s: %w", rec.Serial, err)
	}
	log.InfoContext(ctx, "certificate issued", "requester", req.Requester, "not_after", rec.NotAfter)
	chain := append([]*x509.Certificate{cert}, p.issuer.sent...)
	return &Issued{Serial: rec.Serial, Certificate: cert, Chain: chain, IssuerID: p.issuer.ID(), Profile: p.profile.Name, Origin: req.Origin}, nil
}

// Refused counts a request refused before the pipeline (by ra's policy) in
// the issuance metrics, as rejected: a dashboard of outcomes must see
// refusals wherever they are decided. Its latency is not observed.
func (c *CA) Refused(profile string) {
	c.metrics.refused(c.profileLabel(profile))
}

// profileLabel is profile as a metrics label: a name the CA does not have
// is "unknown" (client input must not create label values).
func (c *CA) profileLabel(profile string) string {
	if _, ok := c.profiles[profile]; !ok {
		return "unknown"
	}
	return profile
}

// DryRun builds and lints the certificate Issue would sign, without
// reserving a serial, recording anything or using the HSM. Lint refusals are
// reported in the Draft, not as an error.
func (c *CA) DryRun(ctx context.Context, req Request) (*Draft, error) {
	p, err := c.prepare(req)
	if err != nil {
		return nil, err
	}
	s, err := core.NewSerial()
	if err != nil {
		return nil, err
	}
	p.tmpl.SerialNumber = s.Big()
	b, findings, err := c.lint(p)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(b.lintDER)
	if err != nil {
		return nil, fmt.Errorf("parsing draft: %w", err)
	}
	if blocked, err := c.store.KeyBlocked(ctx, core.KeyHash(cert.RawSubjectPublicKeyInfo)); err != nil {
		return nil, err
	} else if blocked {
		return nil, core.ErrKeyBlocked
	}
	return &Draft{Certificate: cert, Findings: findings, IssuerID: p.issuer.ID()}, ctx.Err()
}

// reserve takes a serial from the pool (reserved ahead, see serialPool), or
// without a pool draws serials until one is inserted (a collision of 128-bit
// random serials means a broken random source or a replayed database:
// a few attempts, then give up).
func (c *CA) reserve(ctx context.Context, rec *core.Certificate) error {
	if c.pool != nil {
		s, err := c.pool.take(ctx, rec.IssuerID)
		if err != nil {
			return err
		}
		rec.Serial = s
		return nil
	}
	for attempt := 0; attempt < 3; attempt++ {
		s, err := core.NewSerial()
		if err != nil {
			return err
		}
		rec.Serial = s
		err = c.store.ReserveSerial(ctx, rec)
		if err == nil {
			return nil
		}
		if core.KindOf(err) != core.KindConflict {
			return fmt.Errorf("reserving serial: %w", err)
		}
		c.log.WarnContext(ctx, "serial collision, drawing another", "serial", string(s))
	}
	return errors.New("reserving serial: three collisions in a row")
}

func (c *CA) lint(p *prepared) (*built, Findings, error) {
	b, err := buildTBS(c.linter, p.tmpl, p.issuer.Certificate(), p.tmpl.PublicKey, p.issuer.signer.Public())
	if err != nil {
		return nil, nil, err
	}
	f, err := c.linter.Lint(b.lintDER)
	return b, f, err
}
