package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"go.step.sm/crypto/jose"
)

// rotateFirst rotates a key just before the next n signatures or MACs
// with it, as another request racing this one would.
type rotateFirst struct {
	KeyService
	n atomic.Int32
}

func (r *rotateFirst) race(ctx context.Context, id string) {
	if r.n.Add(-1) >= 0 {
		r.KeyService.RotateKey(ctx, id)
	}
}

func (r *rotateFirst) SignVersioned(ctx context.Context, id string, digest []byte, opts crypto.SignerOpts) ([]byte, int, error) {
	r.race(ctx, id)
	return r.KeyService.SignVersioned(ctx, id, digest, opts)
}

func (r *rotateFirst) HMACVersioned(ctx context.Context, id string, data []byte) ([]byte, int, error) {
	r.race(ctx, id)
	return r.KeyService.HMACVersioned(ctx, id, data)
}

// TestSignReportsTheVersionThatSigned: when a rotation lands between
// reading the key and signing, /sign reports the version that signed, and
// /jwt's kid names it (the token verifies with the JWK Set by its kid),
// for key pairs and HMAC keys; a key rotated on every attempt is 503.
func TestSignReportsTheVersionThatSigned(t *testing.T) {
	var rf *rotateFirst
	e := newKeyEnv(t, func(o *Options) { rf = &rotateFirst{KeyService: o.Keys}; o.Keys = rf })
	k := e.create(t, "k", "p256")
	msg := base64.StdEncoding.EncodeToString([]byte("m"))
	rf.n.Store(1)
	var sig struct {
		Signature  string
		KeyVersion int `json:"key_version"`
	}
	if st := e.call(t, "POST", "/keys/"+k.ID+"/sign", map[string]any{"message": msg}, &sig); st != 200 || sig.KeyVersion != 2 {
		t.Fatalf("sign racing a rotation: %d, key_version %d, want 2", st, sig.KeyVersion)
	}
	var valid struct{ Valid bool }
	e.call(t, "POST", "/keys/"+k.ID+"/verify", map[string]any{"message": msg, "signature": sig.Signature, "key_version": sig.KeyVersion}, &valid)
	if !valid.Valid {
		t.Fatal("the signature does not verify with the version reported")
	}

	rf.n.Store(1)
	var tok struct {
		Token      string
		KeyVersion int `json:"key_version"`
	}
	if st := e.call(t, "POST", "/keys/"+k.ID+"/jwt", map[string]any{"claims": map[string]any{}}, &tok); st != 200 || tok.KeyVersion != 3 {
		t.Fatalf("jwt racing a rotation: %d, key_version %d, want 3", st, tok.KeyVersion)
	}
	_, body := e.do(t, "GET", "/jwks/"+k.ID, "", "", nil)
	var set jose.JSONWebKeySet
	json.Unmarshal(body, &set)
	jws, err := jose.ParseSigned(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Headers[0].KeyID
	keys := set.Key(kid)
	if kid != k.ID+".3" || len(keys) != 1 {
		t.Fatalf("kid %q", kid)
	}
	var claims map[string]any
	if err := jws.Claims(keys[0].Key.(*ecdsa.PublicKey), &claims); err != nil {
		t.Fatalf("the token does not verify with its kid's key: %v", err)
	}

	h := e.create(t, "h", "hmac-sha256")
	rf.n.Store(1)
	if st := e.call(t, "POST", "/keys/"+h.ID+"/jwt", map[string]any{"claims": map[string]any{}}, &tok); st != 200 || tok.KeyVersion != 2 {
		t.Fatalf("HS256 jwt racing a rotation: %d, key_version %d, want 2", st, tok.KeyVersion)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.Token, ".")[0])
	if !strings.Contains(string(hdr), `"kid":"`+h.ID+`.2"`) {
		t.Fatalf("HS256 header %s", hdr)
	}

	rf.n.Store(100)
	if st, detail := e.raw(t, "/keys/"+k.ID+"/jwt", `{"claims":{}}`); st != 503 || !strings.Contains(detail, "being rotated") {
		t.Fatalf("jwt with a key rotated on every attempt: %d %s", st, detail)
	}
}

// exportRotated rotates a key between the export handler's read of it and
// the export, as a racing request would.
type exportRotated struct{ rotateFirst }

func (r *exportRotated) ExportWrappedAlg(ctx context.Context, id, wrappingKeyID string) ([]byte, int, string, error) {
	r.race(ctx, id)
	return r.KeyService.ExportWrappedAlg(ctx, id, wrappingKeyID)
}

// TestExportReportsTheVersionItWrapped: when a rotation lands between
// reading the key and exporting it, the export reports the version it
// wrapped, so the copy imported as that version opens what it encrypted.
func TestExportReportsTheVersionItWrapped(t *testing.T) {
	var er *exportRotated
	e := newKeyEnv(t, func(o *Options) { er = &exportRotated{rotateFirst{KeyService: o.Keys}}; o.Keys = er })
	var unwrap, src KeyResponse
	e.call(t, "POST", "/keys", map[string]any{"label": "import", "type": "rsa2048", "usage": []string{"wrap", "unwrap"}}, &unwrap)
	e.call(t, "POST", "/keys", map[string]any{"label": "src", "type": "aes256", "extractable": true}, &src)
	er.n.Store(1)
	var out ExportKeyResponse
	if st := e.call(t, "POST", "/keys/"+src.ID+"/export", map[string]any{"wrapping_key": unwrap.ID}, &out); st != 200 || out.Version != 2 {
		t.Fatalf("export racing a rotation: %d, version %d, want 2", st, out.Version)
	}
	var ct struct{ Ciphertext string }
	e.call(t, "POST", "/keys/"+src.ID+"/encrypt", map[string]any{"plaintext": "eA=="}, &ct)
	var back KeyResponse
	e.call(t, "POST", "/keys/import", map[string]any{"label": "back", "type": "aes256", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped, "version": out.Version}, &back)
	var pt struct{ Plaintext string }
	if st := e.call(t, "POST", "/keys/"+back.ID+"/decrypt", map[string]any{"ciphertext": ct.Ciphertext}, &pt); st != 200 || pt.Plaintext != "eA==" {
		t.Fatalf("decrypting v2's ciphertext with the copy imported as version %d: %d %q", out.Version, st, pt.Plaintext)
	}
}
