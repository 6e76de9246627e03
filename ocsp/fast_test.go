package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
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
		if f.r.FastKept(target) {
			t.Fatalf("%s: kept before any GET", target)
		}
		first, body1 := f.get(t, target)
		hdr, status, body, ok := f.r.AppendFast(nil, target, "")
		if !f.r.FastKept(target) || !ok || status != 200 || !bytes.Equal(body, body1) {
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
		if f.r.FastKept(target) {
			t.Fatalf("%s: still kept after the revocation", target)
		}
		_, body := f.get(t, target)
		if r := parse(t, body, f.good, f.ca.Cert); r.Status != xocsp.Revoked || r.RevocationReason != xocsp.Superseded {
			t.Fatalf("%s after revocation: status %d reason %d", target, r.Status, r.RevocationReason)
		}
	}

	// At refresh time the kept answer is replaced by a fresh one.
	_, before := f.get(t, targets[0])
	f.clock.add(23*time.Hour + 30*time.Minute)
	_, after := f.get(t, targets[0])
	if r0, r1 := parse(t, before, f.good, f.ca.Cert), parse(t, after, f.good, f.ca.Cert); !r1.ThisUpdate.After(r0.ThisUpdate) {
		t.Fatalf("answer kept past its refresh time (thisUpdate %v, then %v)", r0.ThisUpdate, r1.ThisUpdate)
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
		if f.r.FastKept(target) {
			t.Fatalf("%s: kept for the fast lane", target)
		}
	}
	// The lane still answers them, as the ordinary path does: garbage
	// with malformedRequest, not for caches.
	hdr, status, _, ok := f.r.AppendFast(nil, "/ocsp/bm90IGFuIE9DU1AgcmVxdWVzdA==", "")
	if !ok || status != 200 || !strings.Contains(string(hdr), "Cache-Control: no-store\r\n") {
		t.Fatalf("lane answer to garbage: %v %d %q", ok, status, hdr)
	}
}

// TestFastAnswersKeptUnderOneForm: a request sent with extra slashes, or as
// a target over the bound, is answered but not kept under that target: one
// request could otherwise be kept under endlessly many targets, each as
// long as the client likes.
func TestFastAnswersKeptUnderOneForm(t *testing.T) {
	f := newFixture(t, nil)
	b64 := base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
	plain := "/ocsp/" + b64
	for _, target := range []string{"/ocsp//" + b64, "/ocsp/" + strings.Repeat("/", 2000) + b64} {
		if r, _ := f.get(t, target); r.StatusCode != http.StatusOK {
			t.Fatalf("%.40s…: %d", target, r.StatusCode)
		}
		if _, status, _, ok := f.r.AppendFast(nil, target, ""); !ok || status != 200 {
			t.Fatalf("lane answer to %.40s…: %v %d", target, ok, status)
		}
		if f.r.FastKept(target) {
			t.Fatalf("%.40s… (%d bytes): kept for the fast lane", target, len(target))
		}
	}
	f.get(t, plain)
	if !f.r.FastKept(plain) {
		t.Fatal("the plain form is not kept")
	}
}

// TestUnknownAnswersNotKept: an answer for a serial the CA never issued is
// neither cached nor kept for the fast lane (anyone can ask for endless
// random serials): asking again reads the status again.
func TestUnknownAnswersNotKept(t *testing.T) {
	f := newFixture(t, nil)
	target := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.unknown, f.ca.Cert, crypto.SHA256))
	calls := f.status.calls
	for range 2 {
		if _, body := f.get(t, target); parse(t, body, f.unknown, f.ca.Cert).Status != xocsp.Unknown {
			t.Fatal("not answered unknown")
		}
	}
	if f.status.calls-calls != 2 || f.r.FastKept(target) {
		t.Fatalf("%d status reads for two requests (want 2), kept for the fast lane %v", f.status.calls-calls, f.r.FastKept(target))
	}
	good := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
	calls = f.status.calls
	f.get(t, good)
	f.get(t, good)
	if f.status.calls-calls != 1 || !f.r.FastKept(good) {
		t.Fatalf("a good answer: %d status reads for two requests (want 1), kept %v", f.status.calls-calls, f.r.FastKept(good))
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
	if !f.r.FastKept(target) {
		t.Fatal("no fast answer after a GET")
	}
	if err := f.events.Publish(context.Background(), storage.TopicRevoked, nil); err != nil {
		t.Fatal(err)
	}
	if f.r.FastKept(target) {
		t.Fatal("fast answer kept after an event gap")
	}
}

// The lane makes the answers it does not hold itself, as the ordinary path
// would; %-escaped targets are left to net/http.
func TestFastLaneMakesMissingAnswers(t *testing.T) {
	f := newFixture(t, nil)
	b64 := base64.StdEncoding.EncodeToString(request(t, f.revoked, f.ca.Cert, crypto.SHA1))
	target := "/ocsp/" + b64
	calls := f.status.calls
	hdr, status, body, ok := f.r.AppendFast(nil, target, "")
	if !ok || status != 200 || f.status.calls != calls+1 {
		t.Fatalf("lane on a miss: %v %d, %d status lookups", ok, status, f.status.calls-calls)
	}
	if r := parse(t, body, f.revoked, f.ca.Cert); r.Status != xocsp.Revoked {
		t.Fatalf("lane answer status %d", r.Status)
	}
	if !f.r.FastKept(target) || !strings.Contains(string(hdr), "max-age=") {
		t.Fatalf("lane answer not kept or not cacheable: %q", hdr)
	}
	// The ordinary path answers the same from what the lane kept.
	if _, body2 := f.get(t, target); !bytes.Equal(body, body2) {
		t.Fatal("ordinary path answered differently after the lane made the answer")
	}
	escaped := "/ocsp/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64)
	if _, _, _, ok := f.r.AppendFast(nil, escaped, ""); ok && !f.r.FastKept(escaped) {
		t.Fatal("lane answered an escaped target itself")
	}
	if _, _, _, ok := f.r.AppendFast(nil, "/ocsp/%zz", ""); ok {
		t.Fatal("lane answered a bad escape (net/http gives 400)")
	}
}

func TestFastEntriesOff(t *testing.T) {
	f := newFixture(t, func(o *ocsp.Options) { o.FastEntries = -1 })
	target := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA1))
	for range 2 {
		if _, body := f.get(t, target); parse(t, body, f.good, f.ca.Cert).Status != xocsp.Good {
			t.Fatal("not good")
		}
	}
	if f.r.FastKept(target) {
		t.Fatal("an answer was kept with FastEntries < 0")
	}
}

// Under concurrent GETs, no request that starts after a revocation event
// has been handled is answered "good": neither from the answers kept for
// the lane nor from the cache, whatever was in flight when it ran.
func TestNoGoodAfterRevocationUnderLoad(t *testing.T) {
	f := newFixture(t, nil)
	for round := range 5 {
		serial := core.Serial(fmt.Sprintf("77%02d", round))
		f.status.set(core.Certificate{Serial: serial, IssuerID: "int", Status: core.StatusValid})
		leaf := f.ca.Leaf(t, serial, "", "")
		target := f.srv.URL + "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, leaf, f.ca.Cert, crypto.SHA1))
		var revokedAt atomic.Int64 // unix nanos once the event was handled
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var stale, after atomic.Int64
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Transport: &http.Transport{}}
				defer client.CloseIdleConnections()
				for {
					select {
					case <-stop:
						return
					default:
					}
					started := time.Now().UnixNano()
					resp, err := client.Get(target)
					if err != nil {
						t.Error(err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					r, err := xocsp.ParseResponseForCert(body, leaf, f.ca.Cert)
					if err != nil {
						t.Error(err)
						return
					}
					if at := revokedAt.Load(); at != 0 && started > at {
						after.Add(1)
						if r.Status != xocsp.Revoked {
							stale.Add(1)
						}
					}
				}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		f.status.set(core.Certificate{Serial: serial, IssuerID: "int", Status: core.StatusRevoked, RevokedAt: time.Now(),
			RevocationReason: core.ReasonKeyCompromise})
		if err := f.events.Publish(context.Background(), storage.TopicRevoked, storage.EncodeRevoked("int", serial)); err != nil {
			t.Fatal(err)
		}
		revokedAt.Store(time.Now().UnixNano())
		time.Sleep(100 * time.Millisecond)
		close(stop)
		wg.Wait()
		if stale.Load() > 0 || after.Load() == 0 {
			t.Fatalf("round %d: %d of %d answers after the revocation said good", round, stale.Load(), after.Load())
		}
	}
}
