package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzIssueBody throws arbitrary bodies at POST /certificates/dry-run and
// /certificates (JSON and application/pkcs10): the answer is never a 5xx,
// and every error is a problem document.
func FuzzIssueBody(f *testing.F) {
	e := newEnv(f, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := newCSR(f, k, "", "a.corp.internal")
	f.Add([]byte(`{"csr":`+string(jsonBody(f, pemCSR(der)))+`}`), false)
	f.Add([]byte(`{"csr":"","lifetime":-1}`), false)
	f.Add([]byte(`{"csr":"MAA=","lifetime":"99999999d","extra_sans":[""]}`), false)
	f.Add(der, true)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----"), true)
	f.Fuzz(func(t *testing.T, body []byte, pkcs10 bool) {
		for _, path := range []string{"/api/v1/certificates/dry-run", "/api/v1/certificates"} {
			req := httptest.NewRequest("POST", path, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+e.keys["issuer"])
			req.Header.Set("Content-Type", "application/json")
			if pkcs10 {
				req.Header.Set("Content-Type", "application/pkcs10")
			}
			serveClientBytes(t, e.engine, req)
		}
	})
}

// serveClientBytes serves req, which carries a client's arbitrary bytes:
// never a 5xx, and every error a problem document.
func serveClientBytes(t *testing.T, h http.Handler, req *http.Request) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s: %d for a client's bytes: %s", req.URL.Path, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var p Problem
		if rec.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != rec.Code {
			t.Fatalf("%s: %d without a problem document: %s", req.URL.Path, rec.Code, rec.Body)
		}
	}
}
