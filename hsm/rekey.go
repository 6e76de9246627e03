package hsm

import (
	"context"
	"crypto/subtle"
	"fmt"
	"maps"

	"github.com/strongroom-pki/strongroom/storage"
)

// Rekeying replaces the unseal material, as a real HSM's change of its
// master-key custodians or Vault's `operator rekey`: the KEK itself stays,
// so no object is sealed again, the audit log's MACs (keyed from the KEK)
// keep verifying, and other nodes unsealed with it keep running. Only the
// wrapped KEK and the meta rows describing its material change, in one
// conditional write with the audit entry: a failure leaves the old
// material working, and once it commits the old material no longer opens
// the keystore. What the wrapped KEK's AAD binds (kekbind.go) is bound
// again as it was, under the new method.
//
// Backups taken before (wrapped for the module) still open with the old
// material: they hold the old wrapped KEK. Rekeying does not reach them.

// RekeyResult carries what is shown once: the new Shamir shares.
type RekeyResult struct {
	Shares []string
}

// Rekey wraps the module's KEK under new unseal material. It needs a
// crypto officer's session and the current unseal material (current),
// which must open the stored KEK to the one this module runs with: an
// officer alone cannot take the module from the holders of M of N shares,
// as Vault's rekey needs a quorum of the current keys. A key file for
// MethodKeyFile is written at to.KeyFile, which must not exist; it is
// removed again if the rekey fails. Audited as "hsm.rekey" with the old
// and new method, never the material.
func (s *Session) Rekey(ctx context.Context, current UnsealInput, to Material) (RekeyResult, error) {
	if err := s.require(RoleOfficer); err != nil {
		return RekeyResult{}, fmt.Errorf("rekey: %w", err)
	}
	m := s.m
	m.mu.Lock() // no seal, unseal or binding in between
	defer m.mu.Unlock()
	st, err := s.live()
	if err != nil {
		return RekeyResult{}, fmt.Errorf("rekey: %w", err)
	}
	meta, err := m.store.HSMMeta(ctx)
	if err != nil {
		return RekeyResult{}, fmt.Errorf("rekey: %w", err)
	}
	kek, cur, w, err := openKeystore(meta, current)
	w.zero()
	if err != nil {
		m.auditUnsealFailure(ctx, meta, err)
		return RekeyResult{}, fmt.Errorf("rekey: the current unseal material: %w", err)
	}
	same := subtle.ConstantTimeCompare(kek, st.kek) == 1
	clear(kek)
	if !same {
		// Another keystore under this module's feet (restored or replaced
		// since it unsealed): rewrapping this KEK would lock it out.
		return RekeyResult{}, errf(ErrCorrupt, "rekey: the stored KEK is not the one this module unsealed with; unseal again and retry")
	}
	mat, err := to.make("rekey")
	defer mat.w.zero()
	if err != nil {
		return RekeyResult{}, err
	}
	wrapped, err := mat.w.seal(st.kek, cur.b)
	if err != nil {
		mat.undo()
		return RekeyResult{}, fmt.Errorf("rekey: sealing the KEK under the new material: %w", err)
	}
	ch := storage.HSMChange{
		// Only the keystore this module opened: a rekey or binding by
		// another node since then makes this one fail whole.
		RequireMeta: map[string][]byte{metaWrappedKEK: cur.wrapped, metaMethod: meta[metaMethod]},
		Meta:        maps.Clone(mat.meta),
		DeleteMeta:  mat.stale(),
	}
	ch.Meta[metaWrappedKEK] = wrapped
	details := "from=" + string(meta[metaMethod]) + " to " + mat.details
	if err := mat.deliver(to.Deliver, "rekey"); err != nil {
		mat.undo()
		return RekeyResult{}, err
	}
	if err := m.applyAs(ctx, st, ch, s.user, "hsm.rekey", "", details); err != nil {
		mat.undo()
		return RekeyResult{}, fmt.Errorf("rekey: %w", err)
	}
	st.method = to.Method
	m.log.Info("hsm unseal material changed", "from", string(meta[metaMethod]), "to", to.Method)
	return RekeyResult{Shares: mat.shares}, nil
}

// rekeyedMeta is a restored keystore's meta with the KEK wrapped under new
// material instead: the binding the backup's meta states is kept (the
// backup's authentication vouches for it, as the KEK opened it). It
// returns the meta, the shares to show and the audit details; undo removes
// a key file it wrote.
func rekeyedMeta(meta map[string][]byte, kek []byte, to Material) (map[string][]byte, madeMaterial, error) {
	b, err := metaBinding(meta)
	if err != nil {
		return nil, madeMaterial{undo: func() {}}, err
	}
	mat, err := to.make("restore: new unseal material")
	if err != nil {
		mat.w.zero()
		return nil, mat, err
	}
	defer mat.w.zero()
	wrapped, err := mat.w.seal(kek, b)
	if err != nil {
		mat.undo()
		return nil, mat, fmt.Errorf("restore: sealing the KEK under the new material: %w", err)
	}
	out := maps.Clone(meta)
	for _, k := range mat.stale() {
		delete(out, k)
	}
	maps.Copy(out, mat.meta)
	out[metaWrappedKEK] = wrapped
	return out, mat, nil
}
