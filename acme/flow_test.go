package acme_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
	"github.com/strongroom-pki/strongroom/core"
)

type legoUser struct {
	key crypto.Signer
	reg *legoacme.ExtendedAccount
}

func (u *legoUser) GetEmail() string                           { return "ops@example.com" }
func (u *legoUser) GetRegistration() *legoacme.ExtendedAccount { return u.reg }
func (u *legoUser) GetPrivateKey() crypto.Signer               { return u.key }

func newLego(t *testing.T, e *env) (*lego.Client, *legoUser) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &legoUser{key: key}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = e.url("directory")
	cfg.HTTPClient = e.ts.Client()
	cfg.Certificate.Timeout = 30 * time.Second
	c, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, u
}

// verifyChain checks a PEM chain: leaf first, signed by the test CA, with
// exactly the names asked for.
func verifyChain(t *testing.T, e *env, chain []byte, names ...string) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chain; ; {
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
	if len(certs) != 2 {
		t.Fatalf("chain has %d certificates, want leaf + CA", len(certs))
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.issuer.ca)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: names[0]}); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
	got := slices.Sorted(slices.Values(certs[0].DNSNames))
	if !slices.Equal(got, slices.Sorted(slices.Values(names))) {
		t.Fatalf("leaf names %v, want %v", got, names)
	}
	return certs[0]
}

func TestLegoIssueHTTP01FakeValidator(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	c, u := newLego(t, e)
	if err := c.Challenge.SetHTTP01Provider(e.val); err != nil {
		t.Fatal(err)
	}
	reg, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatal(err)
	}
	u.reg = reg
	if m := c.GetServerMetadata(); m.Profiles["short"] == "" || m.Website == "" {
		t.Fatalf("directory meta %+v lacks profiles or website", m)
	}
	names := []string{"www.example.com", "api.example.com"}
	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, Bundle: true,
		KeyType: certcrypto.EC256, Profile: "short"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyChain(t, e, res.Certificate, names...)
	rec, _ := e.issuer.Certificate(ctx, core.SerialFromBig(leaf.SerialNumber))
	if rec.Profile != "tls-short" || !strings.HasPrefix(rec.Requester, "acme:test/") {
		t.Fatalf("issued with profile %q by %q, want tls-short by acme:test/…", rec.Profile, rec.Requester)
	}
	if len(e.val.calls) != 2 || !strings.HasPrefix(e.val.calls[0], "http-01 dns:") {
		t.Fatalf("validator calls %v", e.val.calls)
	}
	// Renew with ARI's replaces, then revoke through lego (account key).
	certID, err := apiCertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, Bundle: true,
		KeyType: certcrypto.EC256, ReplacesCertID: certID})
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, e, res2.Certificate, names...)
	if err := c.Certificate.Revoke(ctx, res.Certificate); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.issuer.Certificate(ctx, core.SerialFromBig(leaf.SerialNumber)); rec.Status != core.StatusRevoked {
		t.Fatalf("certificate status %s after revoke", rec.Status)
	}
}

// realHTTP01 is a real http-01 validator (RFC 8555 §8.3) pointed at a test
// port, as acme/challenge is in production: GET the token URL with the
// identifier as Host and compare the body.
type realHTTP01 struct{ addr string }

func (v realHTTP01) Validate(ctx context.Context, chType string, id acme.Identifier, token, keyAuth string) error {
	if chType != "http-01" {
		return fmt.Errorf("%s not supported by this test validator", chType)
	}
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", v.addr)
	}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+id.Value+http01.ChallengePath(token), nil)
	resp, err := cl.Do(req)
	if err != nil {
		return &problemTyped{typ: "connection", msg: "fetching the challenge: " + err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != keyAuth {
		return &problemTyped{typ: "incorrectResponse", msg: fmt.Sprintf("got %d %q", resp.StatusCode, body)}
	}
	return nil
}

func TestLegoIssueRealHTTP01(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", challengetest.FreePort(t))
	e := newEnv(t, func(o *acme.Options) { o.Validator = realHTTP01{addr: addr} })
	ctx := context.Background()
	c, u := newLego(t, e)
	host, port, _ := net.SplitHostPort(addr)
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer(host, port)); err != nil {
		t.Fatal(err)
	}
	reg, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatal(err)
	}
	u.reg = reg
	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"real.example.com"},
		Bundle: true, KeyType: certcrypto.EC256})
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, e, res.Certificate, "real.example.com")
}

func TestLegoEAB(t *testing.T) {
	e := newEnv(t, func(o *acme.Options) { o.Meta.ExternalAccountRequired = true })
	ctx := context.Background()
	kid, hmacKey, err := acme.CreateEAB(ctx, e.db, e.eab, "test", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := e.db.ACMEEABKeys(ctx, "test")
	if len(keys) != 1 || keys[0].KID != kid {
		t.Fatalf("EAB key ids %+v", keys)
	}

	c, _ := newLego(t, e)
	_, err = c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	wantLegoProblem(t, err, "externalAccountRequired")

	c, _ = newLego(t, e)
	wrong := b64([]byte("0123456789abcdef0123456789abcdef"))
	_, err = c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: kid, HmacEncoded: wrong})
	wantLegoProblem(t, err, "unauthorized")

	c, _ = newLego(t, e)
	if _, err = c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: kid, HmacEncoded: hmacKey}); err != nil {
		t.Fatalf("EAB with the right key: %v", err)
	}
	// A key id binds one account only.
	c, _ = newLego(t, e)
	_, err = c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: kid, HmacEncoded: hmacKey})
	wantLegoProblem(t, err, "unauthorized")

	kid2, key2, _ := acme.CreateEAB(ctx, e.db, e.eab, "test", nil, time.Now())
	if err := acme.RevokeEAB(ctx, e.db, e.eab, "test", kid2, time.Now()); err != nil {
		t.Fatal(err)
	}
	c, _ = newLego(t, e)
	_, err = c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: kid2, HmacEncoded: key2})
	wantLegoProblem(t, err, "unauthorized")

	// A key made with names: its account orders inside them only.
	kid3, key3, err := acme.CreateEAB(ctx, e.db, e.eab, "test", []string{"team.example.com", "10.1.0.0/16"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, u := newLego(t, e)
	if err := c.Challenge.SetHTTP01Provider(e.val); err != nil {
		t.Fatal(err)
	}
	if u.reg, err = c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: kid3, HmacEncoded: key3}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"www.team.example.com", "other.example.com"},
		Bundle: true, KeyType: certcrypto.EC256})
	wantLegoProblem(t, err, "rejectedIdentifier")
	if !strings.Contains(err.Error(), "other.example.com is outside") || strings.Contains(err.Error(), "www.team.example.com is outside") {
		t.Fatalf("refusal names the wrong identifier: %v", err)
	}
	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"www.team.example.com"},
		Bundle: true, KeyType: certcrypto.EC256})
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, e, res.Certificate, "www.team.example.com")
	if _, _, err := acme.CreateEAB(ctx, e.db, e.eab, "test", []string{"*.example.com"}, time.Now()); core.KindOf(err) != core.KindMalformed {
		t.Fatalf("a wildcard name limit: %v", err)
	}
}

func wantLegoProblem(t *testing.T, err error, typ string) {
	t.Helper()
	var p *legoacme.ProblemDetails
	if err == nil || !asProblem(err, &p) || p.Type != "urn:ietf:params:acme:error:"+typ {
		t.Fatalf("got %v, want %s", err, typ)
	}
}

func TestLegoKeyChangeAndDeactivate(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	c, u := newLego(t, e)
	reg, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatal(err)
	}
	u.reg = reg
	newKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err := c.Registration.KeyRollover(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	// The old key no longer finds the account; the new one does.
	old, _ := newLego(t, e)
	old.Registration = registration.NewRegistrar(mustCore(t, e, u.key, ""), u)
	if _, err := old.Registration.ResolveAccountByKey(ctx); err == nil {
		t.Fatal("old key still resolves the account")
	}
	u2 := &legoUser{key: newKey}
	acct, err := registration.NewRegistrar(mustCore(t, e, newKey, ""), u2).ResolveAccountByKey(ctx)
	if err != nil || acct.Location != reg.Location {
		t.Fatalf("new key resolves %v, %v; want %s", acct, err, reg.Location)
	}
	// Deactivate, then every request of the account is unauthorized.
	if err := c.Registration.DeleteRegistration(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.Registration.QueryRegistration(ctx)
	wantLegoProblem(t, err, "unauthorized")
}

// TestLegoWithChallengePackage: lego's http-01 server checked by the real
// acme/challenge validator, wired through ValidatorFunc as production does.
func TestLegoWithChallengePackage(t *testing.T) {
	port := challengetest.FreePort(t)
	v, err := challenge.New(challenge.Options{HTTPPort: port,
		HostOverride: map[string]string{"wired.example.com": "127.0.0.1", "nobody.example.com": "127.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *acme.Options) { o.Validator = acme.ValidatorFunc(v.Validate) })
	ctx := context.Background()
	c, u := newLego(t, e)
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(port))); err != nil {
		t.Fatal(err)
	}
	if u.reg, err = c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"wired.example.com"},
		Bundle: true, KeyType: certcrypto.EC256})
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, e, res.Certificate, "wired.example.com")
	// This name points where nothing listens: the challenge fails with the
	// validator's problem type, and lego reports it.
	_, err = c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"nobody.example.com"},
		Bundle: true, KeyType: certcrypto.EC256})
	if err == nil || !strings.Contains(err.Error(), "urn:ietf:params:acme:error:") {
		t.Fatalf("unserved name: %v", err)
	}
}
