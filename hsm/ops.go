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
// key version (big-endian), so Decrypt finds the right version after a
// rotation. AES-GCM: header | 12-byte nonce | ciphertext+tag, with
// header|aad as additional data. RSA: header | OAEP-SHA256 ciphertext, with
// aad as the OAEP label.
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
	ko, err := s.useKey(ctx, keyID, UsageDecrypt)
	if err != nil {
		return nil, fmt.Errorf("decrypting: %w", err)
	}
	if len(ciphertext) < hdrLen {
		return nil, errf(ErrInvalid, "decrypting: ciphertext too short")
	}
	v := int(binary.BigEndian.Uint32(ciphertext[1:hdrLen]))
	if v == 0 {
		return nil, errf(ErrWrongKeyVersion, "decrypting: key %s has no version 0", keyID)
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
// and encrypted under keyID (Encrypt's format), for envelope encryption:
// use the plaintext, store the wrapped copy, Decrypt it later.
func (s *Session) GenerateDataKey(ctx context.Context, keyID string, bits int) (plaintext, wrapped []byte, err error) {
	if bits != 128 && bits != 256 {
		return nil, nil, errf(ErrInvalid, "data key: bits must be 128 or 256")
	}
	plaintext = make([]byte, bits/8)
	if _, err := rand.Read(plaintext); err != nil {
		return nil, nil, err
	}
	wrapped, err = s.Encrypt(ctx, keyID, plaintext, []byte("strongroom-data-key"))
	if err != nil {
		clear(plaintext)
		return nil, nil, fmt.Errorf("data key: %w", err)
	}
	return plaintext, wrapped, nil
}

// DecryptDataKey recovers a data key made by GenerateDataKey.
func (s *Session) DecryptDataKey(ctx context.Context, keyID string, wrapped []byte) ([]byte, error) {
	return s.Decrypt(ctx, keyID, wrapped, []byte("strongroom-data-key"))
}
