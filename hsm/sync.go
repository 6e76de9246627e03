package hsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// Nodes sharing one keystore each cache the keys they opened. A key that
// another node destroys, rotates or changes (usage, sharing, extractable)
// would otherwise go on working here as cached until this node restarts or
// changes that key itself (stale.go covers only data made with a version
// this node lacks). Every KeySyncInterval the module reads the head of
// every stored object — version and attributes, no key material — and
// refreshes each cached key whose head differs: refreshKey reads it again,
// replaces it in the cache, and destroys it here if it is gone, which also
// stops Signers already handed out for it. So a change made on one node is
// in force on every node within one interval.

func (m *Module) syncLoop(interval time.Duration) {
	defer close(m.synced)
	if interval < 0 {
		<-m.stop
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := m.SyncKeys(ctx); err != nil {
				m.log.Warn("hsm: comparing cached keys with the keystore", "err", err)
			}
			if err := m.SyncUsers(ctx); err != nil {
				m.log.Warn("hsm: reading users again", "err", err)
			}
			cancel()
		}
	}
}

// SyncKeys compares the cached keys with the keystore now and refreshes the
// ones that differ; it returns how many it refreshed or dropped. A sealed
// module has nothing cached and does nothing.
func (m *Module) SyncKeys(ctx context.Context) (int, error) {
	st, err := m.live()
	if err != nil {
		return 0, nil
	}
	heads, err := m.store.HSMHeads(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading key heads: %w", err)
	}
	type head struct {
		version int
		attrs   []byte
	}
	stored := make(map[string]head, len(heads))
	for _, h := range heads {
		stored[h.ID] = head{h.Version, h.Attrs}
	}
	var stale []*keyObject
	st.keys.Range(func(_, v any) bool {
		ko := v.(*keyObject)
		if h, ok := stored[ko.id]; !ok || h.version != ko.current().version || !bytes.Equal(h.attrs, ko.head) {
			stale = append(stale, ko) // gone, rotated or changed — or made after the heads were read
		}
		return true
	})
	n := 0
	for _, ko := range stale {
		changed, err := m.syncKey(ctx, st, ko)
		if err != nil {
			return n, err
		}
		if changed {
			n++
		}
	}
	return n, nil
}

// syncKey reads one key again under m.mu (as a change does) and reports
// whether the cache changed. A key cached after the heads were read is
// found unchanged here.
func (m *Module) syncKey(ctx context.Context, st *unsealed, ko *keyObject) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state.Load() != st {
		return false, nil // sealed meanwhile
	}
	cur, ok := st.keys.Load(ko.id)
	if !ok || cur.(*keyObject) != ko {
		return false, nil // already replaced or forgotten
	}
	fresh, err := m.refreshKey(ctx, st, ko)
	if errors.Is(err, ErrNotFound) {
		m.log.Info("hsm: key destroyed on another node; dropped here", "key", ko.id)
		return true, nil
	}
	if errors.Is(err, ErrCorrupt) {
		// Dropped from the cache (refreshKey), so said once; the other
		// keys are still synced.
		m.log.Error("hsm: key altered outside the HSM; every use of it is refused", "key", ko.id, "err", err)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if fresh != ko {
		m.log.Info("hsm: key changed on another node; reloaded", "key", ko.id, "version", fresh.current().version)
	}
	return fresh != ko, nil
}
