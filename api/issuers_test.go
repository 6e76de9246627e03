package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// TestRevokedIssuer: GET /issuers shows an issuer whose own certificate is
// revoked as revoked, with when and why, and not as the default; issuance
// from it, named or by default (it is the only one), is a 503 problem that
// says why (the CA's state, not the client's request), not a 422.
func TestRevokedIssuer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, nil)
	ic := e.inter.Certificate()
	now := time.Now().UTC()
	rec := &core.Certificate{Serial: core.SerialFromBig(ic.SerialNumber), IssuerID: e.root.ID(), Profile: "subordinate-ca",
		Requester: "ceremony", Subject: ic.Subject.CommonName, NotBefore: ic.NotBefore, NotAfter: ic.NotAfter, TBS: ic.RawTBSCertificate, CreatedAt: now}
	if err := e.db.ReserveSerial(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := e.db.RecordIntent(ctx, rec, now); err != nil {
		t.Fatal(err)
	}
	if err := e.db.StoreIssued(ctx, rec.Serial, ic.Raw, now); err != nil {
		t.Fatal(err)
	}
	if err := e.ca.RevokeAndBlockKey(ctx, rec.Serial, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := e.ca.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}

	resp, body := e.do(t, "GET", "/issuers", "reader", "", nil)
	var list struct{ Issuers []IssuerResponse }
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != http.StatusOK || len(list.Issuers) != 2 {
		t.Fatalf("issuers: %d %s", resp.StatusCode, body)
	}
	// The other issuer is the code signing one, which is never the
	// default (its chain does not allow serverAuth).
	for _, is := range list.Issuers {
		if is.Default || is.ID == e.inter.ID() && (is.Status != "revoked" || is.RevocationReason != "keyCompromise" || is.RevokedAt.IsZero()) {
			t.Fatalf("the issuers are listed as %s", body)
		}
	}

	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, issuer := range []string{"", e.inter.ID()} {
		resp, body = e.do(t, "POST", "/certificates", "issuer", "application/json",
			jsonBody(t, map[string]any{"csr": pemCSR(newCSR(t, k, "", "a.corp.internal")), "issuer": issuer}))
		var p Problem
		json.Unmarshal(body, &p)
		want := "no issuer can sign new certificates"
		if issuer != "" {
			want = "certificate is revoked"
		}
		if resp.StatusCode != http.StatusServiceUnavailable || p.Type != problemBase+"unavailable" || !strings.Contains(p.Detail, want) ||
			resp.Header.Get("Retry-After") == "" {
			t.Errorf("issuing from issuer %q: %d %s", issuer, resp.StatusCode, body)
		}
	}
}
