package ocsp_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// recordingIssuer certifies responder keys with the issuer key and records
// each certificate, valid, in the status source, as the CA records them in
// the certificates table.
type recordingIssuer struct {
	cert   *x509.Certificate
	key    crypto.Signer
	status *fakeStatus
}

func (ri recordingIssuer) SignCertificate(_ context.Context, issuerID string, tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ri.cert, pub, ri.key)
	if err == nil {
		ri.status.set(core.Certificate{Serial: core.SerialFromBig(tmpl.SerialNumber), IssuerID: issuerID,
			Status: core.StatusValid, NotAfter: tmpl.NotAfter})
	}
	return der, err
}

// sharedRedis returns an OCSP cache and an event bus on the test Redis
// (redisVia), or skips (fails in CI) when it is not running.
func sharedRedis(t *testing.T) (*storage.RedisOCSPCache, *storage.RedisEvents) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: storagetest.RedisAddr()})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		storagetest.ServiceMissing(t, "Redis at "+storagetest.RedisAddr(), err)
	}
	return redisVia(t, storagetest.RedisAddr())
}

// TestRevokedResponderOfAnotherNode: two nodes share Redis (the OCSP cache
// and revocation events) and the database, each with its own responder
// certificate. Node B serves the answer node A cached; once A's
// responder certificate is revoked, B must not serve answers signed under
// it (it carries id-pkix-ocsp-nocheck: relying parties would never know),
// but one signed under its own certificate, which A then serves in turn.
// B learns of the revocation by the event, by the sweep, or, meeting A's
// certificate only after it was revoked, from the database.
func TestRevokedResponderOfAnotherNode(t *testing.T) {
	for _, via := range []string{"event", "sweep", "first sight"} {
		t.Run(via, func(t *testing.T) {
			ctx := context.Background()
			cache, events := sharedRedis(t)
			a := newFixture(t, func(o *ocsp.Options) {
				o.Cache = cache
				o.CertIssuer = recordingIssuer{cert: o.Issuers[0].Cert, key: o.Issuers[0].Signer, status: o.Status.(*fakeStatus)}
			})
			b := newFixture(t, func(o *ocsp.Options) { // its own responder key
				o.Issuers = []ocsp.Issuer{{ID: "int", Cert: a.ca.Cert, Signer: a.ca.Key}}
				o.Status, o.Cache = a.status, cache
				o.CertIssuer = recordingIssuer{cert: a.ca.Cert, key: a.ca.Key, status: a.status}
			})
			for _, f := range []*fixture{a, b} {
				stop, err := f.r.Subscribe(ctx, events)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(stop)
				if err := f.r.Warm(ctx); err != nil {
					t.Fatal(err)
				}
			}
			certA, certB := a.r.ResponderCert("int"), b.r.ResponderCert("int")
			if certA.Equal(certB) {
				t.Fatal("the nodes share a responder certificate")
			}
			path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, a.good, a.ca.Cert, crypto.SHA256))
			signer := func(f *fixture) *x509.Certificate {
				t.Helper()
				_, body := f.get(t, path)
				r := parse(t, body, a.good, a.ca.Cert)
				if r.Status != xocsp.Good || r.Certificate == nil {
					t.Fatalf("status %d, responder certificate %v", r.Status, r.Certificate != nil)
				}
				return r.Certificate
			}
			if !signer(a).Equal(certA) {
				t.Fatal("node A's answer is not signed under its responder certificate")
			}
			if via != "first sight" {
				for range 2 { // the second from B's fast lane
					if !signer(b).Equal(certA) {
						t.Fatal("node B did not serve the answer node A cached")
					}
				}
			}

			// A's responder certificate is revoked; the revoking node
			// (A here) drops what it holds at once.
			serialA := core.SerialFromBig(certA.SerialNumber)
			now := time.Now()
			a.status.set(core.Certificate{Serial: serialA, IssuerID: "int", Status: core.StatusRevoked, NotAfter: certA.NotAfter,
				RevokedAt: now, RevocationReason: core.ReasonKeyCompromise})
			if err := a.r.Invalidate(ctx, "int", serialA); err != nil {
				t.Fatal(err)
			}
			switch via {
			case "event":
				if err := events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked("int", serialA)); err != nil {
					t.Fatal(err)
				}
			case "sweep": // the event was lost
				src := revocations{{Serial: serialA, RevokedAt: now, Reason: core.ReasonKeyCompromise}}
				if err := b.r.Sweep(ctx, src, now.Add(-time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(10 * time.Second) // the event crosses Redis asynchronously
			for signer(b).Equal(certA) {
				if via != "event" || time.Now().After(deadline) {
					t.Fatalf("node B serves node A's cached answer signed under the revoked responder certificate %s", serialA)
				}
				time.Sleep(20 * time.Millisecond)
			}
			for range 2 {
				if got := signer(b); !got.Equal(certB) {
					t.Fatalf("node B's answer is signed under %x, want its own responder certificate %x", got.SerialNumber, certB.SerialNumber)
				}
			}
			// The answer B cached in place of A's serves A too.
			if got := signer(a); got.Equal(certA) || !got.Equal(certB) && !got.Equal(a.r.ResponderCert("int")) {
				t.Fatalf("node A's answer is signed under %x after its responder certificate was revoked", got.SerialNumber)
			}
		})
	}
}

// A responder certificate is recorded before it signs anything; a cached
// answer signed under one the database does not know (it could never be
// revoked) is not served by a node that did not make it, but replaced.
func TestUnrecordedResponderNotTrusted(t *testing.T) {
	cache := storage.NewMemoryOCSPCache(0, time.Minute, nil)
	a := newFixture(t, func(o *ocsp.Options) { o.Cache = cache }) // records nothing
	b := newFixture(t, func(o *ocsp.Options) {
		o.Issuers = []ocsp.Issuer{{ID: "int", Cert: a.ca.Cert, Signer: a.ca.Key}}
		o.Status, o.Cache = a.status, cache
	})
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, a.good, a.ca.Cert, crypto.SHA256))
	_, body := a.get(t, path)
	certA := parse(t, body, a.good, a.ca.Cert).Certificate
	_, body = b.get(t, path)
	if got := parse(t, body, a.good, a.ca.Cert).Certificate; got == nil || got.Equal(certA) || !got.Equal(b.r.ResponderCert("int")) {
		t.Fatal("node B served an answer signed under a responder certificate it cannot look up")
	}
}
