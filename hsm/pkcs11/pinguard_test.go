//go:build cgo && !nopkcs11

package pkcs11

import (
	"errors"
	"testing"

	mp "github.com/miekg/pkcs11"
)

// TestPINGuard: a token whose user PIN is on its final try, or locked, gets
// no login (SoftHSM has no PIN counter, so this is checked on its flags;
// TestToken opens SoftHSM through the same check); a count merely low, or
// none, does not stop it.
func TestPINGuard(t *testing.T) {
	for flags, refused := range map[uint]bool{
		0:                         false,
		mp.CKF_USER_PIN_COUNT_LOW: false,
		mp.CKF_TOKEN_INITIALIZED:  false,
		mp.CKF_USER_PIN_FINAL_TRY: true,
		mp.CKF_USER_PIN_LOCKED:    true,
		mp.CKF_USER_PIN_COUNT_LOW | mp.CKF_USER_PIN_FINAL_TRY: true,
	} {
		if err := pinGuard(flags, "t", "m"); errors.Is(err, ErrPINFinalTry) != refused {
			t.Errorf("flags %#x: %v, want refused %v", flags, err, refused)
		}
	}
}
