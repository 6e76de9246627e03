package ra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

func TestRenew(t *testing.T) {
	c, _ := newCA(t)
	ctx := context.Background()
	a, err := New(Options{CA: c, Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issue := func(profile string, life time.Duration, names ...string) *x509.Certificate {
		t.Helper()
		iss, err := c.Issue(ctx, caRequest(t, key, profile, life, names...))
		if err != nil {
			t.Fatal(err)
		}
		return iss.Certificate
	}
	cur := issue("tls-server", 10*24*time.Hour, "www.corp.internal", "10.1.2.3")

	got, err := a.Renew(ctx, RenewRequest{Current: cur})
	if err != nil {
		t.Fatal(err)
	}
	n := got.Certificate
	if n.SerialNumber.Cmp(cur.SerialNumber) == 0 {
		t.Fatal("the renewal reused the serial")
	}
	if !slices.Equal(n.DNSNames, cur.DNSNames) || len(n.IPAddresses) != 1 || !n.IPAddresses[0].Equal(cur.IPAddresses[0]) ||
		n.Subject.CommonName != cur.Subject.CommonName || string(n.RawSubjectPublicKeyInfo) != string(cur.RawSubjectPublicKeyInfo) {
		t.Fatalf("identity changed: %v %v %q", n.DNSNames, n.IPAddresses, n.Subject.CommonName)
	}
	if life := n.NotAfter.Sub(n.NotBefore); life != 10*24*time.Hour {
		t.Fatalf("lifetime %s, want the current certificate's 240h", life)
	}
	rec, err := a.Certificate(ctx, got.Serial)
	if err != nil || rec.Profile != "tls-server" || rec.Requester != RenewalPrincipal(core.SerialFromBig(cur.SerialNumber)) {
		t.Fatalf("record %+v, %v", rec, err)
	}

	// Rekey: the CSR gives the key, never the names.
	key2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, err := a.Renew(ctx, RenewRequest{Current: cur, CSR: csrFor(t, key2, "", "other.corp.internal")})
	if err != nil {
		t.Fatal(err)
	}
	if !rk.Certificate.PublicKey.(*ecdsa.PublicKey).Equal(&key2.PublicKey) || !slices.Equal(rk.Certificate.DNSNames, cur.DNSNames) {
		t.Fatalf("rekey: names %v", rk.Certificate.DNSNames)
	}

	badCSR := csrFor(t, key2, "", "www.corp.internal")
	badCSR.Signature[9] ^= 1
	tampered := *cur
	tampered.Raw = append([]byte{}, cur.Raw...)
	tampered.Raw[len(tampered.Raw)-3] ^= 1
	revoked := issue("tls-server", time.Hour, "r.corp.internal")
	if err := a.Revoke(ctx, core.SerialFromBig(revoked.SerialNumber), core.ReasonSuperseded, time.Time{}, "test"); err != nil {
		t.Fatal(err)
	}
	codeSigning := issue("code-signing", time.Hour, "build.corp.internal")
	long := issue("tls-server", 60*24*time.Hour, "long.corp.internal")

	strict := testPolicy
	strict.DeniedDNSSuffixes = []string{"www.corp.internal"}
	aStrict, err := New(Options{CA: c, Policy: strict})
	if err != nil {
		t.Fatal(err)
	}
	off := testPolicy
	off.Renewal.Disabled = true
	aOff, _ := New(Options{CA: c, Policy: off})
	onlyClient := testPolicy
	onlyClient.Renewal.Profiles = []string{"tls-client"}
	aClient, _ := New(Options{CA: c, Policy: onlyClient})

	for _, tc := range []struct {
		name string
		a    *Authority
		rr   RenewRequest
		kind core.Kind
	}{
		{"no certificate", a, RenewRequest{}, core.KindUnauthenticated},
		{"revoked", a, RenewRequest{Current: revoked}, core.KindUnauthenticated},
		{"not the stored DER", a, RenewRequest{Current: &tampered}, core.KindUnauthenticated},
		{"rekey CSR with a bad signature", a, RenewRequest{Current: cur, CSR: badCSR}, core.KindBadCSR},
		{"code signing is not renewable by default", a, RenewRequest{Current: codeSigning}, core.KindForbidden},
		{"renewal turned off", aOff, RenewRequest{Current: cur}, core.KindForbidden},
		{"profile not in the renewable list", aClient, RenewRequest{Current: cur}, core.KindForbidden},
		{"a name today's policy denies", aStrict, RenewRequest{Current: cur}, core.KindRejected},
	} {
		if _, err := tc.a.Renew(ctx, tc.rr); core.KindOf(err) != tc.kind {
			t.Errorf("%s: got %v (%v), want %v", tc.name, core.KindOf(err), err, tc.kind)
		}
	}
	// A lifetime over today's maximum (policy: 30 days for tls-server) is
	// cut to the maximum, not refused.
	l, err := a.Renew(ctx, RenewRequest{Current: long})
	if err != nil {
		t.Fatal(err)
	}
	if life := l.Certificate.NotAfter.Sub(l.Certificate.NotBefore); life != 30*24*time.Hour {
		t.Fatalf("lifetime %s, want policy's 720h", life)
	}
	if _, err := New(Options{CA: c, Policy: Policy{Renewal: RenewalPolicy{Profiles: []string{"nope"}}}}); err == nil {
		t.Fatal("an unknown renewal profile was accepted")
	}
}

func caRequest(t *testing.T, key *ecdsa.PrivateKey, profile string, life time.Duration, names ...string) ca.Request {
	return ca.Request{CSR: csrFor(t, key, names[0], names...), Profile: profile, Lifetime: life, Requester: "test"}
}

// Renewal asks whether whoever requested the first certificate of a line
// is still granted its profile: withdrawing a grant stops the renewals,
// however many renewals down the line.
func TestRenewalFollowsProfileAccess(t *testing.T) {
	c, _ := newCA(t)
	ctx := context.Background()
	a, err := New(Options{CA: c, Policy: testPolicy}) // tls-client: apikey:*
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := caRequest(t, key, "tls-client", time.Hour, "svc.corp.internal")
	req.Requester = "apikey:x"
	first, err := c.Issue(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.Renew(ctx, RenewRequest{Current: first.Certificate})
	if err != nil {
		t.Fatalf("renewal while granted: %v", err)
	}
	withdrawn := testPolicy
	withdrawn.ProfileAccess = map[string][]string{"tls-client": {"apikey:other"}}
	aw, err := New(Options{CA: c, Policy: withdrawn})
	if err != nil {
		t.Fatal(err)
	}
	_, err = aw.Renew(ctx, RenewRequest{Current: second.Certificate})
	if core.KindOf(err) != core.KindForbidden || !strings.Contains(err.Error(), `no longer granted to "apikey:x"`) {
		t.Fatalf("renewal of a renewal after the grant was withdrawn: %v", err)
	}
	if _, err := a.Renew(ctx, RenewRequest{Current: second.Certificate}); err != nil {
		t.Fatalf("renewal of a renewal while granted: %v", err)
	}
}
