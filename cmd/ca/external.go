package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
)

// An external root (ca.root.external) is the common enterprise layout: the
// root key stays offline (an air-gapped machine, a safe, another
// organisation's CA) and Strongroom is the online issuing CA below it. The
// intermediate's key is made in the HSM as always, but its certificate
// comes from the root's owner: Strongroom writes a CSR signed by the
// intermediate's key, the owner signs it with the root, and `ca issuer
// install` checks the certificate and puts it in place. The root signs
// nothing here, so it publishes the CRL and OCSP that cover the
// intermediates itself; Strongroom answers for what its intermediates issue.

// csrFile is where the CSR of intermediate id is written.
func csrFile(id string) string { return id + ".csr" }

// readCerts reads every certificate of a PEM file, in order; anything
// between or around them other than certificates is refused.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) > 0 && len(certs) > 0 {
				return nil, fmt.Errorf("%s: text after the last PEM certificate that is not one", path)
			}
			break
		}
		if block.Type == "PKCS7" {
			return nil, fmt.Errorf("%s is PKCS #7 (as Windows CAs return it): convert it with openssl pkcs7 -print_certs -in %s -out chain.pem", path, path)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: a PEM %q block where certificates were expected", path, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if _, err := x509.ParseCertificate(data); err == nil {
			return nil, fmt.Errorf("%s is DER: convert it with openssl x509 -inform DER -in %s -out cert.pem", path, path)
		}
		return nil, errors.New(path + ": no PEM certificate")
	}
	return certs, nil
}

// loadAnchor reads an external root's certificate.
func loadAnchor(dir string, is config.Issuer) (*ca.Issuer, error) {
	path := config.Path(dir, is.Cert)
	certs, err := readCerts(path)
	if err != nil {
		return nil, fmt.Errorf("root %s (external): %w", is.ID, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("root %s (external): %s holds %d certificates: it must hold the root alone", is.ID, path, len(certs))
	}
	return ca.NewAnchor(is.ID, certs[0])
}

// checkAnchor reads the file an operator names as the external root and
// checks that it can be one: a self-signed CA certificate, valid now.
func checkAnchor(id, path string) (*ca.Issuer, error) {
	root, err := loadAnchor("", config.Issuer{ID: id, Cert: path})
	if err != nil {
		return nil, err
	}
	c := root.Certificate()
	if c.MaxPathLenZero {
		return nil, fmt.Errorf("root %s: %s allows no CA below it (path length 0)", id, path)
	}
	if now := time.Now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, fmt.Errorf("root %s: %s is not valid now (%s to %s)", id, path, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("root %s: %s's key usage does not allow signing certificates", id, path)
	}
	return root, nil
}

// writeCSR writes the CSR of an intermediate whose key is signer, for the
// external root's owner to sign. The subject is the one the certificate
// should carry; the root's owner decides the rest (CA, path length, key
// usage, URLs), which `ca issuer install` checks.
func writeCSR(path, cn, org string, signer crypto.Signer) error {
	subj := pkix.Name{CommonName: cn}
	if org != "" {
		subj.Organization = []string{org}
	}
	return writeCSRFor(path, &x509.CertificateRequest{Subject: subj}, signer)
}

// writeCSRFor writes the CSR of tmpl (a subject, or a raw one) signed by
// signer.
func writeCSRFor(path string, tmpl *x509.CertificateRequest, signer crypto.Signer) error {
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, signer)
	if err != nil {
		return fmt.Errorf("making the CSR: %w", err)
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644)
}

// signingRequest is what the operator is told to do with a CSR.
func signingRequest(csr, id, installFlags string) string {
	return fmt.Sprintf(`Have the external root sign %s as a CA certificate, for example with openssl on the root's machine:
  openssl x509 -req -in %s -CA root.pem -CAkey root.key -days 1825 -sha256 -out %s.pem \
    -extfile <(printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n')
(add crlDistributionPoints and authorityInfoAccess URLs where the root publishes its CRL), then:
  ca issuer install %s --cert %s.pem%s`, csr, csr, id, id, id, installFlags)
}

// chainKeepsServerCert refuses a chain whose name constraints would refuse
// the node's own HTTPS certificate for hostname.
func chainKeepsServerCert(is *ca.Issuer, hostname string) error {
	for _, cc := range is.ChainConstraints() {
		if why := serverCertRefusal(cc.NameConstraints, hostname); why != "" {
			return fmt.Errorf("the name constraints of %q refuse the CA's own HTTPS certificate (for %s): %s; give the CA a hostname inside them (ca init --hostname)", cc.Subject, hostname, why)
		}
	}
	return nil
}

// externalRootCeremony is the end of `ca init --external-root`: the root's
// certificate copied in, a key and a CSR for each intermediate, and the
// configuration, which names certificate files `ca issuer install` writes.
func externalRootCeremony(ctx context.Context, c ceremony, cfg *config.Config, anchor *ca.Issuer,
	newKey func(label string) (crypto.Signer, error), created *undo) error {
	rootPath := config.Path(c.Dir, cfg.CA.Root.Cert)
	created.note(rootPath)
	if err := writeCert(rootPath, anchor.Certificate()); err != nil {
		return err
	}
	org := c.CommonName
	if o := anchor.Certificate().Subject.Organization; len(o) > 0 {
		org = o[0]
	}
	for _, in := range cfg.CA.Intermediates {
		if err := ctx.Err(); err != nil {
			return err
		}
		key, err := newKey(in.KeyLabel)
		if err != nil {
			return fmt.Errorf("generating %s key: %w", in.ID, err)
		}
		path := config.Path(c.Dir, csrFile(in.ID))
		created.note(path)
		if err := writeCSR(path, c.CommonName+" Intermediate CA", org, key); err != nil {
			return err
		}
	}
	created.note(filepath.Join(c.Dir, config.FileName))
	if err := cfg.Write(c.Dir); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	return nil
}

// notInstalled says what to do about an intermediate under an external
// root whose certificate file is missing: sign its CSR, or, on another
// node of a cluster (no CSR here), install the file signed already.
func notInstalled(dir string, is config.Issuer) error {
	path, csr := config.Path(dir, is.Cert), config.Path(dir, csrFile(is.ID))
	if _, err := os.Stat(csr); err == nil {
		return fmt.Errorf("issuer %s: %s is not installed yet: have the external root sign %s, then run ca issuer install %s --cert FILE", is.ID, path, csr, is.ID)
	}
	return fmt.Errorf("issuer %s: %s is missing: the external root signed it elsewhere; run ca issuer install %s --cert FILE here with the certificate installed on the other node (or ca issuer csr %s for a new one)", is.ID, path, is.ID, is.ID)
}
