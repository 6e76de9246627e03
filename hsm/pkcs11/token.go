//go:build cgo && !nopkcs11

package pkcs11

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThalesGroup/crypto11"
)

// Available reports whether this binary can reach PKCS#11 modules.
const Available = true

// Token is one logged-in token. It is safe for concurrent use; crypto11
// keeps a pool of PKCS#11 sessions.
type Token struct {
	c    atomic.Pointer[crypto11.Context] // replaced by reconnect
	mu   sync.Mutex                       // serialises Generate's check-then-create
	desc string                           // module and token, for errors
	opts Options                          // to open the token again
	// rmu serialises reconnections; reconnected is when the last was
	// tried; broken says the context in c was closed by one that failed.
	rmu         sync.Mutex
	reconnected time.Time
	broken      atomic.Bool
	closed      bool  // by Close: never opened again
	pinRefused  error // a reconnection's login refused the PIN: no more tries
	// labels are those of the key pairs its signers hold (findsOther).
	lmu    sync.Mutex
	labels []string
}

func (t *Token) ctx() *crypto11.Context { return t.c.Load() }

// Open loads the module, finds the token by label and logs in with the PIN.
func Open(_ context.Context, o Options) (*Token, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if err := loadable(o.Module); err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("token %q of %s", o.Token, o.Module)
	if err := checkPINTries(o.Module, o.Token); err != nil {
		return nil, err
	}
	c, err := configure(&crypto11.Config{Path: o.Module, TokenLabel: o.Token, Pin: o.PIN})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: opening %s: %w", desc, scrub(err, o.PIN))
	}
	t := &Token{desc: desc, opts: o}
	t.c.Store(c)
	return t, nil
}

// Close logs out and unloads the module.
func (t *Token) Close() error {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	t.closed = true
	if t.broken.Load() {
		return nil // closed by a reconnection that failed
	}
	t.broken.Store(true)
	return t.ctx().Close()
}

// Generate makes a key pair labelled label (after Options.LabelPrefix) on the token, with a random
// CKA_ID, checks it with a signature, and returns its signer. The private
// key is sensitive and never extractable, and it may only sign: decrypt,
// unwrap and derive are off (tokens such as SoftHSM turn them on unless
// told), and so are the public key's encrypt and wrap. A key with that
// label already there is ErrExists: a ceremony never silently reuses a key
// someone else made.
func (t *Token) Generate(label string, kt KeyType) (crypto.Signer, error) {
	label = t.opts.LabelPrefix + label
	curve, bits, err := kt.params()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if taken, err := labelTaken(t.ctx(), t.desc, label); err != nil {
		return nil, err
	} else if taken {
		return nil, fmt.Errorf("pkcs11: a key labelled %q is already on %s: %w", label, t.desc, ErrExists)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	pub, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, err
	}
	priv := pub.Copy()
	for _, a := range []struct {
		set AttributeSet
		typ crypto11.AttributeType
		on  bool
	}{
		{pub, crypto11.CkaVerify, true}, {pub, crypto11.CkaEncrypt, false}, {pub, crypto11.CkaWrap, false},
		{priv, crypto11.CkaSign, true}, {priv, crypto11.CkaDecrypt, false}, {priv, crypto11.CkaUnwrap, false},
		{priv, crypto11.CkaDerive, false}, {priv, crypto11.CkaSensitive, true}, {priv, crypto11.CkaExtractable, false},
	} {
		if err := a.set.Set(a.typ, a.on); err != nil {
			return nil, err
		}
	}
	var s crypto11.Signer
	if curve != nil {
		s, err = t.ctx().GenerateECDSAKeyPairWithAttributes(pub, priv, curve)
	} else {
		s, err = t.ctx().GenerateRSAKeyPairWithAttributes(pub, priv, bits)
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: generating %s key %q on %s: %w", kt, label, t.desc, err)
	}
	if err := pairwise(s); err != nil {
		return nil, fmt.Errorf("pkcs11: new key %q on %s fails its pairwise test: %w", label, t.desc, err)
	}
	return newTokenSigner(t, label, t.ctx(), signerOf(s)), nil
}

// AttributeSet is crypto11's template type.
type AttributeSet = crypto11.AttributeSet

// Signer returns the signer of the key pair labelled label, after one
// signature it checks (the token is reachable, logged in, and the key
// signs what its public half verifies).
func (t *Token) Signer(label string) (crypto.Signer, error) {
	label = t.opts.LabelPrefix + label
	c := t.ctx()
	s, err := findIn(c, t.desc, label)
	if err != nil {
		return nil, err
	}
	if err := pairwise(s); err != nil {
		return nil, fmt.Errorf("pkcs11: key %q on %s fails its pairwise test: %w", label, t.desc, err)
	}
	return newTokenSigner(t, label, c, s), nil
}

// Has reports whether a key labelled label is on the token: a key pair or
// a secret key (a CA's KEK wrapping key), so that a ceremony on a shared
// token never takes a label another CA's key of either kind has.
func (t *Token) Has(label string) (bool, error) {
	return labelTaken(t.ctx(), t.desc, t.opts.LabelPrefix+label)
}

// labelTaken reports whether a key pair or a secret key in c is labelled
// label (desc names the token).
func labelTaken(c *crypto11.Context, desc, label string) (bool, error) {
	_, err := findIn(c, desc, label)
	if err == nil || errors.Is(err, ErrExists) {
		return true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	secret, err := c.FindKeys(nil, []byte(label))
	if err != nil {
		return false, fmt.Errorf("pkcs11: finding key %q on %s: %w", label, desc, err)
	}
	return len(secret) > 0, nil
}

// findIn finds the key pair labelled label in c (desc names the token).
func findIn(c *crypto11.Context, desc, label string) (crypto.Signer, error) {
	if label == "" {
		return nil, fmt.Errorf("pkcs11: empty key label: %w", ErrInvalid)
	}
	found, err := c.FindKeyPairs(nil, []byte(label))
	switch {
	case err != nil:
		return nil, fmt.Errorf("pkcs11: finding key %q on %s: %w", label, desc, err)
	case len(found) == 0:
		return nil, fmt.Errorf("pkcs11: no key labelled %q on %s: %w", label, desc, ErrNotFound)
	case len(found) > 1:
		return nil, fmt.Errorf("pkcs11: %d key pairs are labelled %q on %s; which one signs is ambiguous: %w",
			len(found), label, desc, ErrExists)
	}
	return signerOf(found[0]), nil
}

// signerOf guards crypto11's RSA keys, which panic on nil SignerOpts.
func signerOf(s crypto11.Signer) crypto.Signer {
	if _, ok := s.(crypto11.SignerDecrypter); ok {
		return rsaSigner{s}
	}
	return s
}

type rsaSigner struct{ crypto11.Signer }

func (r rsaSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, fmt.Errorf("pkcs11: RSA signing needs the hash in SignerOpts: %w", ErrInvalid)
	}
	return r.Signer.Sign(rand, digest, opts)
}
