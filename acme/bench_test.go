package acme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// caIssuer adapts the real issuance pipeline (package ca: profile → lint
// on a throwaway copy → intent → sign → verify → store) to acme.Issuer, as
// wiring does, with plain Go keys standing in for the HSM signers.
type caIssuer struct{ c *ca.CA }

func newCAIssuer(tb testing.TB, e *env) caIssuer {
	tb.Helper()
	ctx := context.Background()
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rc, err := ca.NewRoot(ctx, rk, ca.RootOptions{CommonName: "ACME Test Root", Organization: "Strongroom Test"})
	if err != nil {
		tb.Fatal(err)
	}
	root, err := ca.NewIssuer("root", rk, []*x509.Certificate{rc})
	if err != nil {
		tb.Fatal(err)
	}
	ic, err := ca.NewIntermediate(ctx, root, ik.Public(), ca.IntermediateOptions{CommonName: "ACME Test Intermediate",
		Organization: "Strongroom Test", CRLURLs: []string{"http://127.0.0.1:8080/crl/{issuer}.crl"},
		CAIssuerURLs: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"}})
	if err != nil {
		tb.Fatal(err)
	}
	inter, err := ca.NewIssuer("intermediate", ik, []*x509.Certificate{ic, rc})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := ca.New(ca.Options{Store: e.db, Issuers: []*ca.Issuer{inter, root},
		URLs: ca.URLs{CRL: []string{"http://127.0.0.1:8080/crl/{issuer}.crl"},
			CAIssuers: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"}}})
	if err != nil {
		tb.Fatal(err)
	}
	e.issuer.ca = rc // verifyChain trusts this root
	return caIssuer{c: c}
}

func (a caIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest, profile, requester string) (*acme.Issued, error) {
	iss, err := a.c.Issue(ctx, ca.Request{CSR: csr, Profile: profile, Requester: requester, CSRChecked: true})
	if err != nil {
		return nil, err
	}
	chain := make([][]byte, 0, len(iss.Chain))
	for _, c := range iss.Chain {
		chain = append(chain, c.Raw)
	}
	return &acme.Issued{Serial: iss.Serial, Chains: [][][]byte{chain}}, nil
}

func (a caIssuer) Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, requester string) error {
	return a.c.Revoke(ctx, serial, reason)
}

func (a caIssuer) Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error) {
	return a.c.Certificate(ctx, serial)
}

func caEnv(tb testing.TB) *env {
	var e *env
	e = newEnv(tb, func(o *acme.Options) {
		o.Profiles = map[string]acme.Profile{"server": {Description: "TLS server", CAProfile: "tls-server"}}
		o.Issuer = lazyIssuer{&e}
	})
	ci := newCAIssuer(tb, e)
	e.caIss = &ci
	return e
}

// lazyIssuer lets the env be built before the CA that shares its database.
type lazyIssuer struct{ e **env }

func (l lazyIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest, p, r string) (*acme.Issued, error) {
	return (*l.e).caIss.Issue(ctx, csr, p, r)
}
func (l lazyIssuer) Revoke(ctx context.Context, s core.Serial, reason core.RevocationReason, r string) error {
	return (*l.e).caIss.Revoke(ctx, s, reason, r)
}
func (l lazyIssuer) Certificate(ctx context.Context, s core.Serial) (*core.Certificate, error) {
	return (*l.e).caIss.Certificate(ctx, s)
}

// TestIssueWithCAPipeline runs an order through the real ca pipeline and
// revokes the result by certificate key.
func TestIssueWithCAPipeline(t *testing.T) {
	e := caEnv(t)
	c := newRawClient(e)
	c.register(nil)
	chain, key := c.issue("pipeline.example.com", "*.pipeline.example.com")
	var certs []*x509.Certificate
	for rest := []byte(chain); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		cert, _ := x509.ParseCertificate(b.Bytes)
		certs = append(certs, cert)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(e.issuer.ca)
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "x.pipeline.example.com"}); err != nil {
		t.Fatalf("chain from the ca pipeline does not verify: %v", err)
	}
	byKey := &rawClient{e: e, key: key}
	if r := byKey.post(e.url("revoke-cert"), map[string]any{"certificate": b64(certs[0].Raw)}, nil); r.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.body)
	}
	rec, err := e.caIss.Certificate(context.Background(), core.SerialFromBig(certs[0].SerialNumber))
	if err != nil || rec.Status != core.StatusRevoked {
		t.Fatalf("stored status %v, %v", rec, err)
	}
}

// BenchmarkOrders measures complete ACME orders per second (newOrder →
// http-01 with the fake validator → finalize → download) by 8 in-process
// clients, each with its own account, on SQLite; once with the fake
// issuer, once with the real ca pipeline; beside raw P-256
// x509.CreateCertificate in the same run.
//
//	go test -run - -bench Orders -benchtime 400x ./acme
func BenchmarkOrders(b *testing.B) {
	const clients = 8
	run := func(b *testing.B, e *env) {
		// Keep a connection per client, as separate clients would.
		e.ts.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = clients
		cs := make([]*rawClient, clients)
		for i := range cs {
			cs[i] = newRawClient(e)
			cs[i].poll = time.Millisecond
			cs[i].register(nil)
		}
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for i, c := range cs {
			n := b.N / clients
			if i < b.N%clients {
				n++
			}
			wg.Go(func() {
				for range n {
					c.issue("bench.example.com")
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "orders/s")
	}
	b.Run("fake-issuer", func(b *testing.B) { run(b, newEnv(b, nil)) })
	b.Run("fake-issuer-postgres", func(b *testing.B) { run(b, newEnvDB(b, storagetest.Postgres(b), nil)) })
	b.Run("ca-pipeline", func(b *testing.B) { run(b, caEnv(b)) })
	b.Run("reference-CreateCertificate-P256", func(b *testing.B) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "bench"}, DNSNames: []string{"bench.example.com"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		start := time.Now()
		for i := range b.N {
			tmpl.SerialNumber = big.NewInt(int64(i + 1))
			if _, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "certs/s")
	})
}
