package hsm

import "sync"

// The module remembers which keys it has found damaged, so that a count of
// them (strongroom_hsm_damaged_keys) is a read of a set, not a scan of the
// keystore. CheckObjects, which opens every stored key, replaces the set
// with what it found; between two such checks, a key refused as damaged
// when it is opened or synced joins it, one that opens again (its rows
// put back as they were) leaves it, and a key DestroyDamaged destroys
// leaves it at once. A key damaged on another node's watch, or destroyed
// there, shows here when this node opens it or at its next check.
type damagedSet struct {
	mu      sync.Mutex
	ids     map[string]bool
	missing map[string]bool // of ids, those the last check found missing
	checked bool            // CheckObjects has filled ids at least once
}

func (d *damagedSet) note(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil {
		d.ids = map[string]bool{}
	}
	d.ids[id] = true
}

func (d *damagedSet) drop(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.ids, id)
	delete(d.missing, id)
}

// gone is drop for a key not found, unless the last check found it
// missing: a key with no rows is not found whether it was destroyed or
// deleted outside the HSM, and a lookup of it must not clear the latter
// (a review's request of a missing key's id, with no credential, reset
// strongroom_hsm_damaged_keys to 0 until the next check).
func (d *damagedSet) gone(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.missing[id] {
		delete(d.ids, id)
	}
}

// replace makes found the set: a whole keystore's check.
func (d *damagedSet) replace(found []DamagedKey) {
	ids := make(map[string]bool, len(found))
	missing := map[string]bool{}
	for _, k := range found {
		ids[k.ID] = true
		if k.Missing {
			missing[k.ID] = true
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids, d.missing, d.checked = ids, missing, true
}

// DamagedCount is how many stored keys the module knows to be damaged: the
// ones its last CheckObjects found, give or take those it has found
// damaged or intact since, or destroyed (see damagedSet). It is -1 before
// the first CheckObjects while none was found. It reads no storage.
func (m *Module) DamagedCount() int {
	d := &m.damaged
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.checked && len(d.ids) == 0 {
		return -1
	}
	return len(d.ids)
}
