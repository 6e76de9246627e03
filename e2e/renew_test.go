package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// readmeBlock is the first ```sh block after the bold heading in README.md.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\\*\\*" + regexp.QuoteMeta(heading) + "\\*\\*.*?```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil || !bytes.Contains(m[1], []byte("curl ")) {
		t.Fatalf("README.md has no ```sh block with a curl command under **%s**", heading)
	}
	return string(m[1])
}

// TestRESTRenewCurl runs the README's REST block and then its renewal
// block against a running CA, with curl presenting app.pem (a
// serverAuth-only certificate) and app.key: the renewed certificate
// verifies with openssl and keeps the names and key; asking again returns
// the same certificate; after the first certificate is revoked it renews
// no more.
func TestRESTRenewCurl(t *testing.T) {
	requireTool(t, "openssl")
	requireTool(t, "curl")
	c := StartCA(t, Options{})
	fix := strings.NewReplacer("data/", c.Dir+"/", "https://localhost:8443", c.HTTPSURL)
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sh := func(script string) string {
		t.Helper()
		out, err := runShell(ctx, work, fix.Replace(script))
		if err != nil {
			t.Fatalf("README commands failed: %v\n%s\n%s", err, script, out)
		}
		return out
	}
	sh(readmeRESTBlock(t))
	before := certCount(t, c)
	renew := readmeBlock(t, "Renewal")
	if out := sh(renew); !strings.Contains(out, "app-renewed.pem: OK") {
		t.Fatalf("openssl verify did not accept app-renewed.pem:\n%s", out)
	}
	old := parsePEMCerts(t, readFile(t, filepath.Join(work, "app.pem")))[0]
	renewed := parsePEMCerts(t, readFile(t, filepath.Join(work, "app-renewed.pem")))
	n := renewed[0]
	if len(renewed) < 2 || n.SerialNumber.Cmp(old.SerialNumber) == 0 || !bytes.Equal(n.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo) ||
		strings.Join(n.DNSNames, ",") != "app.localhost" || n.NotAfter.Sub(n.NotBefore) != old.NotAfter.Sub(old.NotBefore) {
		t.Fatalf("renewed: serial %x names %v lifetime %s (old %x, %s)", n.SerialNumber, n.DNSNames,
			n.NotAfter.Sub(n.NotBefore), old.SerialNumber, old.NotAfter.Sub(old.NotBefore))
	}
	if after := certCount(t, c); after != before+1 {
		t.Fatalf("%d certificates issued by one renewal", after-before)
	}
	// Again: the same certificate.
	sh(strings.ReplaceAll(renew, "app-renewed.pem", "app-again.pem"))
	if again := parsePEMCerts(t, readFile(t, filepath.Join(work, "app-again.pem")))[0]; again.SerialNumber.Cmp(n.SerialNumber) != 0 {
		t.Fatalf("second renewal gave %x, want %x", again.SerialNumber, n.SerialNumber)
	}
	// Revoke the first certificate: it no longer renews (curl -f fails
	// on the 401).
	resp, body := apiCall(t, c, "POST", "/certificates/"+string(core.SerialFromBig(old.SerialNumber))+"/revoke", c.AdminKey(),
		"application/json", "", strings.NewReader(`{"reason":"keyCompromise"}`))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %s %s", resp.Status, body)
	}
	out, err := runShell(ctx, work, fix.Replace(`curl -s -w '%{http_code}' -o problem.json --cacert data/root.pem --cert app.pem --key app.key -X POST https://localhost:8443/api/v1/certificates/renew`))
	if err != nil || strings.TrimSpace(out) != "401" || !strings.Contains(string(readFile(t, filepath.Join(work, "problem.json"))), "revoked") {
		t.Fatalf("renewing a revoked certificate: %v %s %s", err, out, readFile(t, filepath.Join(work, "problem.json")))
	}
}
