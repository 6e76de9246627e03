package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/ra"
)

// TestIdempotencyKey: a retried issuance with the same Idempotency-Key
// returns the first certificate (whatever the encoding of the request), a
// different request under the key is refused, keys are per principal, a
// failed attempt frees its key, an abandoned claim is taken over, and
// concurrent retries make one certificate.
func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := newCSR(t, k, "", "idem.corp.internal")
	body := jsonBody(t, map[string]any{"csr": pemCSR(der)})
	serialOf := func(b []byte) string {
		var cr CertificateResponse
		if err := json.Unmarshal(b, &cr); err != nil || cr.Serial == "" {
			t.Fatalf("not a certificate: %s", b)
		}
		return cr.Serial
	}
	before := e.count(t, "valid")
	r1, b1 := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", `"deploy-42"`)
	if r1.StatusCode != 201 || r1.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s", r1.StatusCode, b1)
	}
	first := serialOf(b1)
	// The same request again, as JSON and as a DER application/pkcs10
	// body, with the key bare or quoted, naming the default profile or
	// not (a review saw the profile as written make it another request):
	// the first certificate.
	named := jsonBody(t, map[string]any{"csr": pemCSR(der), "profile": "tls-server"})
	for _, v := range []struct {
		ctype string
		body  []byte
		key   string
	}{{"application/json", body, "deploy-42"}, {"application/pkcs10", der, `"deploy-42"`}, {"application/json", named, "deploy-42"}} {
		r, b := e.do(t, "POST", "/certificates", "issuer", v.ctype, v.body, "Idempotency-Key", v.key)
		if r.StatusCode != 201 || r.Header.Get("Idempotent-Replayed") != "true" || serialOf(b) != first {
			t.Fatalf("retry as %s: %d %s %s", v.ctype, r.StatusCode, r.Header.Get("Idempotent-Replayed"), b)
		}
	}
	// The PEM chain form of the replay is the chain the first answer had.
	rp, bp := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "deploy-42",
		"Accept", "application/pem-certificate-chain")
	var cr CertificateResponse
	json.Unmarshal(b1, &cr)
	if rp.StatusCode != 201 || string(bp) != cr.Chain {
		t.Fatalf("PEM replay: %d\n%s\nwant\n%s", rp.StatusCode, bp, cr.Chain)
	}
	if got := e.count(t, "valid") - before; got != 1 {
		t.Fatalf("%d certificates issued for one key", got)
	}

	// Once that certificate is revoked, a retry under the key is not
	// handed it again.
	if r, b := e.do(t, "POST", "/certificates/"+first+"/revoke", "admin", "application/json", []byte(`{"reason":"superseded"}`)); r.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", r.StatusCode, b)
	}
	if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "deploy-42"); r.StatusCode != 409 ||
		!strings.Contains(string(b), "has since been revoked") {
		t.Fatalf("retry after revocation: %d %s", r.StatusCode, b)
	}

	// Another request under the key: 422, nothing issued.
	other := jsonBody(t, map[string]any{"csr": pemCSR(der), "lifetime": "24h"})
	if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", other, "Idempotency-Key", "deploy-42"); r.StatusCode != 422 ||
		!strings.Contains(string(b), "different request") {
		t.Fatalf("other request under the key: %d %s", r.StatusCode, b)
	}
	// Another principal's key of the same name is its own.
	if r, b := e.do(t, "POST", "/certificates", "admin", "application/json", body, "Idempotency-Key", "deploy-42"); r.StatusCode != 201 ||
		serialOf(b) == first || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another principal: %d %s", r.StatusCode, b)
	}
	// A refused attempt frees its key.
	bad := jsonBody(t, map[string]any{"csr": pemCSR(newCSR(t, k, "", "evil.org"))})
	if r, _ := e.do(t, "POST", "/certificates", "issuer", "application/json", bad, "Idempotency-Key", "retry-me"); r.StatusCode != 422 {
		t.Fatalf("refused attempt: %d", r.StatusCode)
	}
	if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "retry-me"); r.StatusCode != 201 {
		t.Fatalf("after a refused attempt: %d %s", r.StatusCode, b)
	}
	// A claim a crashed node left unfinished is taken over once abandoned;
	// a recent one answers 409 with Retry-After.
	keyID := principalName(t, e, "issuer")
	if _, err := e.db.ClaimIdempotencyKey(ctx, keyID, "crashed", []byte("x"), time.Now().Add(-time.Hour), time.Time{}, time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	fp := fingerprint(ra.Request{CSR: csr})
	if _, err := e.db.ClaimIdempotencyKey(ctx, keyID, "running", fp, time.Now(), time.Time{}, time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "crashed"); r.StatusCode != 201 {
		t.Fatalf("abandoned claim: %d %s", r.StatusCode, b)
	}
	if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "running"); r.StatusCode != 409 ||
		r.Header.Get("Retry-After") == "" {
		t.Fatalf("claim in progress: %d %s", r.StatusCode, b)
	}
	// Bad keys are 400s.
	for _, hdr := range [][]string{{"Idempotency-Key", ""}, {"Idempotency-Key", strings.Repeat("a", 256)}, {"Idempotency-Key", "tab\there"}} {
		if r, _ := e.do(t, "POST", "/certificates", "issuer", "application/json", body, hdr...); r.StatusCode != 400 {
			t.Fatalf("key %q: %d", hdr[1], r.StatusCode)
		}
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/certificates", bytesReader(body))
	req.Header.Set("Authorization", "Bearer "+e.keys["issuer"])
	req.Header.Add("Idempotency-Key", "a")
	req.Header.Add("Idempotency-Key", "b")
	if resp, err := e.client.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("two keys: %v %v", resp, err)
	}

	// Eight concurrent sends of one keyed request: one certificate; every
	// 201 carries it, the others are 409s.
	before = e.count(t, "valid")
	var wg sync.WaitGroup
	var mu sync.Mutex
	serials := map[string]int{}
	codes := map[int]int{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "burst")
			mu.Lock()
			defer mu.Unlock()
			codes[r.StatusCode]++
			if r.StatusCode == 201 {
				serials[serialOf(b)]++
			}
		}()
	}
	wg.Wait()
	if got := e.count(t, "valid") - before; got != 1 || len(serials) != 1 || codes[201]+codes[409] != 8 {
		t.Fatalf("burst: %d issued, serials %v, codes %v", got, serials, codes)
	}
}

// principalName is the principal the API gives the named test key.
func principalName(t *testing.T, e *env, name string) string {
	t.Helper()
	k, err := e.db.APIKeyByHash(context.Background(), hashKey(e.keys[name]))
	if err != nil {
		t.Fatal(err)
	}
	return "apikey:" + k.ID
}

// hangUpAuthority is the real Authority, but each Issue waits, once the
// certificate exists, until the client has hung up.
type hangUpAuthority struct {
	Authority
	issued chan struct{}
}

func (h hangUpAuthority) Issue(ctx context.Context, req ra.Request) (*ca.Issued, error) {
	iss, err := h.Authority.Issue(ctx, req)
	h.issued <- struct{}{}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	return iss, err
}

// TestIdempotencyClientHangsUp: a client that hangs up while its
// certificate is issued (the timed-out deploy job Idempotency-Key is for)
// gets that certificate on its retry, not 409 and not a second one.
func TestIdempotencyClientHangsUp(t *testing.T) {
	issued := make(chan struct{}, 1)
	e := newEnv(t, nil, func(o *Options) { o.Authority = hangUpAuthority{Authority: o.Authority, issued: issued} })
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := jsonBody(t, map[string]any{"csr": pemCSR(newCSR(t, k, "", "hangup.corp.internal"))})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/api/v1/certificates", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+e.keys["issuer"])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "ship-7")
	done := make(chan error, 1)
	go func() {
		resp, err := e.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-issued
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the request was answered before the client hung up")
	}
	before := e.count(t, "valid")
	var r *http.Response
	var b []byte
	for range 50 { // the server notices the hang-up, then records the key
		r, b = e.do(t, "POST", "/certificates", "issuer", "application/json", body, "Idempotency-Key", "ship-7")
		if r.StatusCode != http.StatusConflict {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.StatusCode != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the retry: %d %q %s; want the first certificate replayed", r.StatusCode, r.Header.Get("Idempotent-Replayed"), b)
	}
	if after := e.count(t, "valid"); after != before {
		t.Fatalf("the retry issued %d more certificates", after-before)
	}
}
