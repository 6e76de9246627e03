package e2e

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestExternalRoot: the enterprise layout, an offline root (here openssl,
// playing the root's machine) above a policy CA, and Strongroom as the
// issuing CA below them. `ca init --external-root` makes no root key and
// writes the intermediate's CSR; `ca serve` refuses to start until `ca
// issuer install` has put the signed certificate in place, and install
// refuses certificates that cannot work; then what the CA issues verifies
// with openssl and GnuTLS from the offline root alone, OCSP answers for it
// and the intermediate's CRL is served, while the root's is not (the root
// publishes its own).
func TestExternalRoot(t *testing.T) {
	requireTool(t, "openssl")
	requireTool(t, "certtool")
	ctx := context.Background()
	w := t.TempDir()
	path := func(name string) string { return filepath.Join(w, name) }
	ext := func(name, text string) string {
		writeFile(t, path(name), []byte(text))
		return path(name)
	}
	caExt := ext("ca.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"+
		"subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\ncrlDistributionPoints=URI:http://pki.example.com/policy.crl\n")
	// The offline root and a policy CA below it.
	run(t, nil, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
		"-keyout", path("root.key"), "-out", path("root.pem"), "-days", "3650", "-subj", "/O=Example Corp/CN=Example Offline Root",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
		"-keyout", path("policy.key"), "-subj", "/O=Example Corp/CN=Example Policy CA", "-out", path("policy.csr"))
	sign := func(csr, caCert, caKey, extFile, out string) string {
		run(t, nil, "openssl", "x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-days", "1000", "-sha384",
			"-extfile", extFile, "-out", path(out))
		return path(out)
	}
	// The policy CA ends in 200 days, before the intermediate below it.
	policy := path("policy.pem")
	run(t, nil, "openssl", "x509", "-req", "-in", path("policy.csr"), "-CA", path("root.pem"), "-CAkey", path("root.key"), "-days", "200",
		"-extfile", ext("policy.ext", "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"),
		"-out", policy)

	var dir string
	refused := func(args []string, why string) {
		t.Helper()
		out, err := exec.Command(caBinary, append(args, "--data", dir)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), why) {
			t.Fatalf("ca %v: %v\n%s\nwant it refused saying %q", args, err, out, why)
		}
	}
	c := StartCA(t, Options{InitArgs: []string{"--external-root", path("root.pem")}, Configure: func(_ testing.TB, d string) {
		dir = d
		csr := filepath.Join(dir, "intermediate.csr")
		if _, err := os.Stat(filepath.Join(dir, "intermediate.pem")); err == nil {
			t.Fatal("ca init --external-root wrote an intermediate certificate")
		}
		keys := string(mustRun(t, caBinary, "hsm", "keys", "list", "--data", dir))
		if strings.Contains(keys, " root ") || !strings.Contains(keys, "intermediate") {
			t.Errorf("ca hsm keys after ca init --external-root (no root key, an intermediate key):\n%s", keys)
		}
		refused([]string{"serve"}, "is not installed yet: have the external root sign "+csr+", then run ca issuer install intermediate")
		// What install refuses: a certificate that is no CA, one for
		// another key, one without cRLSign, one under another root, and
		// one below a CA that allows no CA below it.
		refused([]string{"issuer", "install", "intermediate", "--cert", sign(csr, path("root.pem"), path("root.key"),
			ext("leaf.ext", "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"), "leaf.pem")}, "leaf.pem is not a CA certificate")
		run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", path("other.key"), "-subj", "/CN=other", "-out", path("other.csr"))
		refused([]string{"issuer", "install", "intermediate", "--cert", sign(path("other.csr"), path("root.pem"), path("root.key"), caExt, "other.pem")},
			"is not for intermediate intermediate's key")
		refused([]string{"issuer", "install", "intermediate", "--cert", sign(csr, path("root.pem"), path("root.key"),
			ext("nocrl.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\n"), "nocrl.pem")}, "must include keyCertSign and cRLSign")
		run(t, nil, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", path("other-root.key"), "-out", path("other-root.pem"), "-days", "100", "-subj", "/CN=Another Root")
		refused([]string{"issuer", "install", "intermediate", "--cert", sign(csr, path("other-root.pem"), path("other-root.key"), caExt, "wrong-root.pem")},
			`is not signed by the root "Example Offline Root"`)
		writeFile(t, path("tight.pem"), append(readFile(t, sign(csr, policy, path("policy.key"), caExt, "tight-leaf.pem")),
			readFile(t, sign(path("policy.csr"), path("root.pem"), path("root.key"), caExt, "tight-policy.pem"))...))
		refused([]string{"issuer", "install", "intermediate", "--cert", path("tight.pem")}, `"Example Policy CA" above it allows 0 CA certificates below it`)
		// What Go's chain check passes and other verifiers refuse (found
		// by a review): an extended key usage without serverAuth on the
		// default issuer, no subject key identifier, an authority key
		// identifier that is not the root's, policy constraints.
		refused([]string{"issuer", "install", "intermediate", "--cert", sign(csr, path("root.pem"), path("root.key"),
			ext("eku.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nextendedKeyUsage=codeSigning\n"), "eku.pem")},
			"the default issuer's chain must allow serverAuth")
		refused([]string{"issuer", "install", "intermediate", "--cert", sign(csr, path("root.pem"), path("root.key"),
			ext("noski.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=none\nauthorityKeyIdentifier=keyid\n"), "noski.pem")},
			"it has no subject key identifier")
		run(t, nil, "openssl", "req", "-x509", "-new", "-key", path("root.key"), "-out", path("root-copy.pem"), "-days", "100",
			"-subj", "/O=Example Corp/CN=Example Offline Root", "-addext", "basicConstraints=critical,CA:TRUE",
			"-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=0102030405060708090A0B0C0D0E0F1011121314")
		refused([]string{"issuer", "install", "intermediate", "--cert", sign(csr, path("root-copy.pem"), path("root.key"), caExt, "aki.pem")},
			"names its issuer's key identifier 0102030405060708090A0B0C0D0E0F1011121314")
		refused([]string{"issuer", "install", "intermediate", "--cert", sign(csr, path("root.pem"), path("root.key"),
			ext("policy-constraints.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\ncertificatePolicies=2.5.29.32.0\npolicyConstraints=critical,requireExplicitPolicy:0\n"), "pc.pem")},
			"carries policy constraints")
		// The real one: the intermediate, the policy CA and the root in
		// one file, as a CA hands them back.
		cert := sign(csr, policy, path("policy.key"), caExt, "intermediate.pem")
		writeFile(t, path("full.pem"), bytes.Join([][]byte{readFile(t, cert), readFile(t, policy), readFile(t, path("root.pem"))}, nil))
		out := string(mustRun(t, caBinary, "issuer", "install", "intermediate", "--cert", path("full.pem"), "--data", dir))
		if !strings.Contains(out, "signed by Example Policy CA") {
			t.Errorf("ca issuer install:\n%s", out)
		}
		if n := bytes.Count(readFile(t, filepath.Join(dir, "intermediate.pem")), []byte("BEGIN CERTIFICATE")); n != 2 {
			t.Errorf("intermediate.pem holds %d certificates, want the intermediate and the policy CA", n)
		}
	}})

	csrPEM := opensslCSR(t, "app.localhost")
	chain := issueChain(t, c, csrPEM)
	if len(chain) != 3 || chain[2].Subject.CommonName != "Example Policy CA" {
		t.Fatalf("the chain handed out has %d certificates, want the leaf, the intermediate and the policy CA", len(chain))
	}
	var pemChain []byte
	for _, x := range chain {
		pemChain = append(pemChain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})...)
	}
	writeFile(t, path("chain.pem"), pemChain)
	run(t, nil, "openssl", "verify", "-CAfile", path("root.pem"), "-untrusted", path("chain.pem"), path("chain.pem"))
	if out := run(t, nil, "certtool", "--verify", "--load-ca-certificate", path("root.pem"), "--infile", path("chain.pem")); !strings.Contains(out, "Chain verification output: Verified") {
		t.Fatalf("certtool --verify:\n%s", out)
	}
	req, err := ocsp.CreateRequest(chain[0], chain[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := ocspGet(t, c, req, false, chain[0], chain[1])
	if resp.Status != ocsp.Good {
		t.Errorf("OCSP status %d, want good", resp.Status)
	}
	fetchCRL(t, c, "intermediate.crl", chain[1])
	if r, _ := httpGet(t, c.HTTPURL+"/crl/root.crl"); r.StatusCode != 404 {
		t.Errorf("GET /crl/root.crl: %s, want 404 (the external root publishes its own)", r.Status)
	}

	// Nothing is signed with a root that is not here.
	if out, err := c.CLI(ctx, "issuer", "sign", path("other.csr"), "--unconstrained"); err == nil || !strings.Contains(out, "the root is external") {
		t.Errorf("ca issuer sign under an external root: %v\n%s", err, out)
	}
	// A second intermediate: a key and a CSR; install adds it.
	out := c.MustCLI(t, ctx, "issuer", "add", "int2", "--default")
	if !strings.Contains(out, "ca issuer install int2 --cert int2.pem --default") {
		t.Errorf("ca issuer add under an external root:\n%s", out)
	}
	cert2 := sign(filepath.Join(c.Dir, "int2.csr"), path("root.pem"), path("root.key"), caExt, "int2.pem")
	c.MustCLI(t, ctx, "issuer", "install", "int2", "--cert", cert2, "--default")
	c.Restart()
	chain2 := issueChain(t, c, csrPEM)
	if len(chain2) != 2 || !chain2[1].Equal(parsePEMCerts(t, readFile(t, cert2))[0]) {
		t.Fatalf("after installing int2 --default the chain is %d certificates from %q", len(chain2), chain2[1].Subject.CommonName)
	}
	// A renewed certificate for the same key and name replaces the
	// installed one; its CSR can be written again.
	os.Remove(filepath.Join(c.Dir, "int2.csr"))
	c.MustCLI(t, ctx, "issuer", "csr", "int2")
	time.Sleep(1100 * time.Millisecond) // another notBefore second, so another certificate
	renewed := sign(filepath.Join(c.Dir, "int2.csr"), path("root.pem"), path("root.key"), caExt, "int2-renewed.pem")
	if out := c.MustCLI(t, ctx, "issuer", "install", "int2", "--cert", renewed); !strings.Contains(out, "replaces the certificate installed before") {
		t.Errorf("reinstalling int2:\n%s", out)
	}
	// One with another name would cut off what int2 issued.
	run(t, nil, "openssl", "x509", "-req", "-in", filepath.Join(c.Dir, "int2.csr"), "-CA", path("root.pem"), "-CAkey", path("root.key"),
		"-days", "100", "-extfile", caExt, "-subj", "/O=Example Corp/CN=Renamed Issuing CA", "-out", path("renamed.pem"))
	if out, err := c.CLI(ctx, "issuer", "install", "int2", "--cert", path("renamed.pem")); err == nil || !strings.Contains(out, "would lose its OCSP and CRLs") {
		t.Errorf("reinstalling int2 under another name: %v\n%s", err, out)
	}
	// Leaves end with the chain: the policy CA above intermediate ends in
	// 200 days (the intermediate in 1000), so 300 days are refused.
	hr, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/json", "application/json",
		strings.NewReader(`{"csr": `+strconv.Quote(string(csrPEM))+`, "issuer": "intermediate", "lifetime": "7200h"}`))
	if hr.StatusCode != 422 && hr.StatusCode != 400 || !strings.Contains(string(body), "would outlive") {
		t.Errorf("a lifetime past the chain's end: %s\n%s", hr.Status, body)
	}
}

func mustRun(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}
