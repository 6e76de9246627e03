package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/ca/catest"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// env is a running API over a real listener, real SQLite, real pipeline.
type env struct {
	srv    *httptest.Server
	engine *gin.Engine
	api    *API
	db     *storage.DB
	ca     *ca.CA
	root   *ca.Issuer
	inter  *ca.Issuer
	keys   map[string]string // name → secret
	client *http.Client
}

func newEnv(t testing.TB, db *storage.DB, opts func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	root, inter := catest.Hierarchy(t, "API Test")
	if db == nil {
		db, _ = storagetest.SQLite(t)
	}
	w := storage.NewCertWriter(db)
	t.Cleanup(func() { w.Close() })
	pipeline, err := ca.New(ca.Options{Store: w, Issuers: []*ca.Issuer{inter, catest.CodeSigning(t, root)},
		URLs: ca.URLs{CAIssuers: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"}, CRL: []string{"http://127.0.0.1:8080/crl/{issuer}.crl"}}})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ra.New(ra.Options{CA: pipeline, Policy: ra.Policy{
		AllowedDNSSuffixes: []string{"corp.internal", "example.com"},
		AllowedIPRanges:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		AllowExtraSANs:     true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Authority: auth, Store: db, Issuers: pipeline}
	if opts != nil {
		opts(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	a.Register(engine.Group("/api/v1"))
	e := &env{engine: engine, api: a, db: db, ca: pipeline, root: root, inter: inter, keys: map[string]string{}}
	for name, scopes := range map[string][]string{
		"issuer": {ScopeIssue, ScopeRead}, "reader": {ScopeRead}, "revoker": {ScopeRevoke, ScopeRead},
		"admin": {ScopeAdmin}, "revoked": {ScopeAdmin},
	} {
		secret, id, err := CreateKey(ctx, db, name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[name] = secret
		if name == "revoked" {
			if err := RevokeKey(ctx, db, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.srv = httptest.NewServer(engine)
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	return e
}

// do sends a request with the named key ("" for none) and returns the
// response and its body.
func (e *env) do(t testing.TB, method, path, key, contentType string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/api/v1"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		s, ok := e.keys[key]
		if !ok {
			s = key // a literal secret
		}
		req.Header.Set("Authorization", "Bearer "+s)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func newCSR(t testing.TB, key crypto.Signer, cn string, names ...string) []byte {
	t.Helper()
	return catest.CSR(t, key, cn, names...).Raw
}

func pemCSR(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) count(t testing.TB, status core.CertStatus) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM certificates WHERE status = ?`, string(status)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// serverCert issues a TLS server certificate for 127.0.0.1 from the test
// intermediate, with the intermediate in its chain, and returns a pool
// holding the root.
func (e *env) serverCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := e.ca.Issue(context.Background(), ca.Request{CSR: catest.CSR(t, k, "", "127.0.0.1"), Profile: "tls-server", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.root.Certificate())
	return tls.Certificate{Certificate: [][]byte{iss.Certificate.Raw, e.inter.Certificate().Raw}, PrivateKey: k}, roots
}

func pemBlock(s string) []byte {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil
	}
	return b.Bytes
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func drain(r *http.Response) { io.Copy(io.Discard, r.Body) }
