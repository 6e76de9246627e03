package hsm

import (
	"context"
	"fmt"
)

// CountKeys counts the keys the session's crypto user owns whose label
// starts with labelPrefix, as stored (not this node's cache), reading no
// key: for a front end that shares one HSM user among many callers and
// limits how many keys each may keep.
func (s *Session) CountKeys(ctx context.Context, labelPrefix string) (int, error) {
	if err := s.require(RoleUser); err != nil {
		return 0, fmt.Errorf("counting keys: %w", err)
	}
	n, err := s.m.store.HSMObjectCount(ctx, s.user, labelPrefix)
	if err != nil {
		return 0, fmt.Errorf("counting keys: %w", err)
	}
	return n, nil
}
