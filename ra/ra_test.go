package ra

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/ca/catest"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func newCA(t *testing.T) (*ca.CA, *storage.DB) {
	t.Helper()
	root, inter := catest.Hierarchy(t, "RA Test")
	db, _ := storagetest.SQLite(t)
	c, err := ca.New(ca.Options{Store: db, Issuers: []*ca.Issuer{inter, root, catest.CodeSigning(t, root)},
		URLs: ca.URLs{CAIssuers: []string{"http://ca.internal/{issuer}.crt"}, CRL: []string{"http://ca.internal/crl/{issuer}.crl"}}})
	if err != nil {
		t.Fatal(err)
	}
	return c, db
}

func csrFor(t *testing.T, key crypto.Signer, cn string, names ...string) *x509.CertificateRequest {
	t.Helper()
	return catest.CSR(t, key, cn, names...)
}

var testPolicy = Policy{
	AllowedDNSSuffixes: []string{"corp.internal", "example.com"},
	DeniedDNSSuffixes:  []string{"secret.example.com"},
	AllowedIPRanges:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	AllowWildcards:     true,
	MaxLifetime:        map[string]time.Duration{"tls-server": 30 * 24 * time.Hour},
	ProfileAccess:      map[string][]string{"code-signing": {"apikey:builder"}, "tls-client": {"apikey:*"}},
}

func TestIssuePolicy(t *testing.T) {
	c, db := newCA(t)
	a, err := New(Options{CA: c, Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	badSig := csrFor(t, p256, "a.corp.internal", "a.corp.internal")
	badSig.Signature[10] ^= 1
	ctx := context.Background()
	cases := []struct {
		name string
		req  Request
		kind core.Kind // -1: success
	}{
		{"allowed", Request{CSR: csrFor(t, p256, "a.corp.internal", "a.corp.internal", "10.1.1.1"), Principal: "apikey:x"}, -1},
		{"CN only becomes a SAN", Request{CSR: csrFor(t, p256, "web.example.com"), Principal: "apikey:x"}, -1},
		{"host name CN not among the SANs", Request{CSR: csrFor(t, p256, "b.corp.internal", "a.corp.internal"), Principal: "apikey:x"}, core.KindBadCSR},
		{"other CN not among the SANs", Request{CSR: csrFor(t, p256, "Web Server", "a.corp.internal"), Principal: "apikey:x"}, -1},
		{"wildcard", Request{CSR: csrFor(t, p256, "", "*.corp.internal"), Principal: "apikey:x"}, -1},
		{"wildcard covering a denied name", Request{CSR: csrFor(t, p256, "", "*.example.com"), Principal: "apikey:x"}, core.KindRejected},
		{"denied suffix", Request{CSR: csrFor(t, p256, "", "x.secret.example.com"), Principal: "apikey:x"}, core.KindRejected},
		{"outside suffixes", Request{CSR: csrFor(t, p256, "", "evil.org"), Principal: "apikey:x"}, core.KindRejected},
		{"look-alike suffix", Request{CSR: csrFor(t, p256, "", "notexample.com"), Principal: "apikey:x"}, core.KindRejected},
		{"IP outside ranges", Request{CSR: csrFor(t, p256, "", "a.corp.internal", "192.168.1.1"), Principal: "apikey:x"}, core.KindRejected},
		{"bad DNS label", Request{CSR: csrFor(t, p256, "", "a_b.corp.internal"), Principal: "apikey:x"}, core.KindRejected},
		{"bad CSR signature", Request{CSR: badSig, Principal: "apikey:x"}, core.KindBadCSR},
		{"RSA 1024", Request{CSR: csrFor(t, rsa1024, "", "a.corp.internal"), Principal: "apikey:x"}, core.KindBadKey},
		{"Ed25519 for TLS server", Request{CSR: csrFor(t, ed, "", "a.corp.internal"), Principal: "apikey:x"}, core.KindBadKey},
		{"lifetime over policy", Request{CSR: csrFor(t, p256, "", "a.corp.internal"), Lifetime: 31 * 24 * time.Hour, Principal: "apikey:x"}, core.KindRejected},
		{"unknown profile", Request{CSR: csrFor(t, p256, "", "a.corp.internal"), Profile: "nope", Principal: "apikey:x"}, core.KindRejected},
		{"profile not granted", Request{CSR: csrFor(t, p256, "Builder"), Profile: "code-signing", Principal: "apikey:x"}, core.KindForbidden},
		{"profile granted", Request{CSR: csrFor(t, p256, "Builder"), Profile: "code-signing", Principal: "apikey:builder"}, -1},
		{"closed profile", Request{CSR: csrFor(t, p256, "CA"), Profile: "subordinate-ca", Principal: "apikey:x"}, core.KindForbidden},
		{"extra SANs not allowed", Request{CSR: csrFor(t, p256, "", "a.corp.internal"), ExtraSANs: []string{"b.corp.internal"}, Principal: "apikey:x"}, core.KindRejected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := a.Issue(ctx, tc.req)
			if tc.kind == -1 {
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				if tc.req.Profile == "" && iss.Certificate.NotAfter.Sub(iss.Certificate.NotBefore) > 30*24*time.Hour {
					t.Fatalf("lifetime %s over policy", iss.Certificate.NotAfter.Sub(iss.Certificate.NotBefore))
				}
				return
			}
			if iss != nil || core.KindOf(err) != core.Kind(tc.kind) {
				t.Fatalf("Issue = %v, %v; want kind %s", iss, err, core.Kind(tc.kind))
			}
		})
	}
	var n int
	// Stored certificates: the CA's serial pool reserves rows ahead of
	// use, which stay reserved.
	db.QueryRow(ctx, `SELECT COUNT(*) FROM certificates WHERE status <> 'reserved'`).Scan(&n)
	if n != 5 {
		t.Fatalf("%d certificates recorded, want 5 (the allowed requests only)", n)
	}
}

// TestCheckKey: the key policy a front end asks before issuing (ACME
// finalize) is Issue's, and refuses an RSA exponent the lints would
// refuse later (as a lint, not as a key).
func TestCheckKey(t *testing.T) {
	c, _ := newCA(t)
	a, err := New(Options{CA: c, Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name    string
		profile string
		pub     crypto.PublicKey
		kind    core.Kind // -1: accepted
	}{
		{"P-256", "", p256.Public(), -1},
		{"RSA 2048", "tls-server", rsa2048.Public(), -1},
		{"P-521", "", p521.Public(), core.KindBadKey},
		{"Ed25519 for TLS server", "tls-server", ed, core.KindBadKey},
		{"RSA exponent 3", "", &rsa.PublicKey{N: rsa2048.N, E: 3}, core.KindBadKey},
		{"RSA even exponent", "", &rsa.PublicKey{N: rsa2048.N, E: 65538}, core.KindBadKey},
		{"unknown profile", "nope", p256.Public(), core.KindRejected},
	} {
		err := a.CheckKey(tc.profile, tc.pub)
		if (tc.kind == -1 && err != nil) || (tc.kind != -1 && core.KindOf(err) != tc.kind) {
			t.Errorf("%s: CheckKey = %v, want kind %v", tc.name, err, tc.kind)
		}
	}
}

func TestCheckIdentifiersListsEveryProblem(t *testing.T) {
	c, _ := newCA(t)
	a, err := New(Options{CA: c, Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = a.CheckIdentifiers(ctx, "acme:default/1", "tls-server", []Identifier{
		{Type: "dns", Value: "ok.corp.internal"}, {Type: "dns", Value: "evil.org"},
		{Type: "ip", Value: "8.8.8.8"}, {Type: "ip", Value: "10.0.0.5"}, {Type: "carrier-pigeon", Value: "x"}, {Type: "dns", Value: "127.1"}})
	var ie *IdentifierError
	if !errors.As(err, &ie) || len(ie.Problems) != 4 || core.KindOf(err) != core.KindRejected || !strings.Contains(ie.Problems[3].Detail, "all digits") {
		t.Fatalf("CheckIdentifiers = %v (%T)", err, err)
	}
	if err := a.CheckIdentifiers(ctx, "acme:default/1", "tls-server", []Identifier{{Type: "dns", Value: "A.Corp.Internal"}}); err != nil {
		t.Fatalf("allowed identifier: %v", err)
	}
	if err := a.CheckIdentifiers(ctx, "acme:default/1", "code-signing", []Identifier{{Type: "dns", Value: "a.corp.internal"}}); core.KindOf(err) != core.KindForbidden {
		t.Fatalf("profile not granted: %v", err)
	}
}

// TestDryRunUnavailable: a dry run when no issuer can sign answers as
// issuing does (unavailable: retry later), not as a policy refusal that a
// client would not retry.
func TestDryRunUnavailable(t *testing.T) {
	root, inter := catest.Hierarchy(t, "RA Test")
	db, _ := storagetest.SQLite(t)
	later := inter.NotAfter().Add(time.Hour)
	c, err := ca.New(ca.Options{Store: db, Issuers: []*ca.Issuer{inter, root}, Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := New(Options{CA: c, Policy: testPolicy})
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := Request{CSR: csrFor(t, k, "", "a.corp.internal")}
	if _, err := a.Issue(context.Background(), req); core.KindOf(err) != core.KindUnavailable {
		t.Fatalf("issuing with every issuer expired: %v, want unavailable", err)
	}
	res, err := a.DryRun(context.Background(), req)
	if core.KindOf(err) != core.KindUnavailable {
		t.Fatalf("dry run with every issuer expired: %+v, %v; want unavailable", res, err)
	}
	if res, err := a.DryRun(context.Background(), Request{CSR: csrFor(t, k, "", "evil.org")}); err != nil || res.Allowed {
		t.Fatalf("a refused name is still a decision: %+v, %v", res, err)
	}
}

func TestDryRunAndRevoke(t *testing.T) {
	c, db := newCA(t)
	var events []string
	a, _ := New(Options{CA: c, Policy: testPolicy, OnRevoke: func(_ context.Context, issuer string, s core.Serial) {
		events = append(events, issuer+"/"+string(s))
	}})
	ctx := context.Background()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	res, err := a.DryRun(ctx, Request{CSR: csrFor(t, k, "", "evil.org")})
	if err != nil || res.Allowed || res.Reason == "" {
		t.Fatalf("dry run of a refused name: %+v, %v", res, err)
	}
	res, err = a.DryRun(ctx, Request{CSR: csrFor(t, k, "", "a.corp.internal")})
	if err != nil || !res.Allowed || res.Draft == nil {
		t.Fatalf("dry run of an allowed name: %+v, %v", res, err)
	}
	var n int
	db.QueryRow(ctx, `SELECT COUNT(*) FROM certificates`).Scan(&n)
	if n != 0 {
		t.Fatalf("dry runs stored %d rows", n)
	}
	iss, err := a.Issue(ctx, Request{CSR: csrFor(t, k, "", "a.corp.internal")})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, iss.Serial, core.ReasonSuperseded, time.Time{}, "apikey:x"); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0] != "intermediate/"+string(iss.Serial) {
		t.Fatalf("revocation events %v", events)
	}
	if err := a.Revoke(ctx, iss.Serial, core.ReasonSuperseded, time.Time{}, "apikey:x"); core.KindOf(err) != core.KindConflict {
		t.Fatalf("second revoke: %v", err)
	}
	if err := a.Revoke(ctx, iss.Serial, 7, time.Time{}, "apikey:x"); core.KindOf(err) != core.KindMalformed {
		t.Fatalf("reason 7: %v", err)
	}
	if len(events) != 1 {
		t.Fatalf("failed revocations published events: %v", events)
	}
}

func TestParseCSR(t *testing.T) {
	if _, err := ParseCSR([]byte("garbage")); core.KindOf(err) != core.KindMalformed {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := ParseCSR(nil); core.KindOf(err) != core.KindMalformed {
		t.Fatalf("empty: %v", err)
	}
	// A CSR for a secp256k1 key (made with openssl): the problem says why.
	k1, _ := base64.StdEncoding.DecodeString("MIHCMGsCAQAwDDEKMAgGA1UEAwwBazBWMBAGByqGSM49AgEGBSuBBAAKA0IABCO5CHopfodDtkCJ7nnfcyOkG/cHRmhoBuIfTdTGOlg5j61FLtgnL/jEZG4f3yfvfzfdmtpSrH5ypAK6e7WPfWagADAKBggqhkjOPQQDAgNHADBEAiApedpQ+LkBYoZSMUeS9inbh/am+TvkHjbJiDrVUAZJIgIgdnHqZW1JbIMm898X1i5MlrR3tw/cXfGs/2koWVLKGSE=")
	if _, err := ParseCSR(k1); core.KindOf(err) != core.KindMalformed || !strings.Contains(core.DetailOf(err), "unsupported elliptic curve") {
		t.Fatalf("secp256k1: %v", err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := csrFor(t, k, "x", "a.corp.internal")
	raw := append([]byte(nil), csr.Raw...)
	raw[len(raw)-2] ^= 1
	// A tampered signature parses; Issue refuses it (TestIssuePolicy).
	if _, err := ParseCSR(raw); err != nil && core.KindOf(err) != core.KindMalformed {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := ParseCSR(csr.Raw); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseCSR(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"a.example"}}, k)
	f.Add(der)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b)
		if err == nil && csr == nil {
			t.Fatal("nil CSR without error")
		}
		if err != nil && core.KindOf(err) == core.KindInternal {
			t.Fatalf("internal error for client bytes: %v", err)
		}
	})
}

// TestPolicyRefusedAtStart: a policy that names a profile the CA lacks, a
// suffix that is not a DNS name or a negative count is refused by New,
// naming the field, instead of silently applying to nothing.
func TestPolicyRefusedAtStart(t *testing.T) {
	c, _ := newCA(t)
	for _, tc := range []struct {
		name   string
		policy Policy
		def    string
		want   string
	}{
		{"max lifetime of an unknown profile", Policy{MaxLifetime: map[string]time.Duration{"tls-sever": time.Hour}}, "", `max_lifetime: unknown profile "tls-sever"`},
		{"access to an unknown profile", Policy{ProfileAccess: map[string][]string{"codesigning": {"*"}}}, "", `profile_access: unknown profile "codesigning"`},
		{"renewal of an unknown profile", Policy{Renewal: RenewalPolicy{Profiles: []string{"tls"}}}, "", `renewal.profiles: unknown profile "tls"`},
		{"unknown default profile", Policy{}, "tls", `default profile: unknown profile "tls"`},
		{"suffix with an empty label", Policy{AllowedDNSSuffixes: []string{"..corp"}}, "", `allowed DNS suffix "..corp" is not a DNS name`},
		{"wildcard suffix", Policy{DeniedDNSSuffixes: []string{"*.corp"}}, "", `denied DNS suffix "*.corp"`},
		{"suffix with a space", Policy{AllowedDNSSuffixes: []string{"corp internal"}}, "", "is not a DNS name"},
		{"negative max names", Policy{MaxNames: -1}, "", "max_names -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{CA: c, Policy: tc.policy, DefaultProfile: tc.def})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// Leading dots and capitals are fine (".Corp.Internal" is corp.internal).
	if _, err := New(Options{CA: c, Policy: Policy{AllowedDNSSuffixes: []string{".Corp.Internal", "lan"}}}); err != nil {
		t.Fatal(err)
	}
}

// A policy refusal is counted in the issuance metrics as rejected (it
// never reaches the pipeline, which counted only its own outcomes), under
// the profile asked for, "unknown" for one the CA lacks.
func TestPolicyRefusalsCounted(t *testing.T) {
	root, inter := catest.Hierarchy(t, "RA Metrics")
	db, _ := storagetest.SQLite(t)
	reg := prometheus.NewRegistry()
	c, err := ca.New(ca.Options{Store: db, Issuers: []*ca.Issuer{inter, root}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{CA: c, Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx := context.Background()
	a.Issue(ctx, Request{CSR: csrFor(t, k, "", "www.elsewhere.test"), Principal: "apikey:x"})                         // name outside policy
	a.Issue(ctx, Request{CSR: csrFor(t, k, "", "www.corp.internal"), Profile: "code-signing", Principal: "apikey:x"}) // profile not granted
	a.Issue(ctx, Request{CSR: csrFor(t, k, "", "www.corp.internal"), Profile: "nope", Principal: "apikey:x"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "strongroom_issuance_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() { // in name order: outcome, profile
				labels += l.GetValue() + ","
			}
			got[labels] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"rejected,tls-server,": 1, "rejected,code-signing,": 1, "rejected,unknown,": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("strongroom_issuance_total = %v, want %v", got, want)
	}
}
