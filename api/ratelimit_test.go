package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Content-Type") != "application/problem+json" || retry < 1 || retry > 3600 {
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
