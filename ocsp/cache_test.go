package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/storage"
)

// nonceRequest builds a request for leaf carrying a nonce extension, as
// openssl sends it (the nonce as an OCTET STRING inside extnValue).
func nonceRequest(t *testing.T, leaf, issuer *x509.Certificate, nonce []byte) []byte {
	t.Helper()
	return nonceRequestMarked(t, leaf, issuer, nonce, false)
}

// nonceRequestMarked is nonceRequest with the nonce extension marked
// critical or not.
func nonceRequestMarked(t *testing.T, leaf, issuer *x509.Certificate, nonce []byte, critical bool) []byte {
	t.Helper()
	plain, err := xocsp.ParseRequest(request(t, leaf, issuer, crypto.SHA1))
	if err != nil {
		t.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier([]int{1, 3, 14, 3, 2, 26})
							b.AddASN1NULL()
						})
						b.AddASN1OctetString(plain.IssuerNameHash)
						b.AddASN1OctetString(plain.IssuerKeyHash)
						b.AddASN1BigInt(plain.SerialNumber)
					})
				})
			})
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier([]int{1, 3, 6, 1, 5, 5, 7, 48, 1, 2})
						if critical {
							b.AddASN1Boolean(true)
						}
						b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) { b.AddASN1OctetString(nonce) })
					})
				})
			})
		})
	})
	return b.BytesOrPanic()
}

func TestNonceEchoed(t *testing.T) {
	f := newFixture(t, nil)
	nonce := []byte("0123456789abcdef")
	req := nonceRequest(t, f.good, f.ca.Cert, nonce)
	if r, err := ocsp.ParseRequest(req); err != nil || len(r.Nonce) == 0 {
		t.Fatalf("ParseRequest: %+v %v", r, err)
	}
	calls := f.status.calls
	for i := 0; i < 2; i++ {
		_, body := f.post(t, req)
		r := parse(t, body, f.good, f.ca.Cert)
		// x/crypto/ocsp does not expose responseExtensions: look for the
		// encoded extension in the signed response data.
		want := append([]byte{0x06, 0x09, 0x2b, 6, 1, 5, 5, 7, 48, 1, 2, 0x04, byte(len(nonce) + 2), 0x04, byte(len(nonce))}, nonce...)
		if !bytes.Contains(r.TBSResponseData, want) {
			t.Fatalf("nonce not echoed in responseExtensions: %x", r.TBSResponseData)
		}
	}
	if f.status.calls-calls != 2 {
		t.Fatalf("requests with a nonce were answered from the cache")
	}
	// Marked critical (which RFC 6960 §4.4 advises against, and some
	// clients do), it is still read and echoed, not malformedRequest.
	_, body := f.post(t, nonceRequestMarked(t, f.good, f.ca.Cert, nonce, true))
	want := append([]byte{0x06, 0x09, 0x2b, 6, 1, 5, 5, 7, 48, 1, 2}, []byte{0x04, byte(len(nonce) + 2), 0x04, byte(len(nonce))}...)
	if r := parse(t, body, f.good, f.ca.Cert); !bytes.Contains(r.TBSResponseData, append(want, nonce...)) {
		t.Fatalf("a critical nonce not echoed: %x", r.TBSResponseData)
	}
}

func TestCacheHeadersAndInvalidation(t *testing.T) {
	f := newFixture(t, nil)
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
	resp, body := f.get(t, path)
	etag, lm, cc := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"), resp.Header.Get("Cache-Control")
	if etag == "" || lm == "" || cc == "" || resp.Header.Get("Expires") == "" {
		t.Fatalf("GET headers: %v", resp.Header)
	}
	if !bytes.Contains([]byte(cc), []byte("max-age=")) || bytes.Contains([]byte(cc), []byte("max-age=0,")) {
		t.Fatalf("Cache-Control %q", cc)
	}
	if r := parse(t, body, f.good, f.ca.Cert); lm != r.ThisUpdate.UTC().Format(http.TimeFormat) ||
		resp.Header.Get("Expires") != r.NextUpdate.UTC().Format(http.TimeFormat) {
		t.Fatalf("Last-Modified %q, Expires %q; response thisUpdate %v nextUpdate %v", lm, resp.Header.Get("Expires"), r.ThisUpdate, r.NextUpdate)
	}
	if resp.Header.Get("Content-Type") != "application/ocsp-response" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("Content-Type %q, Content-Length %d for %d bytes", resp.Header.Get("Content-Type"), resp.ContentLength, len(body))
	}
	calls := f.status.calls
	resp2, body2 := f.get(t, path)
	if !bytes.Equal(body, body2) || resp2.Header.Get("ETag") != etag || f.status.calls != calls {
		t.Fatalf("second GET was not served from the cache")
	}
	if r, _ := f.get(t, path, "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: HTTP %d", r.StatusCode)
	}
	// POST answers are not for HTTP caches.
	if r, _ := f.post(t, request(t, f.good, f.ca.Cert, crypto.SHA256)); r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST Cache-Control %q", r.Header.Get("Cache-Control"))
	}

	// Revocation: the event drops the cached "good" at once.
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: time.Now(),
		RevocationReason: core.ReasonCessationOfOperation})
	if err := f.events.Publish(context.Background(), storage.TopicRevoked, storage.EncodeRevoked("int", "1001")); err != nil {
		t.Fatal(err)
	}
	_, body3 := f.get(t, path)
	if r := parse(t, body3, f.good, f.ca.Cert); r.Status != xocsp.Revoked || r.RevocationReason != xocsp.CessationOfOperation {
		t.Fatalf("after revocation: status %d reason %d", r.Status, r.RevocationReason)
	}

	// Near nextUpdate the cached answer is replaced by a fresh one.
	calls = f.status.calls
	f.clock.add(23*time.Hour + 30*time.Minute)
	_, body4 := f.get(t, path)
	r := parse(t, body4, f.good, f.ca.Cert)
	if f.status.calls == calls || !r.ThisUpdate.After(time.Now().Add(time.Hour)) {
		t.Fatalf("stale cached answer served near nextUpdate (thisUpdate %v)", r.ThisUpdate)
	}
}

func TestResponderRenewal(t *testing.T) {
	f := newFixture(t, nil)
	f.keys.rotate = true
	if err := f.r.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := f.r.ResponderCert("int")
	if first == nil || !first.NotAfter.After(first.NotBefore.Add(29*24*time.Hour)) {
		t.Fatalf("first responder certificate: %+v", first)
	}
	noCheck := false
	for _, e := range first.Extensions {
		noCheck = noCheck || e.Id.String() == "1.3.6.1.5.5.7.48.1.5"
	}
	if !noCheck || first.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
		t.Fatal("responder certificate lacks id-pkix-ocsp-nocheck or id-kp-OCSPSigning")
	}
	// 21 days on, a third remains: renewal starts in the background and the
	// old certificate keeps signing meanwhile.
	f.clock.add(21 * 24 * time.Hour)
	_, body := f.post(t, request(t, f.good, f.ca.Cert, crypto.SHA1))
	parse(t, body, f.good, f.ca.Cert)
	deadline := time.Now().Add(5 * time.Second)
	for f.r.ResponderCert("int") == first {
		if time.Now().After(deadline) {
			t.Fatal("responder certificate not renewed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := f.r.ResponderCert("int")
	if second.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(first.PublicKey) {
		t.Fatal("renewal did not certify the rotated key")
	}
	// A fresh answer (not the cached one, still valid under the old
	// certificate) is signed with the renewed certificate.
	_, body = f.post(t, request(t, f.unknown, f.ca.Cert, crypto.SHA1))
	if r := parse(t, body, f.unknown, f.ca.Cert); !r.Certificate.Equal(second) {
		t.Fatal("response not signed with the renewed certificate")
	}
}

func TestSignWithIssuer(t *testing.T) {
	f := newFixture(t, func(o *ocsp.Options) { o.SignWithIssuer = true; o.Keys = nil })
	_, body := f.post(t, request(t, f.revoked, f.ca.Cert, crypto.SHA256))
	r := parse(t, body, f.revoked, f.ca.Cert)
	if r.Certificate != nil || r.Status != xocsp.Revoked {
		t.Fatalf("issuer-signed response: cert %v status %d", r.Certificate != nil, r.Status)
	}
	if err := r.CheckSignatureFrom(f.ca.Cert); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejects(t *testing.T) {
	f := newFixture(t, nil)
	is := ocsp.Issuer{ID: "int", Cert: f.ca.Cert, Signer: f.ca.Key}
	for name, o := range map[string]ocsp.Options{
		"no status":           {Issuers: []ocsp.Issuer{is}, Keys: f.keys},
		"no issuers":          {Status: f.status, Keys: f.keys},
		"no key source":       {Issuers: []ocsp.Issuer{is}, Status: f.status},
		"duplicate":           {Issuers: []ocsp.Issuer{is, is}, Status: f.status, Keys: f.keys},
		"refresh > validity":  {Issuers: []ocsp.Issuer{is}, Status: f.status, Keys: f.keys, Validity: time.Hour, RefreshBefore: 2 * time.Hour},
		"issuer key w/o sign": {Issuers: []ocsp.Issuer{{ID: "x", Cert: f.ca.Cert}}, Status: f.status, SignWithIssuer: true},
	} {
		if _, err := ocsp.New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseRequest: ParseRequest must never panic, and what it accepts
// must name a positive serial and hashes of the algorithm's size.
func FuzzParseRequest(f *testing.F) {
	ca := ocsptest.NewCA(f, "fuzz CA", nil)
	leaf := ca.Leaf(f, "1001", "", "")
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		f.Add(request(f, leaf, ca.Cert, h))
	}
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, der []byte) {
		r, err := ocsp.ParseRequest(der)
		if err != nil {
			return
		}
		for _, id := range r.IDs {
			if id.Serial.Big() == nil || id.Serial.Big().Sign() <= 0 || len(id.IssuerKeyHash) != id.Hash.Size() {
				t.Fatalf("accepted bad CertID %+v", id)
			}
		}
	})
}

// TestNonceLength: RFC 9654 §2.1 (obsoleting RFC 8954, whose limit was 32
// octets): a nonce of 1 to 128 octets is echoed; one of 0 or more than
// 128 is malformedRequest. The length is the nonce's, not extnValue's
// (which adds the inner OCTET STRING's tag and length).
func TestNonceLength(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, false}, {1, true}, {16, true}, {32, true}, {33, true}, {128, true}, {129, false}, {130, false}} {
		_, err := ocsp.ParseRequest(nonceRequest(t, f.good, f.ca.Cert, bytes.Repeat([]byte{7}, tc.n)))
		if (err == nil) != tc.ok {
			t.Errorf("nonce of %d octets: err %v, want accepted %t", tc.n, err, tc.ok)
		}
	}
}
