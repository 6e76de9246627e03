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
	"maps"
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
	// metaAuditAuthFrom is the seq where the audit log's authentication
	// began, in plain so that open can rebuild the AAD; the wrapped KEK is
	// sealed with it in its AAD (kekAAD), so editing or deleting it makes
	// the KEK fail to open.
	metaAuditAuthFrom = "audit_auth_from"
	kekAADPrefixV2    = "strongroom-hsm-kek-v2|"
	minPINLength      = 6
	minPassphrase     = 8
	// metaUsersMAC ("1") says the user rows are authenticated
	// (usermac.go); bound into the wrapped KEK's AAD like
	// audit_auth_from (kekbind.go).
	metaUsersMAC   = "users_mac"
	kekAADPrefixV3 = "strongroom-hsm-kek-v3|"
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
	// Deliver is given the Shamir shares before the keystore is written
	// (Material.Deliver).
	Deliver func(shares []string) error
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
	mat, err := Material{Method: o.Method, KeyFile: o.KeyFile, Passphrase: o.Passphrase,
		Threshold: o.Threshold, Shares: o.Shares, Wrapper: o.Wrapper}.make("initialising hsm")
	if err != nil {
		mat.w.zero()
		return InitResult{}, err
	}
	meta, res, details, cleanup := mat.meta, InitResult{Shares: mat.shares}, mat.details, mat.undo
	defer mat.w.zero()
	// The init entry starts the log's authentication (from = its seq, the
	// log's first entry), and that start is bound into the wrapped KEK's
	// AAD right away, with the user rows' authentication: a keystore of
	// this release never has a KEK that opens without them.
	headSeq, _, err := m.store.HSMAuditHead(ctx)
	if err != nil {
		cleanup()
		return InitResult{}, fmt.Errorf("initialising hsm: %w", err)
	}
	authFrom := headSeq + 1
	bound := kekBinding{auditFrom: authFrom, usersMAC: true}
	wrapped, err := mat.w.seal(kek, bound)
	if err != nil {
		cleanup()
		return InitResult{}, err
	}
	maps.Copy(meta, bound.meta())
	meta[metaWrappedKEK] = wrapped
	hash, err := hashPIN(o.OfficerPIN)
	if err != nil {
		cleanup()
		return InitResult{}, err
	}
	st, err := newUnsealed(kek, o.Method)
	if err != nil {
		cleanup()
		return InitResult{}, err
	}
	st.usersBound.Store(true)
	officer := st.withMAC(storage.HSMUser{Name: o.OfficerName, Role: string(RoleOfficer), PINHash: hash, Created: m.now().UTC()})
	if err := mat.deliver(o.Deliver, "initialising hsm"); err != nil {
		cleanup()
		return InitResult{}, err
	}
	ch := storage.HSMChange{RequireNoMeta: metaMethod, Meta: meta, NewUsers: []storage.HSMUser{officer}}
	ch.Audit = m.auditFunc("", "hsm.initialize", o.OfficerName, withRequester(ctx, details+" officer="+o.OfficerName))
	build, auth := ch.Audit, st.auditAuth()
	ch.Audit = func(prevSeq int64, prevHash []byte) storage.HSMAuditEntry {
		e := build(prevSeq, prevHash)
		if e.Seq != authFrom {
			e.Seq = 0 // an append since the head was read: storage refuses the entry, init fails whole
		}
		return e
	}
	// The init entry begins the authentication at authFrom even if the
	// head holds leftovers of another keystore: they are not under this KEK.
	ch.AuditAuth = func(e storage.HSMAuditEntry, _ storage.HSMAuditAuth, _ []byte) ([]byte, storage.HSMAuditAuth) {
		return auth(e, storage.HSMAuditAuth{}, nil)
	}
	if err = m.store.ApplyHSM(ctx, ch); err != nil {
		cleanup()
		st.zero()
		return InitResult{}, fmt.Errorf("initialising hsm: hsm.initialize: %w (%w)", ErrAuditFailed, err)
	}
	st.noteUsers(ch.NewUsers, nil)
	setAuditAnchor(st, authFrom)
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
	mk, err := kekSubkey(kek, auditMACInfo)
	if err != nil {
		return nil, fmt.Errorf("hsm: audit MAC key: %w", err)
	}
	uk, err := kekSubkey(kek, userMACInfo)
	if err != nil {
		return nil, fmt.Errorf("hsm: user MAC key: %w", err)
	}
	st := &unsealed{kek: kek, aead: g, method: method, macKey: mk, userKey: uk}
	st.users.Store(&map[string]userView{})
	return st, nil
}

// kekSubkey derives a 32-byte key for one purpose (info) from the KEK.
func kekSubkey(kek []byte, info string) ([]byte, error) {
	return hkdf.Key(sha256.New, kek, nil, info, 32)
}

func sealKEK(wk []byte, method UnsealMethod, kek []byte) ([]byte, error) {
	return sealKEKAAD(wk, kekAAD(method, kekBinding{}), kek)
}

func openKEK(wk []byte, method UnsealMethod, wrapped []byte) ([]byte, error) {
	return openKEKAAD(wk, kekAAD(method, kekBinding{}), wrapped)
}

func sealKEKAAD(wk, aad, kek []byte) ([]byte, error) {
	g, err := gcmOf(wk)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, kek, aad), nil
}

func openKEKAAD(wk, aad, wrapped []byte) ([]byte, error) {
	g, err := gcmOf(wk)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < g.NonceSize()+g.Overhead() {
		return nil, errf(ErrCorrupt, "wrapped KEK is truncated")
	}
	return g.Open(nil, wrapped[:g.NonceSize()], wrapped[g.NonceSize():], aad)
}

func setAuditAnchor(st *unsealed, from int64) { st.auditFrom.Store(from) }

// auditAnchor is the seq where the audit log's authentication began, as
// the unseal material vouched for it (kekAAD), so VerifyAudit does not
// take it from the database; 0 when st is nil or does not know it.
func auditAnchor(st *unsealed) int64 {
	if st == nil {
		return 0
	}
	return st.auditFrom.Load()
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
	kek, cur, w, err := openKeystore(meta, in)
	if err != nil {
		m.auditUnsealFailure(ctx, meta, err)
		return err
	}
	defer w.zero()
	method := w.method
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
	st.usersBound.Store(cur.b.usersMAC)
	if err := m.checkUsersRollback(ctx, st); err != nil {
		st.zero()
		return fmt.Errorf("unsealing: %w", err)
	}
	if err := m.loadUsers(ctx, st); err != nil {
		st.zero()
		return fmt.Errorf("unsealing: %w", err)
	}
	if cur.b.auditFrom != 0 {
		setAuditAnchor(st, cur.b.auditFrom) // before the unseal entry: it must not restart a stripped head
	}
	if err := m.applyAs(ctx, st, storage.HSMChange{}, "", "hsm.unseal", "", "method="+string(method)); err != nil {
		st.zero()
		return fmt.Errorf("unsealing: %w", err)
	}
	if !m.deferBind {
		m.bindKeystore(ctx, st, w, kek, cur)
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
// meta and opens the wrapped KEK. Restore and unlock use it.
func recoverKEK(meta map[string][]byte, in UnsealInput) ([]byte, UnsealMethod, error) {
	kek, _, w, err := openKeystore(meta, in)
	w.zero()
	return kek, w.method, err
}

// openKeystore derives the wrapping key from in for the method recorded in
// meta and opens the wrapped KEK with the AAD of what meta says is bound
// (kekAAD); cur is the wrapped KEK and that binding, vouched for by the
// open. The returned kekWrap holds the material; zero it.
func openKeystore(meta map[string][]byte, in UnsealInput) (kek []byte, cur storedKEK, w kekWrap, err error) {
	method := UnsealMethod(meta[metaMethod])
	w.method = method
	fail := func(err error) ([]byte, storedKEK, kekWrap, error) {
		w.zero()
		return nil, storedKEK{}, kekWrap{method: method}, err
	}
	switch method {
	case "":
		return fail(ErrNotInitialized)
	case MethodKeyFile, MethodPassphrase, MethodShamir, MethodPKCS11:
	default:
		return fail(errf(ErrCorrupt, "unsealing: unknown unseal method %q in keystore", method))
	}
	cur.wrapped = meta[metaWrappedKEK]
	if cur.b, err = metaBinding(meta); err != nil {
		return fail(err)
	}
	// A KEK that does not open is wrong material, or a keystore edited
	// outside the HSM: its wrapped KEK, audit_auth_from or users_mac
	// changed or deleted (a deleted one looks like a keystore of an earlier
	// release).
	tampered := ", or the keystore was tampered with (its wrapped KEK, " + metaAuditAuthFrom + " or " + metaUsersMAC + " edited or deleted)"
	switch method {
	case MethodKeyFile:
		if in.KeyFile == "" {
			return fail(errf(ErrInvalid, "unsealing: this module unseals with a key file; none given"))
		}
		if w.wk, err = os.ReadFile(in.KeyFile); err != nil {
			return fail(fmt.Errorf("unsealing: reading key file: %w", err))
		}
		if len(w.wk) != 32 {
			return fail(errf(ErrBadUnseal, "unsealing: key file must hold exactly 32 bytes"))
		}
	case MethodPassphrase:
		var kdf passphraseKDF
		if err := json.Unmarshal(meta[metaKDF], &kdf); err != nil || len(kdf.Salt) == 0 {
			return fail(errf(ErrCorrupt, "unsealing: passphrase parameters are unreadable"))
		}
		if len(in.Passphrase) == 0 {
			return fail(errf(ErrInvalid, "unsealing: this module unseals with a passphrase; none given"))
		}
		if w.wk, err = kdf.derive(in.Passphrase); err != nil {
			return fail(fmt.Errorf("unsealing: the keystore's passphrase parameters are damaged: %w", err))
		}
	case MethodShamir:
		var sp shamirParams
		if err := json.Unmarshal(meta[metaShamir], &sp); err != nil {
			return fail(errf(ErrCorrupt, "unsealing: Shamir parameters are unreadable"))
		}
		if w.wk, err = recoverMaster(sp, in.Shares); err != nil {
			return fail(fmt.Errorf("unsealing: %w", err))
		}
	case MethodPKCS11:
		if in.Wrapper == nil {
			return fail(errf(ErrInvalid, "unsealing: this module unseals with a PKCS#11 token; none given"))
		}
		w.wrapper = in.Wrapper
	}
	kek, err = w.open(cur.wrapped, cur.b)
	if err != nil || len(kek) != 32 {
		clear(kek)
		switch method {
		case MethodPassphrase:
			return fail(errf(ErrBadUnseal, "unsealing: wrong passphrase%s", tampered))
		case MethodShamir:
			return fail(errf(ErrBadUnseal, "unsealing: the shares do not recover this module's master secret%s", tampered))
		case MethodPKCS11:
			return fail(errf(ErrBadUnseal, "unsealing: the token's key does not open this module's KEK (another token or key?)%s: %v", tampered, err))
		}
		if _, err := os.Stat(in.KeyFile + ".new"); err == nil {
			// A rekey to a new key file stopped after the keystore took
			// it and before the file was moved into place.
			return fail(errf(ErrBadUnseal, "unsealing: wrong key file%s; %s.new is there, left by an interrupted ca hsm rekey: it may be the key that works (move it over %s)", tampered, in.KeyFile, in.KeyFile))
		}
		return fail(errf(ErrBadUnseal, "unsealing: wrong key file%s", tampered))
	}
	return kek, cur, w, nil
}

var errNoShares = errors.New("no shares given")
