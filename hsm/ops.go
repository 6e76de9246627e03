package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// Digest hashes data with sha256, sha384, sha512, sha3-256, sha3-384 or
// sha3-512. It needs no session: hashing touches no key.
func Digest(alg string, data []byte) ([]byte, error) {
	switch alg {
	case "sha256":
		h := sha256.Sum256(data)
		return h[:], nil
	case "sha384":
		h := sha512.Sum384(data)
		return h[:], nil
	case "sha512":
		h := sha512.Sum512(data)
		return h[:], nil
	case "sha3-256":
		h := sha3.Sum256(data)
		return h[:], nil
	case "sha3-384":
		h := sha3.Sum384(data)
		return h[:], nil
	case "sha3-512":
		h := sha3.Sum512(data)
		return h[:], nil
	}
	return nil, errf(ErrInvalid, "unknown digest %q (want sha256, sha384, sha512, sha3-256, sha3-384 or sha3-512)", alg)
}

// Sign signs digest with the key's current version. For Ed25519, digest is
// the message and opts.HashFunc() must be 0; *rsa.PSSOptions selects PSS.
// The use is counted in memory; no database write happens here.
func (s *Session) Sign(ctx context.Context, keyID string, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, _, err := s.SignVersioned(ctx, keyID, digest, opts)
	return sig, err
}

// SignVersioned is Sign, also returning the version that signed: the key's
// current one when it ran, which a rotation since the caller read the key
// may have made newer than the caller knows.
func (s *Session) SignVersioned(ctx context.Context, keyID string, digest []byte, opts crypto.SignerOpts) ([]byte, int, error) {
	ko, err := s.useKey(ctx, keyID, UsageSign)
	if err != nil {
		return nil, 0, fmt.Errorf("signing: %w", err)
	}
	kv := ko.current()
	sig, err := kv.h.sign(digest, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("signing with key %s: %w", keyID, err)
	}
	kv.pending.Add(1)
	return sig, kv.version, nil
}

// Verify checks sig over digest with the given version (0 = current). A
// version newer than this node has loaded is read from the store (stale.go).
func (s *Session) Verify(ctx context.Context, keyID string, version int, digest, sig []byte, opts crypto.SignerOpts) error {
	ko, err := s.useKey(ctx, keyID, UsageVerify)
	if err != nil {
		return fmt.Errorf("verifying: %w", err)
	}
	ko, kv, err := s.versionOf(ctx, ko, version, UsageVerify)
	if err != nil {
		return fmt.Errorf("verifying: %w", err)
	}
	if kv == nil {
		return errf(ErrWrongKeyVersion, "verifying: key %s version %d", keyID, version)
	}
	if kv.h.public() == nil {
		return errf(ErrUnsupported, "verifying: %s keys verify with VerifyHMAC", ko.a.Type)
	}
	kv.pending.Add(1)
	if opts == nil {
		return errf(ErrInvalid, "verifying: signer options are required")
	}
	return verifyWith(kv.h.public(), digest, sig, opts)
}

func verifyWith(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	ok := false
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(p, digest, sig)
	case ed25519.PublicKey:
		ok = opts.HashFunc() == 0 && ed25519.Verify(p, digest, sig)
	case *rsa.PublicKey:
		if pss, isPSS := opts.(*rsa.PSSOptions); isPSS {
			ok = rsa.VerifyPSS(p, pss.Hash, digest, sig, pss) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(p, opts.HashFunc(), digest, sig) == nil
		}
	}
	if !ok {
		return ErrVerification
	}
	return nil
}

// Ciphertexts from Encrypt start with a 5-byte header: a format byte and the
// key version (4 bytes, big-endian), so Decrypt finds the right version
// after a rotation.
//
//	AES-GCM: 0x01 ‖ version ‖ 12-byte nonce ‖ ciphertext ‖ 16-byte tag,
//	         with header ‖ aad as the GCM additional data.
//	RSA:     0x02 ‖ version ‖ RSA-OAEP (SHA-256, MGF1-SHA-256, label aad),
//	         the modulus length.
//
// DecryptVersion also opens a raw RSA-OAEP ciphertext, exactly the
// modulus length, as any library makes with the public key alone: five
// bytes shorter than the header form, so the two cannot be confused.
const (
	fmtGCM  = 0x01
	fmtOAEP = 0x02
	hdrLen  = 5
)

// Encrypt encrypts with the key's current version (AES-GCM or RSA-OAEP).
func (s *Session) Encrypt(ctx context.Context, keyID string, plaintext, aad []byte) ([]byte, error) {
	ko, err := s.useKey(ctx, keyID, UsageEncrypt)
	if err != nil {
		return nil, fmt.Errorf("encrypting: %w", err)
	}
	kv := ko.current()
	var hdr [hdrLen]byte
	binary.BigEndian.PutUint32(hdr[1:], uint32(kv.version))
	var out []byte
	if pub, ok := kv.h.public().(*rsa.PublicKey); ok {
		hdr[0] = fmtOAEP
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, plaintext, aad)
		if err != nil {
			return nil, errf(ErrInvalid, "encrypting: %v", err)
		}
		out = append(hdr[:], ct...)
	} else {
		g, err := kv.h.gcm()
		if err != nil {
			return nil, fmt.Errorf("encrypting: %w", err)
		}
		hdr[0] = fmtGCM
		out = make([]byte, hdrLen+g.NonceSize(), hdrLen+g.NonceSize()+len(plaintext)+g.Overhead())
		copy(out, hdr[:])
		if _, err := rand.Read(out[hdrLen:]); err != nil {
			return nil, err
		}
		out = g.Seal(out, out[hdrLen:], plaintext, append(hdr[:], aad...))
	}
	kv.pending.Add(1)
	return out, nil
}

// Decrypt reverses Encrypt, with whichever version made the ciphertext;
// one newer than this node has loaded is read from the store (stale.go).
func (s *Session) Decrypt(ctx context.Context, keyID string, ciphertext, aad []byte) ([]byte, error) {
	return s.decrypt(ctx, keyID, 0, ciphertext, aad, false)
}

// DecryptVersion is Decrypt that also opens a raw RSA-OAEP ciphertext
// (SHA-256, MGF1-SHA-256, label aad; exactly the modulus length) made
// with an RSA key's public key outside the module, as AWS KMS's Decrypt
// does: with the given version, or with the current one for version 0
// (when this node's current version does not open it, the current one
// another node may have made since is read from the store and tried). A
// ciphertext in Encrypt's form names its version itself: a version given
// here must be that one. Every failure to open is ErrVerification or
// ErrWrongKeyVersion, whichever check failed, never which part of OAEP.
func (s *Session) DecryptVersion(ctx context.Context, keyID string, version int, ciphertext, aad []byte) ([]byte, error) {
	return s.decrypt(ctx, keyID, version, ciphertext, aad, true)
}

func (s *Session) decrypt(ctx context.Context, keyID string, version int, ciphertext, aad []byte, raw bool) ([]byte, error) {
	ko, err := s.useKey(ctx, keyID, UsageDecrypt)
	if err != nil {
		return nil, fmt.Errorf("decrypting: %w", err)
	}
	if version < 0 {
		return nil, errf(ErrWrongKeyVersion, "decrypting: key %s has no version %d", keyID, version)
	}
	if n := ko.a.Type.rsaBits() / 8; raw && n > 0 && len(ciphertext) == n {
		return s.decryptRawOAEP(ctx, ko, version, ciphertext, aad)
	}
	if len(ciphertext) < hdrLen {
		return nil, errf(ErrInvalid, "decrypting: ciphertext too short")
	}
	v := int(binary.BigEndian.Uint32(ciphertext[1:hdrLen]))
	if v == 0 || version != 0 && v != version {
		return nil, errf(ErrWrongKeyVersion, "decrypting: the ciphertext names version %d of key %s", v, keyID)
	}
	_, kv, err := s.versionOf(ctx, ko, v, UsageDecrypt)
	if err != nil {
		return nil, fmt.Errorf("decrypting: %w", err)
	}
	if kv == nil {
		return nil, errf(ErrWrongKeyVersion, "decrypting: key %s has no version %d", keyID, v)
	}
	var p []byte
	switch ciphertext[0] {
	case fmtOAEP:
		p, err = kv.h.decryptOAEP(ciphertext[hdrLen:], aad)
	case fmtGCM:
		var g interface {
			NonceSize() int
			Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
		}
		g, err = kv.h.gcm()
		if err == nil {
			if len(ciphertext) < hdrLen+g.NonceSize() {
				return nil, errf(ErrInvalid, "decrypting: ciphertext too short")
			}
			n := hdrLen + g.NonceSize()
			p, err = g.Open(nil, ciphertext[hdrLen:n], ciphertext[n:], append(ciphertext[:hdrLen:hdrLen], aad...))
		}
	default:
		return nil, errf(ErrInvalid, "decrypting: unknown ciphertext format %d", ciphertext[0])
	}
	if err != nil {
		return nil, errf(ErrVerification, "decrypting with key %s: ciphertext or additional data do not authenticate", keyID)
	}
	kv.pending.Add(1)
	return p, nil
}

// decryptRawOAEP opens a raw RSA-OAEP ciphertext with the given version
// (0: the current one). Every failure of OAEP itself is the same
// ErrVerification, whatever rsa.DecryptOAEP found wrong: no padding oracle.
func (s *Session) decryptRawOAEP(ctx context.Context, ko *keyObject, version int, ct, aad []byte) ([]byte, error) {
	ko, kv, err := s.versionOf(ctx, ko, version, UsageDecrypt)
	if err != nil {
		return nil, fmt.Errorf("decrypting: %w", err)
	}
	if kv == nil {
		return nil, errf(ErrWrongKeyVersion, "decrypting: key %s has no version %d", ko.id, version)
	}
	p, err := kv.h.decryptOAEP(ct, aad)
	if err != nil && version == 0 {
		// Another node may have rotated the key since this one read it:
		// the ciphertext was then made with that node's current version.
		newer, rerr := s.newerVersions(ctx, ko, UsageDecrypt)
		if rerr != nil {
			return nil, fmt.Errorf("decrypting: %w", rerr)
		}
		if len(newer) > 0 {
			kv = newer[len(newer)-1]
			p, err = kv.h.decryptOAEP(ct, aad)
		}
	}
	if err != nil {
		return nil, errf(ErrVerification, "decrypting with key %s: ciphertext or additional data do not authenticate", ko.id)
	}
	kv.pending.Add(1)
	return p, nil
}

// Wrap wraps caller-supplied key material under an AES key (RFC 3394 KW,
// or RFC 5649 KWP when the length is not a multiple of 8 of at least 16).
func (s *Session) Wrap(ctx context.Context, wrappingKeyID string, keyMaterial []byte) ([]byte, error) {
	ko, err := s.useKey(ctx, wrappingKeyID, UsageWrap)
	if err != nil {
		return nil, fmt.Errorf("wrapping: %w", err)
	}
	kv := ko.current()
	out, err := kv.h.wrap(keyMaterial)
	if err != nil {
		return nil, fmt.Errorf("wrapping: %w", err)
	}
	kv.pending.Add(1)
	return out, nil
}

// Unwrap reverses Wrap, trying the newest version first. When no version
// this node has loaded opens the blob, versions another node added since
// are read from the store and tried (stale.go).
func (s *Session) Unwrap(ctx context.Context, wrappingKeyID string, blob []byte) ([]byte, error) {
	ko, err := s.useKey(ctx, wrappingKeyID, UsageUnwrap)
	if err != nil {
		return nil, fmt.Errorf("unwrapping: %w", err)
	}
	if p, ok := unwrapNewestFirst(ko.versions, blob); ok {
		return p, nil
	}
	newer, err := s.newerVersions(ctx, ko, UsageUnwrap)
	if err != nil {
		return nil, fmt.Errorf("unwrapping: %w", err)
	}
	if p, ok := unwrapNewestFirst(newer, blob); ok {
		return p, nil
	}
	return nil, errf(ErrVerification, "unwrapping with key %s: blob does not authenticate", wrappingKeyID)
}

func unwrapNewestFirst(kvs []*keyVersion, blob []byte) ([]byte, bool) {
	for i := len(kvs) - 1; i >= 0; i-- {
		if p, err := kvs[i].h.unwrap(blob); err == nil {
			kvs[i].pending.Add(1)
			return p, true
		}
	}
	return nil, false
}

// HMAC computes HMAC-SHA256 with the key's current version.
func (s *Session) HMAC(ctx context.Context, keyID string, data []byte) ([]byte, error) {
	mac, _, err := s.HMACVersioned(ctx, keyID, data)
	return mac, err
}

// HMACVersioned is HMAC, also returning the version that computed it (see
// SignVersioned).
func (s *Session) HMACVersioned(ctx context.Context, keyID string, data []byte) ([]byte, int, error) {
	ko, err := s.useKey(ctx, keyID, UsageSign)
	if err != nil {
		return nil, 0, fmt.Errorf("computing HMAC: %w", err)
	}
	kv := ko.current()
	mac, err := kv.h.mac(data)
	if err != nil {
		return nil, 0, fmt.Errorf("computing HMAC: %w", err)
	}
	kv.pending.Add(1)
	return mac, kv.version, nil
}

// VerifyHMAC checks mac against every version, newest first. When no
// version this node has loaded matches, versions another node added since
// are read from the store and checked (stale.go).
func (s *Session) VerifyHMAC(ctx context.Context, keyID string, data, mac []byte) error {
	ko, err := s.useKey(ctx, keyID, UsageVerify)
	if err != nil {
		return fmt.Errorf("verifying HMAC: %w", err)
	}
	ok, err := macMatchesNewestFirst(ko.versions, data, mac)
	if err == nil && !ok {
		var newer []*keyVersion
		if newer, err = s.newerVersions(ctx, ko, UsageVerify); err == nil {
			ok, err = macMatchesNewestFirst(newer, data, mac)
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("verifying HMAC: %w", err)
	case !ok:
		return ErrVerification
	}
	return nil
}

func macMatchesNewestFirst(kvs []*keyVersion, data, mac []byte) (bool, error) {
	for i := len(kvs) - 1; i >= 0; i-- {
		want, err := kvs[i].h.mac(data)
		if err != nil {
			return false, err
		}
		if hmac.Equal(want, mac) {
			kvs[i].pending.Add(1)
			return true, nil
		}
	}
	return false, nil
}

// Random returns n (1..65536) bytes from the module's CSPRNG.
func (s *Session) Random(ctx context.Context, n int) ([]byte, error) {
	if _, err := s.live(); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	if n < 1 || n > 65536 {
		return nil, errf(ErrInvalid, "random: length must be 1 to 65536 bytes")
	}
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

// GenerateDataKey returns a fresh AES key of bits (128 or 256) in the clear
// and encrypted under keyID (Encrypt's format, with dataKeyAAD as the aad),
// for envelope encryption: use the plaintext, store the wrapped copy,
// DecryptDataKey it later.
func (s *Session) GenerateDataKey(ctx context.Context, keyID string, bits int) (plaintext, wrapped []byte, err error) {
	if bits != 128 && bits != 256 {
		return nil, nil, errf(ErrInvalid, "data key: bits must be 128 or 256")
	}
	plaintext = make([]byte, bits/8)
	if _, err := rand.Read(plaintext); err != nil {
		return nil, nil, err
	}
	wrapped, err = s.Encrypt(ctx, keyID, plaintext, []byte(dataKeyAAD))
	if err != nil {
		clear(plaintext)
		return nil, nil, fmt.Errorf("data key: %w", err)
	}
	return plaintext, wrapped, nil
}

// DecryptDataKey recovers a data key made by GenerateDataKey.
func (s *Session) DecryptDataKey(ctx context.Context, keyID string, wrapped []byte) ([]byte, error) {
	return s.Decrypt(ctx, keyID, wrapped, []byte(dataKeyAAD))
}

// dataKeyAAD is the aad a data key is encrypted with, on its own: the GCM
// additional data is the 5-byte header followed by these 19 ASCII bytes,
// the OAEP label these bytes alone. Decrypt with it opens a data key too.
const dataKeyAAD = "strongroom-data-key"
