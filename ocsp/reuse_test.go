package ocsp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/storage"
)

// storedKeys is fakeKeys that also keeps the last responder certificate
// per issuer (ocsp.ResponderStore), as cmd/ca does in the database.
type storedKeys struct {
	*fakeKeys
	mu      sync.Mutex
	der     map[string][]byte
	records int
}

func (s *storedKeys) ReusableResponder(_ context.Context, issuerID string) (crypto.Signer, []byte, error) {
	s.fakeKeys.mu.Lock()
	k := s.fakeKeys.keys[issuerID]
	s.fakeKeys.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if k == nil {
		return nil, nil, nil
	}
	return k, s.der[issuerID], nil
}

func (s *storedKeys) RecordResponder(_ context.Context, issuerID string, der []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.der[issuerID], s.records = der, s.records+1
	return nil
}

// TestResponderReuse: a responder starting where another (or itself before
// a restart) recorded a fresh certificate for the current key uses it —
// nothing is rotated or certified; a certificate due for renewal, or for
// another key, is replaced by a new one, which is recorded.
func TestResponderReuse(t *testing.T) {
	ca := ocsptest.NewCA(t, "Reuse CA", nil)
	keys := &storedKeys{fakeKeys: &fakeKeys{keys: map[string]crypto.Signer{}, t: t, rotate: true}, der: map[string][]byte{}}
	start := func(now time.Time) *x509.Certificate {
		t.Helper()
		r, err := ocsp.New(ocsp.Options{Issuers: []ocsp.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key}},
			Status: &fakeStatus{certs: map[core.Serial]core.Certificate{}}, Keys: keys,
			Now: func() time.Time { return now }, Cache: storage.NewMemoryOCSPCache(0, time.Minute, nil)})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Warm(context.Background()); err != nil {
			t.Fatal(err)
		}
		return r.ResponderCert("int")
	}
	now := time.Now()
	first := start(now)
	if keys.records != 1 {
		t.Fatalf("%d certificates recorded, want 1", keys.records)
	}
	for i := range 3 { // restarts, or other nodes
		if got := start(now.Add(time.Duration(i) * time.Hour)); !got.Equal(first) {
			t.Fatalf("start %d certified again (serial %x, first %x)", i, got.SerialNumber, first.SerialNumber)
		}
	}
	if keys.records != 1 {
		t.Fatalf("%d certificates recorded after restarts, want 1", keys.records)
	}
	// 21 of 30 days on, the recorded certificate is due: a new one, for a
	// rotated key, recorded in its place.
	due := start(now.Add(21 * 24 * time.Hour))
	if due.Equal(first) || keys.records != 2 || due.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(first.PublicKey) {
		t.Fatalf("a due certificate was reused (records %d)", keys.records)
	}
	// A recorded certificate for another key is not used.
	keys.mu.Lock()
	keys.der["int"] = first.Raw
	keys.mu.Unlock()
	if got := start(now.Add(21*24*time.Hour + time.Hour)); got.Equal(first) || keys.records != 3 {
		t.Fatal("a certificate for another key was reused")
	}
}
