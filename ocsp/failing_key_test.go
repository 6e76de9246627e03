package ocsp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/storage"
)

// breakableSigner stops signing once broken, as an HSM key does when the
// HSM drops it (found damaged, or destroyed by an officer).
type breakableSigner struct {
	crypto.Signer
	broken atomic.Bool
}

func (s *breakableSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.broken.Load() {
		return nil, errors.New("hsm signer: key was destroyed")
	}
	return s.Signer.Sign(rand, digest, opts)
}

// TestFailingResponderKeyReplaced: a running node whose responder key the
// HSM dropped as damaged kept signing with it, answering internalError to
// every request not in a cache until the certificate's renewal, weeks
// away. After one failure the responder gets a key again from its source
// and answers under a new certificate.
func TestFailingResponderKeyReplaced(t *testing.T) {
	f := newFixture(t, nil)
	key := &breakableSigner{Signer: ocsptest.NewKey(t)}
	f.keys.keys["int"] = key
	_, body := f.post(t, nonceRequest(t, f.good, f.ca.Cert, []byte("first")))
	old := parse(t, body, f.good, f.ca.Cert).Certificate
	if old == nil {
		t.Fatal("no responder certificate")
	}
	key.broken.Store(true)
	f.keys.rotate = true // the source hands out a working key
	if _, body := f.post(t, nonceRequest(t, f.good, f.ca.Cert, []byte("second"))); string(body) != "\x30\x03\x0a\x01\x02" {
		t.Fatalf("with the broken key: %x, want internalError", body)
	}
	_, body = f.post(t, nonceRequest(t, f.good, f.ca.Cert, []byte("third")))
	r := parse(t, body, f.good, f.ca.Cert)
	if r.Status != xocsp.Good || r.Certificate == nil || r.Certificate.Equal(old) {
		t.Fatalf("after the failure: status %d, a new responder certificate: %v", r.Status, r.Certificate != nil && !r.Certificate.Equal(old))
	}
	if n := f.r.Unanswered()["sign"]; n != 1 {
		t.Fatalf("%d requests unanswered for signing, want 1", n)
	}
}

// TestKeyThatSignsAgainKept: after a failure the responder takes its
// recorded certificate again when the key signs (a passing fault): nothing
// is certified; and revoking that certificate still replaces it at once.
func TestKeyThatSignsAgainKept(t *testing.T) {
	key := &breakableSigner{Signer: ocsptest.NewKey(t)}
	keys := &storedKeys{fakeKeys: &fakeKeys{keys: map[string]crypto.Signer{"int": key}, t: t}, der: map[string][]byte{}}
	f := newFixture(t, func(o *ocsp.Options) { o.Keys = keys })
	answer := func(nonce string) *x509.Certificate {
		t.Helper()
		_, body := f.post(t, nonceRequest(t, f.good, f.ca.Cert, []byte(nonce)))
		return parse(t, body, f.good, f.ca.Cert).Certificate
	}
	first := answer("first")
	key.broken.Store(true)
	f.post(t, nonceRequest(t, f.good, f.ca.Cert, []byte("failed")))
	key.broken.Store(false)
	if again := answer("again"); !again.Equal(first) || keys.records != 1 {
		t.Fatalf("the key signs again: certificate %x (first %x), %d recorded", again.SerialNumber, first.SerialNumber, keys.records)
	}
	keys.fakeKeys.mu.Lock()
	keys.fakeKeys.rotate = true
	keys.fakeKeys.mu.Unlock()
	serial := core.SerialFromBig(first.SerialNumber)
	f.status.set(core.Certificate{Serial: serial, IssuerID: "int", Status: core.StatusRevoked, RevokedAt: f.clock.now(), RevocationReason: core.ReasonKeyCompromise})
	if err := f.events.Publish(context.Background(), storage.TopicRevoked, storage.EncodeRevoked("int", serial)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for answer("after").Equal(first) {
		if time.Now().After(deadline) {
			t.Fatal("still signing under the revoked responder certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
