package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/ra"
)

// The key service: the HSM offered to applications as a KMS (create,
// rotate and destroy keys; encrypt, decrypt, sign, verify, MAC; envelope
// encryption with data keys; JWT signing; hashing and random bytes), under
// /api/v1/keys with the "keys" scope. It runs in an HSM session of its own
// crypto user ("apps"), never the CA's: applications cannot see or use the
// CA's keys, and the CA's cannot be reached through it. Private and secret
// key material never leaves the HSM; binary values are standard base64.

// KeyService is the HSM session the key service runs in (*hsm.Session of
// the applications' crypto user).
type KeyService interface {
	GenerateKey(ctx context.Context, spec hsm.KeySpec) (hsm.KeyInfo, error)
	RotateKey(ctx context.Context, keyID string) (hsm.KeyInfo, error)
	DestroyKey(ctx context.Context, keyID string) error
	GetKey(ctx context.Context, keyID string) (hsm.KeyInfo, error)
	ListKeys(ctx context.Context) ([]hsm.KeyInfo, error)
	// DamagedKeys lists the keys that fail the HSM's integrity check
	// (ListKeys leaves them out; using one is hsm.ErrCorrupt).
	DamagedKeys(ctx context.Context) ([]hsm.DamagedKey, error)
	// DamagedKey is the one key DamagedKeys would list with this id, and
	// whether it would, without reading the others.
	DamagedKey(ctx context.Context, keyID string) (hsm.DamagedKey, bool, error)
	// SignVersioned and HMACVersioned also return the version that signed.
	SignVersioned(ctx context.Context, keyID string, digest []byte, opts crypto.SignerOpts) ([]byte, int, error)
	Verify(ctx context.Context, keyID string, version int, digest, sig []byte, opts crypto.SignerOpts) error
	Encrypt(ctx context.Context, keyID string, plaintext, aad []byte) ([]byte, error)
	// DecryptVersion opens Encrypt's ciphertexts and, for RSA keys, raw
	// RSA-OAEP ones (with version, 0: the current one).
	DecryptVersion(ctx context.Context, keyID string, version int, ciphertext, aad []byte) ([]byte, error)
	HMACVersioned(ctx context.Context, keyID string, data []byte) ([]byte, int, error)
	VerifyHMAC(ctx context.Context, keyID string, data, mac []byte) error
	Random(ctx context.Context, n int) ([]byte, error)
	GenerateDataKey(ctx context.Context, keyID string, bits int) (plaintext, wrapped []byte, err error)
	DecryptDataKey(ctx context.Context, keyID string, wrapped []byte) ([]byte, error)
	PublicKeys(ctx context.Context, keyID string) ([]hsm.VersionKey, error)
	ImportWrapped(ctx context.Context, spec hsm.KeySpec, wrappingKeyID string, blob []byte) (hsm.KeyInfo, error)
	// ExportWrappedAlg also names the wrapping algorithm (hsm.WrapAESKW…).
	ExportWrappedAlg(ctx context.Context, keyID, wrappingKeyID string) ([]byte, int, string, error)
	ExportWrappedTo(ctx context.Context, keyID string, pub *rsa.PublicKey) ([]byte, int, error)
	CountKeys(ctx context.Context, labelPrefix string) (int, error)
}

// KeyResponse describes one key (never its material).
type KeyResponse struct {
	ID          string    `json:"id"`
	Label       string    `json:"label"`
	Type        string    `json:"type"`
	Usage       []string  `json:"usage"`
	Extractable bool      `json:"extractable"`
	Version     int       `json:"version"`
	Created     time.Time `json:"created"`
	Uses        uint64    `json:"uses"`
	PublicKey   string    `json:"public_key,omitempty"` // PEM (SubjectPublicKeyInfo) of the current version
	State       string    `json:"state"`                // keyEnabled
}

// A key's state: enabled (usable), or damaged: its stored state fails the
// HSM's integrity check, so it is refused until an operator acts.
const (
	keyEnabled = "enabled"
	keyDamaged = "damaged"
)

// DamagedKeyResponse describes a damaged key: its id and label, and the
// reason, never the HSM's own words (key ids, audit entries). Nothing else
// about it can be trusted: its stored attributes are what failed.
type DamagedKeyResponse struct {
	ID     string `json:"id"`
	Label  string `json:"label"`
	State  string `json:"state"` // keyDamaged
	Reason string `json:"reason"`
}

// damagedKeyReason says why a damaged key is refused and what is done.
const damagedKeyReason = "the key's stored state fails the HSM's integrity check (altered outside the HSM): it is refused until an operator restores or destroys it (ca hsm status)"

func damagedKeyResponse(d hsm.DamagedKey) DamagedKeyResponse {
	return DamagedKeyResponse{ID: d.ID, Label: d.Label, State: keyDamaged, Reason: damagedKeyReason}
}

// CreateKeyRequest is the body of POST /keys.
type CreateKeyRequest struct {
	Label string `json:"label"`
	// Type: p256, p384, p521, ed25519, rsa2048, rsa3072, rsa4096, aes128,
	// aes256, hmac-sha256.
	Type string `json:"type"`
	// Usage: sign, verify, encrypt, decrypt, wrap, unwrap, derive; zero:
	// sign+verify for key pairs and HMAC, encrypt+decrypt+wrap+unwrap for AES.
	Usage []string `json:"usage,omitempty"`
	// Extractable lets the key be exported wrapped; it can only be turned
	// off later. Default false.
	Extractable bool `json:"extractable,omitempty"`
}

// keyServiceOff is why a node answers no key-service request: it could
// not log in as the applications' HSM user, at start or after that user
// last changed, or that user's session ended (the user was deleted or
// given another role). cmd/ca tries one login after each change to the
// user or to the node's PIN for it, never in a loop: failed logins count
// toward the lockout.
const keyServiceOff = "the key service is off on this node: its HSM user for applications could not log in (missing, locked, not a crypto user, its record altered outside the HSM, or a wrong PIN on this node); ca hsm users list shows the first four, and failed logins by a wrong PIN. Fixing that turns the service on within seconds, with no restart: unlock the user, change its PIN, re-create it, reset it (ca hsm users reset, when its record was altered), or correct the node's PIN file; each change gets one login attempt"

// SetKeyService turns the key service on with ks, or off with nil. It is
// safe while requests run: each request uses the service it found when it
// began.
func (a *API) SetKeyService(ks KeyService) {
	if ks == nil {
		a.keys.Store(nil)
		return
	}
	a.keys.Store(&ks)
}

// keysNow is the key service now; nil: off.
func (a *API) keysNow() KeyService {
	if p := a.keys.Load(); p != nil {
		return *p
	}
	return nil
}

func (a *API) keyService(c *gin.Context) (KeyService, bool) {
	ks := a.keysNow()
	if ks == nil {
		a.fail(c, core.Errorf(core.KindUnavailable, keyServiceOff))
		return nil, false
	}
	p := principalOf(c)
	return ownedKeys{KeyService: ks, prefix: p.name + "/", all: ra.FullAdmin(p.limits, p.has(ScopeAdmin)), who: p.name,
		maxKeys: a.maxKeys, maxVersions: a.maxVersions}, true
}

// bindJSON decodes a JSON body strictly.
func bindJSON(c *gin.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	if err := jsonMediaType(c); err != nil {
		return err
	}
	return decodeObject(body, v)
}

// decodeObject decodes a body that must be one JSON object: encoding/json
// takes null for a struct and leaves it as it was, an empty request.
func decodeObject(body []byte, v any) error {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] != '{' && json.Valid(body) {
		return core.Errorf(core.KindMalformed, "the body must be a JSON object")
	}
	return decodeStrict(body, v)
}

// usageOf reads a key's usage list: each entry one of the names, exactly.
func usageOf(names []string) (hsm.Usage, error) {
	var all hsm.Usage
	for _, n := range names {
		u := hsm.UsageSign
		for u <= hsm.UsageDerive && u.String() != n {
			u <<= 1
		}
		if u == hsm.UsageDerive {
			// The HSM knows the usage; no operation of the key service
			// derives with a key, so a key kept to it could do nothing.
			return 0, core.Errorf(core.KindMalformed, "key usage derive: no key-service operation derives keys (data keys come from an AES key with encrypt and decrypt, POST /keys/{id}/data-key)")
		}
		if u > hsm.UsageDerive {
			return 0, core.Errorf(core.KindMalformed, "unknown key usage %q: each entry is one of sign, verify, encrypt, decrypt, wrap, unwrap", n)
		}
		all |= u
	}
	return all, nil
}

// b64 decodes a standard base64 field; name is for the error.
func b64(name, s string, required bool) ([]byte, error) {
	if s == "" {
		if required {
			return nil, core.Errorf(core.KindMalformed, "%s is required (standard base64)", name)
		}
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, core.Errorf(core.KindMalformed, "%s is not standard base64", name)
	}
	return b, nil
}

func enc(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func keyResponse(k hsm.KeyInfo) KeyResponse {
	out := KeyResponse{ID: k.ID, Label: k.Label, Type: string(k.Type), Usage: strings.Split(k.Usage.String(), ","),
		Extractable: k.Extractable, Version: k.Version, Created: k.Created, Uses: k.Uses, State: keyEnabled}
	if k.Usage == 0 {
		out.Usage = []string{}
	}
	if k.PublicKey != nil {
		if der, err := x509.MarshalPKIXPublicKey(k.PublicKey); err == nil {
			out.PublicKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		}
	}
	return out
}

func (a *API) createKey(c *gin.Context) {
	ks, ok := a.keyService(c)
	if !ok {
		return
	}
	var in CreateKeyRequest
	if err := bindJSON(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.Label == "" || in.Type == "" {
		a.fail(c, core.Errorf(core.KindMalformed, "label and type are required"))
		return
	}
	usage, err := usageOf(in.Usage)
	if err != nil {
		a.fail(c, err)
		return
	}
	k, err := ks.GenerateKey(c.Request.Context(), hsm.KeySpec{Type: hsm.KeyType(in.Type), Label: in.Label, Usage: usage, Extractable: in.Extractable})
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Location", c.Request.URL.Path+"/"+k.ID)
	c.JSON(http.StatusCreated, keyResponse(k))
}

func (a *API) listKeys(c *gin.Context) {
	ks, ok := a.keyService(c)
	if !ok {
		return
	}
	keys, err := ks.ListKeys(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	// Damaged keys too, so an application learns of its own from the
	// listing, not only from a refused call.
	damaged, err := ks.DamagedKeys(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	out := make([]any, 0, len(keys)+len(damaged))
	for _, k := range keys {
		out = append(out, keyResponse(k))
	}
	for _, d := range damaged {
		out = append(out, damagedKeyResponse(d))
	}
	c.JSON(http.StatusOK, gin.H{"keys": out})
}

// getKey describes a damaged key as the listing does, where every other
// operation on it is refused (keyDamaged).
func (a *API) getKey(c *gin.Context) {
	a.keyOp(c, func(ctx context.Context, ks KeyService, id string) (any, error) {
		k, err := ks.GetKey(ctx, id)
		if errors.Is(err, hsm.ErrCorrupt) {
			if d, ok, ferr := ks.DamagedKey(ctx, id); ferr != nil || ok {
				return damagedKeyResponse(d), ferr
			}
		}
		return keyResponse(k), err
	})
}

// RotateKeyRequest is the body of POST /keys/{id}/rotate: none, or an
// empty object.
type RotateKeyRequest struct{}

func (a *API) rotateKey(c *gin.Context) {
	body, err := readBody(c)
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		if err = jsonMediaType(c); err == nil {
			err = decodeObject(body, &RotateKeyRequest{})
		}
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	a.keyOp(c, func(ctx context.Context, ks KeyService, id string) (any, error) {
		k, err := ks.RotateKey(ctx, id)
		return keyResponse(k), err
	})
}

func (a *API) destroyKey(c *gin.Context) {
	ks, ok := a.keyService(c)
	if !ok {
		return
	}
	if err := ks.DestroyKey(c.Request.Context(), c.Param("id")); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// keyOp runs op on the key named in the path and answers 200 with its
// result.
func (a *API) keyOp(c *gin.Context, op func(ctx context.Context, ks KeyService, id string) (any, error)) {
	ks, ok := a.keyService(c)
	if !ok {
		return
	}
	out, err := op(c.Request.Context(), ks, c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	// Plaintexts, data keys and wrapped keys are not for any cache.
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// bodyOp decodes the JSON body into in, then runs keyOp.
func bodyOp[T any](a *API, c *gin.Context, op func(ctx context.Context, ks KeyService, id string, in *T) (any, error)) {
	var in T
	if err := bindJSON(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	a.keyOp(c, func(ctx context.Context, ks KeyService, id string) (any, error) { return op(ctx, ks, id, &in) })
}

// EncryptRequest is the body of POST /keys/{id}/encrypt.
type EncryptRequest struct {
	Plaintext string `json:"plaintext"`     // base64
	AAD       string `json:"aad,omitempty"` // base64 additional authenticated data (AES-GCM)
}

// DecryptRequest is the body of POST /keys/{id}/decrypt.
type DecryptRequest struct {
	// Ciphertext is base64: as encrypt returned it (it names the key
	// version), or for an RSA key a raw RSA-OAEP ciphertext (SHA-256,
	// MGF1-SHA-256, label aad) of exactly the modulus length, made with
	// the key's public key by any library (openssl pkeyutl).
	Ciphertext string `json:"ciphertext"`
	AAD        string `json:"aad,omitempty"` // base64, the same as at encryption
	// KeyVersion is the version that opens a raw RSA-OAEP ciphertext;
	// zero: the current one. Encrypt's ciphertexts name theirs: one given
	// here must be the same.
	KeyVersion int `json:"key_version,omitempty"`
}

func (a *API) encrypt(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *EncryptRequest) (any, error) {
		pt, err := b64("plaintext", in.Plaintext, false)
		if err != nil {
			return nil, err
		}
		aad, err := b64("aad", in.AAD, false)
		if err != nil {
			return nil, err
		}
		ct, err := ks.Encrypt(ctx, id, pt, aad)
		return gin.H{"ciphertext": enc(ct)}, err
	})
}

func (a *API) decrypt(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *DecryptRequest) (any, error) {
		ct, err := b64("ciphertext", in.Ciphertext, true)
		if err != nil {
			return nil, err
		}
		aad, err := b64("aad", in.AAD, false)
		if err != nil {
			return nil, err
		}
		if in.KeyVersion < 0 {
			return nil, core.Errorf(core.KindMalformed, "key_version must be a version number, or 0 for the current version")
		}
		pt, err := ks.DecryptVersion(ctx, id, in.KeyVersion, ct, aad)
		return gin.H{"plaintext": enc(pt)}, noOracle(err)
	})
}

// noOracle turns every failure to open a ciphertext into one answer: which
// check failed — its format, the key version its header names, its
// authentication — is not the caller's business. Only what concerns the
// key itself passes: a key that does not exist or is not the caller's
// (ownedKeys), may not decrypt, or cannot be used now.
func noOracle(err error) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, hsm.ErrWrongKeyVersion) { // the header's version, not the key, is missing
		switch core.KindOf(err) {
		case core.KindNotFound, core.KindForbidden, core.KindUnavailable, core.KindInternal:
			return err
		}
	}
	return core.Errorf(core.KindRejected, "the ciphertext does not open with this key (wrong key, version, AAD, or altered data)")
}

// DataKeyRequest is the body of POST /keys/{id}/data-key.
type DataKeyRequest struct {
	Bits int `json:"bits,omitempty"` // 128 or 256; zero: 256
}

// DataKeyResponse is a fresh data key: use plaintext, store ciphertext
// beside the data, then forget plaintext (envelope encryption).
type DataKeyResponse struct {
	Plaintext  string `json:"plaintext"`  // base64
	Ciphertext string `json:"ciphertext"` // base64, the key wrapped under the HSM key
}

func (a *API) dataKey(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *DataKeyRequest) (any, error) {
		bits := in.Bits
		if bits == 0 {
			bits = 256
		}
		pt, wrapped, err := ks.GenerateDataKey(ctx, id, bits)
		return DataKeyResponse{Plaintext: enc(pt), Ciphertext: enc(wrapped)}, err
	})
}

// DecryptDataKeyRequest is the body of POST /keys/{id}/decrypt-data-key
// (a data key is wrapped with no AAD).
type DecryptDataKeyRequest struct {
	Ciphertext string `json:"ciphertext"` // base64, as data-key returned it
}

func (a *API) decryptDataKey(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *DecryptDataKeyRequest) (any, error) {
		wrapped, err := b64("ciphertext", in.Ciphertext, true)
		if err != nil {
			return nil, err
		}
		pt, err := ks.DecryptDataKey(ctx, id, wrapped)
		return gin.H{"plaintext": enc(pt)}, noOracle(err)
	})
}
