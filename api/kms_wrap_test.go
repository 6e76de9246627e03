package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
)

// TestKeyServiceImportExport: an extractable key leaves wrapped to one of
// the application's RSA unwrap keys and comes back in through
// /keys/import as the same key (its signatures verify with the original's
// public key); export to an outside RSA public key works; the refusals
// are problem documents and keep other applications' keys out of reach.
func TestKeyServiceImportExport(t *testing.T) {
	e := newKeyEnv(t)
	var unwrap KeyResponse
	if st := e.call(t, "POST", "/keys", map[string]any{"label": "import", "type": "rsa3072", "usage": []string{"wrap", "unwrap"}}, &unwrap); st != 201 {
		t.Fatalf("create an RSA unwrap key: %d", st)
	}
	var src KeyResponse
	if st := e.call(t, "POST", "/keys", map[string]any{"label": "leaving", "type": "p256", "extractable": true}, &src); st != 201 {
		t.Fatalf("create an extractable key: %d", st)
	}
	var out ExportKeyResponse
	if st := e.call(t, "POST", "/keys/"+src.ID+"/export", map[string]any{"wrapping_key": unwrap.ID}, &out); st != 200 ||
		out.Algorithm != "RSA_AES_KEY_WRAP_SHA_256" || out.Format != "PKCS8" || out.KeyID != src.ID {
		t.Fatalf("export: %d %+v", st, out)
	}
	var back KeyResponse
	if st := e.call(t, "POST", "/keys/import", map[string]any{"label": "returned", "type": "p256", "wrapping_key": unwrap.ID,
		"wrapped": out.Wrapped}, &back); st != 201 || back.Label != "returned" || back.Extractable {
		t.Fatalf("import: %d %+v", st, back)
	}
	msg := base64.StdEncoding.EncodeToString([]byte("payload"))
	var sig struct{ Signature string }
	if st := e.call(t, "POST", "/keys/"+back.ID+"/sign", map[string]any{"message": msg}, &sig); st != 200 {
		t.Fatalf("sign with the imported key: %d", st)
	}
	d := sha256.Sum256([]byte("payload"))
	if !ecdsa.VerifyASN1(pubOf(t, src).(*ecdsa.PublicKey), d[:], unb64(t, sig.Signature)) {
		t.Fatal("the imported key is not the exported one")
	}

	// To an outside RSA key, as PEM (SPKI or PKCS #1).
	outside, _ := rsa.GenerateKey(rand.Reader, 2048)
	spki, _ := x509.MarshalPKIXPublicKey(&outside.PublicKey)
	for _, p := range []string{
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})),
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&outside.PublicKey)})),
	} {
		var o ExportKeyResponse
		if st := e.call(t, "POST", "/keys/"+src.ID+"/export", map[string]any{"public_key": p}, &o); st != 200 || len(unb64(t, o.Wrapped)) < 256+40 {
			t.Fatalf("export to an outside key: %d %+v", st, o)
		}
	}
	// An AES wrapping key says so: a PKCS#8 key of a length that is not
	// a multiple of 8 is wrapped with padding (RFC 5649).
	aes := e.create(t, "kek", "aes256")
	var ao ExportKeyResponse
	if st := e.call(t, "POST", "/keys/"+src.ID+"/export", map[string]any{"wrapping_key": aes.ID}, &ao); st != 200 || ao.Algorithm != "AES_KEY_WRAP_PAD" {
		t.Fatalf("export under AES: %d %+v", st, ao)
	}

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallSPKI, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	otherSecret, _, err := CreateKey(context.Background(), e.db, "other-app", []string{ScopeKeys})
	if err != nil {
		t.Fatal(err)
	}
	e.keys["other"] = otherSecret
	tampered := unb64(t, out.Wrapped)
	tampered[len(tampered)-2] ^= 1
	for _, tc := range []struct {
		name, who, path string
		body            map[string]any
		want            int
	}{
		{"non-extractable key", "apps", "/keys/" + back.ID + "/export", map[string]any{"wrapping_key": unwrap.ID}, 403},
		{"neither wrapping key nor public key", "apps", "/keys/" + src.ID + "/export", map[string]any{}, 400},
		{"both", "apps", "/keys/" + src.ID + "/export", map[string]any{"wrapping_key": unwrap.ID, "public_key": "x"}, 400},
		{"not a PEM key", "apps", "/keys/" + src.ID + "/export", map[string]any{"public_key": "hello"}, 400},
		{"RSA-1024", "apps", "/keys/" + src.ID + "/export", map[string]any{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: smallSPKI}))}, 400},
		{"tampered blob", "apps", "/keys/import", map[string]any{"label": "t", "type": "p256", "wrapping_key": unwrap.ID, "wrapped": base64.StdEncoding.EncodeToString(tampered)}, 422},
		{"not base64", "apps", "/keys/import", map[string]any{"label": "t", "type": "p256", "wrapping_key": unwrap.ID, "wrapped": "!!"}, 400},
		{"wrong key type for the material", "apps", "/keys/import", map[string]any{"label": "t", "type": "ed25519", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped}, 400},
		{"unknown key type", "apps", "/keys/import", map[string]any{"label": "t", "type": "des", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped}, 400},
		{"unknown field", "apps", "/keys/import", map[string]any{"label": "t", "type": "p256", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped, "x": 1}, 400},
		{"another application's wrapping key", "other", "/keys/import", map[string]any{"label": "t", "type": "p256", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped}, 404},
		{"another application's key to export", "other", "/keys/" + src.ID + "/export", map[string]any{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))}, 404},
	} {
		r, b := e.do(t, "POST", tc.path, tc.who, "application/json", jsonBody(t, tc.body))
		if r.StatusCode != tc.want || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want %d", tc.name, r.StatusCode, b, tc.want)
		}
		if tc.name == "unknown key type" && !strings.Contains(string(b), `unknown key type \"des\"`) {
			t.Errorf("import of an unknown type: %s", b)
		}
	}
}

// TestKeyServiceImportKeepsVersion: a key exported at version 2 and
// imported with that version opens what version 2 encrypted; imported
// without it, it starts at 1 and the ciphertext does not open (422). A
// negative version is 400.
func TestKeyServiceImportKeepsVersion(t *testing.T) {
	e := newKeyEnv(t)
	var unwrap, src KeyResponse
	e.call(t, "POST", "/keys", map[string]any{"label": "import", "type": "rsa2048", "usage": []string{"wrap", "unwrap"}}, &unwrap)
	e.call(t, "POST", "/keys", map[string]any{"label": "fields", "type": "aes256", "extractable": true}, &src)
	e.call(t, "POST", "/keys/"+src.ID+"/rotate", nil, nil)
	var ct struct{ Ciphertext string }
	e.call(t, "POST", "/keys/"+src.ID+"/encrypt", map[string]any{"plaintext": "eA=="}, &ct)
	var out ExportKeyResponse
	if st := e.call(t, "POST", "/keys/"+src.ID+"/export", map[string]any{"wrapping_key": unwrap.ID}, &out); st != 200 || out.Version != 2 {
		t.Fatalf("export: %d, version %d", st, out.Version)
	}
	for _, c := range []struct {
		label   string
		version int
		want    int
	}{{"kept", out.Version, 200}, {"renumbered", 0, 422}} {
		var back KeyResponse
		body := map[string]any{"label": c.label, "type": "aes256", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped, "version": c.version}
		if st := e.call(t, "POST", "/keys/import", body, &back); st != 201 || back.Version != max(c.version, 1) {
			t.Fatalf("import %s: %d, version %d", c.label, st, back.Version)
		}
		var pt struct{ Plaintext string }
		if st := e.call(t, "POST", "/keys/"+back.ID+"/decrypt", map[string]any{"ciphertext": ct.Ciphertext}, &pt); st != c.want || c.want == 200 && pt.Plaintext != "eA==" {
			t.Errorf("decrypting v2's ciphertext with the key imported %s: %d %q, want %d", c.label, st, pt.Plaintext, c.want)
		}
	}
	if st := e.call(t, "POST", "/keys/import", map[string]any{"label": "neg", "type": "aes256", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped, "version": -1}, nil); st != 400 {
		t.Errorf("import at version -1: %d, want 400", st)
	}
}
