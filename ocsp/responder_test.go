package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/server"
	"github.com/strongroom-pki/strongroom/storage"
)

// fakeStatus is a StatusSource over a map.
type fakeStatus struct {
	mu    sync.Mutex
	certs map[core.Serial]core.Certificate
	err   error
	calls int
	// after, if set, runs once a status has been read (a revocation that
	// commits just then).
	after func()
}

func (f *fakeStatus) CertStatus(ctx context.Context, issuerID string, serial core.Serial) (core.Certificate, error) {
	c, err := f.read(issuerID, serial)
	if f.after != nil {
		f.after()
	}
	return c, err
}

func (f *fakeStatus) read(issuerID string, serial core.Serial) (core.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return core.Certificate{}, f.err
	}
	c, ok := f.certs[serial]
	if !ok || c.IssuerID != issuerID {
		return core.Certificate{}, core.ErrNotFound
	}
	return c, nil
}

func (f *fakeStatus) set(c core.Certificate) {
	f.mu.Lock()
	f.certs[c.Serial] = c
	f.mu.Unlock()
}

// fakeKeys hands out one plain Go key per issuer, or a fresh one per call
// when rotate is set.
type fakeKeys struct {
	mu     sync.Mutex
	keys   map[string]crypto.Signer
	rotate bool
	err    error // when set, every ResponderKey fails with it
	calls  int
	t      testing.TB
}

func (f *fakeKeys) ResponderKey(ctx context.Context, issuerID string) (crypto.Signer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	if f.keys[issuerID] == nil || f.rotate {
		f.keys[issuerID] = ocsptest.NewKey(f.t)
	}
	return f.keys[issuerID], nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	ca                     *ocsptest.CA
	status                 *fakeStatus
	keys                   *fakeKeys
	clock                  *clock
	r                      *ocsp.Responder
	events                 *storage.MemoryEvents
	srv                    struct{ URL string }
	good, revoked, unknown *x509.Certificate
	revokedAt              time.Time
}

func newFixture(t *testing.T, mutate func(*ocsp.Options)) *fixture {
	t.Helper()
	f := &fixture{ca: ocsptest.NewCA(t, "OCSP test CA", nil), clock: &clock{t: time.Now()}}
	f.status = &fakeStatus{certs: map[core.Serial]core.Certificate{}}
	f.keys = &fakeKeys{keys: map[string]crypto.Signer{}, t: t}
	f.good = f.ca.Leaf(t, "1001", "", "")
	f.revoked = f.ca.Leaf(t, "ab2f3c", "", "")
	f.unknown = f.ca.Leaf(t, "deadbeef", "", "")
	f.revokedAt = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusValid})
	f.status.set(core.Certificate{Serial: "ab2f3c", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: f.revokedAt,
		RevocationReason: core.ReasonKeyCompromise})
	opts := ocsp.Options{
		Issuers: []ocsp.Issuer{{ID: "int", Cert: f.ca.Cert, Signer: f.ca.Key}},
		Status:  f.status, Keys: f.keys, Now: f.clock.now,
		Cache: storage.NewMemoryOCSPCache(0, time.Minute, f.clock.now),
	}
	if mutate != nil {
		mutate(&opts)
	}
	r, err := ocsp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	f.events = storage.NewMemoryEvents()
	stop, err := r.Subscribe(context.Background(), f.events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	f.srv.URL = serveLane(t, r)
	return f
}

func request(t testing.TB, leaf, issuer *x509.Certificate, h crypto.Hash) []byte {
	t.Helper()
	der, err := xocsp.CreateRequest(leaf, issuer, &xocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (f *fixture) post(t *testing.T, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(f.srv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (f *fixture) get(t *testing.T, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
	req.URL.Opaque = path // send the path exactly as written
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// parse checks the response is signed by a responder the issuer delegated
// to (or the issuer) and is about leaf.
func parse(t *testing.T, der []byte, leaf, issuer *x509.Certificate) *xocsp.Response {
	t.Helper()
	r, err := xocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		t.Fatalf("parsing response: %v (%x)", err, der)
	}
	return r
}

func TestStatuses(t *testing.T) {
	f := newFixture(t, nil)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, tc := range []struct {
			name   string
			leaf   *x509.Certificate
			status int
		}{
			{"good", f.good, xocsp.Good},
			{"revoked", f.revoked, xocsp.Revoked},
			{"unknown", f.unknown, xocsp.Unknown},
		} {
			t.Run(h.String()+"/"+tc.name, func(t *testing.T) {
				for _, method := range []string{"POST", "GET"} {
					var resp *http.Response
					var body []byte
					if method == "POST" {
						resp, body = f.post(t, request(t, tc.leaf, f.ca.Cert, h))
					} else {
						resp, body = f.get(t, "/ocsp/"+base64.StdEncoding.EncodeToString(request(t, tc.leaf, f.ca.Cert, h)))
					}
					if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/ocsp-response" {
						t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, resp.Header.Get("Content-Type"))
					}
					r := parse(t, body, tc.leaf, f.ca.Cert)
					if r.Status != tc.status || r.SerialNumber.Cmp(tc.leaf.SerialNumber) != 0 {
						t.Fatalf("%s: status %d serial %x, want %d", method, r.Status, r.SerialNumber, tc.status)
					}
					if r.Certificate == nil || r.Certificate.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
						t.Fatalf("%s: no delegated responder certificate in the response", method)
					}
					if !r.NextUpdate.After(r.ThisUpdate) {
						t.Fatalf("%s: nextUpdate %v not after thisUpdate %v", method, r.NextUpdate, r.ThisUpdate)
					}
					if tc.status == xocsp.Revoked && (!r.RevokedAt.Equal(f.revokedAt) || r.RevocationReason != xocsp.KeyCompromise) {
						t.Fatalf("%s: revoked at %v reason %d, want %v keyCompromise", method, r.RevokedAt, r.RevocationReason, f.revokedAt)
					}
				}
			})
		}
	}
}

func TestErrorStatuses(t *testing.T) {
	f := newFixture(t, nil)
	other := ocsptest.NewCA(t, "someone else", nil)
	otherLeaf := other.Leaf(t, "1001", "", "")
	good := request(t, f.good, f.ca.Cert, crypto.SHA1)
	goodB64 := base64.StdEncoding.EncodeToString(good)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   []byte
		want   xocsp.ResponseStatus
	}{
		{"garbage body", "POST", "/ocsp", []byte("hello, responder"), xocsp.Malformed},
		{"empty body", "POST", "/ocsp", nil, xocsp.Malformed},
		{"truncated DER", "POST", "/ocsp", good[:len(good)-3], xocsp.Malformed},
		{"trailing garbage", "POST", "/ocsp", append(append([]byte{}, good...), 0), xocsp.Malformed},
		{"huge body", "POST", "/ocsp", bytes.Repeat([]byte{0x30}, 100<<10), xocsp.Malformed},
		{"unknown issuer", "POST", "/ocsp", request(t, otherLeaf, other.Cert, crypto.SHA1), xocsp.Unauthorized},
		{"GET not base64", "GET", "/ocsp/not*base64!", nil, xocsp.Malformed},
		{"GET base64 of garbage", "GET", "/ocsp/" + base64.StdEncoding.EncodeToString([]byte("garbage")), nil, xocsp.Malformed},
		{"GET empty", "GET", "/ocsp/", nil, xocsp.Malformed},
		{"GET truncated", "GET", "/ocsp/" + goodB64[:len(goodB64)/2], nil, xocsp.Malformed},
		{"GET unknown issuer", "GET", "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, otherLeaf, other.Cert, crypto.SHA256)), nil, xocsp.Unauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var body []byte
			if tc.method == "POST" {
				resp, body = f.post(t, tc.body)
			} else {
				resp, body = f.get(t, tc.path)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("HTTP %d, want 200 with an OCSP error status", resp.StatusCode)
			}
			if _, err := xocsp.ParseResponse(body, nil); !errors.Is(err, xocsp.ResponseError{Status: tc.want}) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", f.srv.URL+"/ocsp", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("PUT: HTTP %d", resp.StatusCode)
		}
	})
	t.Run("database down", func(t *testing.T) {
		f.status.mu.Lock()
		f.status.err = errors.New("connection refused")
		f.status.mu.Unlock()
		defer func() { f.status.mu.Lock(); f.status.err = nil; f.status.mu.Unlock() }()
		before := f.r.Unanswered()["status"]
		_, body := f.post(t, request(t, f.unknown, f.ca.Cert, crypto.SHA512))
		if _, err := xocsp.ParseResponse(body, nil); !errors.Is(err, xocsp.ResponseError{Status: xocsp.TryLater}) {
			t.Fatalf("got %v, want tryLater", err)
		}
		if got := f.r.Unanswered()["status"]; got != before+1 {
			t.Fatalf("Unanswered()[status] = %d, want %d", got, before+1)
		}
	})
}

// TestUnansweredCounted: a responder that cannot get its signing key (a
// review found the OCSP responder's key refused while /readyz and every
// gauge said all was well) answers tryLater and counts it; malformed and
// foreign requests are not counted.
func TestUnansweredCounted(t *testing.T) {
	f := newFixture(t, nil)
	f.keys.mu.Lock()
	f.keys.err = errors.New("key altered outside the HSM")
	f.keys.mu.Unlock()
	_, body := f.post(t, request(t, f.good, f.ca.Cert, crypto.SHA256))
	if _, err := xocsp.ParseResponse(body, nil); !errors.Is(err, xocsp.ResponseError{Status: xocsp.TryLater}) {
		t.Fatalf("got %v, want tryLater", err)
	}
	f.post(t, []byte("not an OCSP request"))
	if got := f.r.Unanswered(); got["key"] != 1 || got["status"] != 0 || got["sign"] != 0 {
		t.Fatalf("Unanswered() = %v, want one key failure", got)
	}
}

// TestGETEncodings sends the same request with every path spelling a client
// or proxy may produce; '+', '/' and '=' must survive.
func TestGETEncodings(t *testing.T) {
	f := newFixture(t, nil)
	// Find a request whose base64 holds '+', '/' and '='.
	var der []byte
	var b64 string
	for i := 0; i < 5000; i++ {
		leaf := f.ca.Leaf(t, core.Serial(strings.TrimLeft(strings.Repeat("7", 1+i%30), "0")), "", "")
		leaf.SerialNumber.Add(leaf.SerialNumber, bigInt(int64(i)))
		der = request(t, leaf, f.ca.Cert, crypto.SHA1)
		b64 = base64.StdEncoding.EncodeToString(der)
		if strings.Contains(b64, "+") && strings.Contains(b64, "/") && strings.Contains(b64, "=") {
			break
		}
	}
	if !strings.Contains(b64, "+") || !strings.Contains(b64, "/") || !strings.Contains(b64, "=") {
		t.Fatalf("no request with +, / and = found")
	}
	escaped := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64)
	for name, path := range map[string]string{
		"raw":         "/ocsp/" + b64,
		"escaped":     "/ocsp/" + escaped,
		"query-style": "/ocsp/" + url.QueryEscape(b64),
		"lowercase":   "/ocsp/" + strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace(escaped),
		"base64url":   "/ocsp/" + base64.RawURLEncoding.EncodeToString(der),
		"no padding":  "/ocsp/" + strings.TrimRight(b64, "="),
		// A responder URL ending in "/" with "/" appended (Boulder
		// accepts it), and a trailing slash; escaped, net/http answers.
		"double slash":            "/ocsp//" + b64,
		"trailing slash":          "/ocsp/" + b64 + "/",
		"double slash, escaped":   "/ocsp//" + escaped + "/",
		"trailing slash, no pads": "/ocsp/" + strings.TrimRight(b64, "=") + "//",
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := f.get(t, path)
			if resp.StatusCode != 200 {
				t.Fatalf("HTTP %d", resp.StatusCode)
			}
			r, err := xocsp.ParseResponse(body, f.ca.Cert)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if r.Status != xocsp.Unknown {
				t.Fatalf("status %d, want unknown", r.Status)
			}
		})
	}
}

// serveLane serves r on a plain listener as ca serve does: through the
// fast lane (cached GETs) in front of net/http. It returns the base URL.
func serveLane(t testing.TB, r *ocsp.Responder) string {
	t.Helper()
	srv := server.New(server.Options{})
	srv.MountPlain("/ocsp", r)
	srv.MountFast("/ocsp/", r)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListeners(ctx, nil, l) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + l.Addr().String()
}

// Two issuers with one name and key (a CA certificate re-issued for the same
// key) send identical CertIDs: the one that issued the serial answers.
func TestIssuersSharingNameAndKey(t *testing.T) {
	var old, renewed *ocsptest.CA
	f := newFixture(t, func(o *ocsp.Options) {
		old = ocsptest.NewCA(t, "Shared CA", nil)
		renewed = ocsptest.NewCA(t, "Shared CA", old.Key)
		o.Issuers = append(o.Issuers, ocsp.Issuer{ID: "shared-old", Cert: old.Cert, Signer: old.Key},
			ocsp.Issuer{ID: "shared-new", Cert: renewed.Cert, Signer: renewed.Key})
	})
	f.status.set(core.Certificate{Serial: "5001", IssuerID: "shared-old", Status: core.StatusRevoked,
		RevokedAt: f.revokedAt, RevocationReason: core.ReasonAffiliationChanged})
	f.status.set(core.Certificate{Serial: "5002", IssuerID: "shared-new", Status: core.StatusValid})
	for _, tc := range []struct {
		serial core.Serial
		ca     *ocsptest.CA
		status int
	}{{"5001", old, xocsp.Revoked}, {"5002", renewed, xocsp.Good}, {"5003", renewed, xocsp.Unknown}} {
		leaf := tc.ca.Leaf(t, tc.serial, "", "")
		for _, issuer := range []*ocsptest.CA{old, renewed} { // either certificate makes the same CertID
			_, body := f.post(t, request(t, leaf, issuer.Cert, crypto.SHA256))
			if r := parse(t, body, leaf, tc.ca.Cert); r.Status != tc.status {
				t.Fatalf("serial %s: status %d, want %d", tc.serial, r.Status, tc.status)
			}
		}
	}
}

// An answer whose status was read just before a revocation committed is
// sent, but not cached: otherwise it would outlive the revocation's drop of
// the cached answers, and the revoked certificate would be answered good
// until the answer's refresh. The caches' tombstones (storage/ocspcache.go)
// are what refuse it.
func TestAnswerReadBeforeRevocationIsNotCached(t *testing.T) {
	f := newFixture(t, nil)
	req := request(t, f.good, f.ca.Cert, crypto.SHA256)
	var once sync.Once
	f.status.after = func() {
		once.Do(func() {
			f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked,
				RevokedAt: f.clock.now().UTC().Truncate(time.Second), RevocationReason: core.ReasonKeyCompromise})
			if err := f.r.Invalidate(context.Background(), "int", "1001"); err != nil {
				t.Error(err)
			}
		})
	}
	_, b := f.post(t, req)
	if r := parse(t, b, f.good, f.ca.Cert); r.Status != xocsp.Good {
		t.Fatalf("the answer read before the revocation: status %d, want good", r.Status)
	}
	_, b = f.post(t, req)
	if r := parse(t, b, f.good, f.ca.Cert); r.Status != xocsp.Revoked {
		t.Fatalf("after the revocation: status %d, want revoked (the earlier answer was cached)", r.Status)
	}
}
