package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// TestRESTClientCertificate authenticates to the REST API with a client
// certificate instead of an API key, using curl: a certificate of the
// api-client profile (granted in policy to API keys, scopes mapped in
// api.client_cert_scopes) reads and issues; a tls-client certificate with the
// same common name — which any issuing principal may obtain — gets 401.
func TestRESTClientCertificate(t *testing.T) {
	curl := requireTool(t, "curl")
	requireTool(t, "openssl")
	c := StartCA(t, Options{Configure: func(_ testing.TB, dir string) {
		path := filepath.Join(dir, "strongroom.yaml")
		cfg := readFile(t, path)
		cfg = append(cfg, []byte(`
policy:
  profile_access:
    api-client: ["apikey:*"]
api:
  client_cert_scopes:
    "mtls:deploy-bot": [read, issue]
`)...)
		writeFile(t, path, cfg)
	}})
	dir := t.TempDir()
	// clientCert has openssl make a key and CSR for CN=deploy-bot and the CA
	// issue it under profile; it returns the certificate and key paths.
	clientCert := func(profile string) (string, string) {
		key := filepath.Join(dir, profile+".key")
		csr := filepath.Join(dir, profile+".csr")
		run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-subj", "/CN=deploy-bot", "-addext", "subjectAltName=DNS:deploy-bot.example.com", "-keyout", key, "-out", csr)
		body, _ := json.Marshal(map[string]string{"csr": string(readFile(t, csr)), "profile": profile})
		resp, out := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/json",
			"application/pem-certificate-chain", bytes.NewReader(body))
		if resp.StatusCode != 201 {
			t.Fatalf("issuing a %s certificate: %s\n%s", profile, resp.Status, out)
		}
		if blk, _ := pem.Decode(out); blk == nil {
			t.Fatalf("no PEM in %s", out)
		}
		cert := filepath.Join(dir, profile+".pem")
		writeFile(t, cert, out)
		return cert, key
	}
	status := func(cert, key, method, path string, data string) string {
		args := []string{"-s", "-o", os.DevNull, "-w", "%{http_code}", "--max-time", "30", "--cacert", c.Root,
			"--cert", cert, "--key", key, "-X", method}
		if data != "" {
			args = append(args, "-H", "Content-Type: application/json", "--data", data)
		}
		out, err := exec.Command(curl, append(args, c.HTTPSURL+"/api/v1"+path)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	apiCert, apiKey := clientCert("api-client")
	if got := status(apiCert, apiKey, "GET", "/certificates", ""); got != "200" {
		t.Fatalf("api-client certificate reading: HTTP %s, want 200", got)
	}
	issueBody, _ := json.Marshal(map[string]string{"csr": string(goCSR(t, fmt.Sprintf("mtls-%d.example.com", time.Now().UnixNano())))})
	if got := status(apiCert, apiKey, "POST", "/certificates", string(issueBody)); got != "201" {
		t.Fatalf("api-client certificate issuing: HTTP %s, want 201", got)
	}
	if got := status(apiCert, apiKey, "POST", "/certificates/1/revoke", `{"reason":"superseded"}`); got != "403" {
		t.Fatalf("api-client certificate without the revoke scope: HTTP %s, want 403", got)
	}
	clientCert2, clientKey2 := clientCert("tls-client")
	if got := status(clientCert2, clientKey2, "GET", "/certificates", ""); got != "401" {
		t.Fatalf("tls-client certificate named deploy-bot: HTTP %s, want 401", got)
	}
	// The policy grants api-client to every key, but only an admin may
	// mint one: its common name picks its scopes, which no name limit
	// covers. Neither a name-limited key nor the deploy-bot certificate
	// (issue scope) may make itself, say, CN=ops-admin.
	teamKey := c.NewAPIKey(t, "--name", "team", "--scopes", "issue", "--names", "deploy-bot.example.com")
	csr := goCSR(t, "deploy-bot.example.com")
	body, _ := json.Marshal(map[string]string{"csr": string(csr), "profile": "api-client"})
	resp, msg := apiCall(t, c, "POST", "/certificates", teamKey, "application/json", "", bytes.NewReader(body))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(msg), "needs an admin credential without name or profile limits") {
		t.Fatalf("a name-limited key minting an api-client certificate: %s\n%s", resp.Status, msg)
	}
	// Nor an admin limited to names: its CN would pick a wider identity.
	teamAdmin := c.NewAPIKey(t, "--name", "team-admin", "--scopes", "admin", "--names", "deploy-bot.example.com")
	if resp, msg := apiCall(t, c, "POST", "/certificates", teamAdmin, "application/json", "", bytes.NewReader(body)); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a name-limited admin minting an api-client certificate: %s\n%s", resp.Status, msg)
	}
	if got := status(apiCert, apiKey, "POST", "/certificates", string(body)); got != "403" {
		t.Fatalf("the deploy-bot certificate minting an api-client certificate: HTTP %s, want 403", got)
	}
	// Revoking the CA that issued it ends the client certificate's
	// sessions at once, though its own record stays valid.
	inter := parsePEMCerts(t, readFile(t, c.Intermediate))[0]
	if out, err := c.CLI(context.Background(), "cert", "revoke", string(core.SerialFromBig(inter.SerialNumber)), "--ca",
		"--reason", "keyCompromise"); err != nil {
		t.Fatalf("ca cert revoke --ca: %v\n%s", err, out)
	}
	if got := status(apiCert, apiKey, "GET", "/certificates", ""); got != "401" {
		t.Fatalf("api-client certificate after its CA was revoked: HTTP %s, want 401", got)
	}
}
