package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// The fast lane answers a repeated GET with exactly what the ordinary path
// answered, for every spelling of the request that path accepts, and lets
// go of it at revocation and refresh time.
func TestFastAnswersMatchOrdinaryPath(t *testing.T) {
	f := newFixture(t, nil)
	b64 := base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
	targets := []string{"/ocsp/" + b64, "/ocsp/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64), "/ocsp/" + strings.TrimRight(b64, "=")}
	for _, target := range targets {
		if _, _, _, ok := f.r.AppendFast(nil, target, ""); ok {
			t.Fatalf("%s: answered before any GET", target)
		}
		first, body1 := f.get(t, target)
		hdr, status, body, ok := f.r.AppendFast(nil, target, "")
		if !ok || status != 200 || !bytes.Equal(body, body1) {
			t.Fatalf("%s: after a GET the fast answer is %v %d (same body: %v)", target, ok, status, bytes.Equal(body, body1))
		}
		if !bytes.HasSuffix(hdr, []byte("\r\n")) {
			t.Fatalf("header fields not CRLF-terminated: %q", hdr)
		}
		second, body2 := f.get(t, target)
		if !bytes.Equal(body1, body2) {
			t.Fatal("the lane's body differs from the ordinary path's")
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Etag", "Last-Modified", "Expires"} {
			if first.Header.Get(h) != second.Header.Get(h) || first.Header.Get(h) == "" {
				t.Fatalf("%s: %q from the ordinary path, %q from the lane", h, first.Header.Get(h), second.Header.Get(h))
			}
		}
		if maxAge(t, first) < maxAge(t, second) || maxAge(t, first)-maxAge(t, second) > 1 {
			t.Fatalf("Cache-Control %q then %q", first.Header.Get("Cache-Control"), second.Header.Get("Cache-Control"))
		}
		if r, _ := f.get(t, target, "If-None-Match", first.Header.Get("Etag")); r.StatusCode != http.StatusNotModified {
			t.Fatalf("If-None-Match through the lane: HTTP %d", r.StatusCode)
		}
	}

	// A revocation drops every spelling at once.
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: time.Now(),
		RevocationReason: core.ReasonSuperseded})
	if err := f.events.Publish(context.Background(), storage.TopicRevoked, storage.EncodeRevoked("int", "1001")); err != nil {
		t.Fatal(err)
	}
	for _, target := range targets {
		if _, _, _, ok := f.r.AppendFast(nil, target, ""); ok {
			t.Fatalf("%s: still answered after the revocation", target)
		}
		_, body := f.get(t, target)
		if r := parse(t, body, f.good, f.ca.Cert); r.Status != xocsp.Revoked || r.RevocationReason != xocsp.Superseded {
			t.Fatalf("%s after revocation: status %d reason %d", target, r.Status, r.RevocationReason)
		}
	}

	// At refresh time the lane declines, and the ordinary path signs anew.
	f.clock.add(23*time.Hour + 30*time.Minute)
	if _, _, _, ok := f.r.AppendFast(nil, targets[0], ""); ok {
		t.Fatal("answer kept past its refresh time")
	}
}

// POSTs, nonces and errors never reach the fast answers.
func TestFastAnswersOnlyCacheableGETs(t *testing.T) {
	f := newFixture(t, nil)
	f.post(t, request(t, f.good, f.ca.Cert, crypto.SHA1))
	nonce := "/ocsp/" + base64.StdEncoding.EncodeToString(nonceRequest(t, f.good, f.ca.Cert, []byte("0123456789abcdef")))
	f.get(t, nonce)
	f.get(t, "/ocsp/bm90IGFuIE9DU1AgcmVxdWVzdA==")
	for _, target := range []string{nonce, "/ocsp/bm90IGFuIE9DU1AgcmVxdWVzdA=="} {
		if _, _, _, ok := f.r.AppendFast(nil, target, ""); ok {
			t.Fatalf("%s: kept for the fast lane", target)
		}
	}
}

func maxAge(t *testing.T, r *http.Response) int {
	t.Helper()
	cc := r.Header.Get("Cache-Control")
	v, _, _ := strings.Cut(strings.TrimPrefix(cc, "max-age="), ",")
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("Cache-Control %q", cc)
	}
	return n
}

// When revocation events may have been lost, this node's fast answers go.
func TestFastAnswersDroppedOnEventGap(t *testing.T) {
	f := newFixture(t, nil)
	target := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA1))
	f.get(t, target)
	if _, _, _, ok := f.r.AppendFast(nil, target, ""); !ok {
		t.Fatal("no fast answer after a GET")
	}
	if err := f.events.Publish(context.Background(), storage.TopicRevoked, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := f.r.AppendFast(nil, target, ""); ok {
		t.Fatal("fast answer kept after an event gap")
	}
}
