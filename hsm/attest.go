package hsm

import (
	"context"
	"strings"

	"github.com/strongroom-pki/strongroom/storage"
)

// Attest appends an entry to the audit log, written by the session's
// officer, about a ceremony done with the module's keys that the log would
// otherwise show only as a key's use: which certificate a root signed for
// a key the module does not hold, say. action must begin with
// "ceremony."; the entry is chained and, while unsealed, authenticated
// like every other.
func (s *Session) Attest(ctx context.Context, action, object, details string) error {
	if err := s.require(RoleOfficer); err != nil {
		return err
	}
	if !strings.HasPrefix(action, "ceremony.") || strings.ContainsAny(action, " \t\n") {
		return errf(ErrInvalid, "attested action %q: want ceremony.NAME", action)
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.apply(ctx, storage.HSMChange{}, s.user, action, object, details)
}
