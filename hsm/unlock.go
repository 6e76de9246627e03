package hsm

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/strongroom-pki/strongroom/storage"
)

// UnlockWithUnseal clears a user's lockout on the authority of the unseal
// material (key file, passphrase, a Shamir quorum or the token), with no
// login: the recovery when no officer can log in — the only officer is
// locked — or when a restart loop with a mistyped PIN locked the CA's own
// user. Holders of the unseal material can open every key anyway, so this
// gives them nothing new. A sealed module is unsealed with in first; an
// unsealed one checks that in recovers the KEK it runs under. The audit
// entry says the unlock was done by the unseal holders.
func (m *Module) UnlockWithUnseal(ctx context.Context, name string, in UnsealInput) error {
	if m.Sealed() {
		if err := m.Unseal(ctx, in); err != nil {
			return fmt.Errorf("unlocking user %q: %w", name, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.live()
	if err != nil {
		return fmt.Errorf("unlocking user %q: %w", name, err)
	}
	meta, err := m.store.HSMMeta(ctx)
	if err != nil {
		return fmt.Errorf("unlocking user %q: %w", name, err)
	}
	kek, method, err := recoverKEK(meta, in)
	if err != nil {
		return fmt.Errorf("unlocking user %q: %w", name, err)
	}
	same := subtle.ConstantTimeCompare(kek, st.kek) == 1
	clear(kek)
	if !same {
		return errf(ErrBadUnseal, "unlocking user %q: the unseal material does not open the running module", name)
	}
	return m.unlock(ctx, name, "", "by=unseal-holders method="+string(method))
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
