package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
)

func TestIssueGetListRevoke(t *testing.T) {
	e := newEnv(t, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := newCSR(t, k, "web.corp.internal", "web.corp.internal", "10.0.0.7")

	// JSON with a PEM CSR.
	resp, body := e.do(t, "POST", "/certificates", "issuer", "application/json",
		jsonBody(t, map[string]any{"csr": pemCSR(der), "lifetime": "24h", "extra_sans": []string{"alt.corp.internal"}}))
	if resp.StatusCode != 201 {
		t.Fatalf("issue: %d %s", resp.StatusCode, body)
	}
	var cr CertificateResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Profile != "tls-server" || cr.Issuer != "intermediate" || len(cr.Names) != 3 || cr.NotAfter.Sub(cr.NotBefore).Hours() != 24 {
		t.Fatalf("issued: %+v", cr)
	}
	blk, rest := pem.Decode([]byte(cr.Chain))
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || core.SerialFromBig(leaf.SerialNumber) != core.Serial(cr.Serial) {
		t.Fatalf("chain leaf: %v", err)
	}
	if b2, _ := pem.Decode(rest); b2 == nil || !bytes.Equal(b2.Bytes, e.inter.Certificate().Raw) {
		t.Fatal("chain does not carry the intermediate")
	}
	opensslVerify(t, e, []byte(cr.Chain))

	// base64 DER, raw application/pkcs10 DER with query parameters, and
	// the PEM chain by Accept.
	resp, body = e.do(t, "POST", "/certificates", "issuer", "application/json",
		jsonBody(t, map[string]any{"csr": base64.StdEncoding.EncodeToString(der), "lifetime": 3600}))
	if resp.StatusCode != 201 {
		t.Fatalf("issue base64: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "POST", "/certificates?profile=tls-server-client&lifetime=2d", "issuer", "application/pkcs10", der,
		"Accept", "application/pem-certificate-chain")
	if resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "application/pem-certificate-chain" || strings.Count(string(body), "BEGIN CERTIFICATE") != 2 ||
		!strings.HasPrefix(resp.Header.Get("Location"), "/api/v1/certificates/") {
		t.Fatalf("issue pkcs10: %d %s %s (Location %q)", resp.StatusCode, resp.Header.Get("Content-Type"), body, resp.Header.Get("Location"))
	}

	// Get in three formats.
	resp, body = e.do(t, "GET", "/certificates/"+cr.Serial, "reader", "", nil)
	var got CertificateResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil || got.Status != "valid" || got.Chain != cr.Chain {
		t.Fatalf("get json (want the chain POST gave): %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/certificates/"+cr.Serial+"?format=der", "reader", "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, leaf.Raw) {
		t.Fatalf("get der: %d", resp.StatusCode)
	}
	resp, body = e.do(t, "GET", "/certificates/"+strings.ToUpper(cr.Serial), "reader", "", nil, "Accept", "application/pem-certificate-chain")
	if resp.StatusCode != 200 || string(body) != cr.Chain {
		t.Fatalf("get pem (want the chain POST gave): %d %s", resp.StatusCode, body)
	}

	// Revoke (reader may not; revoker may), then list by status and name.
	if resp, _ := e.do(t, "POST", "/certificates/"+cr.Serial+"/revoke", "reader", "application/json", []byte(`{"reason":"keyCompromise"}`)); resp.StatusCode != 403 {
		t.Fatalf("revoke with read scope: %d", resp.StatusCode)
	}
	// A JSON null is not "no options": the body, when given, is an object.
	for _, b := range []string{` null`, `[]`, `"x"`} {
		if resp, body := e.do(t, "POST", "/certificates/"+cr.Serial+"/revoke", "revoker", "application/json", []byte(b)); resp.StatusCode != 400 || !strings.Contains(string(body), "JSON object") {
			t.Fatalf("revoke with the body %s: %d %s", b, resp.StatusCode, body)
		}
	}
	// A field of the wrong type is said in JSON's terms, not Go's.
	if resp, body := e.do(t, "POST", "/certificates", "admin", "application/json", []byte(`{"csr": 5}`)); resp.StatusCode != 400 ||
		!strings.Contains(string(body), `\"csr\" is a number; it must be a string`) || strings.Contains(string(body), "Go ") {
		t.Fatalf("issue with a number for the CSR: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "POST", "/certificates/"+cr.Serial+"/revoke", "revoker", "application/json", []byte(`{"reason":"superseded"}`))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"revocation_reason":"superseded"`) {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do(t, "POST", "/certificates/"+cr.Serial+"/revoke", "revoker", "application/json", nil); resp.StatusCode != 409 {
		t.Fatalf("second revoke: %d %s", resp.StatusCode, body)
	}
	// A zero date is refused, not taken for "not given".
	if resp, body := e.do(t, "POST", "/certificates/"+cr.Serial+"/revoke", "revoker", "application/json", []byte(`{"reason":"keyCompromise","invalidity_date":"0001-01-01T00:00:00Z"}`)); resp.StatusCode != 400 || !strings.Contains(string(body), "before 1970") {
		t.Fatalf("invalidity date 0001-01-01: %d %s", resp.StatusCode, body)
	}
	// keyCompromise may still follow (Boulder's rule), once.
	resp, body = e.do(t, "POST", "/certificates/"+cr.Serial+"/revoke", "revoker", "application/json", []byte(`{"reason":"keyCompromise"}`))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"revocation_reason":"keyCompromise"`) {
		t.Fatalf("keyCompromise after superseded: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do(t, "POST", "/certificates/"+cr.Serial+"/revoke", "revoker", "application/json", []byte(`{"reason":"keyCompromise"}`)); resp.StatusCode != 409 {
		t.Fatalf("keyCompromise twice: %d %s", resp.StatusCode, body)
	}
	// A revoke-scoped key's keyCompromise is a claim about one
	// certificate: it blocks no key (else anyone allowed to revoke one
	// certificate could revoke every certificate of its key).
	var lr ListResponse
	resp, body = e.do(t, "GET", "/certificates?status=revoked", "reader", "", nil)
	json.Unmarshal(body, &lr)
	if resp.StatusCode != 200 || len(lr.Certificates) != 1 {
		t.Fatalf("list revoked after a revoke-scoped keyCompromise (want only that certificate): %d %s", resp.StatusCode, body)
	}
	// An admin's keyCompromise blocks the key, also of a certificate
	// revoked for keyCompromise already: the two other certificates issued
	// above for the same key are revoked with it, and the key gets no more.
	if resp, body := e.do(t, "POST", "/certificates/"+cr.Serial+"/revoke", "admin", "application/json", []byte(`{"reason":"keyCompromise"}`)); resp.StatusCode != 200 {
		t.Fatalf("admin keyCompromise of a certificate revoked for keyCompromise: %d %s", resp.StatusCode, body)
	}
	lr = ListResponse{}
	resp, body = e.do(t, "GET", "/certificates?status=revoked", "reader", "", nil)
	json.Unmarshal(body, &lr)
	if resp.StatusCode != 200 || len(lr.Certificates) != 3 || !slices.ContainsFunc(lr.Certificates, func(c CertificateResponse) bool { return c.Serial == cr.Serial }) ||
		slices.ContainsFunc(lr.Certificates, func(c CertificateResponse) bool { return c.RevocationReason != "keyCompromise" }) {
		t.Fatalf("list revoked (want the three certificates of the compromised key): %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "POST", "/certificates", "issuer", "application/pkcs10", der)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "blocked") {
		t.Fatalf("issuing for the compromised key: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/certificates?name=alt.corp.internal&limit=1", "reader", "", nil)
	lr = ListResponse{}
	json.Unmarshal(body, &lr)
	if resp.StatusCode != 200 || len(lr.Certificates) != 1 || lr.NextCursor != "" {
		t.Fatalf("list by name: %d %s", resp.StatusCode, body)
	}
	// under: every certificate with a DNS name at or below the suffix.
	resp, body = e.do(t, "GET", "/certificates?under=.CORP.internal", "reader", "", nil)
	lr = ListResponse{}
	json.Unmarshal(body, &lr)
	if resp.StatusCode != 200 || len(lr.Certificates) == 0 {
		t.Fatalf("list under corp.internal: %d %s", resp.StatusCode, body)
	}
	for _, c := range lr.Certificates {
		if !slices.ContainsFunc(c.Names, func(n string) bool { return strings.HasSuffix(n, ".corp.internal") }) {
			t.Fatalf("listed under corp.internal: %v", c.Names)
		}
	}
	for _, q := range []string{"under=web.corp.internal.example", "under=%2A.corp.internal", "under=a%25b"} {
		resp, body = e.do(t, "GET", "/certificates?"+q, "reader", "", nil)
		lr = ListResponse{}
		json.Unmarshal(body, &lr)
		if (q == "under=web.corp.internal.example" && (resp.StatusCode != 200 || len(lr.Certificates) != 0)) ||
			(q != "under=web.corp.internal.example" && resp.StatusCode != 400) {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	var pages, total int
	for cursor := ""; ; pages++ {
		_, body = e.do(t, "GET", "/certificates?limit=2&cursor="+cursor, "reader", "", nil)
		lr = ListResponse{}
		json.Unmarshal(body, &lr)
		total += len(lr.Certificates)
		if cursor = lr.NextCursor; cursor == "" {
			break
		}
	}
	if total != 3 || pages != 1 {
		t.Fatalf("paged listing: %d certificates over %d extra pages", total, pages)
	}

	// Issuers with chains.
	resp, body = e.do(t, "GET", "/issuers", "reader", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"intermediate"`) || !strings.Contains(string(body), `"default":true`) {
		t.Fatalf("issuers: %d %s", resp.StatusCode, body)
	}
}

func TestDryRun(t *testing.T) {
	e := newEnv(t, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	resp, body := e.do(t, "POST", "/certificates/dry-run", "issuer", "application/json",
		jsonBody(t, map[string]any{"csr": pemCSR(newCSR(t, k, "", "a.corp.internal"))}))
	var dr DryRunResponse
	json.Unmarshal(body, &dr)
	if resp.StatusCode != 200 || !dr.Allowed || dr.Certificate == "" || dr.Findings == nil {
		t.Fatalf("dry run: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "POST", "/certificates/dry-run", "issuer", "application/json",
		jsonBody(t, map[string]any{"csr": pemCSR(newCSR(t, k, "", "evil.org"))}))
	dr = DryRunResponse{}
	json.Unmarshal(body, &dr)
	if resp.StatusCode != 200 || dr.Allowed || !strings.Contains(dr.Reason, "evil.org") {
		t.Fatalf("dry run refused: %d %s", resp.StatusCode, body)
	}
	if n := e.count(t, core.StatusValid) + e.count(t, core.StatusReserved); n != 0 {
		t.Fatalf("dry runs stored %d rows", n)
	}
}

// TestBadInputIsA4xxProblem sends every kind of bad request and checks the
// answer is a 4xx problem document and no certificate was stored.
func TestBadInputIsA4xxProblem(t *testing.T) {
	e := newEnv(t, nil, nil)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	good := newCSR(t, p256, "", "a.corp.internal")
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-5] ^= 0x01
	issue := func(csr []byte, extra map[string]any) []byte {
		m := map[string]any{"csr": pemCSR(csr)}
		for k, v := range extra {
			m[k] = v
		}
		return jsonBody(t, m)
	}
	cases := []struct {
		name, method, path, key, ctype string
		body                           []byte
		status                         int
		typ                            string
	}{
		{"garbage bytes", "POST", "/certificates", "issuer", "application/pkcs10", []byte("\x00\x01garbage"), 400, "malformed"},
		{"garbage JSON", "POST", "/certificates", "issuer", "application/json", []byte("{not json"), 400, "malformed"},
		{"unknown JSON field", "POST", "/certificates", "issuer", "application/json", []byte(`{"csr":"x","evil":1}`), 400, "malformed"},
		{"garbage CSR in JSON", "POST", "/certificates", "issuer", "application/json", []byte(`{"csr":"bm90IGEgY3Ny"}`), 400, "malformed"},
		{"CSR with bad signature", "POST", "/certificates", "issuer", "application/json", issue(badSig, nil), 400, "badCSR"},
		{"weak RSA-1024 key", "POST", "/certificates", "issuer", "application/json", issue(newCSR(t, rsa1024, "", "a.corp.internal"), nil), 400, "badKey"},
		{"unsupported key for profile", "POST", "/certificates", "issuer", "application/json", issue(newCSR(t, ed, "", "a.corp.internal"), nil), 400, "badKey"},
		{"P-224 key", "POST", "/certificates", "issuer", "application/json", issue(newCSR(t, p224, "", "a.corp.internal"), nil), 400, "badKey"},
		{"name outside policy", "POST", "/certificates", "issuer", "application/json", issue(newCSR(t, p256, "", "evil.org"), nil), 422, "rejected"},
		{"over-long lifetime", "POST", "/certificates", "issuer", "application/json", issue(good, map[string]any{"lifetime": "10000h"}), 422, "rejected"},
		{"bad lifetime", "POST", "/certificates", "issuer", "application/json", issue(good, map[string]any{"lifetime": "soon"}), 400, "malformed"},
		{"unknown profile", "POST", "/certificates", "issuer", "application/json", issue(good, map[string]any{"profile": "nope"}), 422, "rejected"},
		{"profile not granted", "POST", "/certificates", "issuer", "application/json", issue(good, map[string]any{"profile": "subordinate-ca"}), 403, "forbidden"},
		{"body over the limit", "POST", "/certificates", "issuer", "application/json", bytes.Repeat([]byte("a"), 70<<10), 413, "tooLarge"},
		{"unsupported media type", "POST", "/certificates", "issuer", "text/plain", good, 415, "unsupportedMediaType"},
		{"JSON and more after a closing brace", "POST", "/certificates", "issuer", "application/json", append(issue(good, nil), "}junk"...), 400, "malformed"},
		{"JSON and more after a closing bracket", "POST", "/certificates", "issuer", "application/json", append(issue(good, nil), "]"...), 400, "malformed"},
		{"revocation as text/plain", "POST", "/certificates/abcdef/revoke", "revoker", "text/plain", []byte(`{"reason":"superseded"}`), 415, "unsupportedMediaType"},
		{"revocation as a form", "POST", "/certificates/abcdef/revoke", "revoker", "application/x-www-form-urlencoded", []byte(`{"reason":"superseded"}`), 415, "unsupportedMediaType"},
		{"revocation and more after a closing brace", "POST", "/certificates/abcdef/revoke", "revoker", "application/json", []byte(`{"reason":"superseded"}}`), 400, "malformed"},
		{"query parameters with a JSON body", "POST", "/certificates?profile=tls-client", "issuer", "application/json", issue(good, nil), 400, "malformed"},
		{"missing API key", "POST", "/certificates", "", "application/json", issue(good, nil), 401, "unauthenticated"},
		{"wrong API key", "POST", "/certificates", "srk_not-a-key", "application/json", issue(good, nil), 401, "unauthenticated"},
		{"key without the scope", "POST", "/certificates", "reader", "application/json", issue(good, nil), 403, "forbidden"},
		{"revoked API key", "POST", "/certificates", "revoked", "application/json", issue(good, nil), 401, "unauthenticated"},
		{"bad serial", "GET", "/certificates/xyz", "reader", "", nil, 400, "malformed"},
		{"unknown serial", "GET", "/certificates/abcdef", "reader", "", nil, 404, "notFound"},
		{"bad list status", "GET", "/certificates?status=reserved", "reader", "", nil, 400, "malformed"},
		{"bad list time", "GET", "/certificates?expiring_before=tomorrow", "reader", "", nil, 400, "malformed"},
		{"bad revoke reason", "POST", "/certificates/abcdef/revoke", "revoker", "application/json", []byte(`{"reason":"bored"}`), 400, "malformed"},
		{"certificateHold", "POST", "/certificates/abcdef/revoke", "revoker", "application/json", []byte(`{"reason":"certificateHold"}`), 422, "rejected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.method, tc.path, tc.key, tc.ctype, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var p Problem
			if err := json.Unmarshal(body, &p); err != nil || p.Status != tc.status || p.Type != problemBase+tc.typ || p.Detail == "" {
				t.Fatalf("problem %s (%v), want type %s", body, err, tc.typ)
			}
			if tc.name == "P-224 key" && !strings.Contains(p.Detail, "curve P-224") {
				t.Fatalf("a P-224 key's refusal does not name its curve: %s", p.Detail)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if n := e.count(t, core.StatusValid) + e.count(t, core.StatusReserved); n != 0 {
		rows, _ := e.db.Query(context.Background(), `SELECT status, names, requester, profile FROM certificates`)
		for rows.Next() {
			var a, b, c, d string
			rows.Scan(&a, &b, &c, &d)
			t.Logf("row: %s %q %s %s", a, b, c, d)
		}
		t.Fatalf("%d certificate rows after bad requests", n)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, nil, nil)
	resp, body := e.do(t, "GET", "/openapi.json", "", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("openapi.json: %d", resp.StatusCode)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("not an OpenAPI 3 document: %v", err)
	}
	var documented, registered []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" /api/v1"+p)
		}
	}
	for _, r := range e.engine.Routes() {
		path := r.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				path = strings.Replace(path, seg, "{"+seg[1:]+"}", 1)
			}
		}
		registered = append(registered, r.Method+" "+path)
	}
	sort.Strings(documented)
	sort.Strings(registered)
	if strings.Join(documented, "\n") != strings.Join(registered, "\n") {
		t.Fatalf("OpenAPI paths differ from routes:\ndocumented:\n%s\nregistered:\n%s", strings.Join(documented, "\n"), strings.Join(registered, "\n"))
	}
}

// opensslVerify checks the issued chain with the real openssl, if present.
func opensslVerify(t *testing.T, e *env, chainPEM []byte) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed; skipping openssl verify")
		return
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	blk, _ := pem.Decode(chainPEM)
	root := write("root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.root.Certificate().Raw}))
	inter := write("inter.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.inter.Certificate().Raw}))
	leaf := write("leaf.pem", pem.EncodeToMemory(blk))
	out, err := exec.Command(bin, "verify", "-CAfile", root, "-untrusted", inter, "-purpose", "sslserver", leaf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("openssl verify: %v: %s", err, out)
	}
}

var _ = http.StatusOK
