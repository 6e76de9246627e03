package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"

	"github.com/strongroom-pki/strongroom/core"
)

// TestNameConstrainedCA: `ca init --permit/--exclude` makes a root with
// critical name constraints and `ca issuer add --permit` an intermediate
// with its own; what they issue passes openssl's and GnuTLS's chain checks;
// a name outside them is refused before anything is signed, over REST and
// at ACME's new-order; the issuers' listings show them.
func TestNameConstrainedCA(t *testing.T) {
	requireTool(t, "openssl")
	requireTool(t, "certtool")
	ctx := context.Background()
	// localhost and the loopback addresses stay permitted: the node's own
	// HTTPS certificate is for them.
	c := StartCA(t, Options{InitArgs: []string{"--permit", "dns:corp.internal,dns:localhost", "--permit", "ip:127.0.0.0/8",
		"--permit", "ip:::1/128", "--exclude", "dns:secret.corp.internal"}})
	if !strings.Contains(c.InitOutput, "name constraints: permit dns:corp.internal, permit dns:localhost, permit ip:127.0.0.0/8, permit ip:::1/128, exclude dns:secret.corp.internal") {
		t.Errorf("ca init does not show the root's constraints:\n%s", c.InitOutput)
	}
	ext := run(t, nil, "openssl", "x509", "-in", c.Root, "-noout", "-ext", "nameConstraints")
	for _, want := range []string{"critical", "Permitted:", "DNS:corp.internal", "IP:127.0.0.0/255.0.0.0", "Excluded:", "DNS:secret.corp.internal"} {
		if !strings.Contains(ext, want) {
			t.Errorf("root's nameConstraints lack %q:\n%s", want, ext)
		}
	}

	verify := func(t *testing.T, chain []byte) {
		t.Helper()
		dir := t.TempDir()
		certs := splitPEM(t, chain)
		leaf, inters := filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "inters.pem")
		writeFile(t, leaf, certs[0])
		writeFile(t, inters, bytes.Join(certs[1:], nil))
		run(t, nil, "openssl", "verify", "-CAfile", c.Root, "-untrusted", inters, leaf)
		writeFile(t, filepath.Join(dir, "chain.pem"), chain)
		out := run(t, nil, "certtool", "--verify", "--load-ca-certificate", c.Root, "--infile", filepath.Join(dir, "chain.pem"))
		if !strings.Contains(out, "Chain verification output: Verified") {
			t.Fatalf("certtool --verify:\n%s", out)
		}
	}
	issue := func(t *testing.T, name, issuer string) (*http.Response, []byte) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"csr": string(goCSR(t, name)), "issuer": issuer})
		return apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/json", "application/pem-certificate-chain", bytes.NewReader(body))
	}
	refused := func(t *testing.T, name, issuer, why string) {
		t.Helper()
		before := certCount(t, c)
		resp, body := issue(t, name, issuer)
		var p problemDoc
		if resp.StatusCode/100 != 4 || json.Unmarshal(body, &p) != nil || !strings.Contains(p.Detail, why) {
			t.Fatalf("issuing %s from %q: %s %s, want a 4xx problem saying %q", name, issuer, resp.Status, body, why)
		}
		if n := certCount(t, c); n != before {
			t.Fatalf("%d certificates after a refusal, %d before", n, before)
		}
	}

	resp, chain := issue(t, "app.corp.internal", "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("issuing inside the constraints: %s\n%s", resp.Status, chain)
	}
	verify(t, chain)
	refused(t, "www.example.com", "", `is outside the permitted DNS subtrees corp.internal, localhost: issuer intermediate cannot issue it (name constraints of "Strongroom Root CA")`)
	refused(t, "db.secret.corp.internal", "", `is inside the excluded DNS subtree "secret.corp.internal"`)

	// ACME refuses the name at new-order, as rejectedIdentifier.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &acme.Client{Key: key, DirectoryURL: c.HTTPSURL + "/acme/default/directory", HTTPClient: c.Client}
	if _, err := cl.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Fatalf("ACME account: %v", err)
	}
	_, err := cl.AuthorizeOrder(ctx, acme.DomainIDs("www.example.com"))
	var ae *acme.Error
	if !errors.As(err, &ae) || !strings.HasSuffix(ae.ProblemType, ":rejectedIdentifier") || !strings.Contains(err.Error(), "outside the permitted DNS subtrees") {
		t.Fatalf("ACME new-order outside the constraints: %v", err)
	}

	// An intermediate narrowed further, under the root's constraints.
	out := c.MustCLI(t, ctx, "issuer", "add", "team", "--permit", "dns:team.corp.internal")
	if !strings.Contains(out, "name constraints: permit dns:team.corp.internal") {
		t.Errorf("ca issuer add does not show the constraints:\n%s", out)
	}
	if out := c.MustCLI(t, ctx, "issuer", "list"); !strings.Contains(out, "permit dns:team.corp.internal") {
		t.Errorf("ca issuer list:\n%s", out)
	}
	// Constraints outside the root's would make an intermediate that can
	// issue nothing: refused before any key is made.
	if out, err := c.CLI(ctx, "issuer", "add", "wide", "--permit", "dns:evil.example"); err == nil || !strings.Contains(out, "could issue none of those names") {
		t.Errorf("an intermediate permitted outside the root's constraints: %v\n%s", err, out)
	}
	// A ceremony that fails after making its key (here zlint refuses a
	// 65-character common name) destroys the key, so it can be run again.
	if out, err := c.CLI(ctx, "issuer", "add", "again", "--common-name", strings.Repeat("x", 65)); err == nil || !strings.Contains(out, "refused by lints") {
		t.Fatalf("an intermediate with a 65-character common name: %v\n%s", err, out)
	}
	c.MustCLI(t, ctx, "issuer", "add", "again")
	if out := c.MustCLI(t, ctx, "hsm", "keys", "list"); strings.Contains(out, "wide") {
		t.Errorf("a refused ceremony left a key:\n%s", out)
	}
	c.Restart()
	resp, chain = issue(t, "web.team.corp.internal", "team")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("issuing from team inside its constraints: %s\n%s", resp.Status, chain)
	}
	verify(t, chain)
	refused(t, "app.corp.internal", "team", `is outside the permitted DNS subtrees team.corp.internal: issuer team cannot issue it`)

	resp, body := apiCall(t, c, "GET", "/issuers", c.AdminKey(), "", "", nil)
	type issuer struct {
		ID              string `json:"id"`
		NameConstraints []struct {
			Subject string   `json:"subject"`
			Permit  []string `json:"permit"`
			Exclude []string `json:"exclude"`
		} `json:"name_constraints"`
	}
	var list struct{ Issuers []issuer }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /issuers: %s\n%s", resp.Status, body)
	}
	i := slices.IndexFunc(list.Issuers, func(is issuer) bool { return is.ID == "team" })
	if i < 0 || len(list.Issuers[i].NameConstraints) != 2 ||
		!slices.Equal(list.Issuers[i].NameConstraints[0].Permit, []string{"dns:team.corp.internal"}) ||
		list.Issuers[i].NameConstraints[1].Subject != "Strongroom Root CA" ||
		!slices.Equal(list.Issuers[i].NameConstraints[1].Exclude, []string{"dns:secret.corp.internal"}) {
		t.Fatalf("GET /issuers: team's name constraints are not its own and the root's:\n%s", body)
	}
}

// splitPEM returns each PEM block of data, re-encoded.
func splitPEM(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		out = append(out, pem.EncodeToMemory(b))
	}
	if len(out) == 0 {
		t.Fatalf("no PEM in %q", data)
	}
	return out
}

// TestExternalSubordinateCA: `ca issuer sign` signs the CSR of a CA whose
// key Strongroom does not hold (made here with openssl, which then plays
// that CA) into a name-constrained subordinate CA; relying parties
// (openssl verify, GnuTLS) accept what it issues inside its constraints
// and refuse the rest; revoking it shows in the root's OCSP answers.
func TestExternalSubordinateCA(t *testing.T) {
	requireTool(t, "openssl")
	requireTool(t, "certtool")
	ctx := context.Background()
	c := StartCA(t, Options{})
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", path("sub.key"), "-subj", "/CN=Mesh CA/O=Team Mesh", "-out", path("sub.csr"))
	for _, tc := range []struct {
		args []string
		why  string
	}{
		{nil, "could issue for any DNS name"},
		// Every kind of name must be constrained, not just one.
		{[]string{"--permit", "dns:mesh.corp.internal", "--exclude", "ip:0.0.0.0/0"}, "could issue for any IPv6 address (--permit ip:fd00:20::/32, or --exclude ip:::/0 for none), any email address"},
		{[]string{"--unconstrained", "--path-len", "9"}, "--path-len 9: want 0 to 8"},
		{[]string{"--unconstrained", "--lifetime", "1h"}, "at least a day"},
	} {
		if out, err := c.CLI(ctx, append([]string{"issuer", "sign", path("sub.csr")}, tc.args...)...); err == nil || !strings.Contains(out, tc.why) {
			t.Fatalf("ca issuer sign %v: %v\n%s, want it refused saying %q", tc.args, err, out, tc.why)
		}
	}
	constrained := []string{"--permit", "dns:mesh.corp.internal", "--exclude", "ip:0.0.0.0/0,ip:::/0", "--permit", "email:invalid"}
	out := c.MustCLI(t, ctx, append([]string{"issuer", "sign", path("sub.csr"), "--out", path("sub.pem")}, constrained...)...)
	if !strings.Contains(out, "name constraints: permit dns:mesh.corp.internal, permit email:invalid, exclude ip:0.0.0.0/0, exclude ip:::/0") {
		t.Errorf("ca issuer sign output:\n%s", out)
	}
	// The officer's attestation in the HSM audit log says what was signed.
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var actor, details string
	if err := db.QueryRow(`SELECT actor, details FROM hsm_audit WHERE action = 'ceremony.sign-subordinate-ca'`).Scan(&actor, &details); err != nil ||
		actor != "officer" || !strings.Contains(details, `constraints="permit dns:mesh.corp.internal`) || !strings.Contains(details, "CN=Mesh CA") {
		t.Errorf("the signing's audit entry: %v %q %q", err, actor, details)
	}
	// A second certificate for the same key only on purpose: revoking one
	// for keyCompromise leaves the other valid.
	if out, err := c.CLI(ctx, append([]string{"issuer", "sign", path("sub.csr")}, constrained...)...); err == nil || !strings.Contains(out, "already has a valid CA certificate") {
		t.Fatalf("signing the same key twice: %v\n%s", err, out)
	}
	// An external CA named as the CA's own intermediate is refused.
	run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", path("twin.key"), "-subj", "/CN=Strongroom Intermediate CA", "-out", path("twin.csr"))
	if out, err := c.CLI(ctx, append([]string{"issuer", "sign", path("twin.csr")}, constrained...)...); err == nil || !strings.Contains(out, "is issuer intermediate's") {
		t.Fatalf("an external CA with the intermediate's name: %v\n%s", err, out)
	}
	sub := splitPEM(t, readFile(t, path("sub.pem")))[0]
	// The subordinate CA issues leaves itself, outside Strongroom.
	leaf := func(t *testing.T, san string) string {
		t.Helper()
		run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", path("leaf.key"), "-subj", "/CN=leaf", "-out", path("leaf.csr"))
		writeFile(t, path("ext"), []byte("subjectAltName="+san+"\nbasicConstraints=CA:FALSE\n"))
		run(t, nil, "openssl", "x509", "-req", "-in", path("leaf.csr"), "-CA", path("sub.pem"), "-CAkey", path("sub.key"),
			"-set_serial", "1", "-days", "30", "-extfile", path("ext"), "-out", path("leaf.pem"))
		writeFile(t, path("chain.pem"), append(readFile(t, path("leaf.pem")), sub...))
		return path("leaf.pem")
	}
	verify := func(t *testing.T, leafFile string) (openssl, gnutls string) {
		t.Helper()
		o, _ := exec.Command("openssl", "verify", "-CAfile", c.Root, "-untrusted", path("sub.pem"), leafFile).CombinedOutput()
		g, _ := exec.Command("certtool", "--verify", "--load-ca-certificate", c.Root, "--infile", path("chain.pem")).CombinedOutput()
		return string(o), string(g)
	}
	if o, g := verify(t, leaf(t, "DNS:api.mesh.corp.internal")); !strings.Contains(o, ": OK") || !strings.Contains(g, "Chain verification output: Verified") {
		t.Fatalf("a leaf inside the constraints:\nopenssl: %s\ngnutls: %s", o, g)
	}
	for san, want := range map[string]string{"DNS:www.example.com": "permitted subtree violation", "DNS:api.mesh.corp.internal,IP:10.1.1.1": "excluded subtree violation"} {
		if o, g := verify(t, leaf(t, san)); !strings.Contains(o, want) || !strings.Contains(g, "violates the signer's constraints") {
			t.Errorf("a leaf for %s:\nopenssl: %s\ngnutls: %s", san, o, g)
		}
	}

	// Recorded and revocable like the CA's own intermediates.
	cert := parsePEMCerts(t, sub)[0]
	serial := string(core.SerialFromBig(cert.SerialNumber))
	if out := c.MustCLI(t, ctx, "cert", "show", serial); !strings.Contains(out, "subordinate-ca") || !strings.Contains(out, "requester:  ca issuer sign") {
		t.Errorf("ca cert show %s:\n%s", serial, out)
	}
	ocsp := func() string {
		return run(t, nil, "openssl", "ocsp", "-issuer", c.Root, "-cert", path("sub.pem"), "-url", c.HTTPURL+"/ocsp", "-CAfile", c.Root, "-no_nonce")
	}
	if out := ocsp(); !strings.Contains(out, ": good") {
		t.Fatalf("OCSP for the subordinate CA:\n%s", out)
	}
	// A reissue for the same key, then a keyCompromise revocation of the
	// first: the second is named as still valid.
	out = c.MustCLI(t, ctx, append([]string{"issuer", "sign", path("sub.csr"), "--replace", "--out", path("sub2.pem")}, constrained...)...)
	second := string(core.SerialFromBig(parsePEMCerts(t, readFile(t, path("sub2.pem")))[0].SerialNumber))
	out = c.MustCLI(t, ctx, "cert", "revoke", serial, "--reason", "keyCompromise", "--ca")
	if !strings.Contains(out, "CA certificates with the same key stay valid until each is revoked") || !strings.Contains(out, second) {
		t.Errorf("revoking one of two CA certificates of a key for keyCompromise:\n%s", out)
	}
	if out := ocsp(); !strings.Contains(out, ": revoked") {
		t.Fatalf("OCSP after revoking the subordinate CA:\n%s", out)
	}
}
