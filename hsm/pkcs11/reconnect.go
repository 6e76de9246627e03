//go:build cgo && !nopkcs11

package pkcs11

import (
	"crypto"
	"errors"
	"fmt"
	"io"
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
	return ts
}

func (s *tokenSigner) Public() crypto.PublicKey { return s.pub }

func (s *tokenSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ref := s.cur.Load()
	sig, err := ref.s.Sign(r, digest, opts)
	if err == nil || !s.retryable(err, ref) {
		return sig, err
	}
	found, err := s.again(ref, err)
	if err != nil {
		return nil, err
	}
	return found.Sign(r, digest, opts)
}

// Present checks, without signing, that the key is on the token as a
// signature would find it, opening the token again as Sign does. /readyz
// and strongroom_ca_signing_available ask it, so a token that went away
// shows before a request fails on it (a review saw /readyz say ready for
// as long as nothing signed).
func (s *tokenSigner) Present() error {
	ref := s.cur.Load()
	_, err := findIn(ref.c, s.t.desc, s.label)
	if err == nil && ref.c == s.t.ctx() && !s.t.broken.Load() {
		return nil
	}
	// A session whose token went away and came back may find nothing
	// (SoftHSM's does): a key not found is looked for again on the token
	// opened again (at most every ReconnectEvery), as after a PKCS#11
	// error; a key labelled twice is not.
	if err != nil && !s.retryable(err, ref) && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err == nil {
		err = errors.New("the token was opened again since this key was found")
	}
	_, err = s.again(ref, err)
	return err
}

// retryable reports whether an operation with ref that failed with err may
// succeed on the token opened again: after a PKCS#11 error, while the
// token is broken, or when another signer of this token opened it again
// since this one found its key (its handle belongs to the closed context).
func (s *tokenSigner) retryable(err error, ref *keyRef) bool {
	return lostSession(err) || s.t.broken.Load() || ref.c != s.t.ctx()
}

// again opens the token again after cause (unless another caller did),
// finds the key's label again, and keeps it, only if its public half is
// the one this signer started with.
func (s *tokenSigner) again(ref *keyRef, cause error) (crypto.Signer, error) {
	if rerr := s.t.reconnect(ref.c); rerr != nil {
		// The token's state first: the signature's own error after a
		// reconnection elsewhere is only "context is closed".
		return nil, fmt.Errorf("pkcs11: %s cannot sign with %q now (%v); the signature failed with: %w", s.t.desc, s.label, rerr, cause)
	}
	c := s.t.ctx()
	found, ferr := findIn(c, s.t.desc, s.label)
	if ferr != nil {
		return nil, fmt.Errorf("%w (after opening the token again: %v)", cause, ferr)
	}
	if eq, ok := found.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(s.pub) {
		return nil, fmt.Errorf("pkcs11: the key labelled %q on %s is no longer the key this node started with: %w", s.label, s.t.desc, ErrInvalid)
	}
	s.cur.Store(&keyRef{c: c, s: found})
	return found, nil
}
