package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/ca/catest"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
)

// TestRenew renews over mTLS as the server package serves it: a
// serverAuth-only TLS server certificate renews itself, a second ask
// returns the same new certificate, a rekey needs a CSR, and everything
// that must not renew is a problem document and no certificate.
func TestRenew(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	srv, roots := e.mtlsServer(t)
	issue := func(profile string, key *ecdsa.PrivateKey, names ...string) *x509.Certificate {
		t.Helper()
		iss, err := e.ca.Issue(ctx, ca.Request{CSR: catest.CSR(t, key, names[0], names...), Profile: profile,
			Lifetime: 7 * 24 * time.Hour, Requester: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Certificate
	}
	type answer struct {
		status int
		body   []byte
		hdr    http.Header
	}
	post := func(c *http.Client, contentType string, body []byte, accept string) answer {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/certificates/renew", bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, b, resp.Header}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cur := issue("tls-server", key, "web.corp.internal", "10.0.0.7")
	if len(cur.ExtKeyUsage) != 1 || cur.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("test needs a serverAuth-only certificate, got %v", cur.ExtKeyUsage)
	}
	holder := e.clientWith(roots, cur, key)

	before := e.count(t, core.StatusValid)
	a := post(holder, "", nil, "")
	if a.status != http.StatusCreated {
		t.Fatalf("renew: %d %s", a.status, a.body)
	}
	var got CertificateResponse
	if err := json.Unmarshal(a.body, &got); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(got.Certificate))
	n, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if n.SerialNumber.Cmp(cur.SerialNumber) == 0 || !bytes.Equal(n.RawSubjectPublicKeyInfo, cur.RawSubjectPublicKeyInfo) ||
		strings.Join(got.Names, ",") != "web.corp.internal,10.0.0.7" || got.Profile != "tls-server" ||
		n.NotAfter.Sub(n.NotBefore) != 7*24*time.Hour {
		t.Fatalf("renewed: %+v", got)
	}
	if got.Requester != "renew:"+string(core.SerialFromBig(cur.SerialNumber)) {
		t.Fatalf("requester %q", got.Requester)
	}
	if loc := a.hdr.Get("Location"); loc != "/api/v1/certificates/"+got.Serial {
		t.Fatalf("Location %q, want /api/v1/certificates/%s", loc, got.Serial)
	}
	// Asking again (a client that lost the answer) gets the same
	// certificate, as a PEM chain if it asks for one; nothing new is issued.
	again := post(holder, "", nil, "application/pem-certificate-chain")
	if again.status != http.StatusCreated || again.hdr.Get("Idempotent-Replayed") != "true" ||
		!strings.HasPrefix(string(again.body), got.Certificate) {
		t.Fatalf("second renewal: %d %s %s", again.status, again.hdr, again.body)
	}
	if c := e.count(t, core.StatusValid); c != before+1 {
		t.Fatalf("%d certificates issued, want 1", c-before)
	}
	// The renewed certificate renews in turn, with a new key: a rekey.
	key2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key3, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: catest.CSR(t, key3, "", "ignored.corp.internal").Raw})
	next := e.clientWith(roots, n, key)
	rk := post(next, "application/pkcs10", csr, "")
	if rk.status != http.StatusCreated {
		t.Fatalf("rekey: %d %s", rk.status, rk.body)
	}
	var rkGot CertificateResponse
	_ = json.Unmarshal(rk.body, &rkGot)
	blk, _ = pem.Decode([]byte(rkGot.Certificate))
	rkCert, _ := x509.ParseCertificate(blk.Bytes)
	if !rkCert.PublicKey.(*ecdsa.PublicKey).Equal(&key3.PublicKey) || strings.Join(rkGot.Names, ",") != "web.corp.internal,10.0.0.7" {
		t.Fatalf("rekey: %+v", rkGot)
	}
	// Another key for the same certificate is refused: it has renewed.
	csr2, _ := json.Marshal(RenewRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST",
		Bytes: catest.CSR(t, key2, "", "web.corp.internal").Raw}))})
	if r := post(next, "application/json", csr2, ""); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("second rekey: %d %s", r.status, r.body)
	}
	// Once its renewal is revoked, a certificate does not get it again,
	// and is told why (not about an Idempotency-Key it never sent).
	if err := e.ca.Revoke(ctx, core.Serial(rkGot.Serial), core.ReasonSuperseded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if r := post(next, "application/pkcs10", csr, ""); r.status != http.StatusConflict || !strings.Contains(string(r.body), "renews once") {
		t.Fatalf("renewal whose result was revoked: %d %s", r.status, r.body)
	}

	// Once revoked, the old certificate no longer gets even the renewal it
	// made before.
	if err := e.ca.Revoke(ctx, core.SerialFromBig(cur.SerialNumber), core.ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if r := post(holder, "", nil, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("replay for a revoked certificate: %d %s", r.status, r.body)
	}

	revokedKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	revoked := issue("tls-server", revokedKey, "old.corp.internal")
	if err := e.ca.Revoke(ctx, core.SerialFromBig(revoked.SerialNumber), core.ReasonSuperseded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	csKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	codeSigning := issue("code-signing", csKey, "build.corp.internal")
	// A certificate from another CA, with the same names.
	fKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fIss := foreignCert(t, fKey, cur)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: e.clientWith(roots, cur, key).Transport.(*http.Transport).TLSClientConfig.Clone()}}
	anon.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	before = e.count(t, core.StatusValid)
	for _, tc := range []struct {
		name   string
		c      *http.Client
		ct     string
		body   string
		status int
	}{
		{"no client certificate", anon, "", "", 401},
		{"a revoked certificate", e.clientWith(roots, revoked, revokedKey), "", "", 401},
		{"another CA's certificate", e.clientWith(roots, fIss, fKey), "", "", 401},
		{"a profile that does not renew", e.clientWith(roots, codeSigning, csKey), "", "", 403},
		{"garbage CSR", e.clientWith(roots, rkCert, key3), "application/pkcs10", "garbage", 400},
		{"unknown JSON field", e.clientWith(roots, rkCert, key3), "application/json", `{"csr":"","profile":"x"}`, 400},
		{"a JSON null, not an object", e.clientWith(roots, rkCert, key3), "application/json", `null`, 400},
		{"an API key is no substitute", e.client, "", "", 0},
	} {
		if tc.c == e.client {
			r, b := e.do(t, "POST", "/certificates/renew", "admin", "", nil)
			if r.StatusCode != 401 || !strings.Contains(r.Header.Get("Content-Type"), "problem+json") {
				t.Errorf("%s: %d %s", tc.name, r.StatusCode, b)
			}
			continue
		}
		r := post(tc.c, tc.ct, []byte(tc.body), "")
		if r.status != tc.status || !strings.Contains(r.hdr.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: %d %s, want %d and a problem document", tc.name, r.status, r.body, tc.status)
		}
	}
	if c := e.count(t, core.StatusValid); c != before {
		t.Fatalf("refused renewals issued %d certificates", c-before)
	}
}

// foreignCert is a copy of like's identity and serial for key, signed by
// a CA of its own.
func foreignCert(t *testing.T, key *ecdsa.PrivateKey, like *x509.Certificate) *x509.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: like.Issuer, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	tmpl := *like
	tmpl.PublicKey = nil
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// FuzzRenewBody throws arbitrary bodies and content types at POST
// /certificates/renew from a holder of a valid certificate: never a 5xx,
// every error a problem document.
func FuzzRenewBody(f *testing.F) {
	e := newEnv(f, nil, nil)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := e.ca.Issue(context.Background(), ca.Request{CSR: catest.CSR(f, key, "", "fuzz.corp.internal"), Profile: "tls-server", Requester: "test"})
	if err != nil {
		f.Fatal(err)
	}
	csr := catest.CSR(f, key, "", "fuzz.corp.internal").Raw
	f.Add([]byte{}, uint8(0))
	f.Add([]byte(`{"csr":""}`), uint8(1))
	f.Add([]byte(`{"csr":"MAA="}`), uint8(1))
	f.Add(csr, uint8(2))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), uint8(2))
	types := []string{"", "application/json", "application/pkcs10", "text/plain"}
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		req := httptest.NewRequest("POST", "/api/v1/certificates/renew", bytes.NewReader(body))
		if c := types[int(ct)%len(types)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{iss.Certificate, e.inter.Certificate()}}
		serveClientBytes(t, e.engine, req)
	})
}

// TestRenewOnceAfterADay: a certificate renews once for as long as it can
// be presented, not once a day (idempotency claims are pruned after a
// day; a renewal's is kept until the renewed certificate expires).
func TestRenewOnceAfterADay(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, nil, func(o *Options) { o.Now = clock })
	srv, roots := e.mtlsServer(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := e.ca.Issue(context.Background(), ca.Request{CSR: catest.CSR(t, key, "", "day.corp.internal"), Profile: "tls-server",
		Lifetime: 7 * 24 * time.Hour, Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	holder := e.clientWith(roots, iss.Certificate, key)
	renew := func(body []byte) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/certificates/renew", bytes.NewReader(body))
		if body != nil {
			req.Header.Set("Content-Type", "application/pkcs10")
		}
		resp, err := holder.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var cr CertificateResponse
		json.Unmarshal(b, &cr)
		return resp.StatusCode, cr.Serial, resp.Header.Get("Idempotent-Replayed") + " " + string(b)
	}
	st, first, msg := renew(nil)
	if st != http.StatusCreated {
		t.Fatalf("renew: %d %s", st, msg)
	}
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if st, _, msg := renew(catest.CSR(t, other, "", "day.corp.internal").Raw); st != http.StatusUnprocessableEntity {
		t.Fatalf("a day later, onto another key: %d %s; want 422 (renewed already)", st, msg)
	}
	if st, serial, msg := renew(nil); st != http.StatusCreated || serial != first || !strings.HasPrefix(msg, "true") {
		t.Fatalf("a day later: %d %s %s; want the first renewal replayed", st, serial, msg)
	}
}

// TestRenewKeepsToTheOriginsLimits: a renewal fits the limits, as they
// stand now, of the credential that asked for the first certificate of the
// line, as a new request would. A certificate a --names key got before
// such keys lost free-text common names (issued here straight from the CA,
// as the previous release's ra let it through) no longer renews, nor does
// its renewal's renewal; one inside the key's names still does; a client
// certificate principal whose client_cert_limits were narrowed since stops
// renewing what is now outside them; a revoked key's certificates keep
// renewing inside its names (revoke-all --requester ends a line).
func TestRenewKeepsToTheOriginsLimits(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.ClientCertLimits = map[string]Limits{"mtls:deploy-*": {Names: []string{"team-a.corp.internal"}}}
	})
	ctx := context.Background()
	srv, roots := e.mtlsServer(t)
	_, id, err := CreateKeyWith(ctx, e.db, KeySpec{Name: "team-a", Scopes: []string{ScopeIssue},
		Names: []string{"team-a.corp.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(requester, profile, cn string, names ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
		return e.issueAs(t, requester, profile, cn, names...)
	}
	renew := func(cert *x509.Certificate, key *ecdsa.PrivateKey) (int, string, *x509.Certificate) {
		return e.renewAt(t, srv.URL, roots, cert, key)
	}
	origin := "apikey:" + id

	inside, ikey := issue(origin, "tls-client", "svc.team-a.corp.internal", "svc.team-a.corp.internal")
	st, b, next := renew(inside, ikey)
	if st != http.StatusCreated {
		t.Fatalf("a certificate inside the key's names: %d %s, want it renewed", st, b)
	}
	if st, b, _ := renew(next, ikey); st != http.StatusCreated {
		t.Fatalf("its renewal: %d %s, want it renewed", st, b)
	}

	// Free text beside a name inside the limits: refused, with why.
	before := e.count(t, core.StatusValid)
	free, fkey := issue(origin, "tls-client", "postgres", "svc.team-a.corp.internal")
	st, b, _ = renew(free, fkey)
	if st != http.StatusForbidden || !strings.Contains(b, `\"postgres\"`) || !strings.Contains(b, origin) {
		t.Fatalf("a pre-upgrade free-text common name: %d %s, want 403 naming it and the key", st, b)
	}
	if got := e.count(t, core.StatusValid); got != before+1 {
		t.Fatalf("%d certificates issued, want only the test's own", got-before-1)
	}

	// Client certificate limits narrowed since: refused; a principal
	// they do not cover renews.
	wide, wkey := issue("mtls:deploy-b", "tls-server", "web.team-b.corp.internal", "web.team-b.corp.internal")
	if st, b, _ := renew(wide, wkey); st != http.StatusForbidden || !strings.Contains(b, "team-b") {
		t.Fatalf("outside narrowed client_cert_limits: %d %s, want 403", st, b)
	}
	other, okey := issue("mtls:ops", "tls-server", "web.team-b.corp.internal", "web.team-b.corp.internal")
	if st, b, _ := renew(other, okey); st != http.StatusCreated {
		t.Fatalf("a principal without limits: %d %s, want it renewed", st, b)
	}

	// A revoked key's certificates renew inside its names.
	if err := RevokeKey(ctx, e.db, id); err != nil {
		t.Fatal(err)
	}
	late, lkey := issue(origin, "tls-server", "api.team-a.corp.internal", "api.team-a.corp.internal")
	if st, b, _ := renew(late, lkey); st != http.StatusCreated {
		t.Fatalf("after the key's revocation: %d %s, want it renewed", st, b)
	}
	// A key the database has no record of (a restore from before it).
	gone, gkey := issue("apikey:no-such-key", "tls-server", "api.team-a.corp.internal", "api.team-a.corp.internal")
	if st, b, _ := renew(gone, gkey); st != http.StatusForbidden || !strings.Contains(b, "not on record") {
		t.Fatalf("a key without a record: %d %s, want 403", st, b)
	}
}

// TestRenewalLineOrigin: each renewal records the origin of its line, so
// however long the line, it is judged by (and counted against) whoever
// asked for its first certificate; a line recorded before renewals kept
// their origin is walked back once, and one whose walk breaks (a missing
// predecessor, or too long) is refused rather than judged by no one. An
// api-client credential renews only while its origin is an admin without
// limits, as minting one needs.
func TestRenewalLineOrigin(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.ClientCertScopes = map[string][]string{"mtls:bot": {ScopeIssue}, "mtls:root-bot": {ScopeAdmin}}
		o.ClientCertLimits = map[string]Limits{"mtls:deploy": {Names: []string{"team-a.corp.internal"}}}
		auth, err := ra.New(ra.Options{CA: o.Issuers.(*ca.CA), Policy: ra.Policy{
			AllowedDNSSuffixes: []string{"corp.internal"}, ProfileAccess: map[string][]string{ClientProfile: {"*"}}}})
		if err != nil {
			t.Fatal(err)
		}
		o.Authority = auth
	})
	ctx := context.Background()
	srv, roots := e.mtlsServer(t)
	issue := func(requester, profile, cn string, names ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
		return e.issueAs(t, requester, profile, cn, names...)
	}
	renew := func(cert *x509.Certificate, key *ecdsa.PrivateKey) (int, string, *x509.Certificate) {
		return e.renewAt(t, srv.URL, roots, cert, key)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := e.db.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	serialOf := func(c *x509.Certificate) core.Serial { return core.SerialFromBig(c.SerialNumber) }

	// A line of renewals: each records its origin.
	cur, key := issue("mtls:deploy", "tls-server", "web.team-a.corp.internal", "web.team-a.corp.internal")
	var line []*x509.Certificate
	for range 3 {
		st, b, next := renew(cur, key)
		if st != http.StatusCreated {
			t.Fatalf("renewal %d: %d %s", len(line)+1, st, b)
		}
		rec, err := e.db.GetCertificate(ctx, serialOf(next))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b, `"origin":"mtls:deploy"`) {
			t.Fatalf("renewal answer without its origin: %s", b)
		}
		if rec.Origin != "mtls:deploy" || rec.Requester != "renew:"+string(serialOf(cur)) {
			t.Fatalf("renewal recorded with origin %q, requester %q; want mtls:deploy, renew:%s", rec.Origin, rec.Requester, serialOf(cur))
		}
		line, cur = append(line, next), next
	}
	// The last renewal's predecessors gone (a restore, an edit): its
	// recorded origin still judges it.
	for _, c := range line[:2] {
		exec(`UPDATE certificates SET requester = 'renew:00dead' WHERE serial = ?`, string(serialOf(c)))
	}
	if st, b, next := renew(cur, key); st != http.StatusCreated {
		t.Fatalf("a renewal with its origin recorded, predecessors gone: %d %s", st, b)
	} else {
		cur = next
	}

	// Renewals recorded before the origin was: the walk back finds it
	// once, and the renewal it makes records it.
	old, okey := issue("mtls:deploy", "tls-server", "api.team-a.corp.internal", "api.team-a.corp.internal")
	_, _, r1 := renew(old, okey)
	_, _, r2 := renew(r1, okey)
	exec(`UPDATE certificates SET origin = '' WHERE serial IN (?, ?)`, string(serialOf(r1)), string(serialOf(r2)))
	st, b, r3 := renew(r2, okey)
	if st != http.StatusCreated {
		t.Fatalf("a pre-upgrade line: %d %s", st, b)
	}
	if rec, _ := e.db.GetCertificate(ctx, serialOf(r3)); rec == nil || rec.Origin != "mtls:deploy" {
		t.Fatalf("the walk's renewal recorded origin %+v, want mtls:deploy", rec)
	}
	// ... and when the walk breaks, nothing is issued.
	exec(`UPDATE certificates SET origin = '' WHERE serial = ?`, string(serialOf(r3)))
	exec(`UPDATE certificates SET requester = 'renew:00dead' WHERE serial = ?`, string(serialOf(r1)))
	before := e.count(t, core.StatusValid)
	if st, b, _ := renew(r3, okey); st != http.StatusForbidden || !strings.Contains(b, "00dead") {
		t.Fatalf("a line whose predecessor is not on record: %d %s, want 403 naming it", st, b)
	}
	if got := e.count(t, core.StatusValid); got != before {
		t.Fatalf("%d certificates issued on a refusal", got-before)
	}
	// The walk's bound: a first certificate and a chain of renewals
	// recorded without their origin; one MaxRenewalWalk renewals from
	// its first certificate renews, one further back does not.
	exec(`INSERT INTO certificates (serial, issuer_id, profile, requester, status, created_at, updated_at)
		VALUES ('0e0000', 'intermediate', 'tls-server', 'mtls:deploy', 'valid', 1, 1)`)
	for i := 1; i <= ra.MaxRenewalWalk; i++ {
		exec(`INSERT INTO certificates (serial, issuer_id, profile, requester, status, created_at, updated_at)
			VALUES (?, 'intermediate', 'tls-server', ?, 'valid', 1, 1)`, fmt.Sprintf("0e%04x", i), fmt.Sprintf("renew:0e%04x", i-1))
	}
	edge, ekey := issue(fmt.Sprintf("renew:0e%04x", ra.MaxRenewalWalk-1), "tls-server", "db.team-a.corp.internal", "db.team-a.corp.internal")
	if st, b, _ := renew(edge, ekey); st != http.StatusCreated {
		t.Fatalf("a line %d renewals long: %d %s, want it renewed", ra.MaxRenewalWalk, st, b)
	}
	deep, dkey := issue(fmt.Sprintf("renew:0e%04x", ra.MaxRenewalWalk), "tls-server", "db.team-a.corp.internal", "db.team-a.corp.internal")
	if st, b, _ := renew(deep, dkey); st != http.StatusForbidden || !strings.Contains(b, "more than") {
		t.Fatalf("a line too long to walk: %d %s, want 403", st, b)
	}

	// An API credential renews while its origin may mint one.
	adminID := keyID(t, e, "admin")
	cred, ckey := issue("apikey:"+adminID, ClientProfile, "deploy-bot")
	if st, b, _ := renew(cred, ckey); st != http.StatusCreated {
		t.Fatalf("a credential minted by an admin key: %d %s", st, b)
	}
	for _, origin := range []string{"mtls:bot", "acme:default/acct"} {
		c, k := issue(origin, ClientProfile, "deploy-bot")
		if st, b, _ := renew(c, k); st != http.StatusForbidden || !strings.Contains(b, "API credential") {
			t.Fatalf("a credential whose origin %s is no admin now: %d %s, want 403", origin, st, b)
		}
	}
	c, k := issue("mtls:root-bot", ClientProfile, "deploy-bot")
	if st, b, _ := renew(c, k); st != http.StatusCreated {
		t.Fatalf("a credential minted by an admin client certificate: %d %s", st, b)
	}
	// ... and stops once the key that minted it is revoked: a revoked
	// key mints nothing.
	_, leaked, err := CreateKeyWith(ctx, e.db, KeySpec{Name: "leaked", Scopes: []string{ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	c, k = issue("apikey:"+leaked, ClientProfile, "root-bot")
	if st, b, _ := renew(c, k); st != http.StatusCreated {
		t.Fatalf("a credential minted by a live admin key: %d %s", st, b)
	}
	if err := RevokeKey(ctx, e.db, leaked); err != nil {
		t.Fatal(err)
	}
	if st, b, _ := renew(c, k); st != http.StatusForbidden || !strings.Contains(b, "API credential") {
		t.Fatalf("a credential whose admin key was revoked: %d %s, want 403", st, b)
	}

	// Records edited into a circle are refused as such.
	exec(`INSERT INTO certificates (serial, issuer_id, profile, requester, status, created_at, updated_at)
		VALUES ('0d01', 'intermediate', 'tls-server', 'renew:0d02', 'valid', 1, 1), ('0d02', 'intermediate', 'tls-server', 'renew:0d01', 'valid', 1, 1)`)
	round, rkey := issue("renew:0d01", "tls-server", "db.team-a.corp.internal", "db.team-a.corp.internal")
	if st, b, _ := renew(round, rkey); st != http.StatusForbidden || !strings.Contains(b, "circle") {
		t.Fatalf("a line in a circle: %d %s, want 403 saying so", st, b)
	}
}

// keyID is the id of the env's API key called name.
func keyID(t *testing.T, e *env, name string) string {
	t.Helper()
	k, err := e.db.APIKeyByHash(context.Background(), hashKey(e.keys[name]))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

// issueAs issues a week's certificate straight from the CA, recorded as
// asked for by requester, and returns it with its key.
func (e *env) issueAs(t *testing.T, requester, profile, cn string, names ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := e.ca.Issue(context.Background(), ca.Request{CSR: catest.CSR(t, key, cn, names...), Profile: profile,
		Lifetime: 7 * 24 * time.Hour, Requester: requester})
	if err != nil {
		t.Fatal(err)
	}
	return iss.Certificate, key
}

// renewAt renews cert over mTLS at the server at url: the status, the
// answer, and the new certificate when it is 201.
func (e *env) renewAt(t *testing.T, url string, roots *x509.CertPool, cert *x509.Certificate, key *ecdsa.PrivateKey) (int, string, *x509.Certificate) {
	t.Helper()
	resp, err := e.clientWith(roots, cert, key).Post(url+"/api/v1/certificates/renew", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var cr CertificateResponse
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &cr) != nil {
		return resp.StatusCode, string(b), nil
	}
	blk, _ := pem.Decode([]byte(cr.Certificate))
	if blk == nil {
		t.Fatalf("renewal answer without a certificate: %s", b)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), c
}
