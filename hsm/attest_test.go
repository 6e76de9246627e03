package hsm

import (
	"context"
	"errors"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestAttest: an officer's attested ceremony lands in the audit log, by
// the officer, chained and authenticated; a user may not attest, nor may
// an action outside ceremony.*.
func TestAttest(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		f := setup(t, db)
		if err := f.officer.Attest(ctx, "ceremony.sign-subordinate", "cert:0a1b", "subject=Mesh CA"); err != nil {
			t.Fatal(err)
		}
		e := lastAudit(t, db)
		if e.Actor != "co" || e.Action != "ceremony.sign-subordinate" || e.Object != "cert:0a1b" || e.Details != "subject=Mesh CA" {
			t.Fatalf("audit entry %+v", e)
		}
		rep, err := f.m.VerifyAudit(ctx)
		if err != nil || rep.FirstBad != 0 || unauthenticatedIn(rep) != 0 {
			t.Fatalf("the chain after an attestation: %+v, %v", rep, err)
		}
		if err := f.alice.Attest(ctx, "ceremony.x", "", ""); !errors.Is(err, ErrForbidden) {
			t.Errorf("a user attests: %v", err)
		}
		if err := f.officer.Attest(ctx, "key.destroy", "", ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("an officer attests a key action: %v", err)
		}
	})
}

func unauthenticatedIn(rep AuditReport) int {
	n := 0
	for _, c := range rep.Unauthenticated {
		n += c
	}
	return n
}
