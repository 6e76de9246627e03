package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
)

// These tests check revocation against a running `ca serve` (issue #5):
// openssl ocsp (POST and GET) and GnuTLS ocsptool before and after a REST
// revocation, the delta and full CRLs with openssl verify -crl_check, and
// bad OCSP input.

// httpGet fetches a plain-HTTP URL of the CA.
func httpGet(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// ocspGet fetches an RFC 5019 GET for the DER request and checks the
// response is a successful, signed answer about leaf from its issuer.
func ocspGet(t *testing.T, c *CA, reqDER []byte, escape bool, leaf, issuer *x509.Certificate) *ocsp.Response {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString(reqDER)
	if escape {
		b64 = url.QueryEscape(b64) // '+', '/' and '=' percent-encoded
	}
	resp, body := httpGet(t, c.HTTPURL+"/ocsp/"+b64)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("GET /ocsp: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("GET /ocsp: Cache-Control %q, want max-age", resp.Header.Get("Cache-Control"))
	}
	r, err := ocsp.ParseResponseForCert(body, leaf, issuer) // checks the signature chains to issuer
	if err != nil {
		t.Fatalf("GET /ocsp response: %v", err)
	}
	return r
}

// writeCertPEM writes one certificate as PEM under dir.
func writeCertPEM(t *testing.T, dir, name string, cert *x509.Certificate) string {
	t.Helper()
	p := filepath.Join(dir, name)
	writeFile(t, p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	return p
}

// fetchCRL fetches and parses a served CRL and checks its signature
// against issuer.
func fetchCRL(t *testing.T, c *CA, name string, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	resp, body := httpGet(t, c.HTTPURL+"/crl/"+name)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /crl/%s: %s %s", name, resp.Status, resp.Header.Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(body)
	if err != nil {
		t.Fatalf("parsing %s: %v", name, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("%s signature: %v", name, err)
	}
	return crl
}

func crlEntry(crl *x509.RevocationList, cert *x509.Certificate) *x509.RevocationListEntry {
	for i, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return &crl.RevokedCertificateEntries[i]
		}
	}
	return nil
}

// ocspTool runs a tool and returns its output and whether it succeeded.
func ocspTool(t *testing.T, name string, args ...string) (string, bool) {
	t.Helper()
	out, err := ocsptest.Tool(t, name, args...)
	return out, err == nil
}

func wantAll(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// TestRevocation issues two certificates, checks both are good with
// openssl (POST, GET) and ocsptool, revokes one through REST and checks
// OCSP answers revoked/keyCompromise at once (a cached GET included), that
// the delta and full CRLs list it, and openssl verify -crl_check.
func TestRevocation(t *testing.T) {
	requireTool(t, "openssl")
	requireTool(t, "ocsptool")
	c := StartCA(t, Options{})
	dir := t.TempDir()
	good := issueChain(t, c, goCSR(t, "keep.localhost"))[0]
	chain := issueChain(t, c, goCSR(t, "revoke.localhost"))
	victim, inter := chain[0], chain[1]
	root := parsePEMCerts(t, readFile(t, c.Root))[0]
	goodPEM, victimPEM := writeCertPEM(t, dir, "good.pem", good), writeCertPEM(t, dir, "victim.pem", victim)
	ocspURL := c.HTTPURL + "/ocsp"
	if len(victim.OCSPServer) != 1 || victim.OCSPServer[0] != ocspURL {
		t.Fatalf("certificate names OCSP %v, want %s", victim.OCSPServer, ocspURL)
	}
	reqDER := func(leaf string) []byte {
		p := filepath.Join(dir, "req.der")
		run(t, nil, "openssl", "ocsp", "-issuer", c.Intermediate, "-cert", leaf, "-no_nonce", "-reqout", p)
		return readFile(t, p)
	}
	victimReq := reqDER(victimPEM)

	// check asks every client about leaf and wants status ("good" or
	// "revoked"); revoked also wants keyCompromise.
	check := func(t *testing.T, leafPEM string, leaf *x509.Certificate, req []byte, status string) {
		t.Helper()
		want := []string{"Response verify OK", leafPEM + ": " + status}
		if status == "revoked" {
			want = append(want, "Reason: keyCompromise")
		}
		out, ok := ocspTool(t, "openssl", "ocsp", "-issuer", c.Intermediate, "-cert", leafPEM, "-url", ocspURL, "-CAfile", c.Root, "-nonce")
		if !ok || strings.Contains(out, "nonce") {
			t.Fatalf("openssl ocsp POST (ok=%v): %s", ok, out)
		}
		wantAll(t, "openssl ocsp POST", out, want...)
		for _, escape := range []bool{false, true} {
			r := ocspGet(t, c, req, escape, leaf, inter)
			respPath := filepath.Join(dir, "resp.der")
			writeFile(t, respPath, r.Raw)
			out, ok = ocspTool(t, "openssl", "ocsp", "-respin", respPath, "-issuer", c.Intermediate, "-cert", leafPEM, "-CAfile", c.Root)
			if !ok {
				t.Fatalf("openssl ocsp -respin: %s", out)
			}
			wantAll(t, fmt.Sprintf("openssl ocsp GET (escaped %v)", escape), out, want...)
			if wantStatus := map[string]int{"good": ocsp.Good, "revoked": ocsp.Revoked}[status]; r.Status != wantStatus ||
				(status == "revoked" && r.RevocationReason != ocsp.KeyCompromise) {
				t.Fatalf("GET: status %d reason %d, want %s", r.Status, r.RevocationReason, status)
			}
		}
		gnutls := map[string]string{"good": "Certificate Status: good", "revoked": "Certificate Status: revoked"}[status]
		out, ok = ocspTool(t, "ocsptool", "--ask="+ocspURL, "--load-issuer="+c.Intermediate, "--load-cert="+leafPEM, "--load-signer="+c.Intermediate)
		if !ok {
			t.Fatalf("ocsptool: %s", out)
		}
		wantAll(t, "ocsptool", out, gnutls, "Verifying OCSP Response: Success")
		// The verification is real: the root did not sign the response.
		if out, ok := ocspTool(t, "ocsptool", "--ask="+ocspURL, "--load-issuer="+c.Intermediate, "--load-cert="+leafPEM, "--load-signer="+c.Root); ok || strings.Contains(out, "Response: Success") {
			t.Fatalf("ocsptool accepted the response with the root as signer: %s", out)
		}
	}
	t.Run("good before", func(t *testing.T) {
		check(t, victimPEM, victim, victimReq, "good")
		check(t, goodPEM, good, reqDER(goodPEM), "good")
	})

	serial := core.SerialFromBig(victim.SerialNumber)
	// An invalidity date in the future is refused and revokes nothing.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	resp, body := apiCall(t, c, "POST", "/certificates/"+string(serial)+"/revoke", c.AdminKey(), "application/json", "",
		strings.NewReader(`{"reason":"keyCompromise","invalidity_date":"`+future+`"}`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("revoke with a future invalidity date: %s\n%s", resp.Status, body)
	}
	// The key was known compromised an hour ago: RFC 5280 §5.3.2.
	compromised := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	resp, body = apiCall(t, c, "POST", "/certificates/"+string(serial)+"/revoke", c.AdminKey(), "application/json", "",
		strings.NewReader(`{"reason":"keyCompromise","invalidity_date":"`+compromised.Format(time.RFC3339)+`"}`))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"revocation_reason":"keyCompromise"`)) {
		t.Fatalf("revoke: %s\n%s", resp.Status, body)
	}
	// Immediately, with no waiting: the GET answer cached above is gone.
	t.Run("revoked at once", func(t *testing.T) { check(t, victimPEM, victim, victimReq, "revoked") })
	t.Run("other still good", func(t *testing.T) { check(t, goodPEM, good, reqDER(goodPEM), "good") })

	t.Run("intermediate via the root's responder", func(t *testing.T) {
		out, ok := ocspTool(t, "openssl", "ocsp", "-issuer", c.Root, "-cert", c.Intermediate, "-url", ocspURL, "-CAfile", c.Root, "-nonce")
		if !ok {
			t.Fatalf("openssl ocsp: %s", out)
		}
		wantAll(t, "openssl ocsp (intermediate)", out, "Response verify OK", c.Intermediate+": good")
	})
	t.Run("CRLs", func(t *testing.T) {
		// The builder rebuilds full and delta CRLs a debounce delay (2 s by
		// default) after a revocation; poll until both list the serial.
		var full, delta *x509.RevocationList
		deadline := time.Now().Add(10 * time.Second)
		for {
			delta = fetchCRL(t, c, "intermediate-delta.crl", inter)
			full = fetchCRL(t, c, "intermediate.crl", inter)
			if crlEntry(delta, victim) != nil && crlEntry(full, victim) != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("10 s after revocation: in delta CRL %d: %v, in full CRL %d: %v", delta.Number, crlEntry(delta, victim) != nil,
					full.Number, crlEntry(full, victim) != nil)
			}
			time.Sleep(200 * time.Millisecond)
		}
		for name, crl := range map[string]*x509.RevocationList{"delta": delta, "full": full} {
			e := crlEntry(crl, victim)
			if e.ReasonCode != int(ocsp.KeyCompromise) || crlEntry(crl, good) != nil {
				t.Fatalf("%s CRL: reason %d, good listed %v", name, e.ReasonCode, crlEntry(crl, good) != nil)
			}
			if got := invalidityDate(t, e); !got.Equal(compromised) {
				t.Fatalf("%s CRL: invalidity date %v, want %v", name, got, compromised)
			}
		}
		if !hasExt(delta, "2.5.29.27") || hasExt(full, "2.5.29.27") || !hasExt(full, "2.5.29.46") {
			t.Fatalf("delta indicator on delta %v, on full %v; freshestCRL on full %v", hasExt(delta, "2.5.29.27"), hasExt(full, "2.5.29.27"), hasExt(full, "2.5.29.46"))
		}
		rootCRL := fetchCRL(t, c, "root.crl", root)
		crls := filepath.Join(dir, "crls.pem")
		writeFile(t, crls, append(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: full.Raw}),
			pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: rootCRL.Raw})...))
		verify := func(mode, crlFile, cert string) (string, bool) {
			return ocspTool(t, "openssl", "verify", mode, "-CAfile", c.Root, "-untrusted", c.Intermediate, "-CRLfile", crlFile, cert)
		}
		for _, mode := range []string{"-crl_check", "-crl_check_all"} {
			if out, ok := verify(mode, crls, goodPEM); !ok || !strings.Contains(out, goodPEM+": OK") {
				t.Fatalf("openssl verify %s rejected the good certificate: %s", mode, out)
			}
		}
		for _, mode := range []string{"-crl_check", "-crl_check_all"} {
			if out, ok := verify(mode, crls, victimPEM); ok || !strings.Contains(out, "certificate revoked") {
				t.Fatalf("openssl verify %s accepted the revoked certificate: %s", mode, out)
			}
		}
		// The intermediate checked against the root's CRL alone. (-crl_check_all
		// above also checks the root itself against root.crl: that is why the
		// root's CRLs carry no issuing distribution point.)
		rootCRLFile := filepath.Join(dir, "root-crl.pem")
		writeFile(t, rootCRLFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: rootCRL.Raw}))
		if out, ok := verify("-crl_check", rootCRLFile, c.Intermediate); !ok || !strings.Contains(out, ": OK") {
			t.Fatalf("openssl verify -crl_check of the intermediate with the root CRL: %s", out)
		}
	})
}

// invalidityDate reads the invalidityDate entry extension (2.5.29.24).
func invalidityDate(t *testing.T, e *x509.RevocationListEntry) time.Time {
	t.Helper()
	for _, ext := range e.Extensions {
		if ext.Id.String() == "2.5.29.24" {
			var when time.Time
			if _, err := asn1.UnmarshalWithParams(ext.Value, &when, "generalized"); err != nil {
				t.Fatalf("invalidityDate extension: %v", err)
			}
			return when
		}
	}
	return time.Time{}
}

func hasExt(crl *x509.RevocationList, oid string) bool {
	for _, e := range crl.Extensions {
		if e.Id.String() == oid {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ocspPost POSTs body to the responder.
func ocspPost(t *testing.T, c *CA, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(c.HTTPURL+"/ocsp", "application/ocsp-request", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// TestOCSPBadInput sends malformed and foreign requests to the running
// responder: each gets HTTP 200 with the right OCSP error status.
func TestOCSPBadInput(t *testing.T) {
	c := StartCA(t, Options{})
	chain := issueChain(t, c, goCSR(t, "ocsp.localhost"))
	valid, err := ocsp.CreateRequest(chain[0], chain[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	other := ocsptest.NewCA(t, "Somebody else's CA", nil)
	foreign, err := ocsp.CreateRequest(other.Leaf(t, core.Serial("0a0b0c0d0e0f1011"), "", ""), other.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	cases := []struct {
		name, method, path string
		body               []byte
		want               ocsp.ResponseStatus
	}{
		{"garbage POST", "POST", "", []byte("GET me a certificate status, please"), ocsp.Malformed},
		{"empty POST", "POST", "", nil, ocsp.Malformed},
		{"truncated DER POST", "POST", "", valid[:len(valid)-7], ocsp.Malformed},
		{"DER with trailing data POST", "POST", "", append(bytes.Clone(valid), 0x00, 0x01), ocsp.Malformed},
		{"unknown issuer POST", "POST", "", foreign, ocsp.Unauthorized},
		{"GET not base64", "GET", "/!!not*base64!!", nil, ocsp.Malformed},
		{"GET empty", "GET", "/", nil, ocsp.Malformed},
		{"GET base64 of garbage", "GET", "/" + b64([]byte("garbage bytes")), nil, ocsp.Malformed},
		{"GET truncated DER", "GET", "/" + url.QueryEscape(b64(valid[:len(valid)-7])), nil, ocsp.Malformed},
		{"GET unknown issuer", "GET", "/" + url.QueryEscape(b64(foreign)), nil, ocsp.Unauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var body []byte
			if tc.method == "GET" {
				resp, body = httpGet(t, c.HTTPURL+"/ocsp"+tc.path)
			} else {
				resp, body = ocspPost(t, c, tc.body)
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
				t.Fatalf("%s, Content-Type %q; want 200 application/ocsp-response", resp.Status, resp.Header.Get("Content-Type"))
			}
			_, err := ocsp.ParseResponse(body, nil)
			var re ocsp.ResponseError
			if !errors.As(err, &re) || re.Status != tc.want {
				t.Fatalf("response: %v, want OCSP status %d", err, tc.want)
			}
		})
	}
	// The responder still answers a valid request after all that.
	_, body := ocspPost(t, c, valid)
	if resp, err := ocsp.ParseResponseForCert(body, chain[0], chain[1]); err != nil || resp.Status != ocsp.Good {
		t.Fatalf("valid request after bad ones: %v", err)
	}
}

// TestCRLScopeFollowsIssuanceURLs: with issuance.urls.crl naming another
// distribution point (a mirror that serves this CA's CRLs), the CRL's
// issuing distribution point is that one, so openssl verify -crl_check
// takes the CRL as covering the certificates (it said "different CRL
// scope" when the CRL named this node's URL; found by a review).
func TestCRLScopeFollowsIssuanceURLs(t *testing.T) {
	requireTool(t, "openssl")
	const dp = "http://pki.example.test/crl/intermediate.crl"
	c := StartCA(t, Options{Configure: func(t testing.TB, dir string) {
		f, err := os.OpenFile(filepath.Join(dir, "strongroom.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString("issuance:\n  urls:\n    crl: [\"http://pki.example.test/crl/{issuer}.crl\"]\n")
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}})
	dir := t.TempDir()
	chain := issueChain(t, c, goCSR(t, "scope.localhost"))
	if got := chain[0].CRLDistributionPoints; len(got) != 1 || got[0] != dp {
		t.Fatalf("certificate names CRL distribution points %v, want %s", got, dp)
	}
	full := fetchCRL(t, c, "intermediate.crl", chain[1])
	crlFile, leaf := filepath.Join(dir, "crl.pem"), writeCertPEM(t, dir, "leaf.pem", chain[0])
	writeFile(t, crlFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: full.Raw}))
	out, ok := ocspTool(t, "openssl", "verify", "-crl_check", "-CAfile", c.Root, "-untrusted", c.Intermediate, "-CRLfile", crlFile, leaf)
	if !ok || !strings.Contains(out, leaf+": OK") {
		t.Fatalf("openssl verify -crl_check with the CRL: %s", out)
	}
}
