package hsm

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"

	"github.com/strongroom-pki/strongroom/storage"
)

// UnlockWithUnseal clears a user's lockout on the authority of the unseal
// material (key file, passphrase, a Shamir quorum or the token), with no
// login: the recovery when no officer can log in — the only officer is
// locked — or when a restart loop with a mistyped PIN locked the CA's own
// user. Holders of the unseal material can open every key anyway, so this
// gives them nothing new. The audit entry says the unlock was done by the
// unseal holders.
func (m *Module) UnlockWithUnseal(ctx context.Context, name string, in UnsealInput) error {
	return m.asUnsealHolders(ctx, in, "unlocking user "+strconv.Quote(name), func(_ *unsealed, method UnsealMethod) error {
		return m.unlock(ctx, name, "", "by=unseal-holders method="+string(method))
	})
}

// ResetWithUnseal gives an existing user a new PIN and the role given, and
// clears its lockout, on the authority of the unseal material: the
// recovery for a user whose record was altered outside the HSM (usermac.go)
// and who cannot be deleted and re-created because it owns keys (the CA's
// own user), or whose PIN nobody knows. The user keeps its keys and its
// creation time; the record is written anew with its MAC, vouched for by
// the unseal holders, who can open every key anyway. A missing user (its
// row deleted outside the HSM, missing.go) is re-created, with its keys,
// which are owned by name: recreated is then true. It returns the role the
// record stated before (not verified: it may be what was altered; for a
// missing user, the role its creation entry gives), so the caller can say
// when the reset changed it.
func (m *Module) ResetWithUnseal(ctx context.Context, name string, role Role, pin string, in UnsealInput) (was Role, recreated bool, err error) {
	what := "resetting user " + strconv.Quote(name)
	if !role.valid() {
		return "", false, errf(ErrInvalid, "%s: unknown role %q (want officer, user or auditor)", what, role)
	}
	if err := validPIN(pin); err != nil {
		return "", false, fmt.Errorf("%s: %w", what, err)
	}
	hash, err := hashPIN(pin)
	if err != nil {
		return "", false, err
	}
	err = m.asUnsealHolders(ctx, in, what, func(st *unsealed, method UnsealMethod) error {
		u, err := m.store.HSMUser(ctx, name)
		if isNotFound(err) {
			mu, missing, err := m.missingUser(ctx, st, name)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			} else if !missing {
				return errf(ErrNotFound, "%s", what)
			}
			u = storage.HSMUser{Name: name, Role: string(mu.Role)} // no creation time: re-created
		} else if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		nu := st.withMAC(storage.HSMUser{Name: name, Role: string(role), PINHash: hash, Created: u.Created})
		details := "by=unseal-holders method=" + string(method) + " role=" + string(role)
		if u.Role != string(role) {
			details += " stated-role=" + u.Role
		}
		ch := storage.HSMChange{ResetUser: &nu}
		if u.Created.IsZero() {
			nu = st.withMAC(storage.HSMUser{Name: name, Role: string(role), PINHash: hash, Created: m.now().UTC()})
			ch, details = storage.HSMChange{NewUsers: []storage.HSMUser{nu}}, details+" recreated=missing"
		}
		err = m.apply(ctx, ch, "", "user.reset", name, details)
		if errors.Is(err, storage.ErrHSMUserChanged) {
			return errf(ErrNotFound, "%s: deleted or re-created meanwhile; nothing changed", what)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		st.noteUsers([]storage.HSMUser{nu}, nil)
		was, recreated = Role(u.Role), u.Created.IsZero()
		return nil
	})
	return was, recreated, err // set by the call: read them after, not beside it
}

// asUnsealHolders runs fn, holding m.mu, once in has shown it recovers the
// KEK the module runs under. A sealed module is unsealed with in first.
// what names the operation in errors.
func (m *Module) asUnsealHolders(ctx context.Context, in UnsealInput, what string, fn func(*unsealed, UnsealMethod) error) error {
	if m.Sealed() {
		if err := m.Unseal(ctx, in); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.live()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	meta, err := m.store.HSMMeta(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	kek, method, err := recoverKEK(meta, in)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	same := subtle.ConstantTimeCompare(kek, st.kek) == 1
	clear(kek)
	if !same {
		return errf(ErrBadUnseal, "%s: the unseal material does not open the running module", what)
	}
	return fn(st, method)
}

// unlock clears name's lockout and failure count, and nothing else: a
// whole row written back would undo a PIN change made since it was read.
// Callers hold m.mu.
func (m *Module) unlock(ctx context.Context, name, actor, details string) error {
	err := m.apply(ctx, storage.HSMChange{UnlockUsers: []string{name}}, actor, "user.unlock", name, details)
	if errors.Is(err, storage.ErrHSMUserChanged) {
		return errf(ErrNotFound, "unlocking user %q", name)
	}
	if err != nil {
		return fmt.Errorf("unlocking user %q: %w", name, err)
	}
	return nil
}
