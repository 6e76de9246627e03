//go:build cgo && !nopkcs11

package pkcs11

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ThalesGroup/crypto11"
	mp "github.com/miekg/pkcs11"
)

// Reconnection. When a token is removed and put back, or the HSM (or its
// network link) restarts, every session and object handle the node holds
// is gone: signatures fail with CKR_OBJECT_HANDLE_INVALID or
// CKR_SESSION_HANDLE_INVALID even once the token is back. A token's
// signers and its Wrapper therefore open the token again (a new crypto11
// context: finalize, initialize, log in) when an operation fails with a
// PKCS#11 error, find their key again by label, and retry the operation
// once. A reconnection is tried at most once per ReconnectEvery, so a
// token that stays away costs one attempt (no PIN is sent while the token
// is missing: it is not found before the login) per interval, not one per
// request. Each reconnection's login is a PIN try, so it reads the token's
// PIN flags first, as Open does (checkPINTries), and a token that refuses
// the PIN (changed on the HSM since the node started) gets no other try
// from this node until it is restarted with the new one: an HSM that locks
// its user after a few wrong PINs would otherwise be locked by a node
// trying the old PIN every interval.

// configure opens a token (crypto11.Configure; a variable for tests).
var configure = crypto11.Configure

// ReconnectEvery bounds how often a token is opened again.
var ReconnectEvery = 5 * time.Second

// errReconnectWait is the failure of a reconnection tried too soon after
// the last one.
var errReconnectWait = errors.New("the token was opened again less than the reconnection interval ago")

// lostSession reports whether err is a PKCS#11 error, after which the
// token's sessions and handles may be gone (the errors of this package's
// own checks are not).
func lostSession(err error) bool {
	var e mp.Error
	return errors.As(err, &e)
}

// reconnect opens the token again, unless another caller already did since
// stale was current; nil means the caller may retry with t.ctx(). The old
// context is closed first, so the module is finalized and initialized
// afresh (crypto11 shares one module instance among a process's open
// contexts). If the token cannot be opened, the token stays broken and the
// next operation tries again (after ReconnectEvery).
func (t *Token) reconnect(stale *crypto11.Context) error {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	if t.closed {
		return fmt.Errorf("pkcs11: %s is closed: %w", t.desc, ErrInvalid)
	}
	if t.pinRefused != nil {
		return t.pinRefused
	}
	if t.c.Load() != stale && !t.broken.Load() {
		return nil
	}
	if time.Since(t.reconnected) < ReconnectEvery {
		return errReconnectWait
	}
	t.reconnected = time.Now()
	if !t.broken.Load() {
		t.broken.Store(true)
		t.ctx().Close() // its sessions are gone; waits for calls still on it
	}
	if err := checkPINTries(t.opts.Module, t.opts.Token); err != nil {
		return err
	}
	c, err := configure(&crypto11.Config{Path: t.opts.Module, TokenLabel: t.opts.Token, Pin: t.opts.PIN})
	if pinRefused(err) {
		t.pinRefused = fmt.Errorf("pkcs11: %s refused this node's PIN when it was opened again (was the PIN changed on the HSM?): no other login is tried, so the token's user is not locked; restart the node with the right PIN: %w", t.desc, ErrInvalid)
		return t.pinRefused
	}
	if err != nil {
		return fmt.Errorf("pkcs11: opening %s again: %w", t.desc, scrub(err, t.opts.PIN))
	}
	t.c.Store(c)
	t.broken.Store(false)
	return nil
}

// tokenSigner is a key pair on the token that survives a reconnection: it
// signs with the handle it holds, and after a PKCS#11 error opens the token
// again, finds its label again, and signs once more, only with a key whose
// public half is the one it started with.
type tokenSigner struct {
	t     *Token
	label string
	pub   crypto.PublicKey
	cur   atomic.Pointer[keyRef]
}

type keyRef struct {
	c *crypto11.Context
	s crypto.Signer
}

func newTokenSigner(t *Token, label string, c *crypto11.Context, s crypto.Signer) *tokenSigner {
	ts := &tokenSigner{t: t, label: label, pub: s.Public()}
	ts.cur.Store(&keyRef{c: c, s: s})
	t.lmu.Lock()
	t.labels = append(t.labels, label)
	t.lmu.Unlock()
	return ts
}

func (s *tokenSigner) Public() crypto.PublicKey { return s.pub }

func (s *tokenSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ref := s.cur.Load()
	sig, err := ref.s.Sign(r, digest, opts)
	if err == nil || !s.retryable(err, ref) {
		return sig, err
	}
	k, err := s.refind(ref, err)
	if err != nil {
		return nil, err
	}
	return k.Sign(r, digest, opts)
}

// Present checks, without signing, that the key is on the token as a
// signature would find it, opening the token again only as Sign would.
// /readyz and strongroom_ca_signing_available ask it, so a token that went
// away shows before a request fails on it (a review saw /readyz say ready
// for as long as nothing signed).
func (s *tokenSigner) Present() error {
	ref := s.cur.Load()
	if ref.c == s.t.ctx() && !s.t.broken.Load() {
		_, err := findIn(ref.c, s.t.desc, s.label)
		if err == nil || !s.retryable(err, ref) && !errors.Is(err, ErrNotFound) {
			return err
		}
		_, err = s.refind(ref, err)
		return err
	}
	_, err := s.refind(ref, errors.New("the token was opened again since this key was found"))
	return err
}

// refind finds the key again after cause, an operation with ref that
// failed. First in the token's current context: when the token answers
// there and finds another of its keys, only this key's handle is stale
// (found again) or the key is gone (an error), and opening the token
// again would only break the keys that still sign (found by a review:
// /readyz's checks, reopening for a key deleted from the token, stopped
// the other CA key's signatures for good when the reopening's login then
// failed). Otherwise the token went away or its session is stale (a
// SoftHSM session finds nothing once its token was put back), and it is
// opened again.
func (s *tokenSigner) refind(ref *keyRef, cause error) (crypto.Signer, error) {
	if c := s.t.ctx(); ref.c == c && !s.t.broken.Load() {
		k, err := findIn(c, s.t.desc, s.label)
		switch {
		case err == nil:
			return s.keep(c, k)
		case errors.Is(err, ErrNotFound) && s.t.findsOther(c, s.label):
			return nil, fmt.Errorf("pkcs11: %s answers but has no key labelled %q any more: %w", s.t.desc, s.label, ErrNotFound)
		}
	}
	return s.again(ref, cause)
}

// keep makes k, found in c, this signer's key, if its public half is the
// one this signer started with.
func (s *tokenSigner) keep(c *crypto11.Context, k crypto.Signer) (crypto.Signer, error) {
	if eq, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(s.pub) {
		return nil, fmt.Errorf("pkcs11: the key labelled %q on %s is no longer the key this node started with: %w", s.label, s.t.desc, ErrInvalid)
	}
	s.cur.Store(&keyRef{c: c, s: k})
	return k, nil
}

// findsOther reports whether c finds a key pair of this token's signers
// other than the one labelled except: the token answers in c.
func (t *Token) findsOther(c *crypto11.Context, except string) bool {
	t.lmu.Lock()
	labels := slices.Clone(t.labels)
	t.lmu.Unlock()
	for _, l := range labels {
		if l == except {
			continue
		}
		if _, err := findIn(c, t.desc, l); err == nil {
			return true
		}
	}
	return false
}

// retryable reports whether an operation with ref that failed with err may
// succeed on the token opened again: after a PKCS#11 error, while the
// token is broken, or when another signer of this token opened it again
// since this one found its key (its handle belongs to the closed context).
func (s *tokenSigner) retryable(err error, ref *keyRef) bool {
	return lostSession(err) || s.t.broken.Load() || ref.c != s.t.ctx()
}

// again opens the token again after cause (unless another caller did),
// finds the key's label again, and keeps it (keep).
func (s *tokenSigner) again(ref *keyRef, cause error) (crypto.Signer, error) {
	if rerr := s.t.reconnect(ref.c); rerr != nil {
		// The token's state first: the signature's own error after a
		// reconnection elsewhere is only "context is closed".
		return nil, fmt.Errorf("pkcs11: %s cannot sign with %q now (%v); the signature failed with: %w", s.t.desc, s.label, rerr, cause)
	}
	c := s.t.ctx()
	k, ferr := findIn(c, s.t.desc, s.label)
	if ferr != nil {
		return nil, fmt.Errorf("pkcs11: %s, opened again, cannot sign with %q (%v); the signature failed with: %w", s.t.desc, s.label, ferr, cause)
	}
	return s.keep(c, k)
}
