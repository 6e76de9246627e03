package api

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
)

// Bring your own key, and take an extractable one elsewhere — always
// wrapped, never in the clear (hsm/rsawrap.go). Import: make an RSA key
// with the unwrap usage, wrap your key material to its public key
// (RSA-AES key wrap: RSA-OAEP-SHA-256 of an AES-256 key, then AES-KWP of
// the PKCS#8 DER or raw secret) and POST it. Export: wrapped under one of
// your keys (AES: AES-KW/KWP; RSA: RSA-AES) or to an RSA public key from
// outside (another HSM's or KMS's import key).

// ImportKeyRequest is the body of POST /keys/import.
type ImportKeyRequest struct {
	Label       string   `json:"label"`
	Type        string   `json:"type"`
	Usage       []string `json:"usage,omitempty"`
	Extractable bool     `json:"extractable,omitempty"`
	// WrappingKey is the id of your key (RSA with unwrap, or AES) that
	// opens Wrapped.
	WrappingKey string `json:"wrapping_key"`
	Wrapped     string `json:"wrapped"` // base64
	// Version is the version the key had where it was exported (export's
	// version): the imported key starts at it, so ciphertexts and
	// signatures of that version open and verify with it. Zero: 1.
	Version int `json:"version,omitempty"`
}

// ExportKeyRequest is the body of POST /keys/{id}/export: one of
// WrappingKey (your key's id) or PublicKey (PEM, RSA ≥ 2048 bits).
type ExportKeyRequest struct {
	WrappingKey string `json:"wrapping_key,omitempty"`
	PublicKey   string `json:"public_key,omitempty"`
}

// ExportKeyResponse is the wrapped key.
type ExportKeyResponse struct {
	KeyID   string `json:"key_id"`
	Type    string `json:"type"`
	Version int    `json:"version"`
	// Algorithm is RSA_AES_KEY_WRAP_SHA_256 (an RSA wrapping key or
	// public key), or under an AES key AES_KEY_WRAP (RFC 3394: material a
	// multiple of 8 bytes of at least 16, as AES keys and 32-byte HMAC
	// secrets) or AES_KEY_WRAP_PAD (RFC 5649: any other length, as most
	// PKCS#8 keys).
	Algorithm string `json:"algorithm"`
	// Format of what is wrapped: PKCS8 (key pairs) or RAW (secrets).
	Format  string `json:"format"`
	Wrapped string `json:"wrapped"` // base64
}

func (a *API) importKey(c *gin.Context) {
	ks, ok := a.keyService(c)
	if !ok {
		return
	}
	var in ImportKeyRequest
	if err := bindJSON(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.Label == "" || in.Type == "" || in.WrappingKey == "" {
		a.fail(c, core.Errorf(core.KindMalformed, "label, type, wrapping_key and wrapped are required"))
		return
	}
	blob, err := b64("wrapped", in.Wrapped, true)
	if err != nil {
		a.fail(c, err)
		return
	}
	usage, err := usageOf(in.Usage)
	if err != nil {
		a.fail(c, err)
		return
	}
	k, err := ks.ImportWrapped(c.Request.Context(), hsm.KeySpec{Type: hsm.KeyType(in.Type), Label: in.Label, Usage: usage,
		Extractable: in.Extractable, Version: in.Version}, in.WrappingKey, blob)
	if errors.Is(err, hsm.ErrVerification) {
		err = core.Errorf(core.KindRejected, "the wrapped key does not open with wrapping key %s (wrong key, format or altered data)", in.WrappingKey)
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Location", strings.TrimSuffix(c.Request.URL.Path, "/import")+"/"+k.ID)
	c.JSON(http.StatusCreated, keyResponse(k))
}

func (a *API) exportKey(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *ExportKeyRequest) (any, error) {
		if (in.WrappingKey == "") == (in.PublicKey == "") {
			return nil, core.Errorf(core.KindMalformed, "give one of wrapping_key (your key's id) or public_key (PEM, RSA)")
		}
		k, err := ks.GetKey(ctx, id)
		if err != nil {
			return nil, err
		}
		out := ExportKeyResponse{KeyID: k.ID, Type: string(k.Type), Version: k.Version, Algorithm: hsm.WrapRSAAES, Format: "PKCS8"}
		if strings.HasPrefix(string(k.Type), "aes") || strings.HasPrefix(string(k.Type), "hmac") {
			out.Format = "RAW"
		}
		var blob []byte
		var version int
		if in.PublicKey != "" {
			pub, perr := rsaPublicKey(in.PublicKey)
			if perr != nil {
				return nil, perr
			}
			blob, version, err = ks.ExportWrappedTo(ctx, id, pub)
		} else {
			// The module says how it wrapped: under an AES key that
			// depends on the material's length, which only it knows.
			blob, version, out.Algorithm, err = ks.ExportWrappedAlg(ctx, id, in.WrappingKey)
		}
		if err != nil {
			return nil, err
		}
		// The version wrapped, not the one GetKey saw: a rotation may
		// have come between them.
		out.Version, out.Wrapped = version, enc(blob)
		return out, nil
	})
}

// rsaPublicKey reads a PEM RSA public key (SubjectPublicKeyInfo or PKCS #1).
func rsaPublicKey(s string) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode([]byte(s))
	bad := core.Errorf(core.KindMalformed, "public_key must be a PEM RSA public key (PUBLIC KEY or RSA PUBLIC KEY)")
	if blk == nil {
		return nil, bad
	}
	switch blk.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if pub, ok := k.(*rsa.PublicKey); err == nil && ok {
			return pub, nil
		}
	case "RSA PUBLIC KEY":
		if pub, err := x509.ParsePKCS1PublicKey(blk.Bytes); err == nil {
			return pub, nil
		}
	}
	return nil, bad
}
