package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
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
// keyServiceWithOpenSSL starts a CA for a key-service test that openssl
// takes the other side of: an application's caller, a namer of files in a
// temporary directory, and openssl (failing the test on an error).
func keyServiceWithOpenSSL(t *testing.T) (call func(method, path string, in any, want int) map[string]any, f func(string) string, ossl func(...string) string) {
	t.Helper()
	requireTool(t, "openssl")
	call = keyServiceCaller(t, StartCA(t, Options{}))
	dir := t.TempDir()
	f = func(name string) string { return filepath.Join(dir, name) }
	ossl = func(args ...string) string { t.Helper(); return run(t, nil, "openssl", args...) }
	return call, f, ossl
}

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

// TestKeyServiceRSAOpenSSL: an RSA key of the service and openssl work
// together both ways. openssl pkeyutl's RSA-OAEP (SHA-256, MGF1-SHA-256,
// a label) to the key's public key decrypts through the API (a raw
// ciphertext, no header); the key exported to openssl opens the API's
// ciphertexts and data keys once their 5-byte header (0x02, version) is
// taken off, with the aad or "strongroom-data-key" as the OAEP label.
// Signatures: openssl's PSS (its default salt, the longest) and python's
// PSS.MAX_LENGTH verify through the API; the API's PSS signature verifies
// with openssl told the salt is the digest's length, and its default
// signature is PKCS#1 v1.5.
func TestKeyServiceRSAOpenSSL(t *testing.T) {
	call, f, ossl := keyServiceWithOpenSSL(t)
	b64 := base64.StdEncoding.EncodeToString
	unb64 := func(v any) []byte { b, _ := base64.StdEncoding.DecodeString(v.(string)); return b }
	oaep := []string{"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"}
	label := func(s string) []string {
		return append(oaep, "-pkeyopt", "rsa_oaep_label:"+hex.EncodeToString([]byte(s)))
	}

	k := call("POST", "/keys", map[string]any{"label": "rsa", "type": "rsa2048", "usage": []string{"encrypt", "decrypt", "sign", "verify"},
		"extractable": true}, http.StatusCreated)
	id := k["id"].(string)
	writeFile(t, f("pub.pem"), []byte(k["public_key"].(string)))

	// openssl encrypts, the service decrypts.
	writeFile(t, f("msg"), []byte("from openssl"))
	ossl(append([]string{"pkeyutl", "-encrypt", "-pubin", "-inkey", f("pub.pem"), "-in", f("msg"), "-out", f("raw.bin")}, label("order 7")...)...)
	got := call("POST", "/keys/"+id+"/decrypt", map[string]any{"ciphertext": b64(readFile(t, f("raw.bin"))), "aad": b64([]byte("order 7"))}, 200)
	if string(unb64(got["plaintext"])) != "from openssl" {
		t.Fatalf("decrypt of openssl's ciphertext: %v", got)
	}

	// The service encrypts, openssl (with the exported key) decrypts.
	ossl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f("dest.pem"))
	ossl("pkey", "-in", f("dest.pem"), "-pubout", "-out", f("dest.pub"))
	ex := call("POST", "/keys/"+id+"/export", map[string]any{"public_key": string(readFile(t, f("dest.pub")))}, 200)
	w := unb64(ex["wrapped"])
	writeFile(t, f("ehead.bin"), w[:256])
	writeFile(t, f("etail.bin"), w[256:])
	ossl(append([]string{"pkeyutl", "-decrypt", "-inkey", f("dest.pem"), "-in", f("ehead.bin"), "-out", f("eaes.key")}, oaep...)...)
	ossl("enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(readFile(t, f("eaes.key"))), "-iv", "A65959A6",
		"-in", f("etail.bin"), "-out", f("key.p8"))
	ossl("pkey", "-inform", "DER", "-in", f("key.p8"), "-out", f("key.pem"))
	ct := unb64(call("POST", "/keys/"+id+"/encrypt", map[string]any{"plaintext": b64([]byte("from the service")), "aad": b64([]byte("row 9"))}, 200)["ciphertext"])
	if len(ct) != 5+256 || !bytes.Equal(ct[:5], []byte{2, 0, 0, 0, 1}) {
		t.Fatalf("RSA ciphertext: %d bytes, header % x", len(ct), ct[:5])
	}
	writeFile(t, f("ct.bin"), ct[5:])
	ossl(append([]string{"pkeyutl", "-decrypt", "-inkey", f("key.pem"), "-in", f("ct.bin"), "-out", f("pt")}, label("row 9")...)...)
	if got := string(readFile(t, f("pt"))); got != "from the service" {
		t.Fatalf("openssl decrypts the service's ciphertext to %q", got)
	}
	dk := call("POST", "/keys/"+id+"/data-key", map[string]any{}, 200)
	writeFile(t, f("dk.bin"), unb64(dk["ciphertext"])[5:])
	ossl(append([]string{"pkeyutl", "-decrypt", "-inkey", f("key.pem"), "-in", f("dk.bin"), "-out", f("dk.pt")}, label("strongroom-data-key")...)...)
	if !bytes.Equal(readFile(t, f("dk.pt")), unb64(dk["plaintext"])) {
		t.Fatal("openssl decrypts the data key to another key")
	}

	// Signatures.
	msg := []byte("release v1.2.3")
	writeFile(t, f("sigmsg"), msg)
	ossl("dgst", "-sha256", "-sign", f("key.pem"), "-sigopt", "rsa_padding_mode:pss", "-out", f("ossl.sig"), f("sigmsg"))
	sigs := map[string][]byte{"openssl's default salt": readFile(t, f("ossl.sig"))}
	if _, err := exec.Command("python3", "-c", "import cryptography").CombinedOutput(); err == nil {
		py := `import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
k = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
sys.stdout.buffer.write(k.sign(open(sys.argv[2], "rb").read(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256()))`
		out, err := exec.Command("python3", "-c", py, f("key.pem"), f("sigmsg")).Output()
		if err != nil {
			t.Fatalf("python signs: %v", err)
		}
		sigs["python's PSS.MAX_LENGTH"] = out
	} else {
		t.Log("python3 with cryptography is not installed: its PSS signature is not checked")
	}
	for name, sig := range sigs {
		if v := call("POST", "/keys/"+id+"/verify", map[string]any{"message": b64(msg), "signature": b64(sig), "padding": "pss"}, 200); v["valid"] != true {
			t.Errorf("a PSS signature with %s does not verify: %v", name, v)
		}
	}
	for padding, opts := range map[string][]string{
		"pss": {"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"},
		"":    nil,
	} {
		s := call("POST", "/keys/"+id+"/sign", map[string]any{"message": b64(msg), "padding": padding}, 200)
		writeFile(t, f("api.sig"), unb64(s["signature"]))
		args := append([]string{"dgst", "-sha256", "-verify", f("pub.pem"), "-signature", f("api.sig")}, opts...)
		if got := ossl(append(args, f("sigmsg"))...); !strings.Contains(got, "Verified OK") {
			t.Errorf("openssl verifies the API's %q signature: %s", padding, got)
		}
	}
}
