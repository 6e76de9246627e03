package hsm

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/strongroom-pki/strongroom/storage"
)

// Missing keys. Deleting every row of a key in the database leaves nothing
// that fails to open, so neither the seal of a version nor the key history
// (keyhistory.go), which is checked against the rows there are, shows it:
// the key is just gone. Its creation is in the audit log, though, in an
// entry authenticated under the KEK, and every destroy the HSM makes is
// audited in the same transaction as the delete. So CheckObjects (`ca hsm
// status`, a node's check at start and hourly, strongroom_hsm_damaged_keys)
// lists a key whose authenticated key.generate or key.import entry has no
// key.destroy after it and no rows as missing, with the label and creator
// that entry records. DestroyDamaged takes it like a damaged key: it audits
// the loss as a destroy, which ends the report. A key made before the log
// was authenticated has no such entry and cannot be missed.

// missingKeys returns the keys history (every audit entry about a key, by
// id, read before the rows) records as made and not destroyed that have
// no rows in stored (the newest row of each stored key, by id). A
// candidate's history is read again, after the rows: a key destroyed
// between the two reads has its destroy there.
func (m *Module) missingKeys(ctx context.Context, st *unsealed, history map[string][]storage.HSMAuditEntry, stored map[string]storage.HSMObject) ([]DamagedKey, error) {
	var ids []string
	for id := range history {
		if _, ok := stored[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []DamagedKey
	for _, id := range ids {
		c := st.creation(id, history[id])
		if gone, _ := st.destroyedIn(history[id]); !c.Verified || gone {
			continue
		}
		again, err := m.keyHistory(ctx, id)
		if err != nil {
			return nil, err
		}
		gone, unvouched := st.destroyedIn(again)
		if gone {
			continue
		}
		why := "the authenticated audit log records its creation and no destroy, so it was deleted outside the HSM"
		if unvouched != 0 {
			why = fmt.Sprintf("the authenticated audit log records its creation, and its only destroy, entry #%d, carries no MAC (a node of the previous release wrote it during an upgrade, or someone outside the HSM: if it was destroyed, record the loss)", unvouched)
		}
		err = errf(ErrCorrupt, "key %s (label %q, made by %s) has no rows: %s", id, c.Label, c.By, why)
		out = append(out, DamagedKey{ID: id, Label: c.Label, Owner: c.By, Reason: err.Error(), Created: c, Missing: true, err: err})
	}
	return out, nil
}

// destroyedIn reports whether es holds a key.destroy entry the HSM vouches
// for (gone); else, the seq of one it does not (unvouched), if any. A destroy with
// no MAC is what someone who can write the database could append to hide
// a key they deleted (found by a review), so it does not end the report.
func (st *unsealed) destroyedIn(es []storage.HSMAuditEntry) (gone bool, unvouched int64) {
	for _, e := range es {
		if e.Action != actionDestroy {
			continue
		}
		if st.vouched(e) {
			return true, 0
		}
		if unvouched == 0 {
			unvouched = e.Seq
		}
	}
	return false, unvouched
}

// vouched reports whether the HSM vouches for entry e: it is authentic, or
// from before the log's authentication began (which the chain alone
// covers).
func (st *unsealed) vouched(e storage.HSMAuditEntry) bool {
	from := auditAnchor(st)
	return from == 0 || e.Seq < from || st.authentic(e)
}

// missingLabelled is, for FindKey's "no such key", a key labelled label
// that the session's user made (any key, for an officer) and that is
// missing, so that a CA whose key rows were deleted says so at start
// instead of "no such object". It reads the audit entries about keys, as
// CheckObjects does; only a failed lookup pays for it.
func (s *Session) missingLabelled(ctx context.Context, label string) (DamagedKey, bool, error) {
	st, err := s.live()
	if err != nil {
		return DamagedKey{}, false, err
	}
	es, err := s.m.store.HSMAuditFor(ctx, "")
	if err != nil {
		return DamagedKey{}, false, err
	}
	for id, hs := range byObject(es) {
		c := st.creation(id, hs)
		if !c.Verified || c.Label != label || c.By != s.user && s.role != RoleOfficer {
			continue
		}
		if _, err := s.m.store.HSMObject(ctx, id); !isNotFound(err) {
			continue // it has rows, or they could not be read
		}
		missing, err := s.m.missingKeys(ctx, st, map[string][]storage.HSMAuditEntry{id: hs}, nil)
		if err != nil {
			return DamagedKey{}, false, err
		}
		if len(missing) == 1 {
			return missing[0], true, nil
		}
	}
	return DamagedKey{}, false, nil
}

// byObject groups audit entries by the object they are about.
func byObject(es []storage.HSMAuditEntry) map[string][]storage.HSMAuditEntry {
	out := map[string][]storage.HSMAuditEntry{}
	for _, e := range es {
		out[e.Object] = append(out[e.Object], e)
	}
	return out
}

// Missing users. A user's row deleted in the database is gone the same way
// (usermac.go authenticates the rows there are). Its creation — user.create,
// or hsm.initialize for the first officer — is in the authenticated log,
// and every delete the HSM makes is audited with it, so a user made and
// not deleted since, with no row, was deleted outside the HSM. `ca hsm
// status` and the officer's user list name such users, and
// ResetWithUnseal re-creates one (the CA's own user owns the CA's keys by
// name: re-created, it has them again).

// MissingUser is a user the authenticated audit log records as made, in
// entry Seq with role Role, and not deleted, that has no row.
type MissingUser struct {
	Name string
	Role Role
	Seq  int64
	// UnvouchedDelete is the seq of a user.delete entry about it that
	// carries no MAC (see destroyedIn), or 0.
	UnvouchedDelete int64
}

// MissingUsers lists the missing users, by name. It needs an unsealed
// module (the log's MACs are checked) and reads every audit entry about an
// object, as CheckObjects does.
func (m *Module) MissingUsers(ctx context.Context) ([]MissingUser, error) {
	st, err := m.live()
	if err != nil {
		return nil, fmt.Errorf("checking users: %w", err)
	}
	es, err := m.store.HSMAuditFor(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("checking users: %w", err)
	}
	us, err := m.store.HSMUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking users: %w", err)
	}
	have := map[string]bool{}
	for _, u := range us {
		have[u.Name] = true
	}
	history := byObject(es)
	names := slices.Sorted(maps.Keys(history))
	var out []MissingUser
	for _, name := range names {
		if have[name] {
			continue
		}
		if _, ok := st.userMade(history[name]); !ok {
			continue
		}
		// Read again, after the rows: a user deleted in between.
		again, err := m.store.HSMAuditFor(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("checking users: %w", err)
		}
		if u, ok := st.userMade(again); ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// userMade reads a user's audit entries es, in order: the user as its last
// authenticated creation made it, and whether no delete came after.
func (st *unsealed) userMade(es []storage.HSMAuditEntry) (MissingUser, bool) {
	var u MissingUser
	made := false
	for _, e := range es {
		switch e.Action {
		case "user.create", "hsm.initialize":
			if !st.authentic(e) {
				continue
			}
			role := RoleOfficer
			if e.Action == "user.create" {
				role = Role(detail(e.Details, "role"))
			}
			u, made = MissingUser{Name: e.Object, Role: role, Seq: e.Seq}, true
		case "user.reset": // a new role, or a missing user re-created (ResetWithUnseal)
			if !st.authentic(e) {
				continue
			}
			if detail(e.Details, "recreated") != "" {
				u, made = MissingUser{Name: e.Object, Seq: e.Seq}, true
			}
			if r := detail(e.Details, "role"); r != "" {
				u.Role = Role(r)
			}
		case "user.delete":
			if st.vouched(e) {
				made = false
			} else if made {
				u.UnvouchedDelete = e.Seq
			}
		}
	}
	return u, made
}

// missingUser reads name's audit entries: the missing user of that name,
// if it is one (a name with no row). Callers hold m.mu with st live.
func (m *Module) missingUser(ctx context.Context, st *unsealed, name string) (MissingUser, bool, error) {
	es, err := m.store.HSMAuditFor(ctx, name)
	if err != nil {
		return MissingUser{}, false, err
	}
	u, ok := st.userMade(es)
	return u, ok, nil
}

// missingUserLocked is missingUser for a caller that holds no lock, as a
// MissingUser; false also when it could not be told.
func (m *Module) missingUserLocked(ctx context.Context, name string) (MissingUser, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.live()
	if err != nil {
		return MissingUser{}, false
	}
	u, ok, err := m.missingUser(ctx, st, name)
	return u, ok && err == nil
}
