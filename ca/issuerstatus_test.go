package ca

import (
	"context"
	"strings"
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
	ic := inter.Certificate()
	now := time.Now().UTC()
	rec := &core.Certificate{Serial: core.SerialFromBig(ic.SerialNumber), IssuerID: root.ID(), Profile: "subordinate-ca",
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
	req := Request{CSR: makeCSR(t, testKey(t, "p256"), "", "a.example"), Profile: "tls-server", Issuer: inter.ID()}
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Issue(ctx, req); err != nil {
		t.Fatalf("issue before the revocation: %v", err)
	}
	if err := c.Revoke(ctx, rec.Serial, core.ReasonSuperseded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.Issue(ctx, req)
	if core.KindOf(err) != core.KindRejected || !strings.Contains(err.Error(), "certificate is revoked") {
		t.Fatalf("issue from the revoked intermediate: %v", err)
	}
	if _, err := c.DryRun(ctx, req); core.KindOf(err) != core.KindRejected {
		t.Fatalf("dry run from the revoked intermediate: %v", err)
	}
	req.Issuer = root.ID()
	if _, err := c.Issue(ctx, req); err != nil {
		t.Fatalf("issue from the root, whose certificate is not revoked: %v", err)
	}
}
