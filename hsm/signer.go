package hsm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"io"
)

// Signer returns a crypto.Signer for the key's current version, bound to the
// session: it stops working when the session closes, the module seals or
// the key is destroyed. For RSA keys the value also implements
// crypto.Decrypter (OAEP with SHA-256 only). It is a proxy: no type
// assertion yields the private key.
func (s *Session) Signer(ctx context.Context, keyID string) (crypto.Signer, error) {
	ko, err := s.useKey(ctx, keyID, UsageSign)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	kv := ko.current()
	if kv.h.public() == nil {
		return nil, errf(ErrUnsupported, "signer: %s keys do not sign", ko.a.Type)
	}
	sg := &signer{s: s, ko: ko, kv: kv, pub: kv.h.public()}
	if ko.a.Type.isRSA() {
		return &rsaSigner{sg}, nil
	}
	return sg, nil
}

type signer struct {
	s   *Session
	ko  *keyObject
	kv  *keyVersion
	pub crypto.PublicKey
}

func (g *signer) Public() crypto.PublicKey { return g.pub }

// Sign ignores rand: the module uses its own CSPRNG.
func (g *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, err := g.s.live(); err != nil {
		return nil, fmt.Errorf("hsm signer: %w", err)
	}
	if g.ko.destroyed.Load() {
		return nil, errf(ErrNotFound, "hsm signer: key %s was destroyed", g.ko.id)
	}
	sig, err := g.kv.h.sign(digest, opts)
	if err != nil {
		return nil, fmt.Errorf("hsm signer: %w", err)
	}
	g.kv.pending.Add(1)
	return sig, nil
}

type rsaSigner struct{ *signer }

// Decrypt does RSA-OAEP with SHA-256 (nil opts, or *rsa.OAEPOptions with
// Hash SHA-256); the key must permit decrypt.
func (g *rsaSigner) Decrypt(_ io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if _, err := g.s.live(); err != nil {
		return nil, fmt.Errorf("hsm decrypter: %w", err)
	}
	if g.ko.destroyed.Load() {
		return nil, errf(ErrNotFound, "hsm decrypter: key %s was destroyed", g.ko.id)
	}
	if g.ko.a.Usage&UsageDecrypt == 0 {
		return nil, errf(ErrForbidden, "hsm decrypter: key %s does not permit decrypt", g.ko.id)
	}
	var label []byte
	switch o := opts.(type) {
	case nil:
	case *rsa.OAEPOptions:
		if o.Hash != crypto.SHA256 || (o.MGFHash != 0 && o.MGFHash != crypto.SHA256) {
			return nil, errf(ErrUnsupported, "hsm decrypter: only OAEP with SHA-256")
		}
		label = o.Label
	default:
		return nil, errf(ErrUnsupported, "hsm decrypter: only RSA-OAEP (no PKCS#1 v1.5 decryption)")
	}
	p, err := g.kv.h.decryptOAEP(ciphertext, label)
	if err != nil {
		return nil, errf(ErrVerification, "hsm decrypter: ciphertext does not decrypt")
	}
	g.kv.pending.Add(1)
	return p, nil
}

var _ crypto.Decrypter = (*rsaSigner)(nil)
