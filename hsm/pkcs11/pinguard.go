//go:build cgo && !nopkcs11

package pkcs11

import (
	"errors"
	"fmt"
	"strings"

	mp "github.com/miekg/pkcs11"
)

// ErrPINFinalTry refuses a login that could lock the token's user: the
// token says its PIN is locked, or that the next wrong PIN locks it.
var ErrPINFinalTry = fmt.Errorf("pkcs11: the token's user PIN is locked or on its final try; not logging in (check the PIN, then reset the counter with the HSM's own tools): %w", ErrInvalid)

// pinRefused reports whether err is a login refused for its PIN: wrong,
// or locked.
func pinRefused(err error) bool {
	var e mp.Error
	if errors.As(err, &e) {
		return e == mp.CKR_PIN_INCORRECT || e == mp.CKR_PIN_LOCKED
	}
	// crypto11 reports its login failure as text.
	return err != nil && (strings.Contains(err.Error(), "CKR_PIN_INCORRECT") || strings.Contains(err.Error(), "CKR_PIN_LOCKED"))
}

// checkPINTries reads the token's flags before a login. A service that
// restarts on failure with a wrong PIN would otherwise spend one try per
// start until the HSM locks (or, on some, wipes) the partition. Only
// CKF_USER_PIN_LOCKED and CKF_USER_PIN_FINAL_TRY stop the login; a token
// not found is left to the login's own error. It runs before every login,
// at start and at each reconnection; a module another open token of the
// process keeps initialized is read as it is, and left initialized.
func checkPINTries(module, label string) error {
	p := mp.New(module)
	if p == nil {
		return nil // crypto11's own open reports it
	}
	defer p.Destroy()
	switch err := p.Initialize(); {
	case err == nil:
		defer p.Finalize()
	case !errors.Is(err, mp.Error(mp.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
		return nil
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return nil
	}
	for _, s := range slots {
		info, err := p.GetTokenInfo(s)
		if err != nil || info.Label != label {
			continue
		}
		return pinGuard(info.Flags, label, module)
	}
	return nil
}

// pinGuard refuses a login to a token whose flags say its user PIN is
// locked or on its final try.
func pinGuard(flags uint, label, module string) error {
	if flags&(mp.CKF_USER_PIN_LOCKED|mp.CKF_USER_PIN_FINAL_TRY) != 0 {
		return fmt.Errorf("token %q of %s: %w", label, module, ErrPINFinalTry)
	}
	return nil
}
