package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestIntermediateRotation adds a second intermediate with the CLI while
// the CA runs, restarts, and checks the hand-over: new certificates come
// from the new default issuer and openssl verifies them; a certificate of
// the old intermediate still gets signed OCSP answers and its CRL; it
// renews onto the new intermediate; the issuers endpoint lists both.
func TestIntermediateRotation(t *testing.T) {
	requireTool(t, "openssl")
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	work := t.TempDir()

	// A certificate from the first intermediate, with its key (for renewal).
	keyPath := filepath.Join(work, "old.key")
	csrPath := filepath.Join(work, "old.csr")
	run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=old.localhost", "-addext", "subjectAltName=DNS:old.localhost", "-keyout", keyPath, "-out", csrPath)
	oldChain := issueChain(t, c, readFile(t, csrPath))
	oldInter := parsePEMCerts(t, readFile(t, c.Intermediate))[0]
	if !bytes.Equal(oldChain[0].RawIssuer, oldInter.RawSubject) {
		t.Fatal("the first certificate is not from the first intermediate")
	}

	out, err := c.CLI(ctx, "issuer", "add", "intermediate-2", "--default")
	if err != nil {
		t.Fatalf("ca issuer add: %v\n%s", err, out)
	}
	if out, err := c.CLI(ctx, "issuer", "add", "intermediate-2"); err == nil {
		t.Fatalf("adding the same issuer twice succeeded:\n%s", out)
	}
	// /crl/intermediate-delta.crl is the delta CRL of issuer intermediate.
	if out, err := c.CLI(ctx, "issuer", "add", "intermediate-delta"); err == nil || !strings.Contains(out, "ends in -delta") {
		t.Fatalf("ca issuer add intermediate-delta: %v\n%s", err, out)
	}
	c.Restart()
	newInterPath := filepath.Join(c.Dir, "intermediate-2.pem")
	newInter := parsePEMCerts(t, readFile(t, newInterPath))[0]
	root := parsePEMCerts(t, readFile(t, c.Root))[0]
	if err := newInter.CheckSignatureFrom(root); err != nil || !newInter.IsCA {
		t.Fatalf("intermediate-2 is not a CA signed by the root: %v", err)
	}

	// New certificates come from intermediate-2; openssl verifies them.
	chain := issueChain(t, c, goCSR(t, "new.localhost"))
	if !bytes.Equal(chain[0].RawIssuer, newInter.RawSubject) {
		t.Fatalf("new certificate issued by %s, want %s", chain[0].Issuer, newInter.Subject)
	}
	leaf := writeCertPEM(t, work, "new.pem", chain[0])
	if out := run(t, nil, "openssl", "verify", "-CAfile", c.Root, "-untrusted", newInterPath, leaf); !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify: %s", out)
	}

	// The old intermediate's certificate: OCSP good, its CRL served.
	req, err := ocsp.CreateRequest(oldChain[0], oldInter, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := ocspGet(t, c, req, false, oldChain[0], oldInter); r.Status != ocsp.Good {
		t.Fatalf("OCSP for the old intermediate's certificate: status %d", r.Status)
	}
	fetchCRL(t, c, "intermediate.crl", oldInter)
	fetchCRL(t, c, "intermediate-2.crl", newInter)

	// Renewal moves the old certificate to the new intermediate.
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: oldChain[0].Raw}), readFile(t, keyPath))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	holder := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	r, err := http.NewRequest("POST", c.HTTPSURL+"/api/v1/certificates/renew", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Accept", "application/pem-certificate-chain")
	resp, err := holder.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("renew: %s %s", resp.Status, body)
	}
	renewed := parsePEMCerts(t, body)
	if !bytes.Equal(renewed[0].RawIssuer, newInter.RawSubject) || len(renewed) < 2 || !bytes.Equal(renewed[1].Raw, newInter.Raw) ||
		strings.Join(renewed[0].DNSNames, ",") != "old.localhost" {
		t.Fatalf("renewed certificate from %s with %d chain certificates, names %v", renewed[0].Issuer, len(renewed), renewed[0].DNSNames)
	}

	// The issuers endpoint lists both intermediates, the new one first.
	resp2, ib := apiCall(t, c, "GET", "/issuers", c.AdminKey(), "", "", nil)
	if resp2.StatusCode != http.StatusOK {
		t.Fatalf("issuers: %s %s", resp2.Status, ib)
	}
	var list struct {
		Issuers []struct{ ID string } `json:"issuers"`
	}
	if err := json.Unmarshal(ib, &list); err != nil {
		t.Fatalf("issuers: %v %s", err, ib)
	}
	var ids []string
	for _, is := range list.Issuers {
		ids = append(ids, is.ID)
	}
	if got := strings.Join(ids, ","); !strings.Contains(got, "intermediate-2") || !strings.Contains(got, "intermediate") {
		t.Fatalf("issuers %s", got)
	}
	if out, err := c.CLI(ctx, "issuer", "list"); err != nil || !strings.Contains(out, "intermediate-2  intermediate (default)") {
		t.Fatalf("ca issuer list: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "strongroom.yaml.tmp")); err == nil {
		t.Fatal("a temporary config file was left behind")
	}
}
