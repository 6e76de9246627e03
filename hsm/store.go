package hsm

import (
	"context"

	"github.com/strongroom-pki/strongroom/storage"
)

// Store is what the module needs from persistence. *storage.DB implements it
// (storage/hsm.go); the record types live in storage because storage may not
// import hsm.
type Store interface {
	HSMMeta(ctx context.Context) (map[string][]byte, error)
	HSMUser(ctx context.Context, name string) (storage.HSMUser, error)
	HSMUsers(ctx context.Context) ([]storage.HSMUser, error)
	HSMObject(ctx context.Context, id string) ([]storage.HSMObject, error)
	HSMObjects(ctx context.Context) ([]storage.HSMObject, error)
	HSMObjectCount(ctx context.Context, owner, labelPrefix string) (int, error)
	HSMHeads(ctx context.Context) ([]storage.HSMHead, error)
	HSMAudit(ctx context.Context, fromSeq int64, limit int) ([]storage.HSMAuditEntry, error)
	HSMAuditByAction(ctx context.Context, action string, limit int) ([]storage.HSMAuditEntry, error)
	HSMAuditFor(ctx context.Context, object string) ([]storage.HSMAuditEntry, error)
	HSMAuditHead(ctx context.Context) (seq int64, hash []byte, err error)
	HSMAuditAuth(ctx context.Context) (storage.HSMAuditAuth, error)
	ApplyHSM(ctx context.Context, ch storage.HSMChange) error
}

var _ Store = (*storage.DB)(nil)
