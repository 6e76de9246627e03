package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.step.sm/crypto/jose"

	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// keyEnv is the API with the key service running in a real embedded HSM,
// as the applications' crypto user "apps"; ca is the CA's own user on the
// same module.
type keyEnv struct {
	*env
	ca      *hsm.Session
	appsID  string // the apps API key's id
	keyFile string // the module's unseal key file
}

func newKeyEnv(t testing.TB, opts ...func(*Options)) *keyEnv {
	t.Helper()
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	m, err := hsm.New(ctx, hsm.Options{Store: db, KeySyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	keyFile := filepath.Join(t.TempDir(), "unseal.key")
	if _, err := m.Initialize(ctx, hsm.InitOptions{Method: hsm.UnsealMethod("keyfile"), KeyFile: keyFile,
		OfficerName: "officer", OfficerPIN: "officer-pin-1"}); err != nil {
		t.Fatal(err)
	}
	officer, err := m.Login(ctx, "officer", "officer-pin-1")
	if err != nil {
		t.Fatal(err)
	}
	login := func(name string) *hsm.Session {
		if err := officer.CreateUser(ctx, name, hsm.RoleUser, name+"-pin-1234"); err != nil {
			t.Fatal(err)
		}
		s, err := m.Login(ctx, name, name+"-pin-1234")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	apps, caUser := login("apps"), login("ca")
	e := newEnv(t, db, func(o *Options) {
		o.Keys = apps
		for _, f := range opts {
			f(o)
		}
	})
	secret, id, err := CreateKey(ctx, db, "apps", []string{ScopeKeys})
	if err != nil {
		t.Fatal(err)
	}
	e.keys["apps"] = secret
	return &keyEnv{env: e, ca: caUser, appsID: id, keyFile: keyFile}
}

// call posts (or gets, with body nil and method GET) JSON as the apps key
// and decodes the answer into out; it returns the status.
func (e *keyEnv) call(t testing.TB, method, path string, in, out any) int {
	t.Helper()
	var body []byte
	if in != nil {
		body = jsonBody(t, in)
	}
	resp, b := e.do(t, method, path, "apps", "application/json", body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("%s %s: %d without a problem document: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func (e *keyEnv) create(t testing.TB, label, typ string) KeyResponse {
	t.Helper()
	var k KeyResponse
	if st := e.call(t, "POST", "/keys", map[string]any{"label": label, "type": typ}, &k); st != 201 {
		t.Fatalf("create %s: %d", typ, st)
	}
	return k
}

func pubOf(t *testing.T, k KeyResponse) crypto.PublicKey {
	t.Helper()
	b, _ := pem.Decode([]byte(k.PublicKey))
	if b == nil {
		t.Fatalf("key %s has no public key PEM", k.ID)
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyServiceSignVerify: signatures made through the API verify with
// the published public key in plain Go, and through the API; a wrong one
// is valid:false, not an error.
func TestKeyServiceSignVerify(t *testing.T) {
	e := newKeyEnv(t)
	msg := []byte("release v1.2.3")
	m := base64.StdEncoding.EncodeToString(msg)
	d := sha256.Sum256(msg)
	for _, c := range []struct {
		typ, padding string
		check        func(pub crypto.PublicKey, sig []byte) bool
	}{
		{"p256", "", func(pub crypto.PublicKey, sig []byte) bool {
			return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig)
		}},
		{"ed25519", "", func(pub crypto.PublicKey, sig []byte) bool { return ed25519.Verify(pub.(ed25519.PublicKey), msg, sig) }},
		{"rsa2048", "pss", func(pub crypto.PublicKey, sig []byte) bool {
			return rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}},
	} {
		k := e.create(t, "signer-"+c.typ, c.typ)
		var out struct {
			Signature  string `json:"signature"`
			KeyVersion int    `json:"key_version"`
		}
		if st := e.call(t, "POST", "/keys/"+k.ID+"/sign", map[string]any{"message": m, "padding": c.padding}, &out); st != 200 || out.KeyVersion != 1 {
			t.Fatalf("%s sign: %d %+v", c.typ, st, out)
		}
		sig := unb64(t, out.Signature)
		if !c.check(pubOf(t, k), sig) {
			t.Fatalf("%s signature does not verify in Go", c.typ)
		}
		var v struct{ Valid bool }
		if e.call(t, "POST", "/keys/"+k.ID+"/verify", map[string]any{"message": m, "signature": out.Signature, "padding": c.padding}, &v); !v.Valid {
			t.Fatalf("%s: the API rejects its own signature", c.typ)
		}
		sig[len(sig)/2] ^= 1
		if st := e.call(t, "POST", "/keys/"+k.ID+"/verify", map[string]any{"message": m, "signature": base64.StdEncoding.EncodeToString(sig),
			"padding": c.padding}, &v); st != 200 || v.Valid {
			t.Fatalf("%s: altered signature: %d %+v", c.typ, st, v)
		}
	}
	// A digest instead of the message, for the P-256 key made above.
	var keys struct{ Keys []KeyResponse }
	e.call(t, "GET", "/keys", nil, &keys)
	if len(keys.Keys) != 3 {
		t.Fatalf("listed %d keys", len(keys.Keys))
	}
	var p256 KeyResponse
	for _, k := range keys.Keys {
		if k.Type == "p256" {
			p256 = k
		}
	}
	var out struct{ Signature string }
	e.call(t, "POST", "/keys/"+p256.ID+"/sign", map[string]any{"digest": base64.StdEncoding.EncodeToString(d[:])}, &out)
	if !ecdsa.VerifyASN1(pubOf(t, p256).(*ecdsa.PublicKey), d[:], unb64(t, out.Signature)) {
		t.Fatal("digest signature does not verify")
	}
	// Sign always uses the current version: a key_version or signature
	// sent to it would be ignored, so they are refused.
	for _, extra := range []map[string]any{{"key_version": 1}, {"signature": out.Signature}} {
		extra["digest"] = base64.StdEncoding.EncodeToString(d[:])
		if st := e.call(t, "POST", "/keys/"+p256.ID+"/sign", extra, nil); st != 400 {
			t.Fatalf("sign with %v: %d, want 400", extra, st)
		}
	}
}

// TestKeyServiceEncryption: AES-GCM round trip with AAD, one answer for
// every failure to open, rotation keeps old ciphertexts readable, data keys
// unwrap to what they were, HMAC, hash, random.
func TestKeyServiceEncryption(t *testing.T) {
	e := newKeyEnv(t)
	k := e.create(t, "fields", "aes256")
	pt, aad := base64.StdEncoding.EncodeToString([]byte("4111 1111 1111 1111")), base64.StdEncoding.EncodeToString([]byte("row 7"))
	var ct struct{ Ciphertext string }
	if st := e.call(t, "POST", "/keys/"+k.ID+"/encrypt", map[string]any{"plaintext": pt, "aad": aad}, &ct); st != 200 {
		t.Fatalf("encrypt: %d", st)
	}
	var back struct{ Plaintext string }
	if st := e.call(t, "POST", "/keys/"+k.ID+"/decrypt", map[string]any{"ciphertext": ct.Ciphertext, "aad": aad}, &back); st != 200 || back.Plaintext != pt {
		t.Fatalf("decrypt: %d %+v", st, back)
	}
	wrongAAD := e.call(t, "POST", "/keys/"+k.ID+"/decrypt", map[string]any{"ciphertext": ct.Ciphertext}, nil)
	b := unb64(t, ct.Ciphertext)
	b[len(b)-1] ^= 1
	altered := e.call(t, "POST", "/keys/"+k.ID+"/decrypt", map[string]any{"ciphertext": base64.StdEncoding.EncodeToString(b), "aad": aad}, nil)
	if wrongAAD != 422 || altered != 422 {
		t.Fatalf("wrong AAD %d, altered %d; want 422 both", wrongAAD, altered)
	}
	var rotated KeyResponse
	if e.call(t, "POST", "/keys/"+k.ID+"/rotate", nil, &rotated); rotated.Version != 2 {
		t.Fatalf("rotate: %+v", rotated)
	}
	if st := e.call(t, "POST", "/keys/"+k.ID+"/decrypt", map[string]any{"ciphertext": ct.Ciphertext, "aad": aad}, &back); st != 200 || back.Plaintext != pt {
		t.Fatalf("decrypt after rotation: %d", st)
	}
	var dk DataKeyResponse
	if st := e.call(t, "POST", "/keys/"+k.ID+"/data-key", map[string]any{}, &dk); st != 200 || len(unb64(t, dk.Plaintext)) != 32 {
		t.Fatalf("data key: %d %+v", st, dk)
	}
	if e.call(t, "POST", "/keys/"+k.ID+"/decrypt-data-key", map[string]any{"ciphertext": dk.Ciphertext}, &back); back.Plaintext != dk.Plaintext {
		t.Fatal("data key does not unwrap to itself")
	}
	// A data key is wrapped with no AAD: one sent would be silently ignored.
	if st := e.call(t, "POST", "/keys/"+k.ID+"/decrypt-data-key", map[string]any{"ciphertext": dk.Ciphertext, "aad": aad}, nil); st != 400 {
		t.Fatalf("decrypt-data-key with aad: %d, want 400", st)
	}

	h := e.create(t, "webhooks", "hmac-sha256")
	data := base64.StdEncoding.EncodeToString([]byte("payload"))
	var mac struct{ MAC string }
	e.call(t, "POST", "/keys/"+h.ID+"/mac", map[string]any{"data": data}, &mac)
	var v struct{ Valid bool }
	if e.call(t, "POST", "/keys/"+h.ID+"/verify-mac", map[string]any{"data": data, "mac": mac.MAC}, &v); !v.Valid {
		t.Fatal("MAC does not verify")
	}
	if e.call(t, "POST", "/keys/"+h.ID+"/verify-mac", map[string]any{"data": base64.StdEncoding.EncodeToString([]byte("other")), "mac": mac.MAC}, &v); v.Valid {
		t.Fatal("MAC of other data verifies")
	}

	var dg struct{ Digest string }
	e.call(t, "POST", "/hash", map[string]any{"algorithm": "SHA-256", "data": data}, &dg)
	if want := sha256.Sum256([]byte("payload")); string(unb64(t, dg.Digest)) != string(want[:]) {
		t.Fatal("SHA-256 differs from Go's")
	}
	var r1, r2 struct{ Random string }
	e.call(t, "POST", "/random", map[string]any{"bytes": 32}, &r1)
	e.call(t, "POST", "/random", map[string]any{"bytes": 32}, &r2)
	if len(unb64(t, r1.Random)) != 32 || r1.Random == r2.Random {
		t.Fatalf("random: %q %q", r1.Random, r2.Random)
	}
}

// TestKeyServiceJWT: an ES256 token verifies with the published key (R||S
// signature, kid id.version, iat and exp set).
func TestKeyServiceJWT(t *testing.T) {
	e := newKeyEnv(t)
	k := e.create(t, "tokens", "p256")
	var out struct{ Token string }
	if st := e.call(t, "POST", "/keys/"+k.ID+"/jwt", map[string]any{"claims": map[string]any{"sub": "svc-a", "aud": "billing"}, "ttl": "15m"}, &out); st != 200 {
		t.Fatalf("jwt: %d", st)
	}
	parts := strings.Split(out.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", out.Token)
	}
	var hdr map[string]string
	var claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(hb, &hdr)
	json.Unmarshal(cb, &claims)
	if hdr["alg"] != "ES256" || hdr["kid"] != k.ID+".1" || claims["sub"] != "svc-a" || claims["exp"].(float64)-claims["iat"].(float64) != 900 {
		t.Fatalf("header %v claims %v", hdr, claims)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if len(sig) != 64 || !ecdsa.Verify(pubOf(t, k).(*ecdsa.PublicKey), d[:], r, s) {
		t.Fatal("JWT signature does not verify")
	}

	// After a rotation the JWK Set, fetched with no credential, verifies
	// both the old token and a new one (go.step.sm/crypto/jose), by kid.
	e.call(t, "POST", "/keys/"+k.ID+"/rotate", nil, nil)
	var out2 struct{ Token string }
	e.call(t, "POST", "/keys/"+k.ID+"/jwt", map[string]any{"claims": map[string]any{"sub": "svc-b"}}, &out2)
	for _, body := range []map[string]any{{}, {"claims": nil}, {"ttl": "5m"}} {
		if st := e.call(t, "POST", "/keys/"+k.ID+"/jwt", body, nil); st != 400 {
			t.Fatalf("jwt with %v: %d, want 400 (claims is required)", body, st)
		}
	}
	// exp is in whole seconds: a ttl under one would make it iat, a token
	// expired when made.
	for _, ttl := range []string{"1ns", "999ms", "0s"} {
		if st := e.call(t, "POST", "/keys/"+k.ID+"/jwt", map[string]any{"claims": map[string]any{}, "ttl": ttl}, nil); st != 400 {
			t.Fatalf("jwt with ttl %s: %d, want 400", ttl, st)
		}
	}
	resp, body := e.do(t, "GET", "/jwks/"+k.ID, "", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("JWKS: %d %s", resp.StatusCode, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	for _, tok := range []string{out.Token, out2.Token} {
		jwt, err := jose.ParseSigned(tok)
		if err != nil {
			t.Fatal(err)
		}
		kid := jwt.Headers[0].KeyID
		keys := set.Key(kid)
		if len(keys) != 1 {
			t.Fatalf("no JWK for kid %q", kid)
		}
		var claims map[string]any
		if err := jwt.Claims(keys[0].Key, &claims); err != nil || claims["sub"] == nil {
			t.Fatalf("token of kid %s does not verify with the JWKS: %v", kid, err)
		}
	}
	h := e.create(t, "hmac", "hmac-sha256")
	var unwrap KeyResponse // an RSA key that may only unwrap signs no token
	if st := e.call(t, "POST", "/keys", map[string]any{"label": "u", "type": "rsa2048", "usage": []string{"unwrap"}}, &unwrap); st != 201 {
		t.Fatalf("create an unwrap key: %d", st)
	}
	for _, id := range []string{h.ID, unwrap.ID, "no-such-key"} {
		if r, _ := e.do(t, "GET", "/jwks/"+id, "", "", nil); r.StatusCode != 404 {
			t.Fatalf("JWKS of %s: %d", id, r.StatusCode)
		}
	}
}

// TestKeyServiceBoundaries: the CA's keys are invisible to it, scopes are
// enforced, a node without the key service says so, destroyed keys are
// gone, bad input is a 4xx problem.
func TestKeyServiceBoundaries(t *testing.T) {
	e := newKeyEnv(t)
	ctx := context.Background()
	caKey, err := e.ca.GenerateKey(ctx, hsm.KeySpec{Type: hsm.P256, Label: "intermediate"})
	if err != nil {
		t.Fatal(err)
	}
	if st := e.call(t, "GET", "/keys/"+caKey.ID, nil, nil); st != 404 {
		t.Fatalf("the CA's key through the key service: %d, want 404", st)
	}
	if st := e.call(t, "POST", "/keys/"+caKey.ID+"/sign", map[string]any{"message": "eA=="}, nil); st != 404 {
		t.Fatalf("signing with the CA's key: %d, want 404", st)
	}
	var keys struct{ Keys []KeyResponse }
	if e.call(t, "GET", "/keys", nil, &keys); len(keys.Keys) != 0 {
		t.Fatalf("the key service lists %d keys", len(keys.Keys))
	}
	if r, _ := e.do(t, "GET", "/keys", "issuer", "", nil); r.StatusCode != 403 {
		t.Fatalf("issue/read key on /keys: %d", r.StatusCode)
	}
	if r, _ := e.do(t, "GET", "/keys", "admin", "", nil); r.StatusCode != 200 {
		t.Fatalf("admin on /keys: %d", r.StatusCode)
	}
	if r, _ := e.do(t, "GET", "/keys", "", "", nil); r.StatusCode != 401 {
		t.Fatalf("no key on /keys: %d", r.StatusCode)
	}

	// Each refusal is a 4xx problem whose detail says what was wrong (the
	// HSM's reason, not only "invalid argument").
	k := e.create(t, "temp", "aes128")
	for _, c := range []struct {
		path   string
		body   any
		want   int
		detail string
	}{
		{"/keys/" + k.ID + "/encrypt", map[string]any{"plaintext": "not base64!"}, 400, "base64"},
		{"/keys/" + k.ID + "/encrypt", map[string]any{"plaintext": "eA==", "extra": 1}, 400, "extra"},
		{"/keys/" + k.ID + "/sign", map[string]any{"message": "eA=="}, 422, "do not sign"},
		{"/keys/" + k.ID + "/data-key", map[string]any{"bits": 7}, 400, "bits must be 128 or 256"},
		{"/keys", map[string]any{"label": "x", "type": "dsa1024"}, 400, `unknown key type "dsa1024"`},
		{"/keys", map[string]any{"label": strings.Repeat("x", 200), "type": "aes256"}, 400, "at most 104 characters"}, // 128 less "apikey:<id>/"
		{"/keys", map[string]any{"label": "x", "type": "aes256", "usage": []string{"fly"}}, 400, "fly"},
		{"/keys", map[string]any{"label": "x", "type": "aes256", "usage": []string{"encrypt", "derive"}}, 400, "no key-service operation derives"},
		{"/keys", map[string]any{"type": "aes256"}, 400, "label"},
		{"/keys", map[string]any{"label": "bidi\u202etxt", "type": "aes256"}, 400, "invisible formatting"},
		{"/keys", map[string]any{"label": "tab\there", "type": "aes256"}, 400, "control"},
		{"/hash", map[string]any{"algorithm": "MD5", "data": "eA=="}, 400, "SHA-256"},
		{"/random", map[string]any{"bytes": 5000}, 400, "1 to 1024"},
		{"/keys/" + k.ID + "/jwt", map[string]any{"claims": map[string]any{}}, 422, "do not sign"},
	} {
		r, b := e.do(t, "POST", c.path, "apps", "application/json", jsonBody(t, c.body))
		var p Problem
		if err := json.Unmarshal(b, &p); err != nil || r.StatusCode != c.want || p.Status != c.want || !strings.Contains(p.Detail, c.detail) {
			t.Fatalf("POST %s %v: %d %s, want %d with %q", c.path, c.body, r.StatusCode, b, c.want, c.detail)
		}
	}
	// A body sent as another type than JSON is refused (a form or
	// text/plain is what a page may post cross-site unasked), and JSON
	// with anything after it too.
	for _, c := range []struct {
		path, ctype, body string
		want              int
	}{
		{"/random", "text/plain", `{"bytes":8}`, 415},
		{"/random", "application/x-www-form-urlencoded", `{"bytes":8}`, 415},
		{"/keys/" + k.ID + "/rotate", "text/plain", `{}`, 415},
		{"/random", "application/json", `{"bytes":8}}`, 400},
		{"/random", "application/json", `{"bytes":8}]junk`, 400},
		{"/random", "", `{"bytes":8}`, 200},
		{"/random", "application/json; charset=utf-8", `{"bytes":8}`, 200},
		{"/keys/" + k.ID + "/rotate", "text/plain", ``, 200},
	} {
		r, b := e.do(t, "POST", c.path, "apps", c.ctype, []byte(c.body))
		if r.StatusCode != c.want {
			t.Fatalf("POST %s as %q %s: %d %s, want %d", c.path, c.ctype, c.body, r.StatusCode, b, c.want)
		}
	}
	if st := e.call(t, "DELETE", "/keys/"+k.ID, nil, nil); st != 204 {
		t.Fatalf("destroy: %d", st)
	}
	if st := e.call(t, "GET", "/keys/"+k.ID, nil, nil); st != 404 {
		t.Fatalf("destroyed key: %d", st)
	}

	// A node without the key service answers 503 with a problem.
	plain := newEnv(t, nil, nil)
	secret, _, _ := CreateKey(ctx, plain.db, "apps", []string{ScopeKeys})
	plain.keys["apps"] = secret
	if r, b := plain.do(t, "GET", "/keys", "apps", "", nil); r.StatusCode != 503 || !strings.Contains(string(b), "could not log in") {
		t.Fatalf("no key service: %d %s", r.StatusCode, b)
	}
}

// FuzzKeyService throws arbitrary bodies at every key service operation on
// real keys of each kind: the answer is never a 5xx, and every error is a
// problem document.
func FuzzKeyService(f *testing.F) {
	e := newKeyEnv(f)
	ids := map[string]string{}
	for _, typ := range []string{"aes256", "p256", "ed25519", "hmac-sha256"} {
		ids[typ] = e.create(f, "fuzz-"+typ, typ).ID
	}
	f.Add([]byte(`{"plaintext":"eA==","aad":"eQ=="}`), uint8(0))
	f.Add([]byte(`{"message":"eA==","padding":"pss"}`), uint8(1))
	f.Add([]byte(`{"digest":"AAAA","signature":"AA=="}`), uint8(2))
	f.Add([]byte(`{"claims":{"sub":1},"ttl":"-1s"}`), uint8(3))
	f.Add([]byte(`{"bits":17}`), uint8(4))
	f.Add([]byte(`{"label":"","type":"aes256","usage":["wrap"]}`), uint8(5))
	f.Add([]byte(`{"algorithm":"SHA3-256","data":"%%%"}`), uint8(6))
	f.Add([]byte(`{"label":"x","type":"p256","wrapping_key":"`+ids["aes256"]+`","wrapped":"AAAAAAAAAAAAAAAAAAAAAA=="}`), uint8(12))
	f.Add([]byte(`{"public_key":"-----BEGIN PUBLIC KEY-----\nMA==\n-----END PUBLIC KEY-----"}`), uint8(9))
	f.Add([]byte(`{"wrapping_key":"`+ids["aes256"]+`"}`), uint8(9))
	ops := []string{"encrypt", "decrypt", "sign", "verify", "mac", "verify-mac", "data-key", "decrypt-data-key", "jwt", "export"}
	types := []string{"aes256", "p256", "ed25519", "hmac-sha256"}
	f.Fuzz(func(t *testing.T, body []byte, pick uint8) {
		path := "/api/v1/keys/" + ids[types[int(pick)%len(types)]] + "/" + ops[int(pick)%len(ops)]
		switch pick % 16 {
		case 12:
			path = "/api/v1/keys/import"
		case 13:
			path = "/api/v1/keys"
		case 14:
			path = "/api/v1/hash"
		case 15:
			path = "/api/v1/random"
		}
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.keys["apps"])
		req.Header.Set("Content-Type", "application/json")
		serveClientBytes(t, e.engine, req)
	})
}

// TestKeyServiceOwnership: applications sharing the key service cannot see
// or use each other's keys; an admin key sees them all, labels in full.
func TestKeyServiceOwnership(t *testing.T) {
	e := newKeyEnv(t)
	secret, otherID, err := CreateKey(context.Background(), e.db, "other-app", []string{ScopeKeys})
	if err != nil {
		t.Fatal(err)
	}
	e.keys["other"] = secret
	mine := e.create(t, "billing", "aes256")
	if mine.Label != "billing" {
		t.Fatalf("the owner sees label %q", mine.Label)
	}
	as := func(who, method, path string, in any) int {
		var body []byte
		if in != nil {
			body = jsonBody(t, in)
		}
		r, _ := e.do(t, method, path, who, "application/json", body)
		return r.StatusCode
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/keys/" + mine.ID}, {"POST", "/keys/" + mine.ID + "/encrypt"}, {"POST", "/keys/" + mine.ID + "/rotate"},
		{"POST", "/keys/" + mine.ID + "/data-key"}, {"DELETE", "/keys/" + mine.ID},
	} {
		if st := as("other", c.method, c.path, map[string]any{}); st != 404 {
			t.Fatalf("another application: %s %s = %d, want 404", c.method, c.path, st)
		}
	}
	// Opening a ciphertext with another application's key answers as for
	// a key that does not exist (it was 422, "does not open with this
	// key": an oracle for which key ids exist).
	for _, op := range []string{"decrypt", "decrypt-data-key"} {
		body := jsonBody(t, map[string]any{"ciphertext": "eA=="})
		r, theirs := e.do(t, "POST", "/keys/"+mine.ID+"/"+op, "other", "application/json", body)
		r2, missing := e.do(t, "POST", "/keys/"+strings.Repeat("0", len(mine.ID))+"/"+op, "other", "application/json", body)
		if r.StatusCode != 404 || r2.StatusCode != 404 ||
			strings.ReplaceAll(string(theirs), mine.ID, "ID") != strings.ReplaceAll(string(missing), strings.Repeat("0", len(mine.ID)), "ID") {
			t.Fatalf("%s with another application's key: %d %s; with no key: %d %s", op, r.StatusCode, theirs, r2.StatusCode, missing)
		}
	}
	_, b := e.do(t, "GET", "/keys", "other", "", nil)
	if strings.Contains(string(b), mine.ID) {
		t.Fatalf("another application lists the key: %s", b)
	}
	// The same label is free for another application.
	if st := as("other", "POST", "/keys", map[string]any{"label": "billing", "type": "aes256"}); st != 201 {
		t.Fatalf("another application's key with the same label: %d", st)
	}
	_, b = e.do(t, "GET", "/keys", "admin", "", nil)
	var all struct{ Keys []KeyResponse }
	json.Unmarshal(b, &all)
	labels := map[string]bool{}
	for _, k := range all.Keys {
		labels[k.Label] = true
	}
	if len(all.Keys) != 2 || !labels["apikey:"+otherID+"/billing"] {
		t.Fatalf("admin sees %+v", all.Keys)
	}
	if st := as("admin", "POST", "/keys/"+mine.ID+"/encrypt", map[string]any{"plaintext": "eA=="}); st != 200 {
		t.Fatalf("admin uses an application's key: %d", st)
	}
}
