package hsm

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
)

// Material is new unseal material to wrap the KEK under: Initialize makes
// the module's first, Rekey and a restore with RestoreInput.Rekey replace
// it.
type Material struct {
	Method     UnsealMethod
	KeyFile    string // keyfile: where the new key is written (0600); it must not exist
	Passphrase []byte // passphrase: at least 8 bytes
	// Threshold (M) and Shares (N) for shamir: any M of the N shares unseal.
	Threshold, Shares int
	// Wrapper seals the KEK for MethodPKCS11.
	Wrapper KEKWrapper
	// Deliver, when set, is given new Shamir shares before the keystore
	// takes them; its error leaves everything as it was. Shares are
	// secrets nobody else has: handed out only after the commit, a
	// failure to show them (a full disk, a closed pipe) left a keystore
	// that nobody could unseal. Nil: they come back in the result.
	Deliver func(shares []string) error
}

// madeMaterial is Material made: the wrapping key, the meta rows that
// describe it (method, KDF parameters, Shamir commitments; not the wrapped
// KEK), the shares to show once, the audit details (never a secret), and
// undo, which removes a key file written for it.
type madeMaterial struct {
	w       kekWrap
	meta    map[string][]byte
	shares  []string
	details string
	undo    func()
}

// methodMeta are the meta rows only some methods use: a rekey deletes
// those its new method does not write, so the keystore never describes
// material it no longer has.
var methodMeta = []string{metaKDF, metaShamir}

// make creates the material; what names the operation in errors. The
// caller zeroes m.w and runs m.undo if the material is not put to use.
func (o Material) make(what string) (madeMaterial, error) {
	m := madeMaterial{w: kekWrap{method: o.Method}, meta: map[string][]byte{metaMethod: []byte(o.Method)},
		details: "method=" + string(o.Method), undo: func() {}}
	switch o.Method {
	case MethodKeyFile:
		if o.KeyFile == "" {
			return m, errf(ErrInvalid, "%s: a key file path is required", what)
		}
		wk := make([]byte, 32)
		if _, err := rand.Read(wk); err != nil {
			return m, err
		}
		m.w.wk = wk
		f, err := os.OpenFile(o.KeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return m, fmt.Errorf("%s: creating key file: %w", what, err)
		}
		_, err = f.Write(wk)
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		m.undo = func() { os.Remove(o.KeyFile) }
		if err != nil {
			m.undo()
			return m, fmt.Errorf("%s: writing key file: %w", what, err)
		}
	case MethodPassphrase:
		if len(o.Passphrase) < minPassphrase {
			return m, errf(ErrInvalid, "%s: passphrase must be at least %d bytes", what, minPassphrase)
		}
		kdf, err := newPassphraseKDF()
		if err != nil {
			return m, err
		}
		if m.w.wk, err = kdf.derive(o.Passphrase); err != nil {
			return m, err
		}
		m.meta[metaKDF], _ = json.Marshal(kdf)
		m.details += fmt.Sprintf(" kdf=argon2id(t=%d,m=%dKiB,p=%d)", kdf.Time, kdf.Memory, kdf.Threads)
	case MethodShamir:
		sp, shares, key, err := splitMaster(o.Threshold, o.Shares)
		if err != nil {
			return m, fmt.Errorf("%s: %w", what, err)
		}
		m.w.wk, m.shares = key, shares
		m.meta[metaShamir], _ = json.Marshal(sp)
		m.details += fmt.Sprintf(" threshold=%d shares=%d", o.Threshold, o.Shares)
	case MethodPKCS11:
		if o.Wrapper == nil {
			return m, errf(ErrInvalid, "%s: the pkcs11 method needs a token key to seal the KEK", what)
		}
		m.w.wrapper = o.Wrapper
	default:
		return m, errf(ErrInvalid, "%s: unknown unseal method %q (want keyfile, passphrase, shamir or pkcs11)", what, o.Method)
	}
	return m, nil
}

// stale is the meta rows the material's method does not use.
func (m madeMaterial) stale() []string {
	var out []string
	for _, k := range methodMeta {
		if _, ok := m.meta[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// deliver hands the new shares to fn (see Material.Deliver) before the
// keystore takes them; what names the operation in errors.
func (m madeMaterial) deliver(fn func([]string) error, what string) error {
	if fn == nil || len(m.shares) == 0 {
		return nil
	}
	if err := fn(m.shares); err != nil {
		return fmt.Errorf("%s: the new shares could not be handed out, so nothing was changed: %w", what, err)
	}
	return nil
}
