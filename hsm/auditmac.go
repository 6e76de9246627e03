package hsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/strongroom-pki/strongroom/storage"
)

// The hash chain alone proves nothing to someone who can write the
// database: they can truncate or rewrite the log and recompute every hash.
// So an append made while the module is unsealed is authenticated under a
// key derived from the KEK (HKDF, its own label):
//   - the entry carries a MAC over its seq and hash, which through the chain
//     covers every entry before it: editing any earlier entry breaks it;
//   - the head carries a MAC over the last authenticated seq and its hash,
//     and the seq where authentication began: deleting entries from the end
//     breaks it. Before renewing it an append checks the stored one, so a
//     head edited meanwhile is left as the evidence, not covered over.
//
// What it cannot do:
//   - Entries appended while sealed (a failed self-test; a restore of a
//     log not yet authenticated) or by a node of the previous release carry
//     no MAC; VerifyAudit lists them by action as not authenticated.
//   - A log from before this release is authenticated from its first append
//     after the upgrade; what came before is covered as it stood then.
//
// Where authentication began is itself bound to the unseal material: the
// wrapped KEK's AAD names it (kekAAD in kekbind.go; hsm_meta
// audit_auth_from), from Initialize on, or from a keystore's first unseal
// on this release. So a
// writer who strips every MAC and the head's authentication cannot pass
// the log off as one from before this release: VerifyAudit requires the
// head to authenticate from that entry, and editing audit_auth_from makes
// the KEK fail to open.
//   - A rollback of the whole database to an older copy carries older,
//     valid MACs: only a head recorded outside the database (VerifyAudit
//     reports seq and hash to record) shows it.

const auditMACInfo = "strongroom-hsm-audit-mac-v1"

func auditMAC(key []byte, kind string, from, seq int64, hash []byte) []byte {
	h := hmac.New(sha256.New, key)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(from))
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	h.Write([]byte(auditMACInfo + "|" + kind + "|"))
	h.Write(b[:])
	h.Write(hash)
	return h.Sum(nil)
}

func entryMAC(key []byte, seq int64, hash []byte) []byte { return auditMAC(key, "entry", 0, seq, hash) }

func headMAC(key []byte, a storage.HSMAuditAuth, hash []byte) []byte {
	return auditMAC(key, "head", a.From, a.Seq, hash)
}

// auditAuth is how appends under st are authenticated; nil when sealed.
func (st *unsealed) auditAuth() storage.HSMAuditAuthFunc {
	if st == nil {
		return nil
	}
	// A copy: a Seal racing this append zeroes st's key. A copy taken
	// after the zeroing is all zeros, and then nothing is authenticated.
	key := bytes.Clone(st.macKey)
	anchor := auditAnchor(st)
	return func(e storage.HSMAuditEntry, prev storage.HSMAuditAuth, prevHash []byte) ([]byte, storage.HSMAuditAuth) {
		if !slices.ContainsFunc(key, func(b byte) bool { return b != 0 }) {
			return nil, prev
		}
		next := storage.HSMAuditAuth{From: prev.From, Seq: e.Seq}
		switch {
		case prev.From == 0 && prev.Seq == 0 && len(prev.MAC) == 0 && anchor != 0 && anchor != e.Seq:
			// It began at anchor, bound to the unseal material: the head
			// was stripped outside the HSM. Keep the evidence.
			return entryMAC(key, e.Seq, e.Hash), prev
		case prev.From == 0 && prev.Seq == 0 && len(prev.MAC) == 0:
			next.From = e.Seq // authentication begins
		case !hmac.Equal(prev.MAC, headMAC(key, prev, prevHash)):
			return entryMAC(key, e.Seq, e.Hash), prev // edited outside the HSM: keep the evidence
		}
		next.MAC = headMAC(key, next, e.Hash)
		return entryMAC(key, e.Seq, e.Hash), next
	}
}

// maxUnauthEntries bounds AuditReport.UnauthEntries.
const maxUnauthEntries = 20

// authWalk checks entry MACs during VerifyAudit's walk.
type authWalk struct {
	key      []byte // nil: sealed, MACs not checked
	auth     storage.HSMAuditAuth
	firstMAC int64  // first entry carrying a MAC
	authHash []byte // hash of entry auth.Seq
	bound    int64  // where authentication began, bound to the unseal material (0: not bound)
}

// entry checks one entry of an intact chain; a non-empty result is the
// problem.
func (w *authWalk) entry(r *AuditReport, e storage.HSMAuditEntry) string {
	if e.Seq == w.auth.Seq {
		w.authHash = e.Hash
	}
	if len(e.MAC) == 0 {
		if w.firstMAC != 0 {
			r.Unauthenticated[e.Action]++
			if len(r.UnauthEntries) < maxUnauthEntries {
				r.UnauthEntries = append(r.UnauthEntries, AuditRef{e.Seq, e.Action})
			}
		}
		return ""
	}
	if w.firstMAC == 0 {
		w.firstMAC = e.Seq
	}
	if w.key != nil && !hmac.Equal(e.MAC, entryMAC(w.key, e.Seq, e.Hash)) {
		return "the entry's MAC does not verify: it or an entry before it was rewritten outside the HSM"
	}
	return ""
}

// head completes the report of an intact chain with the head's
// authentication.
func (w *authWalk) head(r AuditReport) AuditReport {
	a := w.auth
	r.AuthFrom, r.AuthSeq = a.From, a.Seq
	if w.bound != 0 {
		// The start is bound to the unseal material: a head without
		// authentication, or one that begins elsewhere, is a strip.
		switch {
		case a.From == 0 && a.Seq == 0 && len(a.MAC) == 0:
			return bad(r, w.bound, fmt.Sprintf(
				"the log is authenticated from #%d (bound to the unseal material) but the head carries no authentication: it was stripped outside the HSM, and entries from #%d on may be forged", w.bound, w.bound))
		case a.From != w.bound:
			return bad(r, min(a.From, w.bound), fmt.Sprintf(
				"the head's authentication begins at #%d but its start is bound to the unseal material at #%d: stripped or tampered with outside the HSM", a.From, w.bound))
		case len(a.MAC) == 0:
			return bad(r, w.bound, fmt.Sprintf(
				"the head names entries #%d..#%d as authenticated but carries no MAC: tampered with outside the HSM", a.From, a.Seq))
		case w.firstMAC != w.bound:
			return bad(r, w.bound, fmt.Sprintf(
				"entry #%d, where authentication began (bound to the unseal material), carries no MAC: stripped outside the HSM", w.bound))
		}
	}
	if a.From == 0 && a.Seq == 0 && len(a.MAC) == 0 {
		if w.firstMAC != 0 {
			return bad(r, w.firstMAC, fmt.Sprintf("entries from #%d on carry MACs but the head's authentication is gone: reset outside the HSM", w.firstMAC))
		}
		return r // nothing authenticated yet: a log from before this release
	}
	if a.From < 1 || a.From > a.Seq || a.Seq > r.HeadSeq || a.From != w.firstMAC {
		return bad(r, min(a.Seq, r.HeadSeq+1), fmt.Sprintf(
			"the head's authentication names entries #%d..#%d the log does not hold as authenticated: truncated or tampered with", a.From, a.Seq))
	}
	if w.key == nil {
		return r // sealed: the MACs cannot be checked
	}
	if !hmac.Equal(a.MAC, headMAC(w.key, a, w.authHash)) {
		return bad(r, a.Seq, fmt.Sprintf(
			"the head's MAC does not verify: the log was truncated, or the head edited, outside the HSM (authenticated up to #%d)", a.Seq))
	}
	r.MACChecked = true
	return r
}
