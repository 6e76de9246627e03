package ocsp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/storage"
)

// TestRevokedResponderCertReplaced: a responder certificate carries
// id-pkix-ocsp-nocheck, so once it is revoked the responder must stop
// using it at once. A revocation event naming it makes the responder
// certify a new key, and no answer signed under the revoked certificate
// is served again, from the shared cache or the fast lane.
func TestRevokedResponderCertReplaced(t *testing.T) {
	for _, via := range []string{"event", "sweep"} {
		t.Run(via, func(t *testing.T) {
			f := newFixture(t, nil)
			f.keys.rotate = true
			ctx := context.Background()
			if err := f.r.Warm(ctx); err != nil {
				t.Fatal(err)
			}
			old := f.r.ResponderCert("int")
			path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
			_, body := f.get(t, path)
			if r := parse(t, body, f.good, f.ca.Cert); !r.Certificate.Equal(old) {
				t.Fatal("answer not signed under the first responder certificate")
			}
			serial := core.SerialFromBig(old.SerialNumber)
			f.status.set(core.Certificate{Serial: serial, IssuerID: "int", Status: core.StatusRevoked,
				RevokedAt: f.clock.now(), RevocationReason: core.ReasonKeyCompromise})
			switch via {
			case "event":
				if err := f.events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked("int", serial)); err != nil {
					t.Fatal(err)
				}
			case "sweep": // the event was lost
				src := revocations{{Serial: serial, RevokedAt: f.clock.now(), Reason: core.ReasonKeyCompromise}}
				if err := f.r.Sweep(ctx, src, f.clock.now().Add(-time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range []string{path, path} { // the second from the fast lane
				_, body = f.get(t, p)
				r := parse(t, body, f.good, f.ca.Cert)
				if r.Certificate == nil || r.Certificate.Equal(old) {
					t.Fatal("answer signed under the revoked responder certificate")
				}
				if r.Certificate.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(old.PublicKey) {
					t.Fatal("the revoked responder key was certified again")
				}
			}
			if cur := f.r.ResponderCert("int"); cur == nil || cur.Equal(old) {
				t.Fatal("responder certificate not replaced")
			}
		})
	}
}

// revokedIssuer refuses every certificate as the CA does once the issuer's
// own certificate is revoked.
type revokedIssuer struct{}

func (revokedIssuer) SignCertificate(context.Context, string, *x509.Certificate, crypto.PublicKey) ([]byte, error) {
	return nil, core.Because(core.ErrIssuerRevoked, "issuer int's certificate is revoked")
}

// A revoked issuer certifies no responder; its certificates' status is
// still answered, signed by the issuer key itself, not tryLater forever.
func TestRevokedIssuerSignsItsOwnAnswers(t *testing.T) {
	f := newFixture(t, func(o *ocsp.Options) { o.CertIssuer = revokedIssuer{} })
	_, body := f.post(t, request(t, f.revoked, f.ca.Cert, crypto.SHA256))
	r := parse(t, body, f.revoked, f.ca.Cert)
	if r.Status != xocsp.Revoked || r.Certificate != nil {
		t.Fatalf("status %d, responder certificate %v; want revoked, signed by the issuer", r.Status, r.Certificate)
	}
}
