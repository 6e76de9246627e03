package hsm

import (
	"bytes"
	"context"
	"crypto/hmac"
	"fmt"
	"strconv"
	"strings"

	"github.com/strongroom-pki/strongroom/storage"
)

// Key history. Each stored version of a key opens on its own (its seal
// binds its id, version and attributes), so someone who can write the
// database but not unseal could still delete a key's newest version rows
// (undoing a rotation: a retired, perhaps compromised, version signs
// again), put back the rows of a destroyed key, or put back a row from
// before the key was made non-extractable. Each of those changes was
// audited in the same transaction, in an entry authenticated under the
// KEK. A key is refused as damaged (ErrCorrupt) when it is opened, and
// listed damaged by `ca hsm status`, if its stored state is older than its
// authenticated history, or if an entry about it in the authenticated part
// of the log does not verify (edited to hide a change). An entry deleted
// or moved to another object cannot be seen from the key: a node that
// held a newer version refuses a store that went below it (refreshKey,
// unsealed.wentBack), and the chain check (`ca serve` at start and daily,
// `ca hsm status`, `ca hsm audit verify`) shows the gap. A rollback of the
// whole log with the rows shows only against an outside record of its
// head.
const (
	actionRotate         = "key.rotate"
	actionDestroy        = "key.destroy"
	actionNonExtractable = "key.set-nonextractable"
)

// storedKey is what the history is checked against: a key's newest stored
// version and whether its attributes allow export.
type storedKey struct {
	version     int
	extractable bool
}

// authentic reports whether e is an audit entry as the HSM wrote it: its
// hash covers its fields and its MAC, under st's KEK, covers the hash.
func (st *unsealed) authentic(e storage.HSMAuditEntry) bool {
	return len(e.MAC) != 0 && bytes.Equal(e.Hash, auditHash(e)) && hmac.Equal(e.MAC, entryMAC(st.macKey, e.Seq, e.Hash))
}

// checkHistory checks key id, stored as k, against the audit entries es
// about it, read before the key's rows (so a change committed in between,
// which writes its rows and its entry together, is in the rows too). An
// entry in the authenticated part of the log (from st's anchor on) whose
// MAC or hash does not verify was altered outside the HSM: its action or
// version may have been edited to hide a change, so the key is refused.
// An entry there with no MAC at all is one a node of the previous release
// appended during a rolling upgrade (or one whose MAC was stripped, which
// the chain check counts: VerifyAudit's Unauthenticated); what it records
// is held against the stored key like any other entry, but it does not
// make the key refused by itself — it did, and then every key an old node
// made or rotated during the upgrade, the OCSP responder's included, was
// lost on the new nodes.
func (st *unsealed) checkHistory(id string, k storedKey, es []storage.HSMAuditEntry) error {
	from := auditAnchor(st)
	for _, e := range es {
		if e.Object != id {
			continue
		}
		note := ""
		if !st.authentic(e) {
			if from == 0 || e.Seq < from {
				continue // from before the log was authenticated
			}
			if len(e.MAC) != 0 || !bytes.Equal(e.Hash, auditHash(e)) {
				return errf(ErrCorrupt, "key %s: audit entry #%d about it does not verify: the log was altered outside the HSM", id, e.Seq)
			}
			note = " (that entry carries no MAC: a node of the previous release wrote it, or someone outside the HSM did)"
		}
		if why := contradiction(k, e); why != "" {
			return errf(ErrCorrupt, "key %s %s%s", id, why, note)
		}
	}
	return nil
}

// contradiction says how key stored as k contradicts the audit entry e
// about it, or "".
func contradiction(k storedKey, e storage.HSMAuditEntry) string {
	switch e.Action {
	case actionDestroy:
		return fmt.Sprintf("was destroyed (audit entry #%d) but is stored again: its rows were put back outside the HSM", e.Seq)
	case actionRotate:
		if v := detailInt(e.Details, "version"); v > k.version {
			return fmt.Sprintf("is stored up to version %d, but the audit log records version %d (entry #%d): versions were removed outside the HSM",
				k.version, v, e.Seq)
		}
	case actionNonExtractable:
		if k.extractable {
			return fmt.Sprintf("was made non-extractable (audit entry #%d) but is stored extractable: an older row was put back outside the HSM", e.Seq)
		}
	}
	return ""
}

// keyHistory reads the audit entries about key id, to be read before its
// rows (see checkHistory).
func (m *Module) keyHistory(ctx context.Context, id string) ([]storage.HSMAuditEntry, error) {
	es, err := m.store.HSMAuditFor(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading key %s's history: %w", id, err)
	}
	return es, nil
}

// checkKeyHistory checks an opened key against its audit history es.
func (st *unsealed) checkKeyHistory(ko *keyObject, es []storage.HSMAuditEntry) error {
	return st.checkHistory(ko.id, storedKey{version: ko.current().version, extractable: ko.a.Extractable}, es)
}

// detailInt reads name=N from an audit entry's details (0 if absent).
func detailInt(details, name string) int {
	n, _ := strconv.Atoi(detail(details, name))
	return n
}

// detail reads name=V from an audit entry's details ("" if absent).
func detail(details, name string) string {
	for _, f := range strings.Fields(details) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}
