package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeyServiceBYOK brings a key made by openssl into a real ca serve and
// takes one out, with openssl doing the other side of the RSA-AES key wrap
// as a user would (pkeyutl OAEP-SHA-256 for the AES key, enc
// -id-aes256-wrap-pad for the PKCS#8 key): the imported key's signature
// verifies with openssl's own public key, and the exported key opens with
// openssl's private key and is the service's key.
func TestKeyServiceBYOK(t *testing.T) {
	call, f, ossl := keyServiceWithOpenSSL(t)

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

// TestKeyServiceBYOKReadme runs the README's bring-your-own-key commands
// (curl, jq, openssl) against a running CA: the P-256 key they make
// arrives with the usage and extractable they set, and its signatures
// verify with openssl against the public half of what openssl made.
func TestKeyServiceBYOKReadme(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "jq", "xxd"} {
		requireTool(t, tool)
	}
	c := StartCA(t, Options{})
	key := c.NewAPIKey(t, "--name", "app", "--scopes", "keys")
	work := t.TempDir()
	script := "KEY=" + key + "\n" + strings.NewReplacer("data/", c.Dir+"/", "https://localhost:8443", c.HTTPSURL).Replace(readmeBlock(t, "Key service"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := runShell(ctx, work, script)
	if err != nil {
		t.Fatalf("README commands failed: %v\n%s\n%s", err, script, out)
	}
	var imp struct {
		ID          string   `json:"id"`
		Type        string   `json:"type"`
		Usage       []string `json:"usage"`
		Extractable bool     `json:"extractable"`
		PublicKey   string   `json:"public_key"`
	}
	if err := json.Unmarshal([]byte(out), &imp); err != nil || imp.Type != "p256" || strings.Join(imp.Usage, ",") != "sign,verify" || imp.Extractable {
		t.Fatalf("the import answered %v: %s", err, out)
	}
	f := func(name string) string { return filepath.Join(work, name) }
	if _, err := os.Stat(f("mine.der")); err == nil {
		t.Fatal("the README's commands leave the plaintext key mine.der behind")
	}
	if a, b := strings.TrimSpace(string(readFile(t, f("mine.pub")))), strings.TrimSpace(imp.PublicKey); a != b {
		t.Fatalf("the imported key's public key\n%s\nis not openssl's\n%s", b, a)
	}
	msg := []byte("signed by the key the README brought in")
	resp, body := apiCall(t, c, "POST", "/keys/"+imp.ID+"/sign", key, "application/json", "",
		strings.NewReader(`{"message":"`+base64.StdEncoding.EncodeToString(msg)+`"}`))
	var sig struct{ Signature []byte }
	if err := json.Unmarshal(body, &sig); resp.StatusCode != 200 || err != nil {
		t.Fatalf("sign with the imported key: %s %s", resp.Status, body)
	}
	raw := sig.Signature
	writeFile(t, f("msg"), msg)
	writeFile(t, f("sig"), raw)
	if got := run(t, nil, "openssl", "dgst", "-sha256", "-verify", f("mine.pub"), "-signature", f("sig"), f("msg")); !strings.Contains(got, "Verified OK") {
		t.Fatalf("openssl dgst -verify: %s", got)
	}
}

// TestKeyServiceBYOKSecrets brings secrets made by openssl in — an AES-256
// key to wrap with, a 48-byte HMAC key (32 to 64 bytes are taken) — and
// takes keys out under that AES key, openssl unwrapping each with the
// algorithm export names: AES_KEY_WRAP (RFC 3394, openssl
// id-aes256-wrap) for the 48-byte secret, AES_KEY_WRAP_PAD (RFC 5649,
// id-aes256-wrap-pad) for a PKCS#8 P-384 key. The HMAC key's MACs are
// openssl's.
func TestKeyServiceBYOKSecrets(t *testing.T) {
	call, f, ossl := keyServiceWithOpenSSL(t)
	wk := call("POST", "/keys", map[string]any{"label": "import", "type": "rsa2048", "usage": []string{"unwrap"}}, http.StatusCreated)
	writeFile(t, f("wrapping.pem"), []byte(wk["public_key"].(string)))
	bring := func(label, typ, material string, extra map[string]any) map[string]any {
		t.Helper()
		ossl("rand", "-out", f("t.key"), "32")
		ossl("pkeyutl", "-encrypt", "-pubin", "-inkey", f("wrapping.pem"), "-in", f("t.key"), "-out", f("head.bin"),
			"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
		ossl("enc", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(readFile(t, f("t.key"))), "-iv", "A65959A6", "-in", material, "-out", f("tail.bin"))
		body := map[string]any{"label": label, "type": typ, "wrapping_key": wk["id"],
			"wrapped": base64.StdEncoding.EncodeToString(append(readFile(t, f("head.bin")), readFile(t, f("tail.bin"))...))}
		for k, v := range extra {
			body[k] = v
		}
		return call("POST", "/keys/import", body, http.StatusCreated)
	}
	ossl("rand", "-out", f("kek.bin"), "32")
	kek := bring("kek", "aes256", f("kek.bin"), map[string]any{"usage": []string{"wrap", "unwrap"}})
	ossl("rand", "-out", f("mac.bin"), "48")
	mac := bring("mac", "hmac-sha256", f("mac.bin"), map[string]any{"extractable": true})

	data := []byte("payload")
	writeFile(t, f("data"), data)
	got := call("POST", "/keys/"+mac["id"].(string)+"/mac", map[string]any{"data": base64.StdEncoding.EncodeToString(data)}, 200)["mac"].(string)
	want := ossl("dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:"+hex.EncodeToString(readFile(t, f("mac.bin"))), "-binary", "-out", f("mac.out"), f("data"))
	if b, _ := base64.StdEncoding.DecodeString(got); !bytes.Equal(b, readFile(t, f("mac.out"))) {
		t.Fatalf("the 48-byte key's MAC %x is not openssl's %x (%s)", b, readFile(t, f("mac.out")), want)
	}

	p384 := call("POST", "/keys", map[string]any{"label": "leaving", "type": "p384", "extractable": true}, http.StatusCreated)
	for _, c := range []struct {
		key          map[string]any
		alg, cipher  string
		iv, material string
	}{
		{mac, "AES_KEY_WRAP", "-id-aes256-wrap", "A6A6A6A6A6A6A6A6", f("mac.bin")},
		{p384, "AES_KEY_WRAP_PAD", "-id-aes256-wrap-pad", "A65959A6", ""},
	} {
		ex := call("POST", "/keys/"+c.key["id"].(string)+"/export", map[string]any{"wrapping_key": kek["id"]}, 200)
		if ex["algorithm"] != c.alg {
			t.Errorf("export of %s under AES: %v, want %s", ex["type"], ex["algorithm"], c.alg)
			continue
		}
		w, _ := base64.StdEncoding.DecodeString(ex["wrapped"].(string))
		writeFile(t, f("out.wrapped"), w)
		ossl("enc", "-d", c.cipher, "-K", hex.EncodeToString(readFile(t, f("kek.bin"))), "-iv", c.iv, "-in", f("out.wrapped"), "-out", f("out.bin"))
		if c.material != "" {
			if !bytes.Equal(readFile(t, f("out.bin")), readFile(t, c.material)) {
				t.Errorf("%s unwrapped by openssl is not the key brought in", ex["type"])
			}
			continue
		}
		ossl("pkey", "-inform", "DER", "-in", f("out.bin"), "-pubout", "-out", f("out.pub"))
		if a, b := strings.TrimSpace(string(readFile(t, f("out.pub")))), strings.TrimSpace(c.key["public_key"].(string)); a != b {
			t.Errorf("the key openssl unwrapped has public key\n%s\nnot the service's\n%s", a, b)
		}
	}
}
