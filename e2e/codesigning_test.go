package e2e

import (
	"context"
	"crypto/x509"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestCodeSigningIntermediate: code signing certificates came from the
// TLS intermediate, whose extended key usage (serverAuth, clientAuth)
// makes Go, NSS and Windows refuse them for code signing. Such a request
// is now refused with what to do, and once an intermediate for code
// signing exists (`ca issuer add codesign --eku codeSigning`) it comes
// from that one and verifies for code signing.
func TestCodeSigningIntermediate(t *testing.T) {
	ctx := context.Background()
	c := StartCA(t, Options{Configure: func(_ testing.TB, dir string) {
		appendConfig(t, dir, "policy:\n  profile_access:\n    code-signing: [\"apikey:*\"]\n")
	}})
	body := `{"csr": ` + strconv.Quote(string(opensslCSR(t, "signer.localhost"))) + `, "profile": "code-signing"}`
	resp, out := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/json", "application/pem-certificate-chain", strings.NewReader(body))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(out), "ca issuer add ID --eku codeSigning") {
		t.Fatalf("code signing with only the TLS intermediate: %s\n%s", resp.Status, out)
	}
	c.MustCLI(t, ctx, "issuer", "add", "codesign", "--eku", "codeSigning")
	c.Restart()
	resp, out = apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/json", "application/pem-certificate-chain", strings.NewReader(body))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("code signing with a code signing intermediate: %s\n%s", resp.Status, out)
	}
	chain := parsePEMCerts(t, out)
	if len(chain) != 2 || !strings.Contains(chain[1].Subject.CommonName, "codesign") {
		t.Fatalf("the chain is %d certificates from %q", len(chain), chain[len(chain)-1].Subject.CommonName)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM(readFile(t, c.Root))
	inters.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		t.Fatalf("the code signing certificate does not verify for code signing: %v", err)
	}
	// TLS certificates still come from the default.
	tls := issueChain(t, c, opensslCSR(t, "app.localhost"))
	if strings.Contains(tls[1].Subject.CommonName, "codesign") {
		t.Fatalf("a TLS certificate came from %q", tls[1].Subject.CommonName)
	}
}
