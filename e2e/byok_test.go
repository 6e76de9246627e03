package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyServiceBYOK brings a key made by openssl into a real ca serve and
// takes one out, with openssl doing the other side of the RSA-AES key wrap
// as a user would (pkeyutl OAEP-SHA-256 for the AES key, enc
// -id-aes256-wrap-pad for the PKCS#8 key): the imported key's signature
// verifies with openssl's own public key, and the exported key opens with
// openssl's private key and is the service's key.
func TestKeyServiceBYOK(t *testing.T) {
	requireTool(t, "openssl")
	c := StartCA(t, Options{})
	call := keyServiceCaller(t, c)
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	ossl := func(args ...string) string { t.Helper(); return run(t, nil, "openssl", args...) }

	// Import: the service's RSA unwrap key; openssl wraps a P-256 key to it.
	wk := call("POST", "/keys", map[string]any{"label": "import", "type": "rsa3072", "usage": []string{"unwrap"}}, http.StatusCreated)
	writeFile(t, f("wrapping.pem"), []byte(wk["public_key"].(string)))
	ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f("mine.pem"))
	ossl("pkcs8", "-topk8", "-nocrypt", "-in", f("mine.pem"), "-outform", "DER", "-out", f("mine.p8"))
	ossl("pkey", "-in", f("mine.pem"), "-pubout", "-out", f("mine.pub"))
	ossl("rand", "-out", f("aes.key"), "32")
	kek := hex.EncodeToString(readFile(t, f("aes.key")))
	ossl("pkeyutl", "-encrypt", "-pubin", "-inkey", f("wrapping.pem"), "-in", f("aes.key"), "-out", f("head.bin"),
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
	ossl("enc", "-id-aes256-wrap-pad", "-K", kek, "-iv", "A65959A6", "-in", f("mine.p8"), "-out", f("tail.bin"))
	blob := append(readFile(t, f("head.bin")), readFile(t, f("tail.bin"))...)
	imp := call("POST", "/keys/import", map[string]any{"label": "mine", "type": "p256", "wrapping_key": wk["id"],
		"wrapped": base64.StdEncoding.EncodeToString(blob)}, http.StatusCreated)
	msg := []byte("signed by a key openssl made")
	sig := call("POST", "/keys/"+imp["id"].(string)+"/sign", map[string]any{"message": base64.StdEncoding.EncodeToString(msg)}, 200)
	raw, _ := base64.StdEncoding.DecodeString(sig["signature"].(string))
	writeFile(t, f("msg"), msg)
	writeFile(t, f("sig"), raw)
	if got := ossl("dgst", "-sha256", "-verify", f("mine.pub"), "-signature", f("sig"), f("msg")); !strings.Contains(got, "Verified OK") {
		t.Fatalf("openssl dgst -verify with the original public key: %s", got)
	}

	// Export: an extractable key of the service, wrapped to openssl's RSA key.
	ossl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f("dest.pem"))
	ossl("pkey", "-in", f("dest.pem"), "-pubout", "-out", f("dest.pub"))
	ex := call("POST", "/keys", map[string]any{"label": "leaving", "type": "p384", "extractable": true}, http.StatusCreated)
	got := call("POST", "/keys/"+ex["id"].(string)+"/export", map[string]any{"public_key": string(readFile(t, f("dest.pub")))}, 200)
	w, _ := base64.StdEncoding.DecodeString(got["wrapped"].(string))
	writeFile(t, f("ehead.bin"), w[:256])
	writeFile(t, f("etail.bin"), w[256:])
	ossl("pkeyutl", "-decrypt", "-inkey", f("dest.pem"), "-in", f("ehead.bin"), "-out", f("eaes.key"),
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
	ossl("enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(readFile(t, f("eaes.key"))), "-iv", "A65959A6",
		"-in", f("etail.bin"), "-out", f("exported.p8"))
	ossl("pkey", "-inform", "DER", "-in", f("exported.p8"), "-pubout", "-out", f("exported.pub"))
	if a, b := strings.TrimSpace(string(readFile(t, f("exported.pub")))), strings.TrimSpace(ex["public_key"].(string)); a != b {
		t.Fatalf("the exported key's public key\n%s\nis not the service's\n%s", a, b)
	}
}
