package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.step.sm/crypto/jose"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
)

// SignRequest is the body of POST /keys/{id}/sign and /verify.
type SignRequest struct {
	// Message is what to sign (base64; "" is the empty message); the
	// service hashes it with the key's hash. Or send Digest, already
	// hashed with that hash. Pointers: absent is not empty.
	Message *string `json:"message,omitempty"`
	Digest  *string `json:"digest,omitempty"`
	// Padding for RSA keys: "pkcs1v15" (default) or "pss" (signing: salt
	// as long as the hash; verifying: any salt length). Other keys take
	// none ("pkcs1v15", the default, is ignored; "pss" is refused).
	Padding string `json:"padding,omitempty"`
	// Signature and KeyVersion are for verify (version zero: current).
	Signature  string `json:"signature,omitempty"`
	KeyVersion int    `json:"key_version,omitempty"`
}

// sigParams picks the hash and options for a key: SHA-256 for P-256 and
// every RSA size, SHA-384 for P-384, SHA-512 for P-521, none for Ed25519
// (it signs the message itself). RSA signs PKCS#1 v1.5 unless padding is
// "pss": then with a salt as long as the hash (what verify here and
// elsewhere expects by default). Verify accepts any PSS salt length
// (verifyOpts).
func sigParams(k hsm.KeyInfo, padding string) (crypto.Hash, crypto.SignerOpts, error) {
	var h crypto.Hash // zero for Ed25519
	switch k.Type {
	case hsm.P256, hsm.RSA2048, hsm.RSA3072, hsm.RSA4096:
		h = crypto.SHA256
	case hsm.P384:
		h = crypto.SHA384
	case hsm.P521:
		h = crypto.SHA512
	case hsm.Ed25519:
	default:
		return 0, nil, core.Errorf(core.KindRejected, "%s keys do not sign; use /mac for HMAC keys", k.Type)
	}
	_, isRSA := k.PublicKey.(*rsa.PublicKey)
	switch {
	case padding == "pss" && isRSA:
		return h, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}, nil
	case padding != "" && padding != "pkcs1v15":
		return 0, nil, core.Errorf(core.KindMalformed, "padding %q: use pkcs1v15 or pss, with RSA keys only", padding)
	}
	return h, h, nil
}

// verifyOpts is what verify checks with: PSS signatures of any salt
// length, as openssl makes by default (the longest salt that fits) and
// python's PSS.MAX_LENGTH, not only the hash-length salt sign makes.
func verifyOpts(opts crypto.SignerOpts) crypto.SignerOpts {
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: pss.Hash}
	}
	return opts
}

// toSign returns what the HSM signs: the digest of the message, the given
// digest, or for Ed25519 the message.
func toSign(in *SignRequest, h crypto.Hash) ([]byte, error) {
	switch {
	case (in.Message == nil) == (in.Digest == nil):
		return nil, core.Errorf(core.KindMalformed, "send one of message and digest")
	case h == 0 && in.Digest != nil:
		return nil, core.Errorf(core.KindMalformed, "Ed25519 signs the message itself: send message, not digest")
	case in.Digest != nil:
		dig, err := b64("digest", *in.Digest, true)
		if err == nil && len(dig) != h.Size() {
			err = core.Errorf(core.KindMalformed, "digest is %d bytes; this key signs %s digests of %d", len(dig), h, h.Size())
		}
		return dig, err
	}
	msg, err := b64("message", *in.Message, false)
	if err != nil || h == 0 {
		return msg, err
	}
	d := h.New()
	d.Write(msg)
	return d.Sum(nil), nil
}

// signInput is what sign and verify both start from: the key, what the
// HSM signs, and the options.
func signInput(ctx context.Context, ks KeyService, id string, in *SignRequest) (hsm.KeyInfo, []byte, crypto.SignerOpts, error) {
	k, err := ks.GetKey(ctx, id)
	if err != nil {
		return k, nil, nil, err
	}
	h, opts, err := sigParams(k, in.Padding)
	if err != nil {
		return k, nil, nil, err
	}
	data, err := toSign(in, h)
	return k, data, opts, err
}

func (a *API) sign(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *SignRequest) (any, error) {
		if in.Signature != "" || in.KeyVersion != 0 {
			return nil, core.Errorf(core.KindMalformed, "signature and key_version are for verify: sign always uses the key's current version (and returns it as key_version)")
		}
		_, data, opts, err := signInput(ctx, ks, id, in)
		if err != nil {
			return nil, err
		}
		sig, v, err := ks.SignVersioned(ctx, id, data, opts)
		return gin.H{"signature": enc(sig), "key_version": v}, err
	})
}

func (a *API) verify(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *SignRequest) (any, error) {
		if in.KeyVersion < 0 {
			return nil, core.Errorf(core.KindMalformed, "key_version must be a version number, or 0 for the current version")
		}
		_, data, opts, err := signInput(ctx, ks, id, in)
		if err != nil {
			return nil, err
		}
		sig, err := b64("signature", in.Signature, true)
		if err != nil {
			return nil, err
		}
		return validity(ks.Verify(ctx, id, in.KeyVersion, data, sig, verifyOpts(opts)))
	})
}

// validity answers a check: valid false for a failed verification, an
// error for anything else.
func validity(err error) (any, error) {
	if errors.Is(err, hsm.ErrVerification) {
		return gin.H{"valid": false}, nil
	}
	return gin.H{"valid": err == nil}, err
}

// MACRequest is the body of POST /keys/{id}/mac and /verify-mac.
type MACRequest struct {
	Data string `json:"data"`          // base64
	MAC  string `json:"mac,omitempty"` // base64, for verify-mac
}

func (a *API) mac(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *MACRequest) (any, error) {
		data, err := b64("data", in.Data, false)
		if err != nil {
			return nil, err
		}
		m, _, err := ks.HMACVersioned(ctx, id, data)
		return gin.H{"mac": enc(m)}, err
	})
}

func (a *API) verifyMAC(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *MACRequest) (any, error) {
		data, err := b64("data", in.Data, false)
		if err != nil {
			return nil, err
		}
		m, err := b64("mac", in.MAC, true)
		if err != nil {
			return nil, err
		}
		return validity(ks.VerifyHMAC(ctx, id, data, m))
	})
}

// JWTRequest is the body of POST /keys/{id}/jwt: claims to sign into a
// compact JWS (RFC 7519), with iat and, given ttl, exp added. The claims
// are signed as sent, each value's JSON text unchanged: decoding numbers
// into float64 would sign 9007199254740993 as 9007199254740992.
type JWTRequest struct {
	Claims json.RawMessage `json:"claims"` // a JSON object
	// TTL sets exp: a Go duration ("15m") or days ("30d"), as lifetimes
	// elsewhere in the API (ParseDuration).
	TTL string `json:"ttl,omitempty"`
}

// maxNumericDate is 9999-12-31T23:59:59Z: the NumericDate claims (exp, nbf,
// iat) must lie in 0..maxNumericDate, where every JWT library reads them
// as a date (RFC 3339 and many date types end at year 9999).
const maxNumericDate = 253402300799

// jwtClaims reads the claims object, each value kept as sent (member names
// are unique: decodeStrict refused a body naming one twice). The
// registered NumericDate claims, when given, must be numbers (RFC 7519
// §4.1.4, §2) from 0 to maxNumericDate: 1e999 (infinite as a float64),
// negative or beyond year 9999 are refused.
func jwtClaims(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(raw, &claims); err != nil || claims == nil {
		return nil, core.Errorf(core.KindMalformed, `claims is required: a JSON object of the token's claims ({} for none)`)
	}
	for _, n := range []string{"exp", "nbf", "iat"} {
		v, ok := claims[n]
		if !ok {
			continue
		}
		if !strings.ContainsRune("-0123456789", rune(v[0])) {
			return nil, core.Errorf(core.KindMalformed, "claim %s must be a JSON number of seconds since 1970 (a NumericDate, RFC 7519 §4.1.4)", n)
		}
		// A JSON number parses; one too large for a float64 is ±Inf.
		if f, _ := strconv.ParseFloat(string(v), 64); !(f >= 0 && f <= maxNumericDate) {
			return nil, core.Errorf(core.KindMalformed, "claim %s must be a NumericDate from 0 to %d (9999-12-31T23:59:59Z) seconds since 1970", n, maxNumericDate)
		}
	}
	return claims, nil
}

// jwsAlg is the JOSE algorithm of a key (RFC 7518, RFC 8037).
func jwsAlg(k hsm.KeyInfo) (string, error) {
	switch k.Type {
	case hsm.P256:
		return "ES256", nil
	case hsm.P384:
		return "ES384", nil
	case hsm.P521:
		return "ES512", nil
	case hsm.Ed25519:
		return "EdDSA", nil
	case hsm.RSA2048, hsm.RSA3072, hsm.RSA4096:
		return "RS256", nil
	case hsm.HMACSHA256:
		return "HS256", nil
	}
	return "", core.Errorf(core.KindRejected, "%s keys do not sign tokens", k.Type)
}

func (a *API) signJWT(c *gin.Context) {
	bodyOp(a, c, func(ctx context.Context, ks KeyService, id string, in *JWTRequest) (any, error) {
		claims, err := jwtClaims(in.Claims)
		if err != nil {
			return nil, err
		}
		now := a.now()
		claims["iat"] = json.RawMessage(strconv.FormatInt(now.Unix(), 10))
		if in.TTL != "" {
			ttl, err := ParseDuration("ttl", in.TTL)
			if err != nil {
				return nil, err
			}
			exp := now.Add(ttl).Unix()
			// exp is in whole seconds: under one, the token would be
			// expired when made (exp == iat).
			if ttl < time.Second || exp > maxNumericDate {
				return nil, core.Errorf(core.KindMalformed, "ttl %q: give a duration of at least 1s (e.g. 15m or 30d) that ends before year 10000", in.TTL)
			}
			claims["exp"] = json.RawMessage(strconv.FormatInt(exp, 10))
		}
		body, err := json.Marshal(claims)
		if err != nil {
			return nil, core.Errorf(core.KindMalformed, "claims cannot be encoded")
		}
		// The kid names the version before it signs. When a rotation in
		// between makes the next version sign, the token is made again,
		// so that its kid always names the version that signed it.
		for range 3 {
			k, err := ks.GetKey(ctx, id)
			if err != nil {
				return nil, err
			}
			alg, err := jwsAlg(k)
			if err != nil {
				return nil, err
			}
			hdr, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "kid": k.ID + "." + strconv.Itoa(k.Version)})
			input := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
			sig, v, err := jwsSign(ctx, ks, k, []byte(input))
			if err != nil {
				return nil, err
			}
			if v == k.Version {
				return gin.H{"token": input + "." + base64.RawURLEncoding.EncodeToString(sig), "key_version": v}, nil
			}
		}
		return nil, core.Errorf(core.KindUnavailable, "key %s is being rotated; try again", id)
	})
}

// jwsSign signs a JWS signing input and says which version signed; ECDSA
// signatures become the fixed R||S form JWS uses instead of ASN.1.
func jwsSign(ctx context.Context, ks KeyService, k hsm.KeyInfo, input []byte) ([]byte, int, error) {
	if k.Type == hsm.HMACSHA256 {
		return ks.HMACVersioned(ctx, k.ID, input)
	}
	h, opts, err := sigParams(k, "")
	if err != nil {
		return nil, 0, err
	}
	data := input
	if h != 0 {
		d := h.New()
		d.Write(input)
		data = d.Sum(nil)
	}
	sig, v, err := ks.SignVersioned(ctx, k.ID, data, opts)
	if err != nil {
		return nil, 0, err
	}
	pub, ok := k.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return sig, v, nil
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(sig, &rs); err != nil {
		return nil, 0, err
	}
	n := (pub.Curve.Params().BitSize + 7) / 8
	return append(rs.R.FillBytes(make([]byte, n)), rs.S.FillBytes(make([]byte, n))...), v, nil
}

// HashRequest is the body of POST /hash.
type HashRequest struct {
	Algorithm string `json:"algorithm"` // SHA-256, SHA-384, SHA-512, SHA3-256, SHA3-512
	Data      string `json:"data"`      // base64
}

var hashes = map[string]func() hash.Hash{
	"SHA-256": sha256.New, "SHA-384": sha512.New384, "SHA-512": sha512.New,
	"SHA3-256": func() hash.Hash { return sha3.New256() }, "SHA3-512": func() hash.Hash { return sha3.New512() },
}

func (a *API) hash(c *gin.Context) {
	var in HashRequest
	if err := bindJSON(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	mk, ok := hashes[in.Algorithm]
	if !ok {
		a.fail(c, core.Errorf(core.KindMalformed, "algorithm %q: use SHA-256, SHA-384, SHA-512, SHA3-256 or SHA3-512", in.Algorithm))
		return
	}
	data, err := b64("data", in.Data, false)
	if err != nil {
		a.fail(c, err)
		return
	}
	h := mk()
	h.Write(data)
	c.JSON(http.StatusOK, gin.H{"digest": enc(h.Sum(nil))})
}

// RandomRequest is the body of POST /random.
type RandomRequest struct {
	Bytes int `json:"bytes"` // 1 to 1024
}

func (a *API) random(c *gin.Context) {
	ks, ok := a.keyService(c)
	if !ok {
		return
	}
	var in RandomRequest
	if err := bindJSON(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.Bytes < 1 || in.Bytes > 1024 {
		a.fail(c, core.Errorf(core.KindMalformed, "bytes must be 1 to 1024"))
		return
	}
	b, err := ks.Random(c.Request.Context(), in.Bytes)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"random": enc(b)})
}

// jwks answers GET /jwks/{id}, without authentication: the public keys of
// every version of a signing key as a JWK Set (RFC 7517), kid id.version as
// in the tokens /jwt signs, so a verifier (an API gateway, a service)
// checks tokens of older versions after a rotation too. Public keys are
// public; the id is a random 128-bit name. Keys without a public half, or
// that may not sign, are not found here.
func (a *API) jwks(c *gin.Context) {
	ks := a.keysNow()
	if ks == nil {
		a.fail(c, core.Errorf(core.KindUnavailable, keyServiceOff))
		return
	}
	ctx, id := c.Request.Context(), c.Param("id")
	k, err := ks.GetKey(ctx, id)
	var versions []hsm.VersionKey
	if err == nil {
		versions, err = ks.PublicKeys(ctx, id)
	}
	alg, aerr := jwsAlg(k)
	// Only a key that may sign has tokens to verify: an RSA unwrap key
	// published as "use": "sig" would mislead verifiers.
	if err != nil || aerr != nil || k.Type == hsm.HMACSHA256 || k.Usage&hsm.UsageSign == 0 {
		a.fail(c, core.Errorf(core.KindNotFound, "no signing key %q", id))
		return
	}
	set := struct {
		Keys []jose.JSONWebKey `json:"keys"`
	}{}
	for _, v := range versions {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: v.PublicKey, KeyID: id + "." + strconv.Itoa(v.Version), Algorithm: alg, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/jwk-set+json", b)
}
