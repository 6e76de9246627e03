package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"
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
