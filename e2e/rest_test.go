package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests drive the REST API of a running `ca serve` (issue #3): the
// README's curl command, the same request from Go, and every kind of bad
// request, each refused with a problem document and no certificate.

// apiCall sends one request to the REST API. key "" sends no
// Authorization header.
func apiCall(t *testing.T, c *CA, method, path, key, contentType, accept string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.HTTPSURL+"/api/v1"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, data
}

// goCSR makes a P-256 key and a PEM CSR for name in Go.
func goCSR(t *testing.T, name string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// opensslCSR makes a key with `openssl req -newkey newkey` and returns the
// PEM CSR for name.
func opensslCSR(t *testing.T, name string, newkey ...string) []byte {
	t.Helper()
	requireTool(t, "openssl")
	dir := t.TempDir()
	csr := filepath.Join(dir, "req.csr")
	args := append([]string{"req", "-new", "-nodes", "-subj", "/CN=" + name,
		"-addext", "subjectAltName=DNS:" + name, "-keyout", filepath.Join(dir, "req.key"), "-out", csr}, newkey...)
	run(t, nil, "openssl", args...)
	data, err := os.ReadFile(csr)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// parsePEMCerts returns every certificate in data.
func parsePEMCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parsing certificate: %v", err)
		}
		out = append(out, cert)
	}
}

// issueChain issues a certificate from a PEM CSR through the Go client
// (application/pkcs10, PEM chain back) and returns the chain, leaf first.
func issueChain(t *testing.T, c *CA, csr []byte) []*x509.Certificate {
	t.Helper()
	resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10",
		"application/pem-certificate-chain", bytes.NewReader(csr))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/pem-certificate-chain" {
		t.Fatalf("issue: %s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	chain := parsePEMCerts(t, body)
	if len(chain) < 2 {
		t.Fatalf("issue returned %d certificates, want leaf and intermediate", len(chain))
	}
	return chain
}

// certCount is how many certificates GET /certificates lists.
func certCount(t *testing.T, c *CA) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		resp, body := apiCall(t, c, "GET", "/certificates?limit=1000&cursor="+cursor, c.AdminKey(), "", "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %s\n%s", resp.Status, body)
		}
		var page struct {
			Certificates []json.RawMessage `json:"certificates"`
			NextCursor   string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("list: %v\n%s", err, body)
		}
		n += len(page.Certificates)
		if cursor = page.NextCursor; cursor == "" {
			return n
		}
	}
}

// readmeRESTBlock is the shell block of README.md's REST API section.
func readmeRESTBlock(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\\*\\*REST API\\*\\*.*?```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil || !bytes.Contains(m[1], []byte("curl ")) {
		t.Fatal("README.md has no ```sh block with a curl command under **REST API**")
	}
	return string(m[1])
}

// TestRESTReadmeCurl runs the README's commands (openssl req, curl,
// openssl verify) against a running CA, then issues the same way from Go.
func TestRESTReadmeCurl(t *testing.T) {
	requireTool(t, "openssl")
	requireTool(t, "curl")
	c := StartCA(t, Options{})
	before := certCount(t, c)

	script := strings.NewReplacer("data/", c.Dir+"/", "https://localhost:8443", c.HTTPSURL).Replace(readmeRESTBlock(t))
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := runShell(ctx, work, script)
	if err != nil {
		t.Fatalf("README commands failed: %v\n%s\n%s", err, script, out)
	}
	if !strings.Contains(out, "app.pem: OK") {
		t.Fatalf("openssl verify did not accept app.pem:\n%s", out)
	}
	appPEM, err := os.ReadFile(filepath.Join(work, "app.pem"))
	if err != nil {
		t.Fatal(err)
	}
	chain := parsePEMCerts(t, appPEM)
	if len(chain) < 2 || chain[0].Subject.CommonName != "app.localhost" || len(chain[0].DNSNames) != 1 || chain[0].DNSNames[0] != "app.localhost" {
		t.Fatalf("curl got %d certificates, leaf %v", len(chain), chain)
	}

	// The same request from Go, then verified by openssl too.
	chain = issueChain(t, c, opensslCSR(t, "go.localhost", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"))
	var rest []byte
	for _, ic := range chain[1:] {
		rest = append(rest, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.Raw})...)
	}
	leaf, untrusted := filepath.Join(work, "go.pem"), filepath.Join(work, "untrusted.pem")
	writeFile(t, leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0].Raw}))
	writeFile(t, untrusted, rest)
	if out := run(t, nil, "openssl", "verify", "-CAfile", c.Root, "-untrusted", untrusted, leaf); !strings.Contains(out, leaf+": OK") {
		t.Fatalf("openssl verify: %s", out)
	}

	// JSON chooses the profile and lifetime.
	req, _ := json.Marshal(map[string]string{"csr": string(goCSR(t, "client.localhost")), "profile": "tls-client", "lifetime": "720h"})
	resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/json", "", bytes.NewReader(req))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("JSON issue: %s\n%s", resp.Status, body)
	}
	var got struct{ Serial, Profile, Certificate string }
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	cert := parsePEMCerts(t, []byte(got.Certificate))[0]
	life := cert.NotAfter.Sub(cert.NotBefore)
	if got.Profile != "tls-client" || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth ||
		life < 720*time.Hour || life > 722*time.Hour {
		t.Fatalf("JSON issue: profile %q, EKU %v, lifetime %s; want tls-client, clientAuth, 720h", got.Profile, cert.ExtKeyUsage, life)
	}
	if after := certCount(t, c); after != before+3 {
		t.Fatalf("list shows %d certificates after 3 issued, had %d", after, before)
	}
}

func runShell(ctx context.Context, dir, script string) (string, error) {
	cmd := exec.CommandContext(ctx, "sh", "-e", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// problemDoc is an RFC 9457 problem document.
type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// TestRESTRejectsBadInput sends every kind of bad request to a running CA:
// each gets its 4xx problem document and no certificate is made.
func TestRESTRejectsBadInput(t *testing.T) {
	requireTool(t, "openssl")
	c := StartCA(t, Options{Configure: func(t testing.TB, dir string) {
		appendConfig(t, dir, "policy:\n  allowed_dns_suffixes: [localhost]\n  denied_dns_suffixes: [secret.localhost]\n")
	}})
	ctx := context.Background()
	secret := func(out string) string {
		m := regexp.MustCompile(`secret:\s+(\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no secret in `ca apikey create` output:\n%s", out)
		}
		return m[1]
	}
	out, err := c.CLI(ctx, "apikey", "create", "--name", "reader", "--scopes", "read")
	if err != nil {
		t.Fatalf("apikey create: %v\n%s", err, out)
	}
	readKey := secret(out)
	out, err = c.CLI(ctx, "apikey", "create", "--name", "gone", "--scopes", "issue,read")
	if err != nil {
		t.Fatalf("apikey create: %v\n%s", err, out)
	}
	goneKey, goneID := secret(out), regexp.MustCompile(`id:\s+(\S+)`).FindStringSubmatch(out)[1]
	// The key works before it is revoked, so the 401 below is the revocation's.
	if resp, body := apiCall(t, c, "POST", "/certificates", goneKey, "application/pkcs10", "", bytes.NewReader(goCSR(t, "gone.localhost"))); resp.StatusCode != http.StatusCreated {
		t.Fatalf("issue with the key before revocation: %s\n%s", resp.Status, body)
	}
	if out, err := c.CLI(ctx, "apikey", "revoke", goneID); err != nil {
		t.Fatalf("apikey revoke: %v\n%s", err, out)
	}

	good := goCSR(t, "ok.localhost")
	blk, _ := pem.Decode(good)
	badSig := bytes.Clone(blk.Bytes)
	badSig[len(badSig)-3] ^= 0x40 // inside the signature's integers
	jsonReq := func(fields map[string]string) []byte {
		fields["csr"] = string(good)
		b, _ := json.Marshal(fields)
		return b
	}
	big := append(bytes.Repeat([]byte{'A'}, 65<<10), good...)
	admin := c.AdminKey()
	const p10, js = "application/pkcs10", "application/json"
	cases := []struct {
		name, key, ctype string
		body             []byte
		chunked          bool
		want             int    // 0: any 4xx
		typ              string // the problem type's last part, when it matters
	}{
		{name: "garbage", key: admin, ctype: p10, body: []byte("this is not a CSR \x00\x01\x02"), want: 400},
		{name: "garbage DER", key: admin, ctype: p10, body: []byte{0x30, 0x82, 0xff, 0xff, 0x01}, want: 400},
		{name: "JSON with bad field", key: admin, ctype: js, body: []byte(`{"csr": 12}`), want: 400},
		{name: "CSR with a bad signature", key: admin, ctype: p10, body: badSig, want: 400, typ: "badCSR"},
		{name: "RSA-1024 key", key: admin, ctype: p10, body: opensslCSR(t, "rsa.localhost", "-newkey", "rsa:1024"), typ: "badKey"},
		{name: "P-521 key (not allowed)", key: admin, ctype: p10, body: opensslCSR(t, "p521.localhost", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"), typ: "badKey"},
		{name: "name outside policy", key: admin, ctype: p10, body: goCSR(t, "app.example.com"), typ: "rejected"},
		{name: "CN not among the SANs", key: admin, ctype: p10, typ: "badCSR",
			body: opensslCSR(t, "san.localhost", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-subj", "/CN=cn.localhost")},
		{name: "denied name", key: admin, ctype: p10, body: goCSR(t, "db.secret.localhost"), typ: "rejected"},
		{name: "unknown profile", key: admin, ctype: js, body: jsonReq(map[string]string{"profile": "no-such-profile"}), typ: "rejected"},
		{name: "profile not granted", key: admin, ctype: js, body: jsonReq(map[string]string{"profile": "code-signing"})},
		{name: "over-long lifetime", key: admin, ctype: js, body: jsonReq(map[string]string{"lifetime": "500d"}), typ: "rejected"},
		{name: "unknown issuer", key: admin, ctype: js, body: jsonReq(map[string]string{"issuer": "nobody"})},
		{name: "body over 64 KiB", key: admin, ctype: p10, body: big, want: 413},
		{name: "body over 64 KiB, chunked", key: admin, ctype: p10, body: big, chunked: true, want: 413},
		{name: "missing key", ctype: p10, body: good, want: 401},
		{name: "wrong key", key: "srk_not-a-key-we-issued", ctype: p10, body: good, want: 401},
		{name: "key without issue scope", key: readKey, ctype: p10, body: good, want: 403},
		{name: "revoked key", key: goneKey, ctype: p10, body: good, want: 401},
	}
	before := certCount(t, c)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			resp, data := apiCall(t, c, "POST", "/certificates", tc.key, tc.ctype, "", body)
			if resp.StatusCode < 400 || resp.StatusCode > 499 || (tc.want != 0 && resp.StatusCode != tc.want) {
				t.Fatalf("got %s, want %d (4xx)\n%s", resp.Status, tc.want, data)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, want application/problem+json\n%s", ct, data)
			}
			var p problemDoc
			if err := json.Unmarshal(data, &p); err != nil || p.Status != resp.StatusCode || p.Title == "" || p.Type == "" {
				t.Fatalf("bad problem document (%v): %s", err, data)
			}
			if tc.typ != "" && !strings.HasSuffix(p.Type, ":"+tc.typ) {
				t.Fatalf("problem type %q, want …:%s (%s)", p.Type, tc.typ, p.Detail)
			}
			if bytes.Contains(data, []byte("CERTIFICATE-----")) {
				t.Fatalf("a refused request returned a certificate: %s", data)
			}
			t.Logf("%d %s: %s", p.Status, p.Type, p.Detail)
		})
	}
	if after := certCount(t, c); after != before {
		t.Fatalf("bad requests changed the certificate list: %d before, %d after", before, after)
	}
	// The CA still issues after all that.
	issueChain(t, c, good)
}
