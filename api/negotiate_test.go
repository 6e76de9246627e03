package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
)

func TestNegotiate(t *testing.T) {
	offers := []string{"application/json", "application/pem-certificate-chain", "application/pkix-cert"}
	for _, tc := range []struct{ accept, want string }{
		{"", "application/json"},
		{"*/*", "application/json"},
		{"application/pkix-cert", "application/pkix-cert"},
		{"application/json, application/pkix-cert;q=0", "application/json"},
		{"application/pkix-cert;q=0, */*", "application/json"},
		{"*/*;q=0.1, application/pem-certificate-chain", "application/pem-certificate-chain"},
		{"application/*;q=0.5, application/pkix-cert;q=0.9", "application/pkix-cert"},
		{"text/html, application/xhtml+xml, */*;q=0.8", "application/json"}, // a browser
		{"Application/PKIX-Cert", "application/pkix-cert"},                  // types are case-insensitive
		{"application/json;q=0, application/pkix-cert;q=0.5, application/pem-certificate-chain;q=0.5", "application/pem-certificate-chain"},
		{"image/png", ""},
		{"application/json;q=0", ""},
		{"*/*;q=0", ""},
		{"garbage;;;", ""},
		{"application/json;q=2", ""}, // an invalid range accepts nothing
	} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("GET", "/", nil)
		if tc.accept != "" {
			c.Request.Header.Set("Accept", tc.accept)
		}
		got, err := negotiate(c, offers...)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("Accept %q: %q, %v; want %q", tc.accept, got, err, tc.want)
		}
	}
}

// The API honours Accept q-values, answers 406 when nothing offered is
// acceptable (before issuing anything), and 415 for a Content-Type that
// does not parse.
func TestContentNegotiationAPI(t *testing.T) {
	e := newEnv(t, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := newCSR(t, k, "neg.corp.internal", "neg.corp.internal")
	resp, body := e.do(t, "POST", "/certificates", "issuer", "application/pkcs10", der, "Accept", "application/pem-certificate-chain;q=0, application/json")
	var cr CertificateResponse
	if resp.StatusCode != 201 || json.Unmarshal(body, &cr) != nil || cr.Serial == "" {
		t.Fatalf("issue with PEM refused by q=0: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/certificates/"+cr.Serial, "reader", "", nil, "Accept", "application/json, application/pkix-cert;q=0")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("get with DER refused by q=0: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, body = e.do(t, "GET", "/certificates/"+cr.Serial, "reader", "", nil, "Accept", "image/png")
	if resp.StatusCode != 406 || !strings.Contains(string(body), "notAcceptable") || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("get with an unacceptable Accept: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/certificates/"+cr.Serial+"?format=der", "reader", "", nil, "Accept", "image/png")
	if resp.StatusCode != 200 {
		t.Fatalf("?format overrides Accept: %d %s", resp.StatusCode, body)
	}
	before := e.count(t, core.StatusValid)
	resp, body = e.do(t, "POST", "/certificates", "issuer", "application/pkcs10", der, "Accept", "text/html")
	if resp.StatusCode != 406 || e.count(t, core.StatusValid) != before {
		t.Fatalf("issue with an unacceptable Accept: %d %s (certificates %d → %d)", resp.StatusCode, body, before, e.count(t, core.StatusValid))
	}
	resp, body = e.do(t, "POST", "/certificates", "issuer", ";;;", []byte(`{"csr":"`+pemCSR(der)+`"}`))
	if resp.StatusCode != 415 {
		t.Fatalf("issue with an unparsable Content-Type: %d %s", resp.StatusCode, body)
	}
}
