package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// tryBuild builds a certificate from the profile for a sample request (a
// key of a type it accepts, a common name that is also its DNS SAN), so a
// template whose output is not a certificate — JSON that does not parse,
// a CA certificate from a profile not marked ca — stops the CA at start
// with the configuration key, not every request later. A template whose
// execution fails for the sample ({{ fail "…" }}, or an index into the
// CSR's emails, which the sample lacks) is left to requests: real ones
// may carry what it needs.
func (p *Profile) tryBuild() error {
	key, err := sampleKey(p.KeyTypes)
	if err != nil {
		return fmt.Errorf("profiles[%s]: %w", p.Name, err)
	}
	const name = "sample.strongroom.invalid"
	csr := &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		PublicKey: key, PublicKeyAlgorithm: publicKeyAlgorithm(key)}
	_, _, err = p.build(csr, []string{name})
	if err != nil && !strings.Contains(err.Error(), errExecuting) {
		return fmt.Errorf("profiles[%s].template: %w", p.Name, err)
	}
	return nil
}

// sampleKeys are public keys for tryBuild, made once per type.
var sampleKeys sync.Map // key type → crypto.PublicKey

// sampleKey returns a public key of the first of types in order of how
// cheap it is to make.
func sampleKey(types []string) (crypto.PublicKey, error) {
	for _, kt := range []string{"p256", "ed25519", "p384", "p521", "rsa2048", "rsa3072", "rsa4096"} {
		if !slices.Contains(types, kt) {
			continue
		}
		if k, ok := sampleKeys.Load(kt); ok {
			return k, nil
		}
		var pub crypto.PublicKey
		switch kt {
		case "p256", "p384", "p521":
			c := map[string]elliptic.Curve{"p256": elliptic.P256(), "p384": elliptic.P384(), "p521": elliptic.P521()}[kt]
			k, err := ecdsa.GenerateKey(c, rand.Reader)
			if err != nil {
				return nil, err
			}
			pub = k.Public()
		case "ed25519":
			k, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return nil, err
			}
			pub = k
		default:
			// Any RSA key shows whether the template builds: the smallest.
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				return nil, err
			}
			pub = k.Public()
		}
		k, _ := sampleKeys.LoadOrStore(kt, pub)
		return k, nil
	}
	return nil, fmt.Errorf("no key type to build a sample certificate with (key_types %v)", types)
}

func publicKeyAlgorithm(pub crypto.PublicKey) x509.PublicKeyAlgorithm {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return x509.ECDSA
	case ed25519.PublicKey:
		return x509.Ed25519
	case *rsa.PublicKey:
		return x509.RSA
	}
	return x509.UnknownPublicKeyAlgorithm
}
