package crl_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/crl"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// addCert writes a certificates row as the issuance code would.
func addCert(t *testing.T, db *storage.DB, serial core.Serial, status core.CertStatus, revokedAt time.Time, reason core.RevocationReason) {
	t.Helper()
	now, changed := storage.Micros(time.Now()), storage.Micros(time.Now())
	if !revokedAt.IsZero() {
		changed = storage.Micros(revokedAt) // as revoking does
	}
	_, err := db.Exec(context.Background(), `INSERT INTO certificates (serial, issuer_id, profile, requester, not_after, status,
		revoked_at, revocation_reason, created_at, updated_at) VALUES (?, 'int', 'tls', 'test', ?, ?, ?, ?, ?, ?)`,
		string(serial), storage.Micros(time.Now().Add(time.Hour)), string(status), storage.Micros(revokedAt), int(reason), now, changed)
	if err != nil {
		t.Fatal(err)
	}
}

func revoke(t *testing.T, db *storage.DB, serial core.Serial, reason core.RevocationReason) {
	t.Helper()
	now := storage.Micros(time.Now())
	_, err := db.Exec(context.Background(), `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?,
		updated_at = ? WHERE serial = ?`, now, int(reason), now, string(serial))
	if err != nil {
		t.Fatal(err)
	}
}

func fetch(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
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

func serials(rl *x509.RevocationList) map[core.Serial]int {
	m := map[core.Serial]int{}
	for _, e := range rl.RevokedCertificateEntries {
		m[core.SerialFromBig(e.SerialNumber)] = e.ReasonCode
	}
	return m
}

// TestBuilderEndToEnd runs the builder on real SQLite: the scheduled build,
// a revocation event that rebuilds within the debounce delay (full CRL and
// a delta listing the new revocation against the older base), serving over
// HTTP, and openssl verify -crl_check with the served CRL.
func TestBuilderEndToEnd(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ca := ocsptest.NewCA(t, "CRL builder CA", nil)
	srv := httptest.NewServer(nil)
	defer srv.Close()
	crlURL := srv.URL + "/crl/int.crl"
	addCert(t, db, "a1", core.StatusRevoked, time.Now().Add(-time.Hour), core.ReasonSuperseded)
	addCert(t, db, "b2", core.StatusValid, time.Time{}, 0)
	addCert(t, db, "c3", core.StatusValid, time.Time{}, 0)

	events := storage.NewMemoryEvents()
	b, err := crl.New(crl.Options{
		Issuers: []crl.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key, URL: crlURL, DeltaURL: srv.URL + "/crl/int-delta.crl"}},
		Source:  db, Store: db, Debounce: 50 * time.Millisecond, Refresh: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = b
	stop, err := b.Subscribe(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	if resp, _ := fetch(t, crlURL); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("before the first build: HTTP %d, want 503", resp.StatusCode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the first CRLs", func() bool { return b.Current("int", true) != nil })

	getCRL := func(url string) (*x509.RevocationList, *http.Response) {
		t.Helper()
		resp, body := fetch(t, url)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" {
			t.Fatalf("GET %s: HTTP %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		rl, err := x509.ParseRevocationList(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := rl.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatal(err)
		}
		return rl, resp
	}
	full1, resp := getCRL(crlURL)
	if got := serials(full1); len(got) != 1 || got["a1"] != int(core.ReasonSuperseded) {
		t.Fatalf("first full CRL lists %v", got)
	}
	for _, h := range []string{"ETag", "Last-Modified", "Expires", "Cache-Control"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("CRL response lacks %s", h)
		}
	}
	if r, _ := fetch(t, crlURL, "If-None-Match", resp.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: HTTP %d, want 304", r.StatusCode)
	}
	// If-Modified-Since (Windows' CRL fetcher): 304 from the CRL's
	// thisUpdate on, the CRL before it; If-None-Match wins over it.
	lm := resp.Header.Get("Last-Modified")
	earlier := full1.ThisUpdate.Add(-time.Second).UTC().Format(http.TimeFormat)
	for _, c := range []struct {
		hdr  []string
		want int
	}{
		{[]string{"If-Modified-Since", lm}, http.StatusNotModified},
		{[]string{"If-Modified-Since", earlier}, http.StatusOK},
		{[]string{"If-Modified-Since", "not a date"}, http.StatusOK},
		{[]string{"If-Modified-Since", lm, "If-None-Match", `"1"`}, http.StatusOK},
	} {
		if r, body := fetch(t, crlURL, c.hdr...); r.StatusCode != c.want || (c.want == http.StatusOK && len(body) == 0) {
			t.Errorf("%q: HTTP %d, want %d", c.hdr, r.StatusCode, c.want)
		}
	}
	delta1, _ := getCRL(srv.URL + "/crl/int-delta.crl")
	if delta1.Number.Int64() <= full1.Number.Int64() {
		t.Fatalf("delta number %v not after full %v", delta1.Number, full1.Number)
	}

	// Two revocations in a burst: one rebuild.
	revoke(t, db, "b2", core.ReasonKeyCompromise)
	events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked("int", "b2"))
	events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked("int", "b2"))
	waitFor("the rebuild", func() bool { return b.Current("int", false).Number > delta1.Number.Int64() })
	full2, _ := getCRL(crlURL)
	if got := serials(full2); len(got) != 2 || got["b2"] != int(core.ReasonKeyCompromise) {
		t.Fatalf("full CRL after revocation lists %v", got)
	}
	waitFor("the delta", func() bool { return b.Current("int", true).Number > full2.Number.Int64() })
	delta2, _ := getCRL(srv.URL + "/crl/int-delta.crl")
	if got := serials(delta2); got["b2"] != int(core.ReasonKeyCompromise) {
		t.Fatalf("delta CRL after revocation lists %v, want b2", got)
	}
	if n := b.Current("int", false).Number; n != full2.Number.Int64() {
		t.Fatalf("burst of two events made more than one rebuild (full %d, then %d)", full2.Number, n)
	}
	if base := deltaBase(t, delta2); base != full1.Number.Int64() {
		t.Fatalf("delta builds on CRL %d, want the scheduled base %d", base, full1.Number)
	}

	// A gap in the events (messages may have been lost) rebuilds too.
	before := b.Current("int", false).Number
	events.Publish(ctx, storage.TopicRevoked, nil)
	waitFor("the rebuild after an event gap", func() bool { return b.Current("int", false).Number > before })

	// Issuer certificate, unknown names.
	if r, body := fetch(t, srv.URL+"/issuers/int.crt"); r.StatusCode != 200 || string(body) != string(ca.Cert.Raw) ||
		r.Header.Get("Content-Type") != "application/pkix-cert" {
		t.Fatalf("issuer certificate: HTTP %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/crl/nope.crl", "/issuers/nope.crt", "/crl/int", "/crl/", "/other"} {
		if r, _ := fetch(t, srv.URL+p); r.StatusCode != http.StatusNotFound || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: HTTP %d %s, want a 404 problem document", p, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}

	// openssl verify -crl_check with the served CRL.
	dir := t.TempDir()
	_, der := fetch(t, crlURL)
	os.WriteFile(filepath.Join(dir, "int.crl"), der, 0o644)
	crlPEM := filepath.Join(dir, "int.pem")
	if out, err := ocsptest.Tool(t, "openssl", "crl", "-inform", "DER", "-in", filepath.Join(dir, "int.crl"), "-out", crlPEM); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	caPEM := ocsptest.WritePEM(t, dir, "ca.pem", ca.Cert)
	for serial, wantOK := range map[core.Serial]bool{"c3": true, "b2": false} {
		leaf := ocsptest.WritePEM(t, dir, string(serial)+".pem", ca.Leaf(t, serial, "", crlURL))
		out, err := ocsptest.Tool(t, "openssl", "verify", "-crl_check", "-CAfile", caPEM, "-CRLfile", crlPEM, leaf)
		if wantOK && err != nil {
			t.Errorf("openssl rejects good %s: %s", serial, out)
		}
		if !wantOK && (err == nil || !strings.Contains(out, "revoked")) {
			t.Errorf("openssl accepts revoked %s: %s", serial, out)
		}
	}

	// A new node loads what was published and serves it at once.
	b2, err := crl.New(crl.Options{Issuers: []crl.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key, URL: crlURL}}, Source: db, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, want := b2.Current("int", false), b.Current("int", false).Number; c == nil || c.Number != want {
		t.Fatalf("loaded %+v, want CRL %d", c, want)
	}
}

func TestBuilderOptions(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ca := ocsptest.NewCA(t, "opts", nil)
	good := crl.Issuer{ID: "int", Cert: ca.Cert, Signer: ca.Key}
	for name, o := range map[string]crl.Options{
		"no issuers":          {Source: db, Store: db},
		"no source":           {Issuers: []crl.Issuer{good}, Store: db},
		"issuer without key":  {Issuers: []crl.Issuer{{ID: "int", Cert: ca.Cert}}, Source: db, Store: db},
		"duplicate issuer":    {Issuers: []crl.Issuer{good, good}, Source: db, Store: db},
		"interval > validity": {Issuers: []crl.Issuer{good}, Source: db, Store: db, Interval: 2 * time.Hour, Validity: time.Hour},
	} {
		if _, err := crl.New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestBuilderCatchesUpWithoutEvents: a revocation whose event never came
// (Redis down when it was made) reaches the served CRLs at the next
// refresh, not at the next scheduled build.
func TestBuilderCatchesUpWithoutEvents(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ca := ocsptest.NewCA(t, "CRL catch-up CA", nil)
	addCert(t, db, "d4", core.StatusValid, time.Time{}, 0)
	b, err := crl.New(crl.Options{
		Issuers: []crl.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key, URL: "http://ca.example/crl/int.crl"}},
		Source:  db, Store: db, Debounce: 10 * time.Millisecond, Refresh: 50 * time.Millisecond, Interval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	listed := func() bool {
		c := b.Current("int", false)
		if c == nil {
			return false
		}
		rl, err := x509.ParseRevocationList(c.DER)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := serials(rl)["d4"]
		return ok
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Current("int", false) == nil {
		if time.Now().After(deadline) {
			t.Fatal("no first CRL")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond) // the revocation falls in a later second than the CRL
	revoke(t, db, "d4", core.ReasonKeyCompromise)
	for deadline = time.Now().Add(5 * time.Second); !listed(); {
		if time.Now().After(deadline) {
			t.Fatal("the CRL did not catch up with a revocation that had no event")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBuildMissing: a node's first start has no stored CRL to load; the
// CRLs are built before it serves (a ready node never answers 503 "not
// built yet" for them), Run does not build them a second time at once, and
// a restart that loads stored CRLs builds nothing before serving.
func TestBuildMissing(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ca := ocsptest.NewCA(t, "CRL first start CA", nil)
	newBuilder := func() *crl.Builder {
		b, err := crl.New(crl.Options{
			Issuers: []crl.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key, URL: "http://ca.example/crl/int.crl"}},
			Source:  db, Store: db, Refresh: time.Hour, Interval: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := newBuilder()
	if b.Current("int", false) != nil {
		t.Fatal("a CRL served before any was built")
	}
	b.BuildMissing(context.Background())
	full, delta := b.Current("int", false), b.Current("int", true)
	if full == nil || delta == nil {
		t.Fatalf("after BuildMissing: full %v, delta %v", full != nil, delta != nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	if got, err := db.LatestCRL(context.Background(), "int", false); err != nil || got.Number != full.Number {
		t.Fatalf("Run built the first CRL again: latest full #%d (%v), BuildMissing's #%d", got.Number, err, full.Number)
	}
	restarted := newBuilder()
	if c := restarted.Current("int", false); c == nil || c.Number != full.Number {
		t.Fatal("a restart did not load the stored CRL")
	}
	restarted.BuildMissing(context.Background())
	if got, err := db.LatestCRL(context.Background(), "int", false); err != nil || got.Number != full.Number {
		t.Fatalf("BuildMissing built although a CRL was loaded: latest full #%d (%v)", got.Number, err)
	}
}
