package acme_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// fakeIssuer is a plain Go CA: one P-256 key, a root certificate and a
// second "cross-signed" certificate for the same key, so every issued
// certificate has two chains.
type fakeIssuer struct {
	key     *ecdsa.PrivateKey
	ca, alt *x509.Certificate
	mu      sync.Mutex
	certs   map[core.Serial]*core.Certificate
	fail    error
	// during, if set, runs at the start of Issue (e.g. the client hangs up).
	during func()
	// blocks, if set, is where a revocation for keyCompromise by the key
	// holder blocks the key, as ra's does.
	blocks *storage.DB
}

func newFakeIssuer(t testing.TB) *fakeIssuer {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(cn string) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte{1, 2, 3, 4}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	return &fakeIssuer{key: key, ca: mk("Test CA"), alt: mk("Test CA (alternate)"), certs: map[core.Serial]*core.Certificate{}}
}

func (f *fakeIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest, profile, requester string) (*acme.Issued, error) {
	if f.during != nil {
		f.during()
	}
	if err := ctx.Err(); err != nil { // as the real pipeline would: its writes fail
		return nil, err
	}
	if f.fail != nil {
		return nil, f.fail
	}
	serial, err := core.NewSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial.Big(), Subject: pkix.Name{CommonName: csr.Subject.CommonName},
		DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses, NotBefore: now.Add(-time.Minute),
		NotAfter: now.Add(90 * 24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca, csr.PublicKey, f.key)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.certs[serial] = &core.Certificate{Serial: serial, Profile: profile, Requester: requester, DER: der,
		Status: core.StatusValid, NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter}
	f.mu.Unlock()
	return &acme.Issued{Serial: serial, Chains: [][][]byte{{der, f.ca.Raw}, {der, f.alt.Raw}}}, nil
}

func (f *fakeIssuer) Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, requester string, keyHolder bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.certs[serial]
	if !ok {
		return core.ErrNotFound
	}
	c.Status, c.RevocationReason, c.RevokedAt = core.StatusRevoked, reason, time.Now()
	if reason == core.ReasonKeyCompromise && keyHolder && f.blocks != nil {
		cert, _ := x509.ParseCertificate(c.DER)
		_, err := f.blocks.BlockKey(ctx, storage.BlockedKey{Hash: core.KeyHash(cert.RawSubjectPublicKeyInfo), Serial: serial, BlockedAt: time.Now()})
		return err
	}
	return nil
}

func (f *fakeIssuer) Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err) // as a database read would
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.certs[serial]
	if !ok {
		return nil, core.ErrNotFound
	}
	cp := *c
	return &cp, nil
}

// fakeValidator answers from a table of key authorizations the client
// "published" (the lego provider below fills it): it checks the key
// authorization the server computed equals the one the client computed.
type fakeValidator struct {
	mu        sync.Mutex
	published map[string]string // token → keyAuth
	calls     []string
}

type problemTyped struct{ typ, msg string }

func (e *problemTyped) Error() string       { return e.msg }
func (e *problemTyped) ProblemType() string { return e.typ }

func (v *fakeValidator) Validate(ctx context.Context, chType string, id acme.Identifier, token, keyAuth string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, chType+" "+id.Type+":"+id.Value)
	if got, ok := v.published[token]; !ok || got != keyAuth {
		return &problemTyped{typ: "incorrectResponse", msg: "key authorization not found at the challenge location"}
	}
	return nil
}

func (v *fakeValidator) Present(ctx context.Context, domain, token, keyAuth string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.published[token] = keyAuth
	return nil
}

func (v *fakeValidator) CleanUp(ctx context.Context, domain, token, keyAuth string) error { return nil }

// fakeEAB keeps HMAC keys in memory, as the HSM would.
type fakeEAB struct {
	mu   sync.Mutex
	keys map[string][]byte
}

func (e *fakeEAB) VerifyMAC(ctx context.Context, kid string, signingInput, mac []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, ok := e.keys[kid]
	if !ok {
		return errors.New("no such key")
	}
	m := hmac.New(sha256.New, k)
	m.Write(signingInput)
	if !hmac.Equal(m.Sum(nil), mac) {
		return errors.New("MAC mismatch")
	}
	return nil
}

func (e *fakeEAB) ImportHMAC(ctx context.Context, kid string, key []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys[kid] = append([]byte(nil), key...)
	return nil
}

func (e *fakeEAB) DestroyHMAC(ctx context.Context, kid string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.keys, kid)
	return nil
}

// suffixPolicy allows DNS names under one suffix and any IP address.
type suffixPolicy struct{ suffix string }

func (p suffixPolicy) CheckIdentifiers(ctx context.Context, endpoint string, ids []acme.Identifier, profile string) error {
	var errs []error
	for _, id := range ids {
		if id.Type == "dns" && !strings.HasSuffix(id.Value, p.suffix) {
			errs = append(errs, &acme.IdentifierError{Identifier: id, Detail: "name is outside " + p.suffix})
		}
	}
	return errors.Join(errs...)
}

func (p suffixPolicy) CheckKey(ctx context.Context, pub crypto.PublicKey, profile string) error {
	return nil
}
