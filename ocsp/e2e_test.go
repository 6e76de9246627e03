package ocsp_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
)

// TestOpenSSL asks the served responder with openssl ocsp over POST (with a
// nonce) and over GET (request made by openssl, fetched by GET, response
// verified by openssl), and with GnuTLS ocsptool; each must verify the
// signature against the issuer and report the right status and reason.
func TestOpenSSL(t *testing.T) {
	f := newFixture(t, nil)
	dir := t.TempDir()
	caPEM := ocsptest.WritePEM(t, dir, "ca.pem", f.ca.Cert)
	url := f.srv.URL + "/ocsp"
	leaves := map[string]string{
		"good":    ocsptest.WritePEM(t, dir, "good.pem", f.good),
		"revoked": ocsptest.WritePEM(t, dir, "revoked.pem", f.revoked),
		"unknown": ocsptest.WritePEM(t, dir, "unknown.pem", f.unknown),
	}
	wants := map[string][]string{
		"good":    {": good"},
		"revoked": {": revoked", "Reason: keyCompromise"},
		"unknown": {": unknown"},
	}
	for name, leaf := range leaves {
		t.Run("POST/"+name, func(t *testing.T) {
			out, err := ocsptest.Tool(t, "openssl", "ocsp", "-issuer", caPEM, "-cert", leaf, "-url", url, "-CAfile", caPEM, "-nonce")
			if err != nil {
				t.Fatalf("openssl ocsp: %v\n%s", err, out)
			}
			checkOut(t, out, append([]string{"Response verify OK"}, wants[name]...))
			if strings.Contains(out, "WARNING: no nonce") || strings.Contains(out, "nonce verify error") {
				t.Fatalf("nonce not echoed:\n%s", out)
			}
		})
		t.Run("GET/"+name, func(t *testing.T) {
			reqPath, respPath := filepath.Join(dir, name+".req"), filepath.Join(dir, name+".resp")
			if out, err := ocsptest.Tool(t, "openssl", "ocsp", "-issuer", caPEM, "-cert", leaf, "-no_nonce", "-reqout", reqPath); err != nil {
				t.Fatalf("openssl ocsp -reqout: %v\n%s", err, out)
			}
			der, _ := os.ReadFile(reqPath)
			resp, err := http.Get(url + "/" + base64.StdEncoding.EncodeToString(der))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			os.WriteFile(respPath, body, 0o644)
			out, err := ocsptest.Tool(t, "openssl", "ocsp", "-respin", respPath, "-issuer", caPEM, "-cert", leaf, "-CAfile", caPEM)
			if err != nil {
				t.Fatalf("openssl ocsp -respin: %v\n%s", err, out)
			}
			checkOut(t, out, append([]string{"Response verify OK"}, wants[name]...))
		})
		t.Run("ocsptool/"+name, func(t *testing.T) {
			out, err := ocsptest.Tool(t, "ocsptool", "--ask="+url, "--load-issuer="+caPEM, "--load-cert="+leaf, "--load-trust="+caPEM)
			if name == "good" && err != nil {
				t.Fatalf("ocsptool: %v\n%s", err, out)
			}
			want := map[string]string{"good": "Certificate Status: good", "revoked": "Certificate Status: revoked", "unknown": "Certificate Status: unknown"}[name]
			checkOut(t, out, []string{want, "Verifying OCSP Response: Success"})
			if name == "revoked" {
				checkOut(t, out, []string{"Revocation time:"}) // ocsptool does not print the reason; openssl checks it above
			}
		})
	}
}

func checkOut(t *testing.T, out string, wants []string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}
