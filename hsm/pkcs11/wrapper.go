//go:build cgo && !nopkcs11

package pkcs11

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/ThalesGroup/crypto11"
)

// Wrapper is an AES-256 key on the token that seals and opens the embedded
// HSM's KEK (its unseal method "pkcs11": the module unseals at start with
// no operator, as long as the token is there). The key is sensitive, never
// extractable, and may only encrypt and decrypt; it seals with AES-GCM
// inside the token under a random nonce.
type Wrapper struct {
	gcm cipher.AEAD
}

// Wrapper returns the wrapping key labelled label; create makes it (and
// refuses a label already taken), otherwise it must exist. An existing key
// not found, or a PKCS#11 error, opens the token again and looks once more
// (the token was removed and put back since it was opened: its old
// session finds nothing).
func (t *Token) Wrapper(label string, create bool) (*Wrapper, error) {
	label = t.opts.LabelPrefix + label
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.ctx()
	w, err := t.wrapperIn(c, label, create)
	if err == nil || create {
		return w, err
	}
	if rerr := t.reconnect(c); rerr != nil {
		if errors.Is(rerr, errReconnectWait) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (opening the token again: %v)", err, rerr)
	}
	return t.wrapperIn(t.ctx(), label, false)
}

func (t *Token) wrapperIn(c *crypto11.Context, label string, create bool) (*Wrapper, error) {
	keys, err := c.FindKeys(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: finding key %q on %s: %w", label, t.desc, err)
	}
	var key *crypto11.SecretKey
	switch {
	case create && len(keys) > 0:
		return nil, fmt.Errorf("pkcs11: a key labelled %q is already on %s: %w", label, t.desc, ErrExists)
	case create:
		id := make([]byte, 8)
		if _, err := rand.Read(id); err != nil {
			return nil, err
		}
		attrs, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
		if err != nil {
			return nil, err
		}
		for typ, on := range map[crypto11.AttributeType]bool{crypto11.CkaEncrypt: true, crypto11.CkaDecrypt: true,
			crypto11.CkaWrap: false, crypto11.CkaUnwrap: false, crypto11.CkaSign: false, crypto11.CkaVerify: false,
			crypto11.CkaDerive: false, crypto11.CkaSensitive: true, crypto11.CkaExtractable: false} {
			if err := attrs.Set(typ, on); err != nil {
				return nil, err
			}
		}
		if key, err = c.GenerateSecretKeyWithAttributes(attrs, 256, crypto11.CipherAES); err != nil {
			return nil, fmt.Errorf("pkcs11: generating AES key %q on %s: %w", label, t.desc, err)
		}
	case len(keys) == 0:
		return nil, fmt.Errorf("pkcs11: no key labelled %q on %s: %w", label, t.desc, ErrNotFound)
	case len(keys) > 1:
		return nil, fmt.Errorf("pkcs11: %d keys are labelled %q on %s: %w", len(keys), label, t.desc, ErrExists)
	default:
		key = keys[0]
	}
	gcm, err := key.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("pkcs11: AES-GCM with key %q on %s: %w", label, t.desc, err)
	}
	w := &Wrapper{gcm: gcm}
	// Known answer: what it seals it opens, and nothing else.
	probe, err := w.Seal([]byte("strongroom pkcs11 wrapper self-test"), []byte("aad"))
	if err == nil {
		_, err = w.Open(probe, []byte("aad"))
	}
	if err == nil {
		if _, oerr := w.Open(probe, []byte("other")); oerr == nil {
			err = errors.New("opened with the wrong additional data")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: key %q on %s fails its self-test: %w", label, t.desc, err)
	}
	return w, nil
}

// Seal encrypts plaintext inside the token: nonce || ciphertext || tag.
// (crypto11 panics where cipher.AEAD cannot return an error; that becomes
// the error here.)
func (w *Wrapper) Seal(plaintext, aad []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("pkcs11: sealing: %v", r)
		}
	}()
	nonce := make([]byte, w.gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return w.gcm.Seal(nonce, nonce, plaintext, aad), nil
}

// Open reverses Seal.
func (w *Wrapper) Open(sealed, aad []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("pkcs11: opening: %v", r)
		}
	}()
	n := w.gcm.NonceSize()
	if len(sealed) < n+w.gcm.Overhead() {
		return nil, errors.New("pkcs11: sealed data is truncated")
	}
	return w.gcm.Open(nil, sealed[:n], sealed[n:], aad)
}
