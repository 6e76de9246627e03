package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
)

// TestDamagedResponderKeyReplaced: a node whose OCSP responder key was
// damaged answered tryLater (strongroom_ocsp_unanswered_total{kind="key"})
// until an operator acted. Started on a damaged key, it makes a fresh one
// and certifies it, answers good and revoked again, and says so once in a
// warning naming the issuer and `ca hsm status`; a restart uses the same
// key and certificate; the damaged key stays listed for the operator, and
// counted in strongroom_hsm_damaged_keys.
func TestDamagedResponderKeyReplaced(t *testing.T) {
	c := StartCA(t, Options{})
	ctx := context.Background()
	good := issueChain(t, c, goCSR(t, "good.localhost"))
	revoked := issueChain(t, c, goCSR(t, "revoked.localhost"))
	c.MustCLI(t, ctx, "cert", "revoke", string(core.SerialFromBig(revoked[0].SerialNumber)), "--reason", "superseded")
	responder := func() *x509.Certificate {
		t.Helper()
		var certs []*x509.Certificate
		for _, tc := range []struct {
			chain []*x509.Certificate
			want  int
		}{{good, ocsp.Good}, {revoked, ocsp.Revoked}} {
			req, err := ocsp.CreateRequest(tc.chain[0], tc.chain[1], nil)
			if err != nil {
				t.Fatal(err)
			}
			r := ocspGet(t, c, req, false, tc.chain[0], tc.chain[1])
			if r.Status != tc.want || r.Certificate == nil {
				t.Fatalf("status %d (want %d), responder certificate %v", r.Status, tc.want, r.Certificate != nil)
			}
			certs = append(certs, r.Certificate)
		}
		if !certs[0].Equal(certs[1]) {
			t.Fatal("the two answers carry different responder certificates")
		}
		return certs[0]
	}
	before := responder()

	c.Stop()
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE hsm_objects SET sealed = zeroblob(64) WHERE label = 'ocsp-responder-intermediate'`)
	db.Close()
	if n, _ := res.RowsAffected(); err != nil || n == 0 {
		t.Fatalf("damaging the responder key: %v (%d rows)", err, n)
	}
	c.start()
	c.WaitReady()
	after := responder()
	if after.Equal(before) || after.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(before.PublicKey) {
		t.Fatal("answers still signed with the damaged responder key's certificate")
	}
	responder() // answered from the cache, or signed again: no other key either way
	c.Stop()    // writes the log out
	warnings := regexp.MustCompile(`(?m)^.*OCSP responder key damaged.*$`).FindAllString(c.Output(), -1)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "intermediate") || !strings.Contains(warnings[0], "ca hsm status") {
		t.Fatalf("want one warning naming the issuer and ca hsm status, got %q", warnings)
	}

	c.start()
	c.WaitReady()
	if again := responder(); !again.Equal(after) {
		t.Fatalf("after a restart, responder certificate %x, want %x again", again.SerialNumber, after.SerialNumber)
	}
	if out, err := c.CLI(ctx, "hsm", "keys", "list"); !strings.Contains(out, "ocsp-responder-intermediate.2 ") ||
		!strings.Contains(out, `DAMAGED`) || strings.Contains(out, "ocsp-responder-intermediate.3") {
		t.Fatalf("ca hsm keys list: %v\n%s", err, out)
	}
	if out, err := c.CLI(ctx, "hsm", "status"); err == nil || !strings.Contains(out, `label="ocsp-responder-intermediate"`) {
		t.Fatalf("ca hsm status, want the damaged key still listed: %v\n%s", err, out)
	}
	prom := c.NewAPIKey(t, "--name", "prom", "--scopes", "metrics")
	c.waitFor(t, "the check of every key at start", func() bool { return strings.Contains(c.Output(), "damaged keys in the keystore") })
	if g := metricValue(t, c, prom, "strongroom_hsm_damaged_keys"); g != "1" {
		t.Errorf("strongroom_hsm_damaged_keys = %s, want 1", g)
	}
}

// TestDamagedResponderKeyReplacedWhileServing: a serving node whose
// responder key is found damaged (by its periodic comparison with the
// keystore, which drops the key) answered internalError to every request
// its caches could not answer, until the certificate's renewal weeks
// later. It answers again under a fresh key's certificate; the key counts
// in strongroom_hsm_damaged_keys as soon as it is found.
func TestDamagedResponderKeyReplacedWhileServing(t *testing.T) {
	c := StartCA(t, Options{})
	ctx := context.Background()
	leaf := issueChain(t, c, goCSR(t, "serving.localhost"))
	req, err := ocsp.CreateRequest(leaf[0], leaf[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	before := ocspGet(t, c, req, false, leaf[0], leaf[1]).Certificate
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE hsm_objects SET attrs = CAST(REPLACE(CAST(attrs AS TEXT), '"shared_with":null', '"shared_with":["x"]') AS BLOB)
		WHERE label = 'ocsp-responder-intermediate'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to find the key altered", func() bool { return strings.Contains(c.Output(), "key altered outside the HSM") })
	// Counted at once, not at the next hourly check of every key.
	if g := metricValue(t, c, c.NewAPIKey(t, "--name", "prom", "--scopes", "metrics"), "strongroom_hsm_damaged_keys"); g != "1" {
		t.Errorf("strongroom_hsm_damaged_keys = %s once the key sync found the key altered, want 1", g)
	}
	// Revoked: the cached good answer is dropped, so a new one is signed.
	c.MustCLI(t, ctx, "cert", "revoke", string(core.SerialFromBig(leaf[0].SerialNumber)), "--reason", "superseded")
	waitFor(t, "a revoked answer under a new responder certificate", func() bool {
		_, body := httpGet(t, c.HTTPURL+"/ocsp/"+base64.StdEncoding.EncodeToString(req))
		r, err := ocsp.ParseResponseForCert(body, leaf[0], leaf[1])
		return err == nil && r.Status == ocsp.Revoked && r.Certificate != nil && !r.Certificate.Equal(before)
	})
}
