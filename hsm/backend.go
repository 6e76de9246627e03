package hsm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"math/big"
	"sync"
)

// keyHandle is one key version as the session layer uses it. The software
// implementation below holds the key in process memory; a PKCS#11 backend
// (TODO(#2)) would hold an object handle on a real HSM and implement the
// same calls, returning ErrUnsupported / ErrNotExtractable where the token
// refuses. Methods never return key bytes except material, which the module
// calls only to seal the object at rest or to export an extractable key.
type keyHandle interface {
	public() crypto.PublicKey // nil for symmetric keys
	sign(digest []byte, opts crypto.SignerOpts) ([]byte, error)
	decryptOAEP(ciphertext, label []byte) ([]byte, error)
	gcm() (cipher.AEAD, error)
	wrap(material []byte) ([]byte, error)
	unwrap(blob []byte) ([]byte, error)
	mac(data []byte) ([]byte, error)
	material() ([]byte, error) // PKCS#8 DER or the raw secret; caller clears it
	destroy()
}

// softKey is a key held in process memory. mu lets destroy (on Seal or
// DestroyKey) wait for operations in flight instead of zeroing a key under a
// running signature; operations share it, so they never wait on each other.
type softKey struct {
	mu        sync.RWMutex
	destroyed bool
	typ       KeyType
	signer    crypto.Signer // *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
	secret    []byte        // AES or HMAC secret
	aead      cipher.AEAD
	block     cipher.Block
}

// generateMaterial makes a fresh key of type t in its stored form.
func generateMaterial(t KeyType) ([]byte, error) {
	var k any
	var err error
	switch {
	case t.isRSA():
		k, err = rsa.GenerateKey(rand.Reader, t.rsaBits())
	case t.isEC():
		k, err = ecdsa.GenerateKey(curveOf(t), rand.Reader)
	case t == Ed25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case t.secretLen() > 0:
		s := make([]byte, t.secretLen())
		_, err = rand.Read(s)
		return s, err
	default:
		return nil, errf(ErrInvalid, "unknown key type %q", t)
	}
	if err != nil {
		return nil, fmt.Errorf("generating %s key: %w", t, err)
	}
	defer zeroKey(k)
	return x509.MarshalPKCS8PrivateKey(k)
}

func curveOf(t KeyType) elliptic.Curve {
	switch t {
	case P256:
		return elliptic.P256()
	case P384:
		return elliptic.P384()
	case P521:
		return elliptic.P521()
	}
	return nil
}

// materialOf turns an imported key (crypto.PrivateKey or []byte secret) into
// its stored form, checking it matches t.
func materialOf(t KeyType, key any) ([]byte, error) {
	if t.secretLen() > 0 {
		s, ok := key.([]byte)
		if lo, hi := t.secretLens(); !ok || len(s) < lo || len(s) > hi {
			return nil, errf(ErrInvalid, "a %s key is a secret of %s", t, t.secretSize())
		}
		return append([]byte(nil), s...), nil
	}
	switch k := key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, errf(ErrInvalid, "encoding imported key: %v", err)
		}
		return der, nil
	case []byte:
		return append([]byte(nil), k...), nil // PKCS#8 DER; checked by newSoftKey
	}
	return nil, errf(ErrInvalid, "cannot import a %T as %s", key, t)
}

// newSoftKey parses stored material and checks it is really of type t.
func newSoftKey(t KeyType, material []byte) (*softKey, error) {
	sk := &softKey{typ: t}
	if t.secretLen() > 0 {
		if lo, hi := t.secretLens(); len(material) < lo || len(material) > hi {
			return nil, errf(ErrInvalid, "a %s secret must be %s", t, t.secretSize())
		}
		sk.secret = append([]byte(nil), material...)
		if t.isAES() {
			b, err := aes.NewCipher(sk.secret)
			if err != nil {
				return nil, fmt.Errorf("aes: %w", err)
			}
			sk.block = b
			if sk.aead, err = cipher.NewGCM(b); err != nil {
				return nil, fmt.Errorf("aes-gcm: %w", err)
			}
		}
		return sk, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(material)
	if err != nil {
		return nil, errf(ErrInvalid, "key is not PKCS#8")
	}
	ok := false
	switch k := k.(type) {
	case *rsa.PrivateKey:
		ok = t.isRSA() && k.N.BitLen() == t.rsaBits()
	case *ecdsa.PrivateKey:
		ok = t.isEC() && k.Curve == curveOf(t)
	case ed25519.PrivateKey:
		ok = t == Ed25519
	}
	if !ok {
		zeroKey(k)
		return nil, errf(ErrInvalid, "key does not match type %s", t)
	}
	sk.signer = k.(crypto.Signer)
	return sk, nil
}

// errDestroyed is what an operation gets when the handle was zeroed after
// the caller found it (a Seal or DestroyKey raced with the operation).
func errDestroyed() error {
	return errf(ErrNotFound, "key material was zeroed (module sealed or key destroyed)")
}

func (k *softKey) public() crypto.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.signer == nil {
		return nil
	}
	return k.signer.Public()
}

func (k *softKey) sign(digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.destroyed {
		return nil, errDestroyed()
	}
	if k.signer == nil {
		return nil, errf(ErrUnsupported, "%s keys do not sign (use HMAC)", k.typ)
	}
	if opts == nil {
		return nil, errf(ErrInvalid, "signer options are required")
	}
	if k.typ == Ed25519 {
		if opts.HashFunc() != 0 {
			return nil, errf(ErrInvalid, "Ed25519 signs the message itself (hash must be 0)")
		}
	} else if h := opts.HashFunc(); h == 0 || !h.Available() || len(digest) != h.Size() {
		return nil, errf(ErrInvalid, "digest length does not match hash %v", h)
	}
	if _, pss := opts.(*rsa.PSSOptions); pss && !k.typ.isRSA() {
		return nil, errf(ErrInvalid, "PSS options need an RSA key")
	}
	return k.signer.Sign(rand.Reader, digest, opts)
}

func (k *softKey) decryptOAEP(ct, label []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.destroyed {
		return nil, errDestroyed()
	}
	rk, ok := k.signer.(*rsa.PrivateKey)
	if !ok {
		return nil, errf(ErrUnsupported, "%s keys do not do RSA-OAEP", k.typ)
	}
	return rsa.DecryptOAEP(sha256.New(), nil, rk, ct, label)
}

func (k *softKey) gcm() (cipher.AEAD, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.destroyed {
		return nil, errDestroyed()
	}
	if k.aead == nil {
		return nil, errf(ErrUnsupported, "%s keys do not do AES-GCM", k.typ)
	}
	return k.aead, nil
}

func (k *softKey) wrap(p []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.destroyed {
		return nil, errDestroyed()
	}
	if len(p) == 0 {
		return nil, errf(ErrInvalid, "nothing to wrap")
	}
	if rk, ok := k.signer.(*rsa.PrivateKey); ok {
		return rsaAESWrap(&rk.PublicKey, p)
	}
	if k.block == nil {
		return nil, errf(ErrUnsupported, "%s keys do not wrap", k.typ)
	}
	return kwWrap(k.block, p), nil
}

func (k *softKey) unwrap(c []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.destroyed {
		return nil, errDestroyed()
	}
	if rk, ok := k.signer.(*rsa.PrivateKey); ok {
		return rsaAESUnwrap(rk, c)
	}
	if k.block == nil {
		return nil, errf(ErrUnsupported, "%s keys do not unwrap", k.typ)
	}
	p, err := kwUnwrap(k.block, c)
	if err != nil {
		return nil, errf(ErrVerification, "unwrapping: %v", err)
	}
	return p, nil
}

func (k *softKey) mac(data []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.destroyed {
		return nil, errDestroyed()
	}
	if k.typ != HMACSHA256 {
		return nil, errf(ErrUnsupported, "%s keys do not HMAC", k.typ)
	}
	h := hmac.New(sha256.New, k.secret)
	h.Write(data)
	return h.Sum(nil), nil
}

func (k *softKey) material() ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.destroyed {
		return nil, errDestroyed()
	}
	if k.secret != nil {
		return append([]byte(nil), k.secret...), nil
	}
	return x509.MarshalPKCS8PrivateKey(k.signer)
}

func (k *softKey) destroy() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.destroyed = true
	clear(k.secret)
	zeroKey(k.signer)
	k.signer, k.aead, k.block = nil, nil, nil
}

// zeroKey clears what it can reach of a private key (see the package doc).
func zeroKey(k any) {
	clearInt := func(i *big.Int) {
		if i != nil {
			clear(i.Bits())
		}
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		clearInt(k.D)
		for _, p := range k.Primes {
			clearInt(p)
		}
		clearInt(k.Precomputed.Dp)
		clearInt(k.Precomputed.Dq)
		clearInt(k.Precomputed.Qinv)
	case *ecdsa.PrivateKey:
		clearInt(k.D)
	case ed25519.PrivateKey:
		clear(k)
	}
}
