package hsm

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/strongroom-pki/strongroom/storage"
)

// PIN hashes are Argon2id with time=2, memory=19 MiB, parallelism=1 (the
// OWASP Password Storage Cheat Sheet's minimum for 19 MiB; a review found
// time=1, which OWASP pairs with 46 MiB), 16-byte salt, 32-byte output,
// stored PHC-style, so hashes made with other parameters (those of earlier
// releases) still verify, and a PIN set or changed gets these.
const (
	pinTime    = 2
	pinMemory  = 19 * 1024
	pinThreads = 1
	maxFailed  = 5
)

func hashPIN(pin string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	h := argon2.IDKey([]byte(pin), salt, pinTime, pinMemory, pinThreads, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", pinMemory, pinTime, pinThreads,
		enc.EncodeToString(salt), enc.EncodeToString(h)), nil
}

func checkPIN(encoded, pin string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var mem, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil || !argonInRange(t, mem, p) {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pin), salt, t, mem, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash keeps a login for an unknown user as slow as a real one.
const dummyHash = "$argon2id$v=19$m=19456,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// validPIN is the PIN policy: at least minPINLength characters, not one
// character repeated, and no leading or trailing white space (PIN files
// and prompts are read trimmed, so such a PIN could never be typed back;
// an all-space PIN is refused with them).
func validPIN(pin string) error {
	_, first := utf8.DecodeRuneInString(pin)
	switch {
	case strings.TrimSpace(pin) != pin:
		return errf(ErrInvalid, "PIN must not begin or end with white space")
	case utf8.RuneCountInString(pin) < minPINLength:
		return errf(ErrInvalid, "PIN must be at least %d characters", minPINLength)
	case strings.Count(pin, pin[:first])*first == len(pin):
		return errf(ErrInvalid, "PIN must not be one character repeated")
	}
	return nil
}

func validUserName(n string) error {
	if n == "" || len(n) > 64 || !utf8.ValidString(n) {
		return errf(ErrInvalid, "user name must be 1 to 64 characters")
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return errf(ErrInvalid, "user name %q may contain only letters, digits and . _ - @", n)
		}
	}
	return nil
}

// Login checks user's PIN and opens a session. A wrong PIN, an unknown
// user and a locked user all give the same ErrBadPIN (the audit entry says
// which); the fifth consecutive failure locks the user, who then fails even
// with the right PIN until an officer (or the unseal holders) unlocks it.
// Every attempt is audited; if the audit entry cannot be written the login
// is refused. The outcome is decided by the database, in the transaction
// that writes the audit entry (recordPIN), not by what this process read
// before: other processes and nodes check PINs of the same users. A user
// whose row was altered outside the HSM (usermac.go) is refused with
// ErrCorrupt, whatever the PIN, and nothing is counted.
func (m *Module) Login(ctx context.Context, user, pin string) (*Session, error) {
	return m.login(ctx, user, pin, false)
}

func (m *Module) login(ctx context.Context, user, pin string, spareLast bool) (*Session, error) {
	st, err := m.live()
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	u, err := m.store.HSMUser(ctx, user)
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("login: %w", err)
	}
	known := err == nil
	hash := u.PINHash
	if !known {
		hash = dummyHash
	}
	ok := checkPIN(hash, pin) && known
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state.Load() != st {
		return nil, fmt.Errorf("login: %w", ErrSealed) // sealed meanwhile: st's keys are zeroed
	}
	if !known {
		if err := m.apply(ctx, storage.HSMChange{}, user, "login.fail", user, "reason=unknown-user"); err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
		return nil, fmt.Errorf("login: %w", ErrBadPIN)
	}
	if err := m.refreshUsersBound(ctx, st); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if !st.userVerifies(u) {
		return nil, fmt.Errorf("login: %w", m.refuseTampered(ctx, user, "login"))
	}
	c, err := m.recordPIN(ctx, user, u.PINHash, ok, "login", spareLast)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if c.Outcome == storage.HSMPINSpared {
		return nil, fmt.Errorf("login: %w", errf(ErrPINFinalTry, "user %s has failed %d logins and locks at the next", user, c.User.Failures))
	}
	if c.Outcome != storage.HSMPINAccepted {
		return nil, fmt.Errorf("login: %w", ErrBadPIN)
	}
	st.noteUsers([]storage.HSMUser{c.User}, nil) // created or changed by another process since the last sync
	return &Session{m: m, st: st, user: user, role: Role(c.User.Role), created: viewOf(c.User).created}, nil
}

// LoginStored is Login with a PIN a program keeps (a PIN file, an
// environment variable) rather than one a person types. When the user has
// one failed login left before it locks, it refuses without trying the
// PIN (ErrPINFinalTry): a node restarted over and over with a PIN that was
// changed elsewhere (another node of the cluster, `ca hsm users pin`)
// would otherwise lock the user every node signs as. A person may still
// spend the last try (Login), and a correct login or an officer's unlock
// clears the count. Like a PKCS#11 token's CKF_USER_PIN_FINAL_TRY, it
// tells the program holding the PIN the count, never the PIN.
func (m *Module) LoginStored(ctx context.Context, user, pin string) (*Session, error) {
	if _, err := m.live(); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	// Read first, to spare the PIN check when the count is plain; the
	// database's conditional update (spareLast) decides when two nodes
	// try at once.
	u, err := m.store.HSMUser(ctx, user)
	if err == nil && !u.Locked && u.Failures >= maxFailed-1 {
		return nil, fmt.Errorf("login: %w", errf(ErrPINFinalTry, "user %s has failed %d logins and locks at the next", user, u.Failures))
	}
	s, lerr := m.login(ctx, user, pin, true)
	if isNotFound(err) && errors.Is(lerr, ErrBadPIN) {
		// The stored PIN is the operator's own: say why, as `ca hsm
		// status` would, where an interactive login says no more.
		if mu, missing := m.missingUserLocked(ctx, user); missing {
			return nil, fmt.Errorf("login: %w", errf(ErrNotFound, "user %s (role %s, made in audit entry #%d) was deleted outside the HSM: the unseal holders can re-create it, with its keys", user, mu.Role, mu.Seq))
		}
	}
	return s, lerr
}

// CreateUser adds a user (officer only).
func (s *Session) CreateUser(ctx context.Context, name string, role Role, pin string) error {
	if err := s.require(RoleOfficer); err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	if err := validUserName(name); err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	if !role.valid() {
		return errf(ErrInvalid, "creating user: unknown role %q (want officer, user or auditor)", role)
	}
	if err := validPIN(pin); err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	hash, err := hashPIN(pin)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	st, err := s.live() // again, under mu: Seal zeroes the key the row's MAC needs
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	if _, err := s.m.store.HSMUser(ctx, name); err == nil {
		return errf(ErrExists, "creating user: user %q exists already", name)
	} else if !isNotFound(err) {
		return fmt.Errorf("creating user: %w", err)
	}
	// A user deleted outside the HSM, or keys still owned by the name (a
	// user is deleted only once it owns none), is not a new user: created
	// by an officer, it would own those keys — the CA's, for its user —
	// without the unseal holders (found by a review). They re-create it.
	mu, missing, err := s.m.missingUser(ctx, st, name)
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	owned, err := s.m.store.HSMObjectCount(ctx, name, "")
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	if missing || owned > 0 {
		why := fmt.Sprintf("%d keys are owned by that name", owned)
		if missing {
			why = fmt.Sprintf("the audit log records it made (entry #%d) and never deleted: its record was deleted outside the HSM", mu.Seq)
		}
		return errf(ErrExists, "creating user %q: %s; the unseal holders re-create it, with its keys (`ca hsm users reset %s --role ROLE`)", name, why, name)
	}
	u := st.withMAC(storage.HSMUser{Name: name, Role: string(role), PINHash: hash, Created: s.m.now().UTC()})
	err = s.m.apply(ctx, storage.HSMChange{NewUsers: []storage.HSMUser{u}}, s.user, "user.create", name, "role="+string(role))
	if errors.Is(err, storage.ErrHSMUserChanged) {
		// Created by another process or node since the check above.
		return errf(ErrExists, "creating user: user %q exists already", name)
	}
	return err
}

// DeleteUser removes a user (officer only). A user who still owns keys, or
// the officer itself, cannot be deleted.
func (s *Session) DeleteUser(ctx context.Context, name string) error {
	if err := s.require(RoleOfficer); err != nil {
		return fmt.Errorf("deleting user: %w", err)
	}
	if name == s.user {
		return errf(ErrForbidden, "deleting user: an officer cannot delete itself")
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if _, err := s.m.store.HSMUser(ctx, name); err != nil {
		if isNotFound(err) {
			return errf(ErrNotFound, "deleting user %q", name)
		}
		return fmt.Errorf("deleting user: %w", err)
	}
	objs, err := s.m.store.HSMObjects(ctx)
	if err != nil {
		return fmt.Errorf("deleting user: %w", err)
	}
	for _, o := range objs {
		if o.Owner == name {
			key := o.ID
			if o.Label != "" {
				key += " (" + o.Label + ")"
			}
			return errf(ErrExists, "deleting user %q: the user still owns key %s; a user is deleted only once its keys are destroyed, "+
				"which loses them (the CA's own keys cannot be). To recover a user without losing its keys: `ca hsm users reset`", name, key)
		}
	}
	err = s.m.apply(ctx, storage.HSMChange{DeleteUsers: []string{name}, RequireNoOwned: []string{name}}, s.user, "user.delete", name, "")
	if errors.Is(err, storage.ErrHSMUserChanged) {
		return errf(ErrExists, "deleting user %q: the user was given a key meanwhile; destroy it first", name)
	}
	return err
}

// UnlockUser clears a user's lockout (officer only).
func (s *Session) UnlockUser(ctx context.Context, name string) error {
	if err := s.require(RoleOfficer); err != nil {
		return fmt.Errorf("unlocking user: %w", err)
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.unlock(ctx, name, s.user, "")
}

// ListUsers lists every user (officer only), marking those whose row was
// altered outside the HSM (UserInfo.Tampered) rather than hiding them.
func (s *Session) ListUsers(ctx context.Context) ([]UserInfo, error) {
	if err := s.require(RoleOfficer); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	s.m.mu.Lock() // Seal zeroes the key the rows are checked with under mu
	defer s.m.mu.Unlock()
	st, err := s.live()
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	if err := s.m.refreshUsersBound(ctx, st); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	us, err := s.m.store.HSMUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	out := make([]UserInfo, 0, len(us))
	for _, u := range us {
		out = append(out, UserInfo{Name: u.Name, Role: Role(u.Role), Locked: u.Locked, Failures: u.Failures, Created: u.Created,
			Tampered: !st.userVerifies(u)})
	}
	missing, err := s.m.MissingUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	for _, u := range missing {
		out = append(out, UserInfo{Name: u.Name, Role: u.Role, Missing: true})
	}
	return out, nil
}

// ChangePIN changes the session user's own PIN (any role). A wrong old PIN
// counts as a failed login: it is audited and the fifth in a row locks the
// user. A change leaves a lockout as it is (only an unlock clears one), and
// fails if the PIN was changed, or the user deleted, since the old PIN was
// checked. A user whose row was altered outside the HSM is refused as
// Login refuses it.
func (s *Session) ChangePIN(ctx context.Context, oldPIN, newPIN string) error {
	if _, err := s.live(); err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	if err := validPIN(newPIN); err != nil {
		return fmt.Errorf("changing PIN: new %w", err)
	}
	hash, err := hashPIN(newPIN)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	st, err := s.live() // again, under mu: Seal zeroes the key the rows' MACs need
	if err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	u, err := s.m.store.HSMUser(ctx, s.user)
	if err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	if err := s.m.refreshUsersBound(ctx, st); err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	if !st.userVerifies(u) {
		return fmt.Errorf("changing PIN: %w", s.m.refuseTampered(ctx, s.user, "pin-change"))
	}
	if !checkPIN(u.PINHash, oldPIN) {
		if _, err := s.m.recordPIN(ctx, s.user, u.PINHash, false, "pin-change", false); err != nil {
			return fmt.Errorf("changing PIN: %w", err)
		}
		return fmt.Errorf("changing PIN: %w", ErrBadPIN)
	}
	// The new MAC covers the role and creation time as read and verified:
	// a row altered meanwhile keeps a MAC that does not fit it.
	nu := u
	nu.PINHash = hash
	ch := storage.HSMChange{SetPIN: &storage.HSMPINChange{Name: s.user, OldHash: u.PINHash, NewHash: hash, NewMAC: st.withMAC(nu).MAC}}
	err = s.m.apply(ctx, ch, s.user, "user.pin-change", s.user, "")
	if errors.Is(err, storage.ErrHSMUserChanged) {
		return errf(ErrBadPIN, "changing PIN: the PIN of %q was changed, or the user deleted, since the old PIN was checked; nothing changed", s.user)
	}
	return err
}

// AuditEntries reads the audit log (auditor or officer).
func (s *Session) AuditEntries(ctx context.Context, fromSeq int64, limit int) ([]AuditEntry, error) {
	if err := s.require(RoleAuditor, RoleOfficer); err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	es, err := s.m.store.HSMAudit(ctx, fromSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	out := make([]AuditEntry, len(es))
	for i, e := range es {
		out[i] = toAuditEntry(e)
	}
	return out, nil
}
