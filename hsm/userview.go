package hsm

import (
	"context"
	"maps"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// A session is only as good as its user: deleting the user (or deleting and
// re-creating it) or changing its role ends the user's sessions. A lockout
// does not: it stops PIN guessing, and ending the sessions opened with the
// right PIN would let anyone who types wrong PINs (a node restarting with a
// mistyped one) stop the running CA on every node.
// Each unsealed state keeps a view of every user — role and creation
// time, no PIN hash — that Session.live checks with one map lookup, so no
// operation reads the database for it. This node's own user writes update
// the view at once (apply); writes by another process (`ca hsm users
// delete` beside a running server, another cluster node) reach it at the
// next SyncUsers, every KeySyncInterval, as key changes do (sync.go).

type userView struct {
	role     Role
	created  time.Time
	tampered bool // the row does not verify (usermac.go): no role, no session
}

func viewOf(u storage.HSMUser) userView {
	// Stored to the microsecond: a user created here compares equal to
	// the same user read back.
	return userView{role: Role(u.Role), created: u.Created.Truncate(time.Microsecond)}
}

// sessionUser checks that the user a session was opened for is still the
// same user with the same role.
func (st *unsealed) sessionUser(s *Session) error {
	v, ok := (*st.users.Load())[s.user]
	switch {
	case ok && v.tampered:
		return errf(ErrNotLoggedIn, "user %q was altered outside the HSM after this session began (its record does not verify)", s.user)
	case !ok || !v.created.Equal(s.created):
		return errf(ErrNotLoggedIn, "user %q was deleted after this session began", s.user)
	case v.role != s.role:
		return errf(ErrNotLoggedIn, "user %q is now %s, not %s as when this session began; log in again", s.user, v.role, s.role)
	}
	return nil
}

// noteUsers publishes a copy of the view with put and del applied. Callers
// hold m.mu (every user write does), so updates never race each other.
func (st *unsealed) noteUsers(put []storage.HSMUser, del []string) {
	next := maps.Clone(*st.users.Load())
	for _, u := range put {
		next[u.Name] = viewOf(u)
	}
	for _, n := range del {
		delete(next, n)
	}
	st.users.Store(&next)
}

// loadUsers replaces st's view with the users as stored; a row altered
// outside the HSM gets no role, and is logged as an error when it is first
// seen so (its sessions stop at once: a node whose CA user it is stops
// signing, and would otherwise say so only at its next signature).
// Callers hold m.mu.
func (m *Module) loadUsers(ctx context.Context, st *unsealed) error {
	if err := m.refreshUsersBound(ctx, st); err != nil {
		return err
	}
	us, err := m.store.HSMUsers(ctx)
	if err != nil {
		return err // "reading hsm users: …"
	}
	prev := *st.users.Load()
	view := make(map[string]userView, len(us))
	for _, u := range us {
		if !st.userVerifies(u) {
			view[u.Name] = userView{tampered: true}
			if !prev[u.Name].tampered {
				m.log.Error("hsm: a user's record was altered outside the HSM (it does not verify): its sessions stop and it cannot log in; `ca hsm users reset` on the authority of the unseal material mends it",
					"user", u.Name)
			}
			continue
		}
		view[u.Name] = viewOf(u)
	}
	st.users.Store(&view)
	return nil
}

// SyncUsers reads the users again, so that a user deleted, locked or given
// another role by another process stops working here. The sync loop calls
// it every KeySyncInterval; a sealed module does nothing.
func (m *Module) SyncUsers(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.state.Load()
	if st == nil {
		return nil
	}
	return m.loadUsers(ctx, st)
}
