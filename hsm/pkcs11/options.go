package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/strongroom-pki/strongroom/core"
)

// Errors callers branch on.
var (
	ErrNotFound    = core.Errorf(core.KindNotFound, "no such key on the token")
	ErrExists      = core.Errorf(core.KindConflict, "a key with that label exists")
	ErrInvalid     = core.Errorf(core.KindMalformed, "invalid PKCS#11 setting")
	ErrUnavailable = core.Errorf(core.KindUnavailable, "PKCS#11 is not available in this build (it needs cgo)")
)

// Options says which token to use.
type Options struct {
	// Module is the path of the vendor's PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// Token is the token's label.
	Token string
	// PIN is the user PIN (CKU_USER).
	PIN string
	// LabelPrefix goes before every key label this Token is given
	// (Generate, Signer, Has, Wrapper), so that several CAs, or other
	// applications, can share one token or partition. Zero: none.
	LabelPrefix string
}

func (o Options) check() error {
	var missing []string
	if o.Module == "" {
		missing = append(missing, "module")
	}
	if o.Token == "" {
		missing = append(missing, "token")
	}
	if o.PIN == "" {
		missing = append(missing, "PIN")
	}
	if strings.IndexFunc(o.LabelPrefix, unicode.IsControl) >= 0 {
		return fmt.Errorf("pkcs11: label prefix %q holds control characters: %w", o.LabelPrefix, ErrInvalid)
	}
	if len(missing) > 0 {
		return fmt.Errorf("pkcs11: no %s given: %w", strings.Join(missing, ", "), ErrInvalid)
	}
	// The loader's own reason is lost on the way (crypto11 says only
	// "failed to open module"): say the common one here.
	if _, err := os.Stat(o.Module); err != nil {
		return fmt.Errorf("pkcs11: module %s: %w: %w", o.Module, err, ErrInvalid)
	}
	return nil
}

// KeyType is a CA key type, named as `ca init --key-type` names them.
type KeyType string

// params gives the curve of an EC type, or the size of an RSA one.
func (kt KeyType) params() (elliptic.Curve, int, error) {
	switch kt {
	case "p256":
		return elliptic.P256(), 0, nil
	case "p384":
		return elliptic.P384(), 0, nil
	case "rsa2048":
		return nil, 2048, nil
	case "rsa3072":
		return nil, 3072, nil
	case "rsa4096":
		return nil, 4096, nil
	}
	return nil, 0, fmt.Errorf("pkcs11: key type %q is not one of p256, p384, rsa2048, rsa3072, rsa4096: %w", string(kt), ErrInvalid)
}

// pairwise signs a fixed digest and verifies the signature with the public
// key, as the embedded module does for every key pair it makes.
func pairwise(s crypto.Signer) error {
	d := sha256.Sum256([]byte("strongroom pkcs11 pairwise consistency test"))
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(pub, d[:], sig) {
			return errors.New("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			return err
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
			return err
		}
	case ed25519.PublicKey:
		return errors.New("Ed25519 keys are not supported over PKCS#11")
	default:
		return fmt.Errorf("unsupported public key %T", pub)
	}
	return nil
}

// scrub removes the PIN from an error a library built, should it ever
// contain it.
func scrub(err error, pin string) error {
	if err == nil || pin == "" || !strings.Contains(err.Error(), pin) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pin, "[PIN]"))
}
