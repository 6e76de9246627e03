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
	"strconv"
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
		gen := kt
		if strings.HasPrefix(kt, "rsa") {
			gen = "rsa2048" // any RSA key shows whether the template builds
		}
		k, err := NewKey(gen)
		if err != nil {
			return nil, err
		}
		pub, _ := sampleKeys.LoadOrStore(kt, k.Public())
		return pub, nil
	}
	return nil, fmt.Errorf("no key type to build a sample certificate with (key_types %v)", types)
}

// NewKey makes a key of a type named as KeyType names them (p256, p384,
// p521, rsa2048, rsa3072, rsa4096, ed25519).
func NewKey(kt string) (crypto.Signer, error) {
	switch kt {
	case "p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	if bits, ok := strings.CutPrefix(kt, "rsa"); ok && slices.Contains([]string{"2048", "3072", "4096"}, bits) {
		n, _ := strconv.Atoi(bits)
		return rsa.GenerateKey(rand.Reader, n)
	}
	return nil, fmt.Errorf("unknown key type %q", kt)
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
