package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// TestIssueRateLimit: with api.issue_per_hour, one principal's fourth
// issuance in the hour is a 429 problem with Retry-After and no
// certificate; another key is counted apart, and an Idempotency-Key
// replay does not count.
func TestIssueRateLimit(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.IssuePerHour, o.RateLimiter = 3, storage.NewMemoryLimiter(nil) })
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := jsonBody(t, map[string]string{"csr": pemCSR(newCSR(t, k, "", "rl.corp.internal"))})
	// Refusals issue nothing and use none of the cap.
	outside := jsonBody(t, map[string]string{"csr": pemCSR(newCSR(t, k, "", "rl.elsewhere.org"))})
	for range 5 {
		if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", outside); r.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("a name outside the policy: %d %s", r.StatusCode, b)
		}
	}
	for i := range 3 {
		hdr := []string{}
		if i == 0 {
			hdr = []string{"Idempotency-Key", "first"}
		}
		if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", body, hdr...); r.StatusCode != http.StatusCreated {
			t.Fatalf("issue %d: %d %s", i, r.StatusCode, b)
		}
	}
	if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "first"); r.StatusCode != http.StatusCreated ||
		r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a replay at the cap: %d %s", r.StatusCode, b)
	}
	before := e.count(t, core.StatusValid)
	r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", body)
	retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Content-Type") != "application/problem+json" || retry < 1 || retry > 3660 { // an hour and at most a one-minute bucket
		t.Fatalf("over the cap: %d %q %s", r.StatusCode, r.Header.Get("Retry-After"), b)
	}
	if got := e.count(t, core.StatusValid); got != before {
		t.Fatalf("a refused issuance stored %d certificates", got-before)
	}
	// A new Idempotency-Key is a new issuance: counted.
	if r, _ := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "second"); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a new key over the cap: %d", r.StatusCode)
	}
	if r, b := e.do(t, "POST", "/certificates", "admin", "application/json", body); r.StatusCode != http.StatusCreated {
		t.Fatalf("another principal: %d %s", r.StatusCode, b)
	}
}

// A renewal counts against the hourly cap of whoever asked for the first
// certificate of its line: a certificate renewing its renewals does not
// escape the cap.
func TestRenewalCountsAgainstOrigin(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.IssuePerHour, o.RateLimiter = 2, storage.NewMemoryLimiter(nil) })
	srv, roots := e.mtlsServer(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", jsonBody(t, map[string]string{"csr": pemCSR(newCSR(t, k, "", "line.corp.internal"))}))
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("issue: %d %s", r.StatusCode, b)
	}
	renew := func(certPEM string) (int, string) {
		t.Helper()
		blk, _ := pem.Decode([]byte(certPEM))
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.clientWith(roots, cert, k).Post(srv.URL+"/api/v1/certificates/renew", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var cr CertificateResponse
		body, _ := io.ReadAll(resp.Body)
		json.Unmarshal(body, &cr)
		return resp.StatusCode, cr.Certificate
	}
	var first CertificateResponse
	json.Unmarshal(b, &first)
	st, second := renew(first.Certificate) // the key's second certificate this hour
	if st != http.StatusCreated {
		t.Fatalf("renewal within the cap: %d", st)
	}
	if st, _ := renew(second); st != http.StatusTooManyRequests {
		t.Fatalf("renewing the renewal over the origin's cap: %d, want 429", st)
	}
}
