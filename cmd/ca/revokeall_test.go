package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// revoke-all --requester takes what the requester asked for and the
// renewals of those, however far down the line (through a certificate
// revoked already), and nothing else.
func TestMatchingValidFollowsRenewals(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ctx := context.Background()
	now := time.Now().UTC()
	add := func(serial core.Serial, requester string, status core.CertStatus) {
		t.Helper()
		c := &core.Certificate{Serial: serial, IssuerID: "intermediate", Profile: "tls-server", Requester: requester, CreatedAt: now}
		if err := db.ReserveSerial(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.TBS, c.NotAfter, c.Names = []byte("tbs"), now.Add(time.Hour), []string{"x.example"}
		if err := db.RecordIntent(ctx, c, now); err != nil {
			t.Fatal(err)
		}
		if err := db.StoreIssued(ctx, serial, []byte("der"), now); err != nil {
			t.Fatal(err)
		}
		if status == core.StatusRevoked {
			if err := db.RevokeCertificate(ctx, serial, core.ReasonSuperseded, now, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("a1", "apikey:leaked", core.StatusValid)
	add("b2", ra.RenewalPrincipal("a1"), core.StatusValid)
	add("c3", ra.RenewalPrincipal("b2"), core.StatusValid)
	add("d4", "apikey:leaked", core.StatusRevoked)         // revoked already: not again,
	add("e5", ra.RenewalPrincipal("d4"), core.StatusValid) // but its renewal, made before, is
	add("f6", "apikey:other", core.StatusValid)
	add("g7", "console:apikey:leaked", core.StatusValid) // issued in the console with the key
	got, skipped, err := matchingValid(ctx, db, storage.CertFilter{Requester: "apikey:leaked"})
	if err != nil {
		t.Fatal(err)
	}
	var serials []core.Serial
	for _, c := range got {
		serials = append(serials, c.Serial)
	}
	slices.Sort(serials)
	if !slices.Equal(serials, []core.Serial{"a1", "b2", "c3", "e5", "g7"}) || skipped != 0 {
		t.Fatalf("matched %v (%d CA skipped), want a1 b2 c3 e5 g7", serials, skipped)
	}
}
