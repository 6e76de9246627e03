package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

var testURLs = URLs{
	CAIssuers: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"},
	OCSP:      []string{"http://127.0.0.1:8080/ocsp"},
	CRL:       []string{"http://127.0.0.1:8080/crl/{issuer}.crl"},
}

func newTestCA(t testing.TB, store Store, mod func(*Options)) (*CA, *Issuer, *Issuer) {
	t.Helper()
	root, inter := testHierarchy(t, "p256")
	o := Options{Store: store, Issuers: []*Issuer{inter, root}, URLs: testURLs}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, root, inter
}

func makeCSR(t testing.TB, key crypto.Signer, cn string, names ...string) *x509.CertificateRequest {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// countIntents counts reserved rows whose intent was recorded (serials
// reserved ahead by the pool and not yet used have no TBS).
func countIntents(t testing.TB, db *storage.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM certificates WHERE status = ? AND tbs IS NOT NULL`, string(core.StatusReserved)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func countRows(t testing.TB, db *storage.DB, status core.CertStatus) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM certificates WHERE status = ?`, string(status)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEveryProfileAndKeyTypeIsLintClean issues a certificate of every
// profile for every key type the profile accepts, with the real pipeline,
// and lints the signed result again: no error or warning lint may fire.
// Key types a profile refuses must be refused with KindBadKey.
func TestEveryProfileAndKeyTypeIsLintClean(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	// Code signing comes from an intermediate for it: the TLS default's
	// extended key usage does not allow it (TestEKUChained).
	var codesign *Issuer
	c, root, inter := newTestCA(t, db, func(o *Options) {
		codesign = codeSigningIssuer(t, o.Issuers[1])
		o.Issuers = append(o.Issuers, codesign)
	})
	pool := x509.NewCertPool()
	pool.AddCert(root.Certificate())
	ctx := context.Background()
	for _, p := range c.Profiles() {
		for _, kt := range keyTypes {
			t.Run(p.Name+"/"+kt, func(t *testing.T) {
				issuer := inter.ID()
				if p.CA {
					issuer = root.ID()
				}
				if p.Name == "code-signing" {
					issuer = codesign.ID()
				}
				csr := makeCSR(t, freshKeyOf(t, kt), "svc.example.internal", "svc.example.internal", "10.1.2.3")
				iss, err := c.Issue(ctx, Request{CSR: csr, Profile: p.Name, Issuer: issuer, Requester: "test"})
				if !slices.Contains(p.KeyTypes, kt) {
					if core.KindOf(err) != core.KindBadKey {
						t.Fatalf("profile %s with %s key: err = %v, want KindBadKey", p.Name, kt, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				f, err := c.Linter().Lint(iss.Certificate.Raw)
				if err != nil {
					t.Fatal(err)
				}
				if bad := f.Refusals(); len(bad) > 0 {
					t.Fatalf("lints fail on the issued certificate: %s", strings.Join(bad, ", "))
				}
				inters := x509.NewCertPool()
				for _, x := range iss.Chain[1:] {
					inters.AddCert(x)
				}
				// Verified for its own usages, as Go chains them (an OCSP
				// responder's certificate is checked by OCSP clients
				// against its issuer, not chained).
				eku := slices.DeleteFunc(slices.Clone(iss.Certificate.ExtKeyUsage), func(u x509.ExtKeyUsage) bool { return u == x509.ExtKeyUsageOCSPSigning })
				if len(eku) == 0 {
					eku = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
				}
				for _, u := range eku {
					if _, err := iss.Certificate.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters,
						KeyUsages: []x509.ExtKeyUsage{u}}); err != nil && !slices.Contains(iss.Certificate.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
						t.Fatalf("chain does not verify for %s: %v", EKUName(u), err)
					}
				}
				if err := iss.Certificate.CheckSignatureFrom(c.issuers[issuer].Certificate()); err != nil {
					t.Fatalf("signature: %v", err)
				}
				got, err := db.GetCertificate(ctx, iss.Serial)
				if err != nil || got.Status != core.StatusValid || string(got.DER) != string(iss.Certificate.Raw) || len(got.TBS) != 0 {
					t.Fatalf("stored row %+v, %v does not match the issued certificate", got, err)
				}
				if core.SerialFromBig(iss.Certificate.SerialNumber) != iss.Serial || iss.Certificate.SerialNumber.BitLen() < 100 {
					t.Fatalf("serial %s / %x", iss.Serial, iss.Certificate.SerialNumber)
				}
				if len(iss.Certificate.IssuingCertificateURL) != 1 || iss.Certificate.IssuingCertificateURL[0] != "http://127.0.0.1:8080/issuers/"+issuer+".crt" {
					t.Fatalf("AIA caIssuers = %v", iss.Certificate.IssuingCertificateURL)
				}
				if !p.NoRevocationInfo && (len(iss.Certificate.CRLDistributionPoints) != 1 || len(iss.Certificate.OCSPServer) != 1) {
					t.Fatalf("CRL DP = %v, OCSP = %v", iss.Certificate.CRLDistributionPoints, iss.Certificate.OCSPServer)
				}
			})
		}
	}
}

func TestIssueRefusesBadRequests(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	c, _, _ := newTestCA(t, db, func(o *Options) {
		o.SerialPool = -1 // one row per reservation, so they can be counted
		// A profile whose certificates break the lints: a TLS server
		// certificate without any SAN.
		o.Profiles = []Profile{{Name: "broken", DefaultLifetime: time.Hour, KeyTypes: []string{"p256"},
			Template: `{"subject": {"commonName": "x"}, "keyUsage": ["digitalSignature"], "extKeyUsage": ["serverAuth"]}`}}
	})
	ctx := context.Background()
	good := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
	badSig := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
	badSig.Signature = append([]byte(nil), badSig.Signature...)
	badSig.Signature[len(badSig.Signature)-3] ^= 0x40
	cases := []struct {
		name string
		req  Request
		kind core.Kind
		says string // a part of the refusal, when it matters
	}{
		{"bad CSR signature", Request{CSR: badSig, Profile: "tls-server"}, core.KindBadCSR, ""},
		{"RSA 1024", Request{CSR: makeCSR(t, testKey(t, "rsa1024"), "a.example", "a.example"), Profile: "tls-server"}, core.KindBadKey, ""},
		{"Ed25519 for TLS server", Request{CSR: makeCSR(t, testKey(t, "ed25519"), "a.example", "a.example"), Profile: "tls-server"}, core.KindBadKey, ""},
		{"over-long lifetime", Request{CSR: good, Profile: "tls-server", Lifetime: 398 * 24 * time.Hour}, core.KindRejected, ""},
		{"negative lifetime", Request{CSR: good, Profile: "tls-server", Lifetime: -time.Hour}, core.KindRejected, ""},
		{"lifetime shorter than the backdate", Request{CSR: good, Profile: "tls-server", Lifetime: 30 * time.Second}, core.KindRejected, "under the minimum"},
		{"unknown profile", Request{CSR: good, Profile: "nope"}, core.KindRejected, ""},
		{"unknown issuer", Request{CSR: good, Profile: "tls-server", Issuer: "nope"}, core.KindRejected, ""},
		{"no CSR", Request{Profile: "tls-server"}, core.KindMalformed, ""},
		{"sub-CA from an intermediate", Request{CSR: good, Profile: "subordinate-ca"}, core.KindRejected, ""},
		{"lint refusal", Request{CSR: good, Profile: "broken"}, core.KindRejected, "e_ext_san_missing"},
		{"only a common name that is no host", Request{CSR: makeCSR(t, testKey(t, "p256"), "<b>x</b>.a.example"), Profile: "tls-server"}, core.KindBadCSR,
			`its common name "<b>x</b>.a.example" is not a DNS name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := c.Issue(ctx, tc.req)
			if iss != nil || core.KindOf(err) != tc.kind {
				t.Fatalf("Issue = %v, %v; want kind %s", iss, err, tc.kind)
			}
			if tc.says != "" && !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("refusal %q does not say %q", err, tc.says)
			}
		})
	}
	if n := countRows(t, db, core.StatusValid); n != 0 {
		t.Fatalf("%d certificates stored after refused requests", n)
	}
	// Only the lint refusal got as far as reserving a serial (this CA has
	// no serial pool, so each reservation is one row); it stays reserved,
	// without an intent, and is never used again.
	if n := countIntents(t, db); n != 0 {
		t.Fatalf("%d intents recorded after refused requests", n)
	}
	if n := countRows(t, db, core.StatusReserved); n != 1 {
		t.Fatalf("%d reserved rows, want 1 (the lint refusal)", n)
	}
}

// flakyStore makes the first reservation collide with an existing serial.
type flakyStore struct {
	Store
	collideWith core.Serial
	attempts    []core.Serial
}

func (f *flakyStore) ReserveSerial(ctx context.Context, c *core.Certificate) error {
	if len(f.attempts) == 0 && f.collideWith != "" {
		c.Serial = f.collideWith
	}
	f.attempts = append(f.attempts, c.Serial)
	return f.Store.ReserveSerial(ctx, c)
}

// TestCrashBetweenIntentAndStore stops the pipeline after the intent is
// recorded, "restarts" by reopening the SQLite file, and checks that the
// reserved row holds the TBS, no certificate was returned, and the serial is
// never reused: a new issuance that draws it collides and takes another.
func TestCrashBetweenIntentAndStore(t *testing.T) {
	ctx := context.Background()
	db, path := storagetest.SQLite(t)
	crash := errors.New("simulated crash")
	var signed bool
	c, root, inter := newTestCA(t, db, func(o *Options) { o.afterIntent = func() error { return crash } })
	_ = signed
	csr := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
	iss, err := c.Issue(ctx, Request{CSR: csr, Profile: "tls-server", Requester: "test"})
	if iss != nil || !errors.Is(err, crash) {
		t.Fatalf("Issue = %v, %v; want no certificate and the crash", iss, err)
	}
	db.Close()

	db2, err := storage.Open(ctx, storage.SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	all, _, err := db2.ListCertificates(ctx, storage.CertFilter{Status: core.StatusReserved, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// The serial pool reserved more serials than the one used; those rows
	// have no intent (no TBS, profile or requester) and stay reserved.
	var rows []core.Certificate
	for _, r := range all {
		if len(r.TBS) > 0 {
			rows = append(rows, r)
		} else if r.Profile != "" || r.Requester != "" || len(r.DER) != 0 {
			t.Fatalf("pooled reservation with data: %+v", r)
		}
	}
	if len(rows) != 1 || len(all) < 2 {
		t.Fatalf("reserved rows after restart: %d with an intent, %d in all", len(rows), len(all))
	}
	r := rows[0]
	if len(r.TBS) == 0 || len(r.DER) != 0 || r.Names[0] != "a.example" {
		t.Fatalf("reserved row: TBS %d bytes, DER %d bytes, names %v", len(r.TBS), len(r.DER), r.Names)
	}
	if n := countRows(t, db2, core.StatusValid); n != 0 {
		t.Fatalf("%d valid certificates after the crash", n)
	}
	// `ca cert list --status intent` lists that row and no pooled one.
	if in, _, err := db2.ListCertificates(ctx, storage.CertFilter{Intents: true}); err != nil || len(in) != 1 || in[0].Serial != r.Serial {
		t.Fatalf("intents: %d rows, %v; want the one intent", len(in), err)
	}
	fs := &flakyStore{Store: db2, collideWith: r.Serial}
	c2, err := New(Options{Store: fs, Issuers: []*Issuer{inter, root}, URLs: testURLs})
	if err != nil {
		t.Fatal(err)
	}
	iss, err = c2.Issue(ctx, Request{CSR: csr, Profile: "tls-server", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if iss.Serial == r.Serial || len(fs.attempts) != 2 || fs.attempts[0] != r.Serial {
		t.Fatalf("serial reuse: crashed %s, attempts %v, issued %s", r.Serial, fs.attempts, iss.Serial)
	}
	again, err := db2.GetCertificate(ctx, r.Serial)
	if err != nil || again.Status != core.StatusReserved || string(again.TBS) != string(r.TBS) {
		t.Fatalf("the crashed reservation changed: %+v, %v", again, err)
	}
}

func TestRevokeAndDryRun(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	c, _, _ := newTestCA(t, db, nil)
	csr := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
	d, err := c.DryRun(ctx, Request{CSR: csr, Profile: "tls-server", ExtraSANs: []string{"B.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Findings.Refusals()) != 0 || !slices.Equal(d.Certificate.DNSNames, []string{"a.example", "b.example"}) {
		t.Fatalf("draft: findings %v, names %v", d.Findings, d.Certificate.DNSNames)
	}
	if n := countRows(t, db, core.StatusReserved) + countRows(t, db, core.StatusValid); n != 0 {
		t.Fatalf("dry run stored %d rows", n)
	}
	iss, err := c.Issue(ctx, Request{CSR: csr, Profile: "tls-server"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, iss.Serial, core.ReasonCertificateHold, time.Time{}); core.KindOf(err) != core.KindRejected {
		t.Fatalf("certificateHold: %v", err)
	}
	if err := c.Revoke(ctx, iss.Serial, core.ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	rec, err := c.Certificate(ctx, iss.Serial)
	if err != nil || rec.Status != core.StatusRevoked || rec.RevocationReason != core.ReasonKeyCompromise {
		t.Fatalf("after revoke: %+v, %v", rec, err)
	}
}

// TestUppercaseNames: a CSR written in capitals (CN and SAN UP.EXAMPLE)
// gets a certificate whose CN is the SAN as written, lowercased; before,
// the CN kept its capitals and zlint refused the certificate
// (e_subject_common_name_not_exactly_from_san).
func TestUppercaseNames(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	c, _, _ := newTestCA(t, db, nil)
	csr := makeCSR(t, testKey(t, "p256"), "UP.Example", "UP.EXAMPLE", "Other.Example")
	iss, err := c.Issue(context.Background(), Request{CSR: csr, Profile: "tls-server"})
	if err != nil {
		t.Fatal(err)
	}
	if cert := iss.Certificate; cert.Subject.CommonName != "up.example" || !slices.Equal(cert.DNSNames, []string{"up.example", "other.example"}) {
		t.Fatalf("CN %q, SANs %v", cert.Subject.CommonName, cert.DNSNames)
	}
}

// wrongSigner signs with another key of the same type: an HSM fault.
type wrongSigner struct {
	crypto.Signer
	other crypto.Signer
}

func (w wrongSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return w.other.Sign(r, d, o)
}

// TestFaultySignerIsCaught: a signature that does not verify under the
// issuer's key never becomes a certificate; the row stays reserved.
func TestFaultySignerIsCaught(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	root, inter := testHierarchy(t, "p256")
	bad := &Issuer{id: inter.id, chain: inter.chain, sent: inter.sent,
		signer: wrongSigner{Signer: inter.signer, other: freshKey(t, "p256")}}
	c, err := New(Options{Store: db, Issuers: []*Issuer{bad, root}, URLs: testURLs})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.Issue(ctx, Request{CSR: makeCSR(t, testKey(t, "p256"), "a.example", "a.example"), Profile: "tls-server"})
	if iss != nil || err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("Issue with a faulty signer = %v, %v", iss, err)
	}
	if v, r := countRows(t, db, core.StatusValid), countIntents(t, db); v != 0 || r != 1 {
		t.Fatalf("%d valid, %d reserved rows with an intent; want 0 and 1", v, r)
	}
}

func TestMetricsCountOutcomes(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	reg := prometheus.NewRegistry()
	c, _, _ := newTestCA(t, db, func(o *Options) { o.Registerer = reg })
	ctx := context.Background()
	csr := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
	c.Issue(ctx, Request{CSR: csr, Profile: "tls-server"})
	c.Issue(ctx, Request{CSR: csr, Profile: "tls-server", Lifetime: 10000 * time.Hour})
	c.Issue(ctx, Request{CSR: csr, Profile: "no-such-profile"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	series := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetValue() + ","
			}
			switch mf.GetName() {
			case "strongroom_issuance_total":
				got[labels] = m.GetCounter().GetValue()
			case "strongroom_issuance_duration_seconds":
				series++
			}
		}
	}
	// Labels in name order: outcome, profile.
	want := map[string]float64{"issued,tls-server,": 1, "rejected,tls-server,": 1, "rejected,unknown,": 1}
	if len(got) != len(want) || series != 3 {
		t.Fatalf("counters %v, %d latency series; want %v and 3", got, series, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("strongroom_issuance_total{%s} = %v, want %v", k, got[k], v)
		}
	}
}

// TestConcurrentIssueOnBothDatabases issues concurrently through the
// group-commit writer on SQLite and PostgreSQL: every certificate is
// stored, valid, with distinct serials.
func TestConcurrentIssueOnBothDatabases(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		w := storage.NewCertWriter(db)
		defer w.Close()
		c, _, _ := newTestCA(t, w, nil)
		ctx := context.Background()
		csr := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
		const n = 24
		serials := make(chan core.Serial, n)
		for i := 0; i < n; i++ {
			go func() {
				iss, err := c.Issue(ctx, Request{CSR: csr, Profile: "tls-server"})
				if err != nil {
					t.Error(err)
					serials <- ""
					return
				}
				serials <- iss.Serial
			}()
		}
		seen := map[core.Serial]bool{}
		for i := 0; i < n; i++ {
			s := <-serials
			if s == "" || seen[s] {
				t.Fatalf("serial %q missing or repeated", s)
			}
			seen[s] = true
			rec, err := db.GetCertificate(ctx, s)
			if err != nil || rec.Status != core.StatusValid || len(rec.DER) == 0 {
				t.Fatalf("row for %s: %+v, %v", s, rec, err)
			}
		}
	})
}

// TestCallerGoneAfterIntent: a caller whose context ends once the intent
// is recorded (a client that hung up) still gets its certificate signed
// and stored, so a retry finds it and nothing signed is left unstored.
func TestCallerGoneAfterIntent(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, _, _ := newTestCA(t, db, func(o *Options) { o.afterIntent = func() error { cancel(); return nil } })
	csr := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
	iss, err := c.Issue(ctx, Request{CSR: csr, Profile: "tls-server", Requester: "test"})
	if err != nil {
		t.Fatalf("Issue after the caller left: %v", err)
	}
	got, err := db.GetCertificate(context.Background(), iss.Serial)
	if err != nil || got.Status != core.StatusValid || !bytes.Equal(got.DER, iss.Certificate.Raw) {
		t.Fatalf("stored: %+v, %v; want the certificate valid", got, err)
	}
}

// codeSigningIssuer is an intermediate under root for code signing only.
func codeSigningIssuer(t testing.TB, root *Issuer) *Issuer {
	t.Helper()
	k := freshKeyOf(t, "p256")
	ic, err := NewIntermediate(context.Background(), root, k.Public(), IntermediateOptions{
		CommonName: "Test Code Signing CA", Organization: "Strongroom Test", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		CAIssuerURLs: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"}, CRLURLs: []string{"http://127.0.0.1:8080/crl/{issuer}.crl"}})
	if err != nil {
		t.Fatal(err)
	}
	is, err := NewIssuer("codesign", k, append([]*x509.Certificate{ic}, root.Chain()...))
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// TestEKUChained: a certificate whose extended key usage is outside its
// issuer chain's is refused, since Go, NSS and Windows refuse it (code
// signing certificates under the TLS intermediate did not verify for code
// signing); a request naming no issuer goes to the first that allows it,
// and one naming the TLS intermediate is told to make one for it.
func TestEKUChained(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ctx := context.Background()
	csr := makeCSR(t, testKey(t, "p256"), "Release signing")
	c, _, inter := newTestCA(t, db, nil)
	if _, err := c.Issue(ctx, Request{CSR: csr, Profile: "code-signing", Requester: "test"}); core.KindOf(err) != core.KindRejected ||
		!strings.Contains(err.Error(), "ca issuer add ID --eku codeSigning") {
		t.Fatalf("code signing with only a TLS intermediate: %v", err)
	}
	var codesign *Issuer
	c, root, _ := newTestCA(t, db, func(o *Options) {
		codesign = codeSigningIssuer(t, o.Issuers[1])
		o.Issuers = append(o.Issuers, codesign)
	})
	iss, err := c.Issue(ctx, Request{CSR: csr, Profile: "code-signing", Requester: "test"})
	if err != nil || !bytes.Equal(iss.Certificate.RawIssuer, codesign.Certificate().RawSubject) {
		t.Fatalf("code signing naming no issuer: %v", err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Certificate())
	inters.AddCert(codesign.Certificate())
	if _, err := iss.Certificate.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		t.Fatalf("the code signing certificate does not verify for code signing: %v", err)
	}
	if _, err := c.Issue(ctx, Request{CSR: csr, Profile: "code-signing", Issuer: inter.ID(), Requester: "test"}); core.KindOf(err) != core.KindRejected {
		t.Fatalf("code signing naming the TLS intermediate: %v", err)
	}
	// TLS certificates stay on the TLS default.
	tls, err := c.Issue(ctx, Request{CSR: makeCSR(t, testKey(t, "p256"), "a.example", "a.example"), Profile: "tls-server", Requester: "test"})
	if err != nil || bytes.Equal(tls.Certificate.RawIssuer, codesign.Certificate().RawSubject) {
		t.Fatalf("a TLS certificate: %v", err)
	}
}

// TestCodeSigningWithoutTLSIssuer: with every intermediate that allows
// serverAuth revoked, a code signing request naming no issuer still goes
// to the code signing intermediate (it got 503 "no issuer", found by a
// review), and a TLS request gets that 503.
func TestCodeSigningWithoutTLSIssuer(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ctx := context.Background()
	var codesign *Issuer
	c, root, inter := newTestCA(t, db, func(o *Options) {
		codesign = codeSigningIssuer(t, o.Issuers[1])
		o.Issuers = append(o.Issuers, codesign)
	})
	if err := c.Revoke(ctx, recordCACert(t, db, root, inter), core.ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	iss, err := c.Issue(ctx, Request{CSR: makeCSR(t, testKey(t, "p256"), "Release signing"), Profile: "code-signing", Requester: "test"})
	if err != nil || !bytes.Equal(iss.Certificate.RawIssuer, codesign.Certificate().RawSubject) {
		t.Fatalf("code signing with no TLS issuer left: %v", err)
	}
	if _, err := c.Issue(ctx, Request{CSR: makeCSR(t, testKey(t, "p256"), "a.example", "a.example"), Profile: "tls-server", Requester: "test"}); !errors.Is(err, core.ErrNoIssuer) {
		t.Fatalf("a TLS request with no TLS issuer left: %v", err)
	}
}

// refusingSigner is a signer that answers an error, as a token that went
// away does.
type refusingSigner struct{ crypto.Signer }

func (refusingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("CKR_DEVICE_REMOVED")
}

// TestRefusedSignatureLeavesNoIntent: a signer that answers an error gave
// no signature, so nothing can be handed out; the intent is withdrawn (a
// review's token outage left 1,400 intents reported at start as perhaps
// signed) and the serial stays reserved, never used again.
func TestRefusedSignatureLeavesNoIntent(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	root, inter := testHierarchy(t, "p256")
	gone := &Issuer{id: inter.id, chain: inter.chain, sent: inter.sent, signer: refusingSigner{inter.signer}}
	c, err := New(Options{Store: db, Issuers: []*Issuer{gone, root}, URLs: testURLs})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.Issue(ctx, Request{CSR: makeCSR(t, testKey(t, "p256"), "a.example", "a.example"), Profile: "tls-server"})
	if iss != nil || core.KindOf(err) != core.KindUnavailable {
		t.Fatalf("Issue with a signer that refuses = %v, %v; want unavailable", iss, err)
	}
	if n := countIntents(t, db); n != 0 {
		t.Fatalf("%d intents left by a refused signature", n)
	}
	var names, reserved int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM certificate_names`).Scan(&names); err != nil || names != 0 {
		t.Fatalf("%d names left by a refused signature (%v)", names, err)
	}
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM certificates WHERE status = ? AND profile = 'tls-server'`, string(core.StatusReserved)).Scan(&reserved); err != nil || reserved != 1 {
		t.Fatalf("%d reserved rows of the refused certificate (%v), want its serial kept reserved", reserved, err)
	}
}
