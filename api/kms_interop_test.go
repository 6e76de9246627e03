package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/hsm"
)

// The key service as another implementation sees it: ciphertexts in the
// documented formats open with Go's crypto/cipher and crypto/rsa alone,
// and what those (or openssl, python) make opens or verifies here. The
// tests hold the keys' material: it is imported through the HSM session
// the service runs in, since the API takes keys only wrapped.

// known imports key material the test holds as one of the apps key's
// keys (label without the owner prefix) and returns it as the API shows it.
func (e *keyEnv) known(t *testing.T, label string, spec hsm.KeySpec, key any) KeyResponse {
	t.Helper()
	s, ok := e.api.keysNow().(*hsm.Session)
	if !ok {
		t.Fatalf("the key service is a %T, not an HSM session", e.api.keysNow())
	}
	spec.Label = "apikey:" + e.appsID + "/" + label
	info, err := s.ImportKey(context.Background(), spec, key)
	if err != nil {
		t.Fatalf("importing %s: %v", label, err)
	}
	var k KeyResponse
	if st := e.call(t, "GET", "/keys/"+info.ID, nil, &k); st != 200 {
		t.Fatalf("GET the imported %s: %d", label, st)
	}
	return k
}

func b64s(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestCiphertextFormats checks what the README and the OpenAPI document
// say of ciphertexts with nothing but the Go standard library: AES keys
// 0x01 ‖ version (4 bytes, big-endian) ‖ 12-byte nonce ‖ ciphertext ‖
// 16-byte tag, GCM additional data the 5-byte header ‖ aad; RSA keys 0x02
// ‖ version ‖ RSA-OAEP (SHA-256, MGF1-SHA-256, label aad); a data key is
// that with the aad "strongroom-data-key" (so decrypt with that aad opens
// it, as decrypt-data-key does). A ciphertext made outside in the AES
// format opens too.
func TestCiphertextFormats(t *testing.T) {
	e := newKeyEnv(t)
	msg, aad := []byte("4111 1111 1111 1111"), []byte("customer 42")
	const dkAAD = "strongroom-data-key"

	secret := make([]byte, 32)
	rand.Read(secret)
	ak := e.known(t, "fmt-aes", hsm.KeySpec{Type: hsm.AES256, Version: 0x01020304}, secret)
	block, _ := aes.NewCipher(secret)
	gcm, _ := cipher.NewGCM(block)
	var out struct{ Ciphertext string }
	if st := e.call(t, "POST", "/keys/"+ak.ID+"/encrypt", map[string]any{"plaintext": b64s(msg), "aad": b64s(aad)}, &out); st != 200 {
		t.Fatalf("encrypt: %d", st)
	}
	ct := unb64(t, out.Ciphertext)
	hdr := []byte{0x01, 0x01, 0x02, 0x03, 0x04}
	if len(ct) != 5+12+len(msg)+16 || !bytes.Equal(ct[:5], hdr) {
		t.Fatalf("AES ciphertext: %d bytes, header % x; want %d, % x", len(ct), ct[:5], 5+12+len(msg)+16, hdr)
	}
	if pt, err := gcm.Open(nil, ct[5:17], ct[17:], append(bytes.Clone(ct[:5]), aad...)); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("AES-GCM with header ‖ aad as additional data: %q %v", pt, err)
	}
	// The other way: made here in the same format, opened by the service.
	nonce := make([]byte, 12)
	rand.Read(nonce)
	mine := append(append(bytes.Clone(hdr), nonce...), gcm.Seal(nil, nonce, msg, append(bytes.Clone(hdr), aad...))...)
	var pt struct{ Plaintext string }
	if st := e.call(t, "POST", "/keys/"+ak.ID+"/decrypt", map[string]any{"ciphertext": b64s(mine), "aad": b64s(aad)}, &pt); st != 200 || pt.Plaintext != b64s(msg) {
		t.Fatalf("decrypting a ciphertext made with crypto/cipher: %d %q", st, pt.Plaintext)
	}
	var dk DataKeyResponse
	if st := e.call(t, "POST", "/keys/"+ak.ID+"/data-key", map[string]any{"bits": 128}, &dk); st != 200 {
		t.Fatalf("data-key: %d", st)
	}
	w := unb64(t, dk.Ciphertext)
	if got, err := gcm.Open(nil, w[5:17], w[17:], append(bytes.Clone(w[:5]), dkAAD...)); err != nil || b64s(got) != dk.Plaintext || len(got) != 16 {
		t.Fatalf("data key with header ‖ %q as additional data: %v", dkAAD, err)
	}
	for path, body := range map[string]map[string]any{
		"/decrypt":          {"ciphertext": dk.Ciphertext, "aad": b64s([]byte(dkAAD))},
		"/decrypt-data-key": {"ciphertext": dk.Ciphertext},
	} {
		if st := e.call(t, "POST", "/keys/"+ak.ID+path, body, &pt); st != 200 || pt.Plaintext != dk.Plaintext {
			t.Errorf("%s of the data key: %d", path, st)
		}
	}

	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	rk := e.known(t, "fmt-rsa", hsm.KeySpec{Type: hsm.RSA2048, Usage: hsm.UsageEncrypt | hsm.UsageDecrypt, Version: 7}, priv)
	if st := e.call(t, "POST", "/keys/"+rk.ID+"/encrypt", map[string]any{"plaintext": b64s(msg), "aad": b64s(aad)}, &out); st != 200 {
		t.Fatalf("RSA encrypt: %d", st)
	}
	ct = unb64(t, out.Ciphertext)
	if len(ct) != 5+256 || !bytes.Equal(ct[:5], []byte{0x02, 0, 0, 0, 7}) {
		t.Fatalf("RSA ciphertext: %d bytes, header % x", len(ct), ct[:5])
	}
	if got, err := rsa.DecryptOAEP(sha256.New(), nil, priv, ct[5:], aad); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("RSA-OAEP-SHA-256 with aad as the label: %q %v", got, err)
	}
	if st := e.call(t, "POST", "/keys/"+rk.ID+"/data-key", map[string]any{}, &dk); st != 200 {
		t.Fatalf("RSA data-key: %d", st)
	}
	w = unb64(t, dk.Ciphertext)
	if got, err := rsa.DecryptOAEP(sha256.New(), nil, priv, w[5:], []byte(dkAAD)); err != nil || b64s(got) != dk.Plaintext || len(got) != 32 {
		t.Fatalf("RSA data key with label %q: %v", dkAAD, err)
	}
	if st := e.call(t, "POST", "/keys/"+rk.ID+"/decrypt-data-key", map[string]any{"ciphertext": dk.Ciphertext}, &pt); st != 200 || pt.Plaintext != dk.Plaintext {
		t.Errorf("decrypt-data-key of an RSA data key: %d", st)
	}
}

// TestDecryptRawOAEP: an RSA key's decrypt also takes a raw RSA-OAEP
// ciphertext (SHA-256, MGF1-SHA-256, label aad) made with its public key,
// as openssl or any library makes it: with the current version, or the
// key_version given. Ciphertexts in the service's own format still open
// (key_version, if given, must be the one they name). Every failure —
// raw or not, altered, wrong label, wrong length, wrong version — is the
// same 422, byte for byte: no padding oracle. key_version must be a whole
// number of 0 or more (400).
func TestDecryptRawOAEP(t *testing.T) {
	e := newKeyEnv(t)
	var k KeyResponse
	if st := e.call(t, "POST", "/keys", map[string]any{"label": "oaep", "type": "rsa2048", "usage": []string{"encrypt", "decrypt"}}, &k); st != 201 {
		t.Fatalf("create: %d", st)
	}
	path := "/keys/" + k.ID + "/decrypt"
	raw := func(pub *rsa.PublicKey, msg, label string) string {
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, []byte(msg), []byte(label))
		if err != nil {
			t.Fatal(err)
		}
		return b64s(ct)
	}
	opens := func(name string, body map[string]any, want string) {
		t.Helper()
		var pt struct{ Plaintext string }
		if st := e.call(t, "POST", path, body, &pt); st != 200 || pt.Plaintext != b64s([]byte(want)) {
			t.Errorf("%s: %d %q, want 200 %q", name, st, pt.Plaintext, want)
		}
	}
	pub1 := pubOf(t, k).(*rsa.PublicKey)
	opens("raw, label", map[string]any{"ciphertext": raw(pub1, "one", "label"), "aad": b64s([]byte("label"))}, "one")
	opens("raw, no label", map[string]any{"ciphertext": raw(pub1, "", "")}, "")
	opens("raw, key_version 1", map[string]any{"ciphertext": raw(pub1, "one", ""), "key_version": 1}, "one")
	var enc1 struct{ Ciphertext string }
	e.call(t, "POST", "/keys/"+k.ID+"/encrypt", map[string]any{"plaintext": b64s([]byte("v1")), "aad": b64s([]byte("a"))}, &enc1)

	var k2 KeyResponse
	if st := e.call(t, "POST", "/keys/"+k.ID+"/rotate", nil, &k2); st != 200 || k2.Version != 2 {
		t.Fatalf("rotate: %d %d", st, k2.Version)
	}
	pub2 := pubOf(t, k2).(*rsa.PublicKey)
	opens("raw to version 2, current", map[string]any{"ciphertext": raw(pub2, "two", "")}, "two")
	opens("raw to version 2, key_version 2", map[string]any{"ciphertext": raw(pub2, "two", ""), "key_version": 2}, "two")
	opens("raw to version 1, key_version 1", map[string]any{"ciphertext": raw(pub1, "one", "x"), "aad": b64s([]byte("x")), "key_version": 1}, "one")
	opens("encrypt's format, version 1", map[string]any{"ciphertext": enc1.Ciphertext, "aad": b64s([]byte("a"))}, "v1")
	opens("encrypt's format, key_version 1", map[string]any{"ciphertext": enc1.Ciphertext, "aad": b64s([]byte("a")), "key_version": 1}, "v1")

	// Every failure is one answer.
	good := unb64(t, raw(pub2, "secret", "l"))
	edit := func(f func(b []byte) []byte) string { return b64s(f(bytes.Clone(good))) }
	aesKey := e.create(t, "aes", "aes256")
	failures := []struct {
		name string
		path string
		body map[string]any
	}{
		{"raw, altered", path, map[string]any{"ciphertext": edit(func(b []byte) []byte { b[100] ^= 1; return b }), "aad": b64s([]byte("l"))}},
		{"raw, first byte altered", path, map[string]any{"ciphertext": edit(func(b []byte) []byte { b[0] ^= 0x80; return b }), "aad": b64s([]byte("l"))}},
		{"raw, wrong label", path, map[string]any{"ciphertext": b64s(good), "aad": b64s([]byte("m"))}},
		{"raw, no label", path, map[string]any{"ciphertext": b64s(good)}},
		{"raw, zeros", path, map[string]any{"ciphertext": b64s(make([]byte, 256))}},
		{"raw, all ones", path, map[string]any{"ciphertext": b64s(bytes.Repeat([]byte{0xff}, 256))}},
		{"raw, one byte short", path, map[string]any{"ciphertext": edit(func(b []byte) []byte { return b[1:] }), "aad": b64s([]byte("l"))}},
		{"raw, one byte long", path, map[string]any{"ciphertext": edit(func(b []byte) []byte { return append(b, 0) }), "aad": b64s([]byte("l"))}},
		{"raw to version 2, key_version 1", path, map[string]any{"ciphertext": b64s(good), "aad": b64s([]byte("l")), "key_version": 1}},
		{"raw to version 1, current", path, map[string]any{"ciphertext": raw(pub1, "one", "")}},
		{"raw, key_version 3", path, map[string]any{"ciphertext": b64s(good), "aad": b64s([]byte("l")), "key_version": 3}},
		{"encrypt's format, key_version 2", path, map[string]any{"ciphertext": enc1.Ciphertext, "aad": b64s([]byte("a")), "key_version": 2}},
		{"encrypt's format, altered", path, map[string]any{"ciphertext": b64s(append(unb64(t, enc1.Ciphertext)[:100:100], bytes.Repeat([]byte{1}, 161)...)), "aad": b64s([]byte("a"))}},
		{"a header naming version 1 before a raw ciphertext to version 2", path, map[string]any{"ciphertext": b64s(append([]byte{2, 0, 0, 0, 1}, good...)), "aad": b64s([]byte("l"))}},
		{"raw to an AES key", "/keys/" + aesKey.ID + "/decrypt", map[string]any{"ciphertext": b64s(good), "aad": b64s([]byte("l"))}},
	}
	var first []byte
	for _, f := range failures {
		r, b := e.do(t, "POST", f.path, "apps", "application/json", jsonBody(t, f.body))
		if r.StatusCode != 422 || !strings.Contains(string(b), "does not open with this key") {
			t.Errorf("%s: %d %s, want 422", f.name, r.StatusCode, b)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Errorf("%s answers\n%s\nunlike %s:\n%s", f.name, b, failures[0].name, first)
		}
	}

	for body, want := range map[string]string{
		`{"ciphertext":"` + b64s(good) + `","key_version":-1}`:  "key_version must be a version number",
		`{"ciphertext":"` + b64s(good) + `","key_version":1.5}`: "whole number",
		`{"ciphertext":"` + b64s(good) + `","key_version":"1"}`: "whole number",
	} {
		if st, detail := e.raw(t, path, body); st != 400 || !strings.Contains(detail, want) {
			t.Errorf("decrypt %s: %d %s, want 400 with %q", body[len(body)-20:], st, detail, want)
		}
	}
	if st, detail := e.raw(t, "/keys/"+k.ID+"/verify", `{"message":"eA==","signature":"eA==","key_version":1.5}`); st != 400 || !strings.Contains(detail, `"key_version" is a number 1.5; it must be a whole number`) {
		t.Errorf("verify with key_version 1.5: %d %s", st, detail)
	}
}

// TestRSASignatures: every RSA size signs SHA-256; PKCS#1 v1.5 unless
// padding is pss, which signs with a salt of the hash's length; verify
// with pss takes any salt length — openssl's default and python's
// PSS.MAX_LENGTH (the longest that fits, as Go's PSSSaltLengthAuto signs)
// among them. Ed25519 and ECDSA refuse pss alike.
func TestRSASignatures(t *testing.T) {
	for _, typ := range []hsm.KeyType{hsm.RSA2048, hsm.RSA3072, hsm.RSA4096} {
		h, opts, err := sigParams(hsm.KeyInfo{Type: typ, PublicKey: &rsa.PublicKey{}}, "")
		if err != nil || h != crypto.SHA256 || opts != crypto.SHA256 {
			t.Errorf("%s signs with %v %v %v, want SHA-256 PKCS#1 v1.5", typ, h, opts, err)
		}
	}
	e := newKeyEnv(t)
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	k := e.known(t, "rsa-sig", hsm.KeySpec{Type: hsm.RSA2048}, priv)
	msg := []byte("release v1.2.3")
	d := sha256.Sum256(msg)
	verify := func(sig []byte, padding string) bool {
		t.Helper()
		var v struct{ Valid bool }
		if st := e.call(t, "POST", "/keys/"+k.ID+"/verify", map[string]any{"message": b64s(msg), "signature": b64s(sig), "padding": padding}, &v); st != 200 {
			t.Fatalf("verify: %d", st)
		}
		return v.Valid
	}
	// Signing, PSSSaltLengthAuto is the longest salt that fits: 222 bytes.
	for _, salt := range []int{rsa.PSSSaltLengthAuto, 20, 32, 64} {
		sig, err := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		if !verify(sig, "pss") {
			t.Errorf("a PSS signature with salt length %d (0: the longest) does not verify", salt)
		}
		if verify(sig, "") {
			t.Errorf("a PSS signature verifies as PKCS#1 v1.5")
		}
	}
	v15, _ := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, d[:])
	if !verify(v15, "") || !verify(v15, "pkcs1v15") || verify(v15, "pss") {
		t.Error("a PKCS#1 v1.5 signature verifies only as pkcs1v15, the default")
	}
	var out struct{ Signature string }
	e.call(t, "POST", "/keys/"+k.ID+"/sign", map[string]any{"message": b64s(msg), "padding": "pss"}, &out)
	if err := rsa.VerifyPSS(&priv.PublicKey, crypto.SHA256, d[:], unb64(t, out.Signature), &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Errorf("sign with pss: not a PSS signature with a 32-byte salt: %v", err)
	}
	e.call(t, "POST", "/keys/"+k.ID+"/sign", map[string]any{"message": b64s(msg)}, &out)
	if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, d[:], unb64(t, out.Signature)); err != nil {
		t.Errorf("sign without padding: not PKCS#1 v1.5: %v", err)
	}

	for _, typ := range []string{"ed25519", "p256"} {
		s := e.create(t, "sig-"+typ, typ)
		for _, op := range []string{"sign", "verify"} {
			body := `{"message":"eA==","padding":"pss"}`
			if op == "verify" {
				body = `{"message":"eA==","signature":"eA==","padding":"pss"}`
			}
			if st, detail := e.raw(t, "/keys/"+s.ID+"/"+op, body); st != 400 || !strings.Contains(detail, "RSA keys only") {
				t.Errorf("%s %s with pss: %d %s, want 400", typ, op, st, detail)
			}
		}
		if st := e.call(t, "POST", "/keys/"+s.ID+"/sign", map[string]any{"message": "eA==", "padding": "pkcs1v15"}, nil); st != 200 {
			t.Errorf("%s sign with pkcs1v15 (the default, ignored): %d", typ, st)
		}
	}
}

// TestJWTNumericDates: exp, nbf and iat given in the claims must be
// numbers from 0 to 253402300799 (9999-12-31T23:59:59Z), else 400 naming
// the claim; ttl takes the API's durations ("30d" as "720h").
func TestJWTNumericDates(t *testing.T) {
	e := newKeyEnv(t)
	k := e.create(t, "tokens", "hmac-sha256")
	path := "/keys/" + k.ID + "/jwt"
	for _, c := range []struct {
		claims, name string
		ok           bool
	}{
		{`{"exp":1e999}`, "exp", false},
		{`{"exp":-1e999}`, "exp", false},
		{`{"nbf":-1}`, "nbf", false},
		{`{"iat":253402300800}`, "iat", false},
		{`{"exp":253402300799.5}`, "exp", false},
		{`{"nbf":1e300}`, "nbf", false},
		{`{"exp":253402300799}`, "exp", true},
		{`{"nbf":0}`, "nbf", true},
		{`{"nbf":-0}`, "nbf", true},
		{`{"exp":1700000000.25}`, "exp", true},
		{`{"iat":1e9}`, "iat", true},
	} {
		st, detail := e.raw(t, path, `{"claims":`+c.claims+`}`)
		if c.ok && st != 200 || !c.ok && (st != 400 || !strings.Contains(detail, "claim "+c.name+" must be a NumericDate from 0 to 253402300799")) {
			t.Errorf("claims %s: %d %s", c.claims, st, detail)
		}
	}
	claimsOf := func(ttl string) (int, map[string]json.Number) {
		t.Helper()
		var out struct{ Token string }
		st := e.call(t, "POST", path, map[string]any{"claims": map[string]any{}, "ttl": ttl}, &out)
		if st != 200 {
			return st, nil
		}
		body, _ := base64.RawURLEncoding.DecodeString(strings.Split(out.Token, ".")[1])
		var c map[string]json.Number
		json.Unmarshal(body, &c)
		return st, c
	}
	for ttl, secs := range map[string]int64{"30d": 30 * 86400, "720h": 720 * 3600, "15m": 900, "1d": 86400} {
		st, c := claimsOf(ttl)
		iat, _ := c["iat"].Int64()
		exp, _ := c["exp"].Int64()
		if st != 200 || exp-iat != secs {
			t.Errorf("ttl %s: %d, exp - iat = %d, want %d", ttl, st, exp-iat, secs)
		}
	}
	for _, ttl := range []string{"0s", "0d", "-1h", "-1d", "soon", "36501d", "1.5d"} {
		if st, _ := claimsOf(ttl); st != 400 {
			t.Errorf("ttl %q: %d, want 400", ttl, st)
		}
	}
}

// TestHMACKeyLengths: an HMAC-SHA256 key may be 32 to 64 bytes (RFC 7518
// §3.2 asks at least the hash's size; AWS KMS takes 32 to 64), and MACs
// as HMAC-SHA256 with that key; a generated one is 32 bytes.
func TestHMACKeyLengths(t *testing.T) {
	e := newKeyEnv(t)
	s := e.api.keysNow().(*hsm.Session)
	for _, n := range []int{31, 65, 0} {
		if _, err := s.ImportKey(context.Background(), hsm.KeySpec{Type: hsm.HMACSHA256, Label: "apikey:" + e.appsID + "/bad" + strconv.Itoa(n)}, make([]byte, n)); err == nil {
			t.Errorf("a %d-byte HMAC key was imported", n)
		}
	}
	data := []byte("payload")
	for _, n := range []int{32, 33, 48, 64} {
		secret := make([]byte, n)
		rand.Read(secret)
		k := e.known(t, "mac"+strconv.Itoa(n), hsm.KeySpec{Type: hsm.HMACSHA256}, secret)
		var out struct{ MAC string }
		e.call(t, "POST", "/keys/"+k.ID+"/mac", map[string]any{"data": b64s(data)}, &out)
		m := hmac.New(sha256.New, secret)
		m.Write(data)
		if !bytes.Equal(unb64(t, out.MAC), m.Sum(nil)) {
			t.Errorf("a %d-byte HMAC key: the MAC is not HMAC-SHA256 with it", n)
		}
	}
}

// TestExportAlgorithmNamed: export under an AES key names what it did:
// AES_KEY_WRAP (RFC 3394) for a 32-byte secret, AES_KEY_WRAP_PAD (RFC
// 5649) for a PKCS#8 key or a secret of another length; the blob's
// length and initial value agree (an RFC 3394 blob is 8 bytes longer
// than the material; RFC 5649 pads to 8).
func TestExportAlgorithmNamed(t *testing.T) {
	e := newKeyEnv(t)
	kek := make([]byte, 32)
	rand.Read(kek)
	wk := e.known(t, "kek", hsm.KeySpec{Type: hsm.AES256}, kek)
	block, _ := aes.NewCipher(kek)
	mk := func(label, typ string) KeyResponse {
		var k KeyResponse
		if st := e.call(t, "POST", "/keys", map[string]any{"label": label, "type": typ, "extractable": true}, &k); st != 201 {
			t.Fatalf("create %s: %d", typ, st)
		}
		return k
	}
	secret33 := make([]byte, 33)
	rand.Read(secret33)
	for _, c := range []struct {
		k    KeyResponse
		alg  string
		size int // of the material
	}{
		{mk("aes", "aes256"), "AES_KEY_WRAP", 32},
		{mk("mac", "hmac-sha256"), "AES_KEY_WRAP", 32},
		{e.known(t, "mac33", hsm.KeySpec{Type: hsm.HMACSHA256, Extractable: true}, secret33), "AES_KEY_WRAP_PAD", 33},
		{mk("p256", "p256"), "AES_KEY_WRAP_PAD", 138},
	} {
		var out ExportKeyResponse
		if st := e.call(t, "POST", "/keys/"+c.k.ID+"/export", map[string]any{"wrapping_key": wk.ID}, &out); st != 200 || out.Algorithm != c.alg {
			t.Errorf("export %s: %d %s, want %s", c.k.Type, st, out.Algorithm, c.alg)
			continue
		}
		w := unb64(t, out.Wrapped)
		if got := aesUnwrapIV(block, w); c.alg == "AES_KEY_WRAP" && (len(w) != c.size+8 || !bytes.Equal(got, bytes.Repeat([]byte{0xA6}, 8))) ||
			c.alg == "AES_KEY_WRAP_PAD" && (len(w) != (c.size+7)/8*8+8 || binary.BigEndian.Uint32(got) != 0xA65959A6 || int(binary.BigEndian.Uint32(got[4:])) != c.size) {
			t.Errorf("export %s as %s: %d bytes, initial value % x", c.k.Type, out.Algorithm, len(w), got)
		}
	}
}

// aesUnwrapIV runs the RFC 3394 §2.2.2 unwrapping process on c and returns
// the initial value it recovers: A6A6A6A6A6A6A6A6 for RFC 3394, A65959A6
// and the length for RFC 5649 (c longer than 16 bytes).
func aesUnwrapIV(b cipher.Block, c []byte) []byte {
	n := len(c)/8 - 1
	a := bytes.Clone(c[:8])
	r := bytes.Clone(c[8:])
	buf := make([]byte, 16)
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a)^uint64(n*j+i))
			copy(buf[8:], r[8*(i-1):8*i])
			b.Decrypt(buf, buf)
			copy(a, buf[:8])
			copy(r[8*(i-1):], buf[8:])
		}
	}
	return a
}
