package hsm

import (
	"context"
	"crypto/hmac"
	"crypto/subtle"
	"strconv"

	"github.com/strongroom-pki/strongroom/storage"
)

// What the wrapped KEK's AAD binds. Someone who can write the database can
// edit hsm_meta but cannot rewrap the KEK, so a fact kept in plain in meta
// and named in the AAD holds once the KEK opens with it, and editing or
// deleting it makes the KEK fail to open:
//   - audit_auth_from: where the audit log's authentication began
//     (auditmac.go);
//   - users_mac: the user rows are authenticated (usermac.go).
//
// Without them a writer could strip the MACs and pass the keystore off as
// one from before they existed. A keystore of an earlier release is bound
// at its first unseal by `ca serve` on this one (not with
// Options.DeferAuditBinding): each fact is one change that rewraps the KEK
// and writes its meta row, conditional on the row not existing yet and on
// the wrapped KEK still being the one this node opened, so two nodes
// binding at once cannot leave a KEK wrapped for meta the other wrote.

// kekBinding is what the wrapped KEK's AAD binds beyond the unseal method.
type kekBinding struct {
	auditFrom int64 // audit_auth_from; 0: not bound
	usersMAC  bool  // users_mac: user rows are authenticated
}

// covers reports whether b binds at least what o binds.
func (b kekBinding) covers(o kekBinding) bool {
	return (o.auditFrom == 0 || b.auditFrom == o.auditFrom) && (b.usersMAC || !o.usersMAC)
}

// meta is the meta rows that state b.
func (b kekBinding) meta() map[string][]byte {
	m := map[string][]byte{}
	if b.auditFrom != 0 {
		m[metaAuditAuthFrom] = []byte(strconv.FormatInt(b.auditFrom, 10))
	}
	if b.usersMAC {
		m[metaUsersMAC] = []byte("1")
	}
	return m
}

// kekAAD is the wrapped KEK's associated data:
//   - v1 "strongroom-hsm-kek-v1|<method>": nothing bound (a keystore from
//     before audit authentication);
//   - v2 "strongroom-hsm-kek-v2|<method>|audit-from=<seq>": the audit
//     log's start only (from before user authentication);
//   - v3 "strongroom-hsm-kek-v3|<method>|audit-from=<seq>|users-mac=1":
//     the user rows, and the audit log's start (0 while not bound, when
//     binding it failed).
//
// Each form stays as it is until a binding rewraps the KEK.
func kekAAD(method UnsealMethod, b kekBinding) []byte {
	from := strconv.FormatInt(b.auditFrom, 10)
	switch {
	case b.usersMAC:
		return []byte(kekAADPrefixV3 + string(method) + "|audit-from=" + from + "|users-mac=1")
	case b.auditFrom != 0:
		return []byte(kekAADPrefixV2 + string(method) + "|audit-from=" + from)
	}
	return []byte(kekAADPrefix + string(method))
}

// metaBinding reads what meta says is bound. Only a successful open of the
// KEK with it in the AAD authenticates it.
func metaBinding(meta map[string][]byte) (kekBinding, error) {
	from, err := metaAuthFrom(meta)
	if err != nil {
		return kekBinding{}, err
	}
	b := kekBinding{auditFrom: from}
	if v, ok := meta[metaUsersMAC]; ok {
		if string(v) != "1" {
			return kekBinding{}, errf(ErrCorrupt, "unsealing: the keystore's %s (%q) is not 1: tampered keystore", metaUsersMAC, v)
		}
		b.usersMAC = true
	}
	return b, nil
}

// metaAuthFrom reads audit_auth_from (0: absent). Only a successful open
// of the KEK with it in the AAD authenticates it.
func metaAuthFrom(meta map[string][]byte) (int64, error) {
	v, ok := meta[metaAuditAuthFrom]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != string(v) {
		return 0, errf(ErrCorrupt, "unsealing: the keystore's %s (%q) is not an entry number: tampered keystore", metaAuditAuthFrom, v)
	}
	return n, nil
}

// kekWrap is the unseal material in hand: it opens and seals the KEK.
type kekWrap struct {
	method  UnsealMethod
	wk      []byte     // the wrapping key; nil for pkcs11
	wrapper KEKWrapper // pkcs11
}

func (w kekWrap) seal(kek []byte, b kekBinding) ([]byte, error) {
	if w.method == MethodPKCS11 {
		return w.wrapper.Seal(kek, kekAAD(w.method, b))
	}
	return sealKEKAAD(w.wk, kekAAD(w.method, b), kek)
}

func (w kekWrap) open(wrapped []byte, b kekBinding) ([]byte, error) {
	if w.method == MethodPKCS11 {
		return w.wrapper.Open(wrapped, kekAAD(w.method, b))
	}
	return openKEKAAD(w.wk, kekAAD(w.method, b), wrapped)
}

func (w kekWrap) zero() { clear(w.wk) }

// storedKEK is the wrapped KEK as stored and what its AAD binds.
type storedKEK struct {
	wrapped []byte
	b       kekBinding
}

// bindKeystore binds what the keystore cur lacks, at its first unseal on
// this release; st is not published yet. A binding that fails is logged
// and tried again at the next unseal; the module unseals anyway.
func (m *Module) bindKeystore(ctx context.Context, st *unsealed, w kekWrap, kek []byte, cur storedKEK) {
	if cur.b.auditFrom == 0 {
		if cur = m.bindAuditStart(ctx, st, w, kek, cur); cur.b.auditFrom != 0 {
			setAuditAnchor(st, cur.b.auditFrom)
		}
	}
	if !cur.b.usersMAC {
		if cur = m.bindUsers(ctx, st, w, kek, cur); cur.b.usersMAC {
			st.usersBound.Store(true)
			// A row written without a MAC since the view was read is
			// refused from now on.
			if err := m.loadUsers(ctx, st); err != nil {
				m.log.Warn("hsm: reading the users again after authenticating them", "err", err)
			}
		}
	}
}

// bindAuditStart binds the start of the audit log's authentication (a
// keystore from before it): the unseal entry has just been appended with
// authentication, so the head records where it began.
func (m *Module) bindAuditStart(ctx context.Context, st *unsealed, w kekWrap, kek []byte, cur storedKEK) storedKEK {
	a, err := m.store.HSMAuditAuth(ctx)
	if err != nil {
		m.log.Warn("hsm: reading the audit head to bind its authentication", "err", err)
		return cur
	}
	var hash []byte
	if a.Seq > 0 {
		es, err := m.store.HSMAudit(ctx, a.Seq, 1)
		if err != nil {
			m.log.Warn("hsm: reading the audit head to bind its authentication", "err", err)
			return cur
		}
		if len(es) == 1 && es[0].Seq == a.Seq {
			hash = es[0].Hash
		}
	}
	if a.From < 1 || a.From > a.Seq || hash == nil || !hmac.Equal(a.MAC, headMAC(st.macKey, a, hash)) {
		m.log.Warn("hsm: the audit head's authentication does not verify; its start is not bound to the unseal material (run `ca hsm audit verify`)",
			"mac_from", a.From, "mac_seq", a.Seq)
		return cur
	}
	nb := cur.b
	nb.auditFrom = a.From
	return m.rebind(ctx, st, w, kek, cur, nb, metaAuditAuthFrom, storage.HSMChange{},
		"hsm.audit-bind", "audit-auth-from="+strconv.FormatInt(a.From, 10), "the audit authentication's start")
}

// rebind rewraps kek for nb and applies ch with the new wrapped KEK and
// nb's meta rows, conditional on meta row fresh not existing and on the
// wrapped KEK still being cur's, with the audit entry action. It returns
// what is stored then: nb; or, refused, what another node bound meanwhile
// if the material opens it to kek; or cur. what names the binding in logs.
func (m *Module) rebind(ctx context.Context, st *unsealed, w kekWrap, kek []byte, cur storedKEK, nb kekBinding,
	fresh string, ch storage.HSMChange, action, details, what string) storedKEK {
	wrapped, err := w.seal(kek, nb)
	if err == nil {
		ch.RequireNoMeta, ch.RequireMeta, ch.Meta = fresh, map[string][]byte{metaWrappedKEK: cur.wrapped}, nb.meta()
		ch.Meta[metaWrappedKEK] = wrapped
		if err = m.applyAs(ctx, st, ch, "", action, "", details); err == nil {
			m.log.Info("hsm: "+what+" bound to the unseal material", "details", details)
			return storedKEK{wrapped: wrapped, b: nb}
		}
	}
	s, ok := m.storedBinding(ctx, w, kek)
	if ok && s.b.covers(nb) {
		return s // another node bound it meanwhile
	}
	m.log.Warn("hsm: binding "+what+" to the unseal material; the next unseal tries again", "err", err)
	if ok {
		return s
	}
	return cur
}

// storedBinding reads the wrapped KEK and its binding as stored now; ok
// only when the material opens it to kek, the only thing that vouches for
// the binding.
func (m *Module) storedBinding(ctx context.Context, w kekWrap, kek []byte) (storedKEK, bool) {
	meta, err := m.store.HSMMeta(ctx)
	if err != nil {
		return storedKEK{}, false
	}
	b, err := metaBinding(meta)
	if err != nil {
		return storedKEK{}, false
	}
	k, err := w.open(meta[metaWrappedKEK], b)
	if err != nil {
		return storedKEK{}, false
	}
	same := subtle.ConstantTimeCompare(k, kek) == 1
	clear(k)
	return storedKEK{wrapped: meta[metaWrappedKEK], b: b}, same
}
