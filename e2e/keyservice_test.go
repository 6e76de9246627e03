package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyService runs the HSM as a key service against a real ca serve: an
// API key with the keys scope (made with `ca apikey create`) creates a
// P-256 key whose signature openssl verifies with the published public
// key, and an AES key whose ciphertext still opens after a restart; the
// CA's own keys are not among the service's.
func TestKeyService(t *testing.T) {
	requireTool(t, "openssl")
	c := StartCA(t, Options{})
	call := keyServiceCaller(t, c)
	signer := call("POST", "/keys", map[string]any{"label": "release-signing", "type": "p256"}, http.StatusCreated)
	msg := []byte("release v1.2.3")
	sig := call("POST", "/keys/"+signer["id"].(string)+"/sign", map[string]any{"message": base64.StdEncoding.EncodeToString(msg)}, 200)
	dir := t.TempDir()
	raw, _ := base64.StdEncoding.DecodeString(sig["signature"].(string))
	for name, data := range map[string][]byte{"pub.pem": []byte(signer["public_key"].(string)), "msg": msg, "sig": raw} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := run(t, nil, "openssl", "dgst", "-sha256", "-verify", filepath.Join(dir, "pub.pem"), "-signature", filepath.Join(dir, "sig"),
		filepath.Join(dir, "msg")); !strings.Contains(got, "Verified OK") {
		t.Fatalf("openssl dgst -verify: %s", got)
	}

	aes := call("POST", "/keys", map[string]any{"label": "pii", "type": "aes256"}, http.StatusCreated)
	pt := base64.StdEncoding.EncodeToString([]byte("4111 1111 1111 1111"))
	ct := call("POST", "/keys/"+aes["id"].(string)+"/encrypt", map[string]any{"plaintext": pt}, 200)["ciphertext"]
	list := call("GET", "/keys", nil, 200)["keys"].([]any)
	for _, k := range list {
		if l := k.(map[string]any)["label"]; l != "pii" && l != "release-signing" {
			t.Fatalf("the key service lists %v", l)
		}
	}
	if len(list) != 2 {
		t.Fatalf("the key service lists %d keys", len(list))
	}

	c.Restart()
	if got := call("POST", "/keys/"+aes["id"].(string)+"/decrypt", map[string]any{"ciphertext": ct}, 200)["plaintext"]; got != pt {
		t.Fatalf("decrypt after restart: %v", got)
	}
}

// keyServiceCaller makes an API key with the keys scope on c (with the
// CLI) and returns a JSON caller with it that insists on the status want.
func keyServiceCaller(t *testing.T, c *CA) func(method, path string, in any, want int) map[string]any {
	t.Helper()
	key := c.NewAPIKey(t, "--name", "app", "--scopes", "keys")
	return func(method, path string, in any, want int) map[string]any {
		t.Helper()
		var body []byte
		if in != nil {
			body, _ = json.Marshal(in)
		}
		resp, b := apiCall(t, c, method, path, key, "application/json", "", bytes.NewReader(body))
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s\n%s", method, path, resp.Status, b)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
}
