package hsm

import (
	"slices"
	"sync/atomic"
	"time"
)

// Session is a logged-in user's handle on the module. It is safe for
// concurrent use. It ends with Close, or when the module is sealed.
type Session struct {
	m       *Module
	st      *unsealed // the unsealed state the session was opened under
	user    string
	role    Role
	created time.Time // the user's creation time: a re-created user is another user
	closed  atomic.Bool
}

// Close ends the session. Signers made from it stop working.
func (s *Session) Close() { s.closed.Store(true) }

// User is the session's user name.
func (s *Session) User() string { return s.user }

// Role is the session user's role.
func (s *Session) Role() Role { return s.role }

// live checks, without locks, that the module is usable and the session is
// still open under the current unseal.
func (s *Session) live() (*unsealed, error) {
	st, err := s.m.live()
	if err != nil {
		return nil, err
	}
	if s.closed.Load() || st != s.st {
		return nil, ErrNotLoggedIn
	}
	if err := st.sessionUser(s); err != nil {
		return nil, err
	}
	return st, nil
}

// Check reports whether the session can be used now: nil, or why not (the
// module sealed or failed, the session closed, or its user's record
// deleted, altered outside the HSM or given another role since login).
// A session that fails Check works again if its cause is undone (a user
// record reset to the same user and role).
func (s *Session) Check() error {
	_, err := s.live()
	return err
}

// require checks the session is live and its role is one of roles.
func (s *Session) require(roles ...Role) error {
	if _, err := s.live(); err != nil {
		return err
	}
	if !slices.Contains(roles, s.role) {
		return errf(ErrForbidden, "%s %q may not do this", s.role, s.user)
	}
	return nil
}
