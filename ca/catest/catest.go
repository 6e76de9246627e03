// Package catest builds throwaway CA hierarchies and CSRs for tests of the
// packages above ca (ra, api, acme). Keys are plain Go P-256 keys, not HSM
// keys: these tests exercise policy and protocol, not the HSM.
package catest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/ca"
)

// Hierarchy makes a root "root" and an intermediate "intermediate" whose
// certificates name the CRL and caIssuers URLs of a CA at 127.0.0.1:8080.
// name prefixes the common names.
func Hierarchy(tb testing.TB, name string) (root, inter *ca.Issuer) {
	tb.Helper()
	return ConstrainedHierarchy(tb, name, ca.NameConstraints{})
}

// ConstrainedHierarchy is Hierarchy with name constraints in the
// intermediate.
func ConstrainedHierarchy(tb testing.TB, name string, nc ca.NameConstraints) (root, inter *ca.Issuer) {
	tb.Helper()
	ctx := context.Background()
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rc, err := ca.NewRoot(ctx, rk, ca.RootOptions{CommonName: name + " Root", Organization: "Strongroom Test"})
	if err != nil {
		tb.Fatal(err)
	}
	if root, err = ca.NewIssuer("root", rk, []*x509.Certificate{rc}); err != nil {
		tb.Fatal(err)
	}
	ic, err := ca.NewIntermediate(ctx, root, ik.Public(), ca.IntermediateOptions{CommonName: name + " Intermediate",
		Organization: "Strongroom Test", CRLURLs: []string{"http://127.0.0.1:8080/crl/root.crl"},
		CAIssuerURLs: []string{"http://127.0.0.1:8080/issuers/root.crt"}, NameConstraints: nc})
	if err != nil {
		tb.Fatal(err)
	}
	if inter, err = ca.NewIssuer("intermediate", ik, []*x509.Certificate{ic, rc}); err != nil {
		tb.Fatal(err)
	}
	return root, inter
}

// CodeSigning makes an intermediate "codesign" under root for code
// signing only (the TLS intermediate's extended key usage does not allow
// it), for tests that issue code-signing certificates.
func CodeSigning(tb testing.TB, root *ca.Issuer) *ca.Issuer {
	tb.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ic, err := ca.NewIntermediate(context.Background(), root, k.Public(), ca.IntermediateOptions{CommonName: root.Certificate().Subject.CommonName + " Code Signing",
		Organization: "Strongroom Test", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		CRLURLs: []string{"http://127.0.0.1:8080/crl/root.crl"}, CAIssuerURLs: []string{"http://127.0.0.1:8080/issuers/root.crt"}})
	if err != nil {
		tb.Fatal(err)
	}
	is, err := ca.NewIssuer("codesign", k, append([]*x509.Certificate{ic}, root.Chain()...))
	if err != nil {
		tb.Fatal(err)
	}
	return is
}

// CSR makes a parsed CSR signed by key with common name cn; names that parse
// as IP addresses become IP SANs, those with "://" URI SANs, those with "@"
// email SANs, the rest DNS SANs.
func CSR(tb testing.TB, key crypto.Signer, cn string, names ...string) *x509.CertificateRequest {
	tb.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if u, err := url.Parse(n); err == nil && strings.Contains(n, "://") {
			tmpl.URIs = append(tmpl.URIs, u)
		} else if strings.Contains(n, "@") {
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, n)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		tb.Fatal(err)
	}
	return csr
}
