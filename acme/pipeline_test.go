package acme_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/ca/catest"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// prodEnv wires acme as cmd/ca/acmewire.go does: ra.Authority over the
// real ca pipeline writing through storage.CertWriter on SQLite, the real
// acme/challenge validator doing http-01 over loopback TCP against a
// challengetest responder, and — on the same TLS listener, as `ca serve`
// mounts both — the REST API over the same Authority. The issuing keys are
// plain Go P-256 keys standing in for the HSM signers.
type prodEnv struct {
	*env
	auth     *ra.Authority
	pipeline *ca.CA
	apiKey   string // an API key with the issue scope
	http01   *challengetest.HTTP01Server
}

// benchSuffix is the policy's allowed suffix; the validator sends every
// name under it to the loopback responder.
const benchSuffix = "bench.example.com"

func newProdEnv(tb testing.TB, names ...string) *prodEnv {
	tb.Helper()
	ctx := context.Background()
	root, inter := catest.Hierarchy(tb, "ACME Bench")
	rc := root.Certificate()
	db, _ := storagetest.SQLite(tb)
	w := storage.NewCertWriter(db)
	tb.Cleanup(func() { w.Close() })
	pipeline, err := ca.New(ca.Options{Store: w, Issuers: []*ca.Issuer{inter},
		URLs: ca.URLs{CRL: []string{"http://127.0.0.1:8080/crl/{issuer}.crl"},
			CAIssuers: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"}}})
	if err != nil {
		tb.Fatal(err)
	}
	auth, err := ra.New(ra.Options{CA: pipeline, Policy: ra.Policy{AllowedDNSSuffixes: []string{benchSuffix}}})
	if err != nil {
		tb.Fatal(err)
	}

	resp := challengetest.NewHTTP01Server(tb)
	override := map[string]string{}
	for _, n := range names {
		override[n] = "127.0.0.1"
	}
	policy := &acme.RAPolicy{Authority: auth}
	v, err := challenge.New(challenge.Options{Resolver: "127.0.0.1:1", HTTPPort: resp.Port(), HostOverride: override,
		RedirectAllowed: acme.RedirectPolicy("bench", policy)})
	if err != nil {
		tb.Fatal(err)
	}

	mux := http.NewServeMux()
	ts := httptest.NewTLSServer(mux)
	tb.Cleanup(ts.Close)
	e := &env{t: tb, ts: ts, base: ts.URL + "/acme/bench", db: db, issuer: newFakeIssuer(tb)}
	e.issuer.ca = rc // verifyChain and tests trust this root
	e.present = func(token, keyAuth string) { resp.SetToken(token, keyAuth) }
	srv, err := acme.New(acme.Options{Name: "bench", BaseURL: e.base, Store: db,
		Nonces: storage.NewMemoryNonces(0, 0, nil), RateLimiter: storage.NewMemoryLimiter(nil),
		Limits:         acme.Limits{NewOrdersPerAccountPerHour: 1 << 30, NewAccountsPerIPPerHour: 1 << 30},
		Issuer:         &acme.RAIssuer{Authority: auth, Root: rc.Raw},
		Policy:         policy,
		Validator:      acme.ValidatorFunc(v.Validate),
		Profiles:       map[string]acme.Profile{"tls-server": {Description: "TLS server certificate", CAProfile: "tls-server"}},
		DefaultProfile: "tls-server",
		// Every order validates for real: the bench measures complete
		// orders, not renewals that reuse a recent proof.
		AuthzReuse: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	e.srv = srv
	mux.Handle("/acme/bench/", srv)

	a, err := api.New(api.Options{Authority: auth, Store: db, Issuers: pipeline})
	if err != nil {
		tb.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	a.Register(engine.Group("/api/v1"))
	mux.Handle("/api/v1/", engine)
	key, _, err := api.CreateKey(ctx, db, "bench", []string{api.ScopeIssue})
	if err != nil {
		tb.Fatal(err)
	}
	return &prodEnv{env: e, auth: auth, pipeline: pipeline, apiKey: key, http01: resp}
}

func parsePEMChain(t testing.TB, chain string) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := []byte(chain); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	return certs
}

// TestIssueWithCAPipeline runs an order through the production wiring —
// real http-01 over loopback, ra and the ca pipeline — then revokes the
// result by certificate key and checks the stored status.
func TestIssueWithCAPipeline(t *testing.T) {
	name := "www." + benchSuffix
	e := newProdEnv(t, name)
	c := newRawClient(e.env)
	c.register(nil)
	chain, key := c.issue(name)
	certs := parsePEMChain(t, chain)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(e.issuer.ca)
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name}); err != nil {
		t.Fatalf("chain from the ca pipeline does not verify: %v", err)
	}
	// finalize orders a fresh certificate (validated again: this endpoint
	// reuses no proof) for a CSR with key.
	finalize := func() *response {
		o := decode[orderDoc](t, c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil))
		if a := c.validate(o.Authorizations[0], "http-01", true); a.Status != "valid" {
			t.Fatalf("authorization: %+v", a)
		}
		return c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", name))}, nil)
	}
	// The account's keyCompromise claim revokes its certificate and blocks
	// nothing: it does not show the key is compromised (Boulder's rule).
	if r := c.post(e.url("revoke-cert"), map[string]any{"certificate": b64(certs[0].Raw), "reason": 1}, nil); r.StatusCode != 200 {
		t.Fatalf("revoke by the account: %d %s", r.StatusCode, r.body)
	}
	if r := finalize(); r.StatusCode != 200 {
		t.Fatalf("finalize after the account's keyCompromise: %d %s", r.StatusCode, r.body)
	}
	// Signed by the certificate's key, it blocks the key (of a
	// certificate revoked for keyCompromise already, too).
	byKey := &rawClient{e: e.env, key: key}
	if r := byKey.post(e.url("revoke-cert"), map[string]any{"certificate": b64(certs[0].Raw), "reason": 1}, nil); r.StatusCode != 200 {
		t.Fatalf("revoke by the certificate key: %d %s", r.StatusCode, r.body)
	}
	rec, err := e.auth.Certificate(context.Background(), core.SerialFromBig(certs[0].SerialNumber))
	if err != nil || rec.Status != core.StatusRevoked || rec.RevocationReason != core.ReasonKeyCompromise {
		t.Fatalf("stored status %v, %v", rec, err)
	}
	r := finalize()
	wantProblem(t, r, "badCSR", 400)
	if !strings.Contains(string(r.body), "blocked") {
		t.Fatalf("finalize with a blocked key: %s", r.body)
	}
}

// TestRealHTTP01Refused: with nothing published at the challenge URL the
// real validator fails the authorization with a problem, and the order
// can never be finalized.
func TestRealHTTP01Refused(t *testing.T) {
	name := "nothing." + benchSuffix
	e := newProdEnv(t, name)
	c := newRawClient(e.env)
	c.register(nil)
	r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil)
	o := decode[orderDoc](t, r)
	a := c.validate(o.Authorizations[0], "http-01", false)
	if a.Status != "invalid" || len(a.Challenges) != 1 || a.Challenges[0].Error == nil {
		t.Fatalf("authorization after an unanswered http-01: %+v", a)
	}
	if got := a.Challenges[0].Error.Type; got != "urn:ietf:params:acme:error:unauthorized" {
		t.Fatalf("problem %q, want unauthorized (404 from the responder)", got)
	}
}

// TestFinalizeRefusedKey: a CSR key that ra's key policy refuses is
// badPublicKey and leaves the order ready, so the client can finalize it
// with another key (as Boulder does). Before, the refusal came after the
// order was committed to issuance and made it invalid, and an RSA key with
// exponent 3 was refused by a lint as rejectedIdentifier.
func TestFinalizeRefusedKey(t *testing.T) {
	name := "keys." + benchSuffix
	e := newProdEnv(t, name)
	c := newRawClient(e.env)
	c.register(nil)
	r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil)
	orderURL, o := r.Header.Get("Location"), decode[orderDoc](t, r)
	if a := c.validate(o.Authorizations[0], "http-01", true); a.Status != "valid" {
		t.Fatalf("authorization: %+v", a)
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"P-521", p521}, {"RSA 1024", rsa1024}, {"Ed25519", ed}, {"RSA exponent 3", rsaExponent3(t)}} {
		r := c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, tc.key, "", name))}, nil)
		wantProblem(t, r, "badPublicKey", 400)
		if got := decode[orderDoc](t, c.post(orderURL, nil, nil)); got.Status != "ready" {
			t.Fatalf("%s: order %s after the refusal, want ready", tc.name, got.Status)
		}
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if r := c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, p256, "", name))}, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("finalize with an accepted key: %d %s", r.StatusCode, r.body)
	}
}

// rsaExponent3 makes a 2048-bit RSA key with public exponent 3, which
// crypto/rsa does not generate.
func rsaExponent3(t testing.TB) *rsa.PrivateKey {
	one, e := big.NewInt(1), big.NewInt(3)
	prime := func() *big.Int {
		for {
			p, err := rand.Prime(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			if new(big.Int).Mod(new(big.Int).Sub(p, one), e).Sign() != 0 {
				return p
			}
		}
	}
	p, q := prime(), prime()
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 3},
		D: new(big.Int).ModInverse(e, phi), Primes: []*big.Int{p, q}}
	k.Precompute()
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestInvalidALabelRefused: a name with an invalid IDN A-label is refused
// at newOrder (rejectedIdentifier naming the label) and by the REST API
// (a 4xx naming it), by ra's name policy both times.
func TestInvalidALabelRefused(t *testing.T) {
	e := newProdEnv(t)
	c := newRawClient(e.env)
	c.register(nil)
	for _, name := range []string{"xn--zz." + benchSuffix, "xn--a." + benchSuffix} {
		r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil)
		wantProblem(t, r, "rejectedIdentifier", 400)
		if label := strings.Split(name, ".")[0]; !strings.Contains(r.prob.Detail, label) {
			t.Fatalf("newOrder %s: %s", name, r.body)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		body := mustJSON(map[string]string{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrFor(t, key, "", name)}))})
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/v1/certificates", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 || !strings.Contains(string(b), "A-label") {
			t.Fatalf("REST issue %s: %d %s", name, resp.StatusCode, b)
		}
	}
}
