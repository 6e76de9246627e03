package hsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/strongroom-pki/strongroom/storage"
)

// DamagedKey is a stored key object with a version that fails to open: its
// blob or attributes were altered, or it was sealed under another KEK. ID,
// Label and Owner are the row's plain copies (not authenticated); Reason
// says what failed. Listings report such objects instead of leaving them
// out, so a damaged CA key is found as damaged, not as missing.
type DamagedKey struct {
	ID, Label, Owner string
	Reason           string
	// Created is what the authenticated audit entry that made the key says
	// of it (filled by DamagedKeys and DestroyDamaged, not CheckObjects):
	// unlike Label and Owner, it cannot be edited by someone who can only
	// write the database.
	Created Creation
	// Missing is set for a key with no rows at all whose authenticated
	// creation has no destroy (missing.go): deleted outside the HSM.
	Missing bool
	err     error
}

// Creation is a key's label and creator as its key.generate or key.import
// audit entry records them; Verified is false when no such entry verifies
// (made before the log was authenticated, or altered).
type Creation struct {
	Label, By string
	Verified  bool
}

// creation reads key id's creation from its audit entries es.
func (st *unsealed) creation(id string, es []storage.HSMAuditEntry) Creation {
	for _, e := range es {
		if e.Object != id || e.Action != "key.generate" && e.Action != "key.import" || !st.authentic(e) {
			continue
		}
		_, rest, ok := strings.Cut(e.Details, "label=")
		if !ok {
			continue
		}
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			label, _ := strconv.Unquote(q)
			return Creation{Label: label, By: e.Actor, Verified: true}
		}
	}
	return Creation{}
}

// damagedObjects opens every version in rows under st and returns, once per
// key, those that fail.
func damagedObjects(st *unsealed, rows []storage.HSMObject) []DamagedKey {
	var out []DamagedKey
	bad := map[string]bool{}
	for _, o := range rows {
		if bad[o.ID] {
			continue
		}
		kv, _, err := openObject(st, o)
		if err != nil {
			bad[o.ID] = true
			out = append(out, damagedKey(o, err))
			continue
		}
		kv.h.destroy()
	}
	return out
}

func damagedKey(o storage.HSMObject, err error) DamagedKey {
	return DamagedKey{ID: o.ID, Label: o.Label, Owner: o.Owner, Reason: err.Error(), err: err}
}

// CheckObjects opens every stored object and returns the damaged ones
// (`ca hsm status`), then the missing ones (missing.go), which DamagedCount
// then counts. It needs no login,
// but an unsealed module; it costs one decryption and key parse per stored
// version, and a read of every audit entry about a key.
func (m *Module) CheckObjects(ctx context.Context) ([]DamagedKey, error) {
	st, err := m.live()
	if err != nil {
		return nil, fmt.Errorf("checking objects: %w", err)
	}
	// The history before the rows (see checkHistory).
	es, err := m.store.HSMAuditFor(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("checking objects: %w", err)
	}
	rows, err := m.store.HSMObjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking objects: %w", err)
	}
	damaged := damagedObjects(st, rows)
	// Keys whose versions all open are checked against their history.
	history := byObject(es)
	bad := map[string]bool{}
	for _, d := range damaged {
		bad[d.ID] = true
	}
	newest := map[string]storage.HSMObject{}
	var ids []string
	for _, r := range rows {
		cur, seen := newest[r.ID]
		if !seen {
			ids = append(ids, r.ID)
		}
		if !seen || r.Version > cur.Version {
			newest[r.ID] = r
		}
	}
	for _, id := range ids {
		r := newest[id]
		var a attrs
		if bad[id] || json.Unmarshal(r.Attrs, &a) != nil { // it opened: its attributes are authentic
			continue
		}
		if err := st.checkHistory(id, storedKey{version: r.Version, extractable: a.Extractable}, history[id]); err != nil {
			damaged = append(damaged, damagedKey(r, err))
		}
	}
	missing, err := m.missingKeys(ctx, st, history, newest)
	if err != nil {
		return nil, fmt.Errorf("checking objects: %w", err)
	}
	damaged = append(damaged, missing...)
	m.damaged.replace(damaged)
	return damaged, nil
}

// scanKeys opens every key the session may see: the intact ones as
// KeyInfo, the ones that fail to open as DamagedKey (see damagedFor).
func (s *Session) scanKeys(ctx context.Context) ([]KeyInfo, []DamagedKey, error) {
	if err := s.require(RoleUser, RoleOfficer); err != nil {
		return nil, nil, err
	}
	rows, err := s.m.store.HSMObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	var keys []KeyInfo
	var damaged []DamagedKey
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		_, ko, err := s.manageKeyOrUse(ctx, r.ID)
		switch {
		case err == nil:
			keys = append(keys, ko.info())
		case isNotFound(err):
		case errors.Is(err, ErrCorrupt):
			d, known, err := s.damagedFor(ctx, r, err)
			if err != nil {
				return nil, nil, err
			}
			if known {
				damaged = append(damaged, d)
			}
		default:
			s.m.log.Warn("hsm: key left out of listing", "key", r.ID, "err", err)
		}
	}
	return keys, damaged, nil
}

// damagedFor is the key of row r, which failed to open with cause, as a
// DamagedKey with its Created filled in, and whether the session may know
// of it. An officer knows every damaged key; a crypto user those it made
// (a key's owner is its creator), as the authenticated audit log says, or,
// for a key whose creation that log does not record, those its row says
// it owns. The row's owner and label are plain copies anyone who writes
// the database can change: a key relabelled that way must neither reach
// another user's listing nor leave its owner's. Damaged keys are rare, so
// reading each one's history here costs little.
func (s *Session) damagedFor(ctx context.Context, r storage.HSMObject, cause error) (DamagedKey, bool, error) {
	d := damagedKey(r, cause)
	st, err := s.live()
	if err != nil {
		return d, false, err
	}
	es, err := s.m.keyHistory(ctx, r.ID)
	if err != nil {
		return d, false, err
	}
	d.Created = st.creation(r.ID, es)
	owner := r.Owner
	if d.Created.Verified {
		owner = d.Created.By
	}
	return d, s.role == RoleOfficer || owner == s.user, nil
}

// DamagedKeys lists the damaged keys the session may know of (see
// scanKeys); ListKeys lists the intact ones.
func (s *Session) DamagedKeys(ctx context.Context) ([]DamagedKey, error) {
	_, damaged, err := s.scanKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing damaged keys: %w", err)
	}
	return damaged, nil
}

// DamagedKey answers DamagedKeys for one key: keyID as DamagedKeys would
// list it, and whether it would (it is damaged and the session may know of
// it); an intact key, a missing one and a damaged one the session may not
// know of are all false. It reads that key's rows and history only, not
// the keystore: asking about one id costs the same whatever the keystore
// holds, where a scan made an unknown id that is damaged slower to answer
// than one that does not exist (a timing that told another application's
// damaged key ids apart).
func (s *Session) DamagedKey(ctx context.Context, keyID string) (DamagedKey, bool, error) {
	if err := s.require(RoleUser, RoleOfficer); err != nil {
		return DamagedKey{}, false, err
	}
	_, _, cause := s.manageKeyOrUse(ctx, keyID)
	switch {
	case cause == nil, isNotFound(cause):
		return DamagedKey{}, false, nil
	case !errors.Is(cause, ErrCorrupt):
		return DamagedKey{}, false, fmt.Errorf("checking key %s: %w", keyID, cause)
	}
	rows, err := s.m.store.HSMObject(ctx, keyID)
	if isNotFound(err) { // destroyed since
		return DamagedKey{}, false, nil
	}
	if err != nil {
		return DamagedKey{}, false, fmt.Errorf("checking key %s: %w", keyID, err)
	}
	// The oldest version's row, as scanKeys reads it (by id, then version).
	d, known, err := s.damagedFor(ctx, rows[0], cause)
	if err != nil {
		return DamagedKey{}, false, fmt.Errorf("checking key %s: %w", keyID, err)
	}
	if !known {
		return DamagedKey{}, false, nil
	}
	return d, true, nil
}

// DestroyDamaged destroys a key that CheckObjects lists as damaged (a
// version that fails to open, or rows that contradict its authenticated
// history), as an officer: the way out besides restoring a backup into an
// empty module, since a damaged key opens for nobody and so cannot be
// destroyed as keys are. keep, if not nil, sees the key with its Created
// filled in first and refuses by returning an error (the CA's keys: its
// row's label and owner are not to be trusted). It returns the key. An
// intact key is refused: its owner destroys it. The destroy is audited like
// any other, so rows put back afterwards are refused too.
func (s *Session) DestroyDamaged(ctx context.Context, keyID string, keep func(DamagedKey) error) (DamagedKey, error) {
	if err := s.require(RoleOfficer); err != nil {
		return DamagedKey{}, err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	damaged, err := s.m.CheckObjects(ctx)
	if err != nil {
		return DamagedKey{}, err
	}
	i := slices.IndexFunc(damaged, func(d DamagedKey) bool { return d.ID == keyID })
	if i < 0 {
		return DamagedKey{}, errf(ErrInvalid, "key %s is not damaged (or does not exist): its owner destroys an intact key", keyID)
	}
	d := damaged[i]
	es, err := s.m.keyHistory(ctx, keyID)
	if err != nil {
		return DamagedKey{}, err
	}
	st, err := s.live()
	if err != nil {
		return DamagedKey{}, err
	}
	d.Created = st.creation(keyID, es)
	if keep != nil {
		if err := keep(d); err != nil {
			return DamagedKey{}, err
		}
	}
	details := fmt.Sprintf("damaged=1 row-label=%q", d.Label)
	if d.Created.Verified {
		details = fmt.Sprintf("damaged=1 label=%q created-by=%s", d.Created.Label, d.Created.By)
	}
	if err := s.m.apply(ctx, storage.HSMChange{DeleteObjects: []string{keyID}}, s.user, actionDestroy, keyID, details); err != nil {
		return DamagedKey{}, fmt.Errorf("destroying damaged key: %w", err)
	}
	if old := forgetKey(st, keyID); old != nil {
		old.destroy()
	}
	s.m.damaged.drop(keyID)
	return d, nil
}
