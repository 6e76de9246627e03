package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
)

// installCommand is `ca issuer install ID --cert FILE`: the certificate an
// external root signed for intermediate ID's key (see external.go).
func installCommand(g *globals) *cobra.Command {
	var file string
	var makeDefault bool
	cmd := &cobra.Command{Use: "install ID --cert FILE",
		Short: "Install the certificate an external root signed for an intermediate's CSR (ca init --external-root, ca issuer add)",
		Long: `install checks the certificate the external root's owner signed for
intermediate ID's CSR and puts it in place: it must be a CA certificate that
may sign certificates and CRLs, for the key the HSM holds for ID, valid now,
and chain to the root (ca.root.cert); FILE may hold the CA certificates
between it and the root after it. Installing again (a renewed certificate for
the same key) replaces the file. An intermediate not yet in the configuration
(ca issuer add) is added, first with --default. Restart ca serve to use it;
every node sharing the database needs the file (run install there too).`,
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("--cert FILE is required: the certificate the root signed")
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				if err := unsealForCLI(ctx, cmd, n); err != nil {
					return err
				}
				res, err := installIntermediate(ctx, n, args[0], file, makeDefault)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				c := res.is.Certificate()
				fmt.Fprintf(out, "issuer %s: %s, signed by %s, valid until %s\ncertificate: %s\n", res.is.ID(), c.Subject.CommonName,
					c.Issuer.CommonName, c.NotAfter.UTC().Format(time.DateOnly), res.path)
				if res.replaced {
					fmt.Fprintln(out, "It replaces the certificate installed before (same key).")
				}
				for _, w := range res.warnings {
					fmt.Fprintln(out, "warning: "+w)
				}
				fmt.Fprintln(out, "The external root publishes this certificate's CRL and OCSP; Strongroom answers for what it issues.")
				fmt.Fprintln(out, "Start (or restart) ca serve to use it.")
				return nil
			})
		}}
	cmd.Flags().StringVar(&file, "cert", "", "PEM file with the signed certificate (then any CA certificates between it and the root)")
	cmd.Flags().BoolVar(&makeDefault, "default", false, "an intermediate new to the configuration becomes the default issuer (first)")
	return cmd
}

// csrCommand is `ca issuer csr ID`: the CSR of intermediate ID's key
// written again — to renew its certificate from an external root with the
// same key and name, or after the first CSR was lost (a restore copies no
// CSR). The subject is the installed certificate's, else the one `ca
// init` or `ca issuer add` would give it.
func csrCommand(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{Use: "csr ID", Short: "Write the CSR of an intermediate's key again (for an external root to sign: renewal, or a lost CSR)",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				if err := unsealForCLI(ctx, cmd, n); err != nil {
					return err
				}
				entry := config.Issuer{ID: id, Cert: id + ".pem", KeyLabel: id}
				if i := slices.IndexFunc(n.cfg.CA.Intermediates, func(is config.Issuer) bool { return is.ID == id }); i >= 0 {
					entry = n.cfg.CA.Intermediates[i]
				}
				sess, err := n.caSession(ctx)
				if err != nil {
					return err
				}
				defer sess.Close()
				signer, err := n.issuerSigner(ctx, sess, entry)
				if err != nil {
					return fmt.Errorf("intermediate %s: %w", id, err)
				}
				tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Strongroom Intermediate CA", Organization: []string{"Strongroom"}}}
				if certs, err := readCerts(config.Path(n.dir, entry.Cert)); err == nil {
					if !publicKeysEqual(certs[0].PublicKey, signer.Public()) {
						return fmt.Errorf("%s is not for the key labelled %q", entry.Cert, entry.KeyLabel)
					}
					tmpl = &x509.CertificateRequest{RawSubject: certs[0].RawSubject}
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				if out == "" {
					out = config.Path(n.dir, csrFile(id))
				}
				if err := writeCSRFor(out, tmpl, signer); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "CSR of %s's key written to %s\n", id, out)
				return nil
			})
		}}
	cmd.Flags().StringVar(&out, "out", "", "where to write it (default DIR/ID.csr)")
	return cmd
}

type installed struct {
	is       *ca.Issuer
	path     string
	replaced bool
	warnings []string
}

// installIntermediate checks file as intermediate id's certificate under
// the external root, writes it to the intermediate's certificate file and
// adds the intermediate to the configuration if it is not there yet.
func installIntermediate(ctx context.Context, n *node, id, file string, makeDefault bool) (*installed, error) {
	cfg := n.cfg
	if !cfg.CA.Root.External {
		return nil, errors.New("the root's key is in this CA: ca issuer add signs intermediates itself (install is for an external root, ca init --external-root)")
	}
	root, err := loadAnchor(n.dir, cfg.CA.Root)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(cfg.CA.Intermediates, func(is config.Issuer) bool { return is.ID == id })
	entry, isNew := config.Issuer{ID: id, Cert: id + ".pem", KeyLabel: id}, i < 0
	if !isNew {
		entry = cfg.CA.Intermediates[i]
		if makeDefault && i > 0 {
			return nil, fmt.Errorf("%s is configured already: install it without --default, then ca issuer default %s", id, id)
		}
	} else {
		next := *cfg
		next.CA.Intermediates = append([]config.Issuer{entry}, cfg.CA.Intermediates...)
		if err := next.Validate(); err != nil {
			return nil, err
		}
	}
	certs, err := readCerts(file)
	if err != nil {
		return nil, err
	}
	// The root itself may end the file (a full chain); it is the
	// configuration's, so it is left out.
	if last := certs[len(certs)-1]; len(certs) > 1 && last.Equal(root.Certificate()) {
		certs = certs[:len(certs)-1]
	}
	if c := certs[0]; !c.IsCA || !c.BasicConstraintsValid {
		return nil, fmt.Errorf("%s is not a CA certificate (it needs basicConstraints CA:TRUE)", file)
	}
	sess, err := n.caSession(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	signer, err := n.issuerSigner(ctx, sess, entry)
	if err != nil {
		return nil, fmt.Errorf("intermediate %s: %w (ca init --external-root or ca issuer add %s makes it)", id, err, id)
	}
	if !publicKeysEqual(signer.Public(), certs[0].PublicKey) {
		return nil, fmt.Errorf("%s is not for intermediate %s's key (%q): was it signed from %s?", file, id, entry.KeyLabel, config.Path(n.dir, csrFile(id)))
	}
	if err := certs[len(certs)-1].CheckSignatureFrom(root.Certificate()); err != nil {
		return nil, fmt.Errorf("%s is not signed by the root %q (%s): a CA between them must follow it in the file (%v)",
			file, root.Certificate().Subject.CommonName, config.Path(n.dir, cfg.CA.Root.Cert), err)
	}
	is, err := ca.NewIssuer(id, signer, append(certs, root.Chain()...))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	warnings, err := checkInstalled(is, root, cfg.Hostname, makeDefault || i == 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	path := config.Path(n.dir, entry.Cert)
	_, statErr := os.Stat(path)
	if statErr == nil {
		if err := sameIssuerName(path, certs[0], id); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if err := writeFileAtomic(path, buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if isNew {
		if err := addIssuerToConfig(filepath.Join(n.dir, config.FileName), entry, makeDefault); err != nil {
			return nil, fmt.Errorf("%s is written, but the configuration was not updated: %w", path, err)
		}
	}
	return &installed{is: is, path: path, replaced: statErr == nil, warnings: warnings}, nil
}

// checkInstalled refuses an intermediate certificate that cannot do its
// work (sign certificates and CRLs, now, for what every common verifier
// accepts) and warns of what narrows it. Install's own chain check is Go's,
// which reads less than OpenSSL, GnuTLS and NSS do (key identifiers, CAs
// below the one verified, policies), so those are checked here.
func checkInstalled(is, root *ca.Issuer, hostname string, isDefault bool) (warnings []string, err error) {
	c := is.Certificate()
	if c.KeyUsage == 0 {
		return nil, errors.New("it has no key usage extension: a CA certificate needs one with keyCertSign and cRLSign")
	}
	if c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		return nil, errors.New("its key usage must include keyCertSign and cRLSign (it signs certificates, CRLs and its OCSP responder's certificate)")
	}
	if len(c.SubjectKeyId) == 0 {
		// RFC 5280 §4.2.1.2 MUST; the leaves' authority key identifier is
		// this, and zlint refuses leaves without one.
		return nil, errors.New("it has no subject key identifier (a CA certificate must: subjectKeyIdentifier=hash)")
	}
	chain := is.Chain()
	pool := x509.NewCertPool()
	for _, x := range chain[1 : len(chain)-1] {
		pool.AddCert(x)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.Certificate())
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("it does not verify up to the root: %w", err)
	}
	for i, x := range chain[:len(chain)-1] {
		parent := chain[i+1]
		// Go ignores the authority key identifier; OpenSSL, GnuTLS and
		// NSS pick the issuer by it and find none.
		if len(x.AuthorityKeyId) > 0 && len(parent.SubjectKeyId) > 0 && !bytes.Equal(x.AuthorityKeyId, parent.SubjectKeyId) {
			return nil, fmt.Errorf("%q names its issuer's key identifier %X, but %q's is %X: OpenSSL, GnuTLS and NSS find no issuer (was the issuing certificate reissued?)",
				x.Subject.CommonName, x.AuthorityKeyId, parent.Subject.CommonName, parent.SubjectKeyId)
		}
		// Strongroom's certificates carry no certificate policies: a
		// chain that requires them fails in Go and NSS, and GnuTLS
		// refuses the extension.
		for _, e := range x.Extensions {
			if e.Id.Equal(oidPolicyConstraints) || e.Id.Equal(oidInhibitAnyPolicy) {
				return nil, fmt.Errorf("%q carries policy constraints (requireExplicitPolicy, inhibitAnyPolicy): the certificates Strongroom issues carry no certificate policies, so Go and NSS would refuse them (and GnuTLS the extension)", x.Subject.CommonName)
			}
		}
	}
	// Go's verifier counts no CA below the certificate it is given, but
	// every other verifier sees this one as a CA below those above it.
	for j, x := range chain[1:] {
		if limit := x.MaxPathLen; (limit > 0 || x.MaxPathLenZero) && j+1 > limit {
			return nil, fmt.Errorf("%q above it allows %d CA certificates below it, and this chain has %d", x.Subject.CommonName, limit, j+1)
		}
	}
	// Every certificate of the chain with an extended key usage limits
	// what verifiers (Go, NSS) accept below it.
	var limiting []string
	for _, x := range chain[:len(chain)-1] {
		if len(x.ExtKeyUsage) == 0 && len(x.UnknownExtKeyUsage) == 0 || slices.Contains(x.ExtKeyUsage, x509.ExtKeyUsageAny) {
			continue
		}
		names := make([]string, len(x.ExtKeyUsage))
		for i, u := range x.ExtKeyUsage {
			names[i] = ca.EKUName(u)
		}
		limiting = append(limiting, fmt.Sprintf("%q: %s", x.Subject.CommonName, strings.Join(names, ", ")))
	}
	if isDefault {
		if !allowsServerAuth(chain) {
			return nil, fmt.Errorf("the default issuer's chain must allow serverAuth (it issues the CA's own HTTPS certificate and TLS server certificates), and its extended key usage does not (%s)", strings.Join(limiting, "; "))
		}
		if err := chainKeepsServerCert(is, hostname); err != nil {
			return nil, err
		}
	}
	if len(limiting) > 0 {
		warnings = append(warnings, "extended key usage limits what verifiers accept below it ("+strings.Join(limiting, "; ")+"): profiles for other usages issue certificates Go and NSS refuse")
	}
	end := is.NotAfter()
	if left := time.Until(end); left < 90*24*time.Hour {
		warnings = append(warnings, fmt.Sprintf("its chain ends in %d days (%s): certificates it issues end before then", int(left.Hours()/24), end.UTC().Format(time.DateOnly)))
	}
	return warnings, nil
}

// sameIssuerName refuses to replace an installed certificate with one of
// another name: what the issuer has issued names the installed one's
// subject and key identifier as its issuer, and OCSP, CRLs and chain
// building for all of it would find no issuer.
func sameIssuerName(path string, next *x509.Certificate, id string) error {
	old, err := readCerts(path)
	if err != nil {
		return fmt.Errorf("reading the installed certificate: %w", err)
	}
	o := old[0]
	if !bytes.Equal(o.RawSubject, next.RawSubject) {
		return fmt.Errorf("the installed certificate of %s is for %q, this one for %q: what %s issued names the installed subject as its issuer, and would lose its OCSP and CRLs. Have the root sign again with the installed subject (ca issuer csr %s writes the request again), or make a new issuer (ca issuer add)",
			id, o.Subject.String(), next.Subject.String(), id, id)
	}
	if len(o.SubjectKeyId) > 0 && !bytes.Equal(o.SubjectKeyId, next.SubjectKeyId) {
		return fmt.Errorf("the installed certificate of %s has subject key identifier %X, this one %X: what %s issued names the installed one (authority key identifier) and would find no issuer", id, o.SubjectKeyId, next.SubjectKeyId, id)
	}
	return nil
}

var (
	oidPolicyConstraints = asn1.ObjectIdentifier{2, 5, 29, 36}
	oidInhibitAnyPolicy  = asn1.ObjectIdentifier{2, 5, 29, 54}
)
