package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
)

// readyzOf is /readyz's status code, status and reason through client.
func readyzOf(t *testing.T, c *CA, client *http.Client) (int, string, string) {
	t.Helper()
	resp, err := client.Get(c.HTTPSURL + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var body struct{ Status, Reason string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body.Status, body.Reason
}

// issuerEntry is one issuer of GET /api/v1/issuers.
type issuerEntry struct {
	ID               string
	Default          bool
	Status           string
	RevocationReason string `json:"revocation_reason"`
}

// issuersOf is GET /api/v1/issuers, by id.
func issuersOf(t *testing.T, c *CA) map[string]issuerEntry {
	t.Helper()
	resp, body := apiCall(t, c, "GET", "/issuers", c.AdminKey(), "", "", nil)
	var list struct{ Issuers []issuerEntry }
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /issuers: %s %v\n%s", resp.Status, err, body)
	}
	out := map[string]issuerEntry{}
	for _, is := range list.Issuers {
		out[is.ID] = is
	}
	return out
}

// TestRevokedDefaultIntermediate is the compromise drill with a spare
// configured: the default intermediate is revoked for keyCompromise while
// the CA serves; issuance moves to the spare at once and after a restart
// (the node starts, its HTTPS certificate from the spare); OCSP still
// answers for what the revoked one issued; the issuer list, the CLI and
// the API say it is revoked; `ca issuer default` makes the spare the
// configured default (refusing the revoked one and an unknown one),
// keeping the file's comments.
func TestRevokedDefaultIntermediate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := StartCA(t, Options{})
	config := filepath.Join(c.Dir, "strongroom.yaml")
	c.MustCLI(t, ctx, "issuer", "add", "intermediate-3") // the spare, after the default
	c.Restart()
	inter := parsePEMCerts(t, readFile(t, c.Intermediate))[0]
	spare := parsePEMCerts(t, readFile(t, filepath.Join(c.Dir, "intermediate-3.pem")))[0]
	old := issueChain(t, c, goCSR(t, "old.localhost"))
	if !bytes.Equal(old[0].RawIssuer, inter.RawSubject) {
		t.Fatalf("first certificate from %s, want the default intermediate", old[0].Issuer)
	}

	out := c.MustCLI(t, ctx, "cert", "revoke", string(core.SerialFromBig(inter.SerialNumber)), "--ca", "--reason", "keyCompromise")
	if !strings.Contains(out, "through the running server") {
		t.Fatalf("ca cert revoke --ca:\n%s", out)
	}
	if chain := issueChain(t, c, goCSR(t, "during.localhost")); !bytes.Equal(chain[0].RawIssuer, spare.RawSubject) {
		t.Fatalf("certificate issued after the revocation comes from %s, want intermediate-3", chain[0].Issuer)
	}
	waitFor(t, "a warning naming the revoked default and the spare", func() bool {
		return strings.Contains(c.Output(), `issuer=intermediate-3 passed_over="intermediate (revoked: keyCompromise)"`)
	})

	c.Restart() // it failed to start here, with the spare unused
	conn, err := tls.Dial("tcp", strings.TrimPrefix(c.HTTPSURL, "https://"), c.Client.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatalf("HTTPS after the restart: %v", err)
	}
	served := conn.ConnectionState().PeerCertificates
	conn.Close()
	if !bytes.Equal(served[0].RawIssuer, spare.RawSubject) {
		t.Fatalf("the node's HTTPS certificate comes from %s, want intermediate-3", served[0].Issuer)
	}
	if code, st, _ := readyzOf(t, c, c.Client); code != 200 || st != "ready" {
		t.Fatalf("readyz with the spare issuing: %d %s", code, st)
	}
	chain := issueChain(t, c, goCSR(t, "after.localhost"))
	if !bytes.Equal(chain[0].RawIssuer, spare.RawSubject) || !bytes.Equal(chain[1].Raw, spare.Raw) {
		t.Fatalf("certificate after the restart from %s, want intermediate-3", chain[0].Issuer)
	}
	// OCSP answers for both: what the revoked one issued (signed with its
	// own key now) and what the spare issues.
	req, _ := ocsp.CreateRequest(old[0], inter, nil)
	if r := ocspGet(t, c, req, false, old[0], inter); r.Status != ocsp.Good {
		t.Fatalf("OCSP for the revoked intermediate's certificate: %d", r.Status)
	}
	req, _ = ocsp.CreateRequest(chain[0], spare, nil)
	if r := ocspGet(t, c, req, false, chain[0], spare); r.Status != ocsp.Good {
		t.Fatalf("OCSP for the spare's certificate: %d", r.Status)
	}
	fetchCRL(t, c, "intermediate.crl", inter)

	list := issuersOf(t, c)
	if is := list["intermediate"]; is.Status != "revoked" || is.RevocationReason != "keyCompromise" || is.Default {
		t.Fatalf("GET /issuers lists the revoked intermediate as %+v", is)
	}
	if is := list["intermediate-3"]; is.Status != "valid" || !is.Default {
		t.Fatalf("GET /issuers lists the spare as %+v", is)
	}
	out = c.MustCLI(t, ctx, "issuer", "list")
	wantAll(t, "ca issuer list", out, "intermediate    intermediate            revoked (keyCompromise,",
		"intermediate-3  intermediate (default)  valid", "ca issuer default intermediate-3")

	// Make the spare the configured default; the file's comments stay.
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# the operator's note\n")
	f.Close()
	for _, bad := range []struct{ id, want string }{
		{"intermediate", "revoked (keyCompromise"},
		{"nope", `no intermediate "nope"`},
	} {
		if out, err := c.CLI(ctx, "issuer", "default", bad.id); err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("ca issuer default %s: %v\n%s", bad.id, err, out)
		}
	}
	out = c.MustCLI(t, ctx, "issuer", "default", "intermediate-3")
	wantAll(t, "ca issuer default", out, "now the default", "Restart ca serve")
	yaml := string(readFile(t, config))
	if i, j := strings.Index(yaml, "id: intermediate-3"), strings.Index(yaml, "id: intermediate\n"); i < 0 || j < 0 || i > j ||
		!strings.Contains(yaml, "# the operator's note") {
		t.Fatalf("strongroom.yaml after ca issuer default:\n%s", yaml)
	}
	if out := c.MustCLI(t, ctx, "issuer", "default", "intermediate-3"); !strings.Contains(out, "already the default") {
		t.Fatalf("ca issuer default again:\n%s", out)
	}
	c.Restart()
	if chain := issueChain(t, c, goCSR(t, "last.localhost")); !bytes.Equal(chain[0].RawIssuer, spare.RawSubject) {
		t.Fatalf("certificate after ca issuer default from %s", chain[0].Issuer)
	}
	if out := c.MustCLI(t, ctx, "issuer", "list"); strings.Contains(out, "passes over") {
		t.Fatalf("ca issuer list still passes over an issuer:\n%s", out)
	}
}

// TestNoUsableIntermediate: with its only intermediate revoked, the node
// still starts and serves OCSP, CRLs and issuer certificates; its HTTPS
// listener has a self-signed certificate (nothing of the CA may sign
// it), /readyz says degraded with the reason, the signing gauge reads 0,
// and issuance is a 503 problem saying why, never a client error.
func TestNoUsableIntermediate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := StartCA(t, Options{})
	inter := parsePEMCerts(t, readFile(t, c.Intermediate))[0]
	root := parsePEMCerts(t, readFile(t, c.Root))[0]
	leaf := issueChain(t, c, goCSR(t, "old.localhost"))[0]
	prom := c.NewAPIKey(t, "--name", "prom", "--scopes", "metrics")
	c.MustCLI(t, ctx, "cert", "revoke", string(core.SerialFromBig(inter.SerialNumber)), "--ca", "--reason", "keyCompromise")
	issue := func() (int, string) {
		t.Helper()
		resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "", bytes.NewReader(goCSR(t, "new.localhost")))
		return resp.StatusCode, string(body)
	}
	// Serving on: the HTTPS certificate it has is kept.
	if code, body := issue(); code != http.StatusServiceUnavailable || !strings.Contains(body, "no issuer can sign new certificates") {
		t.Fatalf("issuing with the only intermediate revoked: %d %s", code, body)
	}

	c.Stop()
	c.start()
	// Nothing can sign a certificate the root's trust accepts: wait with
	// a client that takes the self-signed one.
	trusting := c.Client
	c.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitFor(t, "the node to answer /readyz", func() bool {
		resp, err := c.Client.Get(c.HTTPSURL + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if code, st, reason := readyzOf(t, c, c.Client); code != 200 || st != "degraded" || !strings.Contains(reason, "no issuer can sign") {
		t.Fatalf("readyz with no usable intermediate: %d %s %q", code, st, reason)
	}
	if _, err := trusting.Get(c.HTTPSURL + "/readyz"); err == nil {
		t.Fatal("a client trusting the root accepted the HTTPS certificate")
	}
	if v := metricValue(t, c, prom, "strongroom_ca_signing_available"); v != "0" {
		t.Fatalf("strongroom_ca_signing_available %s", v)
	}
	if code, body := issue(); code != http.StatusServiceUnavailable || !strings.Contains(body, "no issuer can sign new certificates") {
		t.Fatalf("issuing after the restart: %d %s", code, body)
	}
	waitFor(t, "the self-signed HTTPS certificate to be logged", func() bool { return strings.Contains(c.Output(), "HTTPS serves a self-signed one") })
	// Revocation data and issuer certificates on plain HTTP.
	req, _ := ocsp.CreateRequest(leaf, inter, nil)
	if r := ocspGet(t, c, req, false, leaf, inter); r.Status != ocsp.Good {
		t.Fatalf("OCSP for the revoked intermediate's certificate: %d", r.Status)
	}
	req, _ = ocsp.CreateRequest(inter, root, nil)
	if r := ocspGet(t, c, req, false, inter, root); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
		t.Fatalf("OCSP for the intermediate: status %d reason %d", r.Status, r.RevocationReason)
	}
	fetchCRL(t, c, "intermediate.crl", inter)
	if crl := fetchCRL(t, c, "root.crl", root); crlEntry(crl, inter) == nil {
		t.Fatal("the root's CRL does not list the intermediate")
	}
	if resp, body := httpGet(t, c.HTTPURL+"/issuers/intermediate.crt"); resp.StatusCode != 200 || !bytes.Equal(body, inter.Raw) {
		t.Fatalf("GET /issuers/intermediate.crt: %s", resp.Status)
	}
	if out := c.MustCLI(t, ctx, "issuer", "list"); !strings.Contains(out, "No intermediate can issue") {
		t.Fatalf("ca issuer list with none usable:\n%s", out)
	}
}
