package hsm

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"github.com/strongroom-pki/strongroom/storage"
)

// User rows are authenticated as the audit log is (auditmac.go): without
// it, someone who can write the database but knows no PIN could replace a
// user's PIN hash with one of a PIN they chose, add an officer or raise a
// role, then log in through any process that can unseal. Each row carries
// a MAC under a key derived from the KEK (HKDF, its own label) over its
// name, role, PIN hash and creation time as stored. A login or PIN change
// refuses a row that does not verify before its PIN check counts anything
// (audited as login.fail reason=tampered-user); the user view leaves it no
// role, so its sessions end; the officer's list marks it.
//
// failures and locked are not covered: a PIN check changes them in one
// conditional statement in the database (userpin.go), where no MAC can be
// computed. So a database writer can reset a failure count or a lockout;
// that buys only PIN guesses, each of them audited.
//
// A keystore from before this release has rows without MACs. They are
// accepted until its first unseal by `ca serve` on this release, which
// gives every such row a MAC, vouching for it as it stands then, and binds
// users_mac into the wrapped KEK's AAD, in one change (bindUsers,
// kekbind.go). From then on a row without a MAC is refused too, and
// deleting users_mac (to pass the keystore off as an older one) makes the
// KEK fail to open. A node of the previous release still writes rows
// without MACs during a rolling upgrade (a user it creates, a PIN it
// changes): once bound, those are refused.
//
// What it cannot do: a row put back as it was earlier (an old PIN hash
// with its old MAC, a deleted user restored) verifies, as an old copy of
// the audit log does; a deleted user is simply gone.

const userMACInfo = "strongroom-hsm-user-mac-v1"

func userMAC(key []byte, u storage.HSMUser) []byte {
	h := hmac.New(sha256.New, key)
	for _, f := range []string{userMACInfo, u.Name, u.Role, u.PINHash} {
		putField(h, []byte(f))
	}
	putUint64(h, uint64(storage.Micros(u.Created))) // as stored: to the microsecond
	return h.Sum(nil)
}

// withMAC returns u carrying its MAC under st. Callers hold m.mu with st
// live: Seal zeroes the key under it.
func (st *unsealed) withMAC(u storage.HSMUser) storage.HSMUser {
	u.MAC = userMAC(st.userKey, u)
	return u
}

// userVerifies reports whether u is as the HSM wrote it: its MAC verifies,
// or it has none and the keystore's user rows are not authenticated yet (a
// row from before this release). Callers hold m.mu with st live, after
// refreshUsersBound.
func (st *unsealed) userVerifies(u storage.HSMUser) bool {
	if len(u.MAC) == 0 {
		return !st.usersBound.Load()
	}
	return hmac.Equal(u.MAC, userMAC(st.userKey, u))
}

// refreshUsersBound notes that another node has bound the user rows since
// st unsealed (or this node's binding failed and another's did not). The
// keystore's word is enough here: users_mac only makes the checks
// stricter, and one written by anyone but a binding fails the next unseal.
func (m *Module) refreshUsersBound(ctx context.Context, st *unsealed) error {
	if st.usersBound.Load() {
		return nil
	}
	meta, err := m.store.HSMMeta(ctx)
	if err != nil {
		return err
	}
	if _, ok := meta[metaUsersMAC]; ok {
		st.usersBound.Store(true)
	}
	return nil
}

// tamperedUser is why a user whose row does not verify is refused.
func tamperedUser(name string) error {
	return errf(ErrCorrupt, "user %q was altered outside the HSM (its record does not verify); the unseal holders reset it (`ca hsm users reset %s --role ROLE`), or an officer deletes and re-creates it", name, name)
}

// refuseTampered audits a PIN given for name, whose row does not verify,
// as refused unchecked (during: what it was given for), and returns why.
// Callers hold m.mu.
func (m *Module) refuseTampered(ctx context.Context, name, during string) error {
	if err := m.apply(ctx, storage.HSMChange{}, name, "login.fail", name, withDuring("reason=tampered-user", during)); err != nil {
		return err
	}
	return tamperedUser(name)
}

// checkUsersRollback looks, at the unseal of a keystore whose user rows
// are not bound, for a binding in its authenticated audit log. Finding one
// means the keystore was bound before and rolled back outside the HSM: an
// older wrapped KEK put back and users_mac deleted, to pass rows planted
// without a MAC off as ones from before this release. Rows without a MAC
// are then refused from this unseal on, whether or not it binds again
// (bindUsers vouches for none). Hiding the earlier binding from this check
// means deleting an authenticated audit entry, which breaks the chain that
// `ca hsm audit verify` walks.
func (m *Module) checkUsersRollback(ctx context.Context, st *unsealed) error {
	if st.usersBound.Load() {
		return nil
	}
	es, err := m.store.HSMAuditByAction(ctx, usersBindAction, 100)
	if err != nil {
		return err
	}
	for _, e := range es {
		if st.authentic(e) {
			st.priorBind = e.Seq
			st.usersBound.Store(true)
			m.log.Error("hsm: the keystore's user-record binding was removed outside the HSM (its audit log shows it bound); user records without a valid MAC stay refused",
				"bound_at", e.Seq)
			return nil
		}
	}
	return nil
}

// bindUsers authenticates the user rows of a keystore from before this
// release: every row without a MAC gets one, vouching for it as it stands,
// and users_mac is bound into the wrapped KEK, in one change. A row with a
// MAC that does not verify keeps it, refused, as the evidence. A row
// changed between the read and the change fails the change; the next
// unseal tries again.
//
// A keystore rolled back after an earlier binding (checkUsersRollback) is
// bound again vouching for no row.
func (m *Module) bindUsers(ctx context.Context, st *unsealed, w kekWrap, kek []byte, cur storedKEK) storedKEK {
	us, err := m.store.HSMUsers(ctx)
	if err != nil {
		m.log.Warn("hsm: reading the users to authenticate them", "err", err)
		return cur
	}
	var add []storage.HSMUser
	bad := 0
	for _, u := range us {
		switch {
		case len(u.MAC) == 0 && st.priorBind == 0:
			add = append(add, st.withMAC(u))
		case len(u.MAC) == 0 || !hmac.Equal(u.MAC, userMAC(st.userKey, u)):
			bad++
		}
	}
	details := fmt.Sprintf("users-mac=1 authenticated=%d", len(add))
	if bad > 0 {
		details += fmt.Sprintf(" not-verifying=%d", bad)
	}
	if st.priorBind != 0 {
		details += fmt.Sprintf(" rebound-after=%d", st.priorBind)
	}
	nb := cur.b
	nb.usersMAC = true
	return m.rebind(ctx, st, w, kek, cur, nb, metaUsersMAC, storage.HSMChange{AddUserMACs: add},
		usersBindAction, details, "the user records' authentication")
}

const usersBindAction = "hsm.users-bind"
