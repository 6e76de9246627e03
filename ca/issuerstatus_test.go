package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// An issuer whose own certificate is revoked issues nothing more, once
// CheckIssuers has seen the revocation; the other issuers go on.
func TestRevokedIssuerStopsIssuing(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	c, root, inter := newTestCA(t, db, nil)
	// The intermediate's certificate, recorded as a ceremony records it.
	serial := recordCACert(t, db, root, inter)
	req := Request{CSR: makeCSR(t, testKey(t, "p256"), "", "a.example"), Profile: "tls-server", Issuer: inter.ID()}
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Issue(ctx, req); err != nil {
		t.Fatalf("issue before the revocation: %v", err)
	}
	if err := c.Revoke(ctx, serial, core.ReasonSuperseded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	// The CA's state, not the request, is at fault: a server-side kind.
	_, err := c.Issue(ctx, req)
	if core.KindOf(err) != core.KindUnavailable || !strings.Contains(err.Error(), "certificate is revoked") {
		t.Fatalf("issue from the revoked intermediate: %v", err)
	}
	if _, err := c.DryRun(ctx, req); core.KindOf(err) != core.KindUnavailable {
		t.Fatalf("dry run from the revoked intermediate: %v", err)
	}
	req.Issuer = root.ID()
	if _, err := c.Issue(ctx, req); err != nil {
		t.Fatalf("issue from the root, whose certificate is not revoked: %v", err)
	}
}

// recordCACert stores an issuer's certificate as a ceremony records it, so
// that revoking it is possible.
func recordCACert(t *testing.T, db Store, parent, is *Issuer) core.Serial {
	t.Helper()
	ctx := context.Background()
	ic := is.Certificate()
	now := time.Now().UTC()
	rec := &core.Certificate{Serial: core.SerialFromBig(ic.SerialNumber), IssuerID: parent.ID(), Profile: "subordinate-ca",
		Requester: "ceremony", Subject: ic.Subject.CommonName, NotBefore: ic.NotBefore, NotAfter: ic.NotAfter, TBS: ic.RawTBSCertificate, CreatedAt: now}
	if err := db.ReserveSerial(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordIntent(ctx, rec, now); err != nil {
		t.Fatal(err)
	}
	if err := db.StoreIssued(ctx, rec.Serial, ic.Raw, now); err != nil {
		t.Fatal(err)
	}
	return rec.Serial
}

// secondIntermediate is another intermediate under root, valid for life.
func secondIntermediate(t *testing.T, root *Issuer, id string, life time.Duration) *Issuer {
	t.Helper()
	k := freshKeyOf(t, "p256")
	ic, err := NewIntermediate(context.Background(), root, k.Public(), IntermediateOptions{
		CommonName: "Test Intermediate " + id, Organization: "Strongroom Test", Lifetime: life,
		CAIssuerURLs: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"},
		CRLURLs:      []string{"http://127.0.0.1:8080/crl/{issuer}.crl"},
	})
	if err != nil {
		t.Fatal(err)
	}
	is, err := NewIssuer(id, k, []*x509.Certificate{ic, root.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// A revoked default issuer hands requests that name no issuer to the next
// usable one in the configured order (an expired one is passed over too),
// with a warning naming both; a request naming the revoked one is still
// refused, as a server-side failure. With none usable, issuance is
// unavailable (503), not the client's fault.
func TestRevokedDefaultFallsBackToSpare(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	var logs syncLog
	now := time.Now()
	var short, spare *Issuer
	c, root, first := newTestCA(t, db, func(o *Options) {
		short = secondIntermediate(t, o.Issuers[1], "short", 48*time.Hour)
		spare = secondIntermediate(t, o.Issuers[1], "spare", 0)
		o.Issuers = []*Issuer{o.Issuers[0], short, spare}
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.Now = func() time.Time { logs.mu.Lock(); defer logs.mu.Unlock(); return now }
	})
	firstSerial := recordCACert(t, db, root, first)
	spareSerial := recordCACert(t, db, root, spare)
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	if d := c.DefaultIssuer(); d != first.ID() || logs.String() != "" {
		t.Fatalf("default %q before any revocation, log %q", d, logs.String())
	}
	if err := c.Revoke(ctx, firstSerial, core.ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	if d := c.DefaultIssuer(); d != short.ID() {
		t.Fatalf("default %q after the first was revoked, want %s", d, short.ID())
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN msg=\"the default issuer cannot sign") ||
		!strings.Contains(l, "issuer=short passed_over=\"intermediate (revoked: keyCompromise)\"") {
		t.Fatalf("log after the revocation:\n%s", l)
	}
	if st := c.IssuerStatus(first.ID()); !st.Revoked || st.Reason != core.ReasonKeyCompromise || st.RevokedAt.IsZero() || st.String() != "revoked" {
		t.Fatalf("status of the revoked issuer: %+v", st)
	}

	// Two days on, the short-lived one has expired: the spare issues.
	logs.mu.Lock()
	now = now.Add(72 * time.Hour)
	logs.mu.Unlock()
	req := Request{CSR: makeCSR(t, testKey(t, "p256"), "", "a.example"), Profile: "tls-server"}
	iss, err := c.Issue(ctx, req)
	if err != nil || iss.IssuerID != spare.ID() || iss.Certificate.CheckSignatureFrom(spare.Certificate()) != nil {
		t.Fatalf("issue naming no issuer: %v", err)
	}
	if st := c.IssuerStatus(short.ID()); !st.Expired || st.Usable() {
		t.Fatalf("status of the expired issuer: %+v", st)
	}
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	if l := logs.String(); !strings.Contains(l, "issuer=spare passed_over=\"intermediate (revoked: keyCompromise), short (expired)\"") {
		t.Fatalf("log after the expiry:\n%s", l)
	}

	// Asked of by name, the revoked issuer still refuses.
	req.Issuer = first.ID()
	if _, err := c.Issue(ctx, req); !errors.Is(err, core.ErrIssuerRevoked) || core.KindOf(err) != core.KindUnavailable {
		t.Fatalf("issue naming the revoked issuer: %v", err)
	}

	// None left.
	if err := c.Revoke(ctx, spareSerial, core.ReasonSuperseded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	req.Issuer = ""
	if _, err := c.Issue(ctx, req); !errors.Is(err, core.ErrNoIssuer) || core.KindOf(err) != core.KindUnavailable {
		t.Fatalf("issue with no usable issuer: %v", err)
	}
	if d := c.DefaultIssuer(); d != "" {
		t.Fatalf("default %q with none usable", d)
	}
	if _, err := c.Issuer(""); !errors.Is(err, core.ErrNoIssuer) {
		t.Fatalf("Issuer(\"\") with none usable: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR msg=\"no issuer can sign new TLS certificates") {
		t.Fatalf("log with none usable:\n%s", l)
	}
}

// syncLog is a log buffer safe for the CA's concurrent writes; its mutex
// also guards the test's clock.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
