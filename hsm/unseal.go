package hsm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/argon2"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// UnsealMethod is how the KEK is recovered at start.
type UnsealMethod string

const (
	// MethodKeyFile: a 32-byte random key in a 0600 file (development).
	MethodKeyFile UnsealMethod = "keyfile"
	// MethodPassphrase: a key derived from a passphrase with Argon2id.
	MethodPassphrase UnsealMethod = "passphrase"
	// MethodShamir: M of N shares of a master secret (cloudflare/circl).
	MethodShamir UnsealMethod = "shamir"
	// MethodPKCS11: the KEK sealed by a key on a real HSM, which opens it
	// at start with no operator (auto-unseal; see KEKWrapper).
	MethodPKCS11 UnsealMethod = "pkcs11"
)

// KEKWrapper seals and opens the KEK with a key that never leaves another
// HSM (MethodPKCS11: an AES key on a PKCS#11 token, hsm/pkcs11.Wrapper).
type KEKWrapper interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

const (
	metaMethod     = "method"
	metaWrappedKEK = "wrapped_kek"
	metaKDF        = "kdf"
	metaShamir     = "shamir"
	kekAADPrefix   = "strongroom-hsm-kek-v1|"
	minPINLength   = 6
	minPassphrase  = 8
)

// passphraseKDF are the Argon2id parameters of the passphrase method,
// stored in meta so they can be raised later without breaking old modules.
type passphraseKDF struct {
	Salt    []byte `json:"salt"`
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
}

// Unseal-passphrase parameters: 64 MiB, 3 passes (RFC 9106's second
// recommended option), paid once per unseal.
func newPassphraseKDF() (passphraseKDF, error) {
	k := passphraseKDF{Salt: make([]byte, 16), Time: 3, Memory: 64 * 1024, Threads: 4}
	_, err := rand.Read(k.Salt)
	return k, err
}

// Bounds on stored Argon2id parameters (passphrase KDFs and PIN hashes).
// They are read from the keystore or a backup header before anything is
// authenticated, so a crafted value must neither panic (zero passes or
// threads) nor allocate or compute without bound.
const (
	argonMaxTime      = 16
	argonMinMemoryKiB = 19 * 1024 // the PIN hashes' OWASP minimum
	argonMaxMemoryKiB = 1 << 21   // 2 GiB
	argonMinSalt      = 8
)

// errArgonRange: stored Argon2 parameters outside the bounds above.
var errArgonRange = core.Because(ErrCorrupt, "Argon2 parameters out of range")

func argonInRange(time, memKiB uint32, threads uint8) bool {
	return time >= 1 && time <= argonMaxTime && memKiB >= argonMinMemoryKiB && memKiB <= argonMaxMemoryKiB && threads >= 1
}

// derive refuses parameters out of range (errArgonRange) before running
// Argon2id.
func (k passphraseKDF) derive(pass []byte) ([]byte, error) {
	if !argonInRange(k.Time, k.Memory, k.Threads) || len(k.Salt) < argonMinSalt {
		return nil, errArgonRange
	}
	return argon2.IDKey(pass, k.Salt, k.Time, k.Memory, k.Threads, 32), nil
}

// InitOptions chooses the unseal method and names the first crypto officer.
type InitOptions struct {
	Method     UnsealMethod
	KeyFile    string // keyfile: where the new key is written (0600); it must not exist
	Passphrase []byte // passphrase: at least 8 bytes
	// Threshold (M) and Shares (N) for shamir: any M of the N shares unseal.
	Threshold, Shares int
	OfficerName       string
	OfficerPIN        string
	// Wrapper seals the KEK for MethodPKCS11.
	Wrapper KEKWrapper
}

// InitResult carries what is shown once: the Shamir shares.
type InitResult struct {
	Shares []string
}

// Initialize creates the keystore: a random KEK wrapped by the chosen
// method, and the first crypto officer. It runs the self-tests first and
// leaves the module unsealed.
func (m *Module) Initialize(ctx context.Context, o InitOptions) (InitResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok, err := m.Initialized(ctx); err != nil {
		return InitResult{}, err
	} else if ok {
		return InitResult{}, ErrInitialized
	}
	if err := validUserName(o.OfficerName); err != nil {
		return InitResult{}, fmt.Errorf("initialising hsm: officer: %w", err)
	}
	if err := validPIN(o.OfficerPIN); err != nil {
		return InitResult{}, fmt.Errorf("initialising hsm: officer %w", err)
	}
	if err := m.runSelfTests(); err != nil {
		return InitResult{}, fmt.Errorf("initialising hsm: %w", err)
	}
	kek := make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		return InitResult{}, fmt.Errorf("initialising hsm: %w", err)
	}
	meta := map[string][]byte{metaMethod: []byte(o.Method)}
	var res InitResult
	var wk []byte
	details := "method=" + string(o.Method)
	cleanup := func() {}
	switch o.Method {
	case MethodKeyFile:
		if o.KeyFile == "" {
			return InitResult{}, errf(ErrInvalid, "initialising hsm: a key file path is required")
		}
		wk = make([]byte, 32)
		if _, err := rand.Read(wk); err != nil {
			return InitResult{}, err
		}
		f, err := os.OpenFile(o.KeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return InitResult{}, fmt.Errorf("initialising hsm: creating key file: %w", err)
		}
		_, err = f.Write(wk)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		cleanup = func() { os.Remove(o.KeyFile) }
		if err != nil {
			cleanup()
			return InitResult{}, fmt.Errorf("initialising hsm: writing key file: %w", err)
		}
	case MethodPassphrase:
		if len(o.Passphrase) < minPassphrase {
			return InitResult{}, errf(ErrInvalid, "initialising hsm: passphrase must be at least %d bytes", minPassphrase)
		}
		kdf, err := newPassphraseKDF()
		if err != nil {
			return InitResult{}, err
		}
		if wk, err = kdf.derive(o.Passphrase); err != nil {
			return InitResult{}, err
		}
		meta[metaKDF], _ = json.Marshal(kdf)
		details += fmt.Sprintf(" kdf=argon2id(t=%d,m=%dKiB,p=%d)", kdf.Time, kdf.Memory, kdf.Threads)
	case MethodShamir:
		sp, shares, key, err := splitMaster(o.Threshold, o.Shares)
		if err != nil {
			return InitResult{}, fmt.Errorf("initialising hsm: %w", err)
		}
		wk, res.Shares = key, shares
		meta[metaShamir], _ = json.Marshal(sp)
		details += fmt.Sprintf(" threshold=%d shares=%d", o.Threshold, o.Shares)
	case MethodPKCS11:
		if o.Wrapper == nil {
			return InitResult{}, errf(ErrInvalid, "initialising hsm: the pkcs11 method needs a token key to seal the KEK")
		}
	default:
		return InitResult{}, errf(ErrInvalid, "initialising hsm: unknown unseal method %q (want keyfile, passphrase, shamir or pkcs11)", o.Method)
	}
	defer clear(wk)
	var wrapped []byte
	var err error
	if o.Method == MethodPKCS11 {
		wrapped, err = o.Wrapper.Seal(kek, []byte(kekAADPrefix+string(o.Method)))
	} else {
		wrapped, err = sealKEK(wk, o.Method, kek)
	}
	if err != nil {
		cleanup()
		return InitResult{}, err
	}
	meta[metaWrappedKEK] = wrapped
	hash, err := hashPIN(o.OfficerPIN)
	if err != nil {
		cleanup()
		return InitResult{}, err
	}
	officer := storage.HSMUser{Name: o.OfficerName, Role: string(RoleOfficer), PINHash: hash, Created: m.now().UTC()}
	st, err := newUnsealed(kek, o.Method)
	if err != nil {
		cleanup()
		return InitResult{}, err
	}
	err = m.applyAs(ctx, st, storage.HSMChange{RequireNoMeta: metaMethod, Meta: meta, PutUsers: []storage.HSMUser{officer}},
		"", "hsm.initialize", o.OfficerName, details+" officer="+o.OfficerName)
	if err != nil {
		cleanup()
		st.zero()
		return InitResult{}, fmt.Errorf("initialising hsm: %w", err)
	}
	m.state.Store(st)
	m.log.Info("hsm initialised", "method", o.Method)
	return res, nil
}

func newUnsealed(kek []byte, method UnsealMethod) (*unsealed, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("hsm: KEK cipher: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("hsm: KEK cipher: %w", err)
	}
	mk, err := hkdf.Key(sha256.New, kek, nil, auditMACInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("hsm: audit MAC key: %w", err)
	}
	st := &unsealed{kek: kek, aead: g, method: method, macKey: mk}
	st.users.Store(&map[string]userView{})
	return st, nil
}

func sealKEK(wk []byte, method UnsealMethod, kek []byte) ([]byte, error) {
	g, err := gcmOf(wk)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, kek, []byte(kekAADPrefix+string(method))), nil
}

func openKEK(wk []byte, method UnsealMethod, wrapped []byte) ([]byte, error) {
	g, err := gcmOf(wk)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < g.NonceSize()+g.Overhead() {
		return nil, errf(ErrCorrupt, "wrapped KEK is truncated")
	}
	return g.Open(nil, wrapped[:g.NonceSize()], wrapped[g.NonceSize():], []byte(kekAADPrefix+string(method)))
}

func gcmOf(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// UnsealInput carries the material for the module's method.
type UnsealInput struct {
	KeyFile    string
	Passphrase []byte
	Shares     []string
	Wrapper    KEKWrapper // MethodPKCS11
}

// Unseal recovers the KEK, runs the known-answer self-tests and opens the
// module for logins. Wrong material gives ErrBadUnseal (or ErrInvalid for
// malformed shares) and changes nothing. Unsealing an unsealed module is a
// no-op.
func (m *Module) Unseal(ctx context.Context, in UnsealInput) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state.Load() != nil {
		return nil
	}
	meta, err := m.store.HSMMeta(ctx)
	if err != nil {
		return fmt.Errorf("unsealing: %w", err)
	}
	kek, method, err := recoverKEK(meta, in)
	if err != nil {
		m.auditUnsealFailure(ctx, meta, err)
		return err
	}
	if err := m.runSelfTests(); err != nil {
		clear(kek)
		if aerr := m.apply(ctx, storage.HSMChange{}, "", "selftest.fail", "", err.Error()); aerr != nil {
			m.log.Error("hsm: recording self-test failure", "err", aerr)
		}
		m.log.Error("hsm self-test failed; module refuses all operations", "err", err)
		return fmt.Errorf("unsealing: %w", err)
	}
	st, err := newUnsealed(kek, method)
	if err != nil {
		return err
	}
	if err := m.loadUsers(ctx, st); err != nil {
		st.zero()
		return fmt.Errorf("unsealing: %w", err)
	}
	if err := m.applyAs(ctx, st, storage.HSMChange{}, "", "hsm.unseal", "", "method="+string(method)); err != nil {
		st.zero()
		return fmt.Errorf("unsealing: %w", err)
	}
	m.state.Store(st)
	m.log.Info("hsm unsealed", "method", method)
	return nil
}

// auditUnsealFailure records an attempt with wrong or malformed material
// (not one that failed for want of a keystore). The entry is written while
// sealed, so it carries no MAC; failing to write it fails nothing, since
// the module stays sealed anyway.
func (m *Module) auditUnsealFailure(ctx context.Context, meta map[string][]byte, err error) {
	reason := "wrong-material"
	switch {
	case errors.Is(err, ErrInvalid):
		reason = "malformed-material"
	case !errors.Is(err, ErrBadUnseal):
		return
	}
	if aerr := m.apply(ctx, storage.HSMChange{}, "", "unseal.fail", "", "method="+string(meta[metaMethod])+" reason="+reason); aerr != nil {
		m.log.Warn("hsm: recording a failed unseal", "err", aerr)
	}
}

// recoverKEK derives the wrapping key from in for the method recorded in
// meta and opens the wrapped KEK. Unseal and Restore share it.
func recoverKEK(meta map[string][]byte, in UnsealInput) ([]byte, UnsealMethod, error) {
	method := UnsealMethod(meta[metaMethod])
	var wk []byte
	var err error
	switch method {
	case "":
		return nil, "", ErrNotInitialized
	case MethodKeyFile:
		if in.KeyFile == "" {
			return nil, "", errf(ErrInvalid, "unsealing: this module unseals with a key file; none given")
		}
		wk, err = os.ReadFile(in.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("unsealing: reading key file: %w", err)
		}
		if len(wk) != 32 {
			return nil, "", errf(ErrBadUnseal, "unsealing: key file must hold exactly 32 bytes")
		}
	case MethodPassphrase:
		var kdf passphraseKDF
		if err := json.Unmarshal(meta[metaKDF], &kdf); err != nil || len(kdf.Salt) == 0 {
			return nil, "", errf(ErrCorrupt, "unsealing: passphrase parameters are unreadable")
		}
		if len(in.Passphrase) == 0 {
			return nil, "", errf(ErrInvalid, "unsealing: this module unseals with a passphrase; none given")
		}
		if wk, err = kdf.derive(in.Passphrase); err != nil {
			return nil, "", fmt.Errorf("unsealing: the keystore's passphrase parameters are damaged: %w", err)
		}
	case MethodShamir:
		var sp shamirParams
		if err := json.Unmarshal(meta[metaShamir], &sp); err != nil {
			return nil, "", errf(ErrCorrupt, "unsealing: Shamir parameters are unreadable")
		}
		if wk, err = recoverMaster(sp, in.Shares); err != nil {
			return nil, "", fmt.Errorf("unsealing: %w", err)
		}
	case MethodPKCS11:
		if in.Wrapper == nil {
			return nil, "", errf(ErrInvalid, "unsealing: this module unseals with a PKCS#11 token; none given")
		}
		kek, err := in.Wrapper.Open(meta[metaWrappedKEK], []byte(kekAADPrefix+string(method)))
		if err != nil || len(kek) != 32 {
			return nil, "", errf(ErrBadUnseal, "unsealing: the token's key does not open this module's KEK (another token or key?): %v", err)
		}
		return kek, method, nil
	default:
		return nil, "", errf(ErrCorrupt, "unsealing: unknown unseal method %q in keystore", method)
	}
	defer clear(wk)
	kek, err := openKEK(wk, method, meta[metaWrappedKEK])
	if err != nil {
		switch method {
		case MethodPassphrase:
			return nil, "", errf(ErrBadUnseal, "unsealing: wrong passphrase")
		case MethodShamir:
			return nil, "", errf(ErrBadUnseal, "unsealing: the shares do not recover this module's master secret")
		}
		return nil, "", errf(ErrBadUnseal, "unsealing: wrong key file")
	}
	return kek, method, nil
}

var errNoShares = errors.New("no shares given")
