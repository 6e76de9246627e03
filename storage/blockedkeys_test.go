package storage_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// keyed stores a real certificate for key (self-signed: storage only reads
// its SubjectPublicKeyInfo), recording its key hash with the intent unless
// legacy (a row from before key hashes).
func keyed(t *testing.T, db *storage.DB, key *ecdsa.PrivateKey, notAfter time.Time, legacy bool) core.Serial {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	s := newSerial(t)
	tmpl := &x509.Certificate{SerialNumber: s.Big(), Subject: pkix.Name{CommonName: "k.example"},
		NotBefore: now.Add(-2 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	c := &core.Certificate{Serial: s, IssuerID: "int", Profile: "tls-server", Requester: "test", CreatedAt: now}
	if err := db.ReserveSerial(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Names, c.NotBefore, c.NotAfter, c.TBS = []string{"k.example"}, tmpl.NotBefore, notAfter, cert.RawTBSCertificate
	if !legacy {
		c.KeyHash = core.KeyHash(cert.RawSubjectPublicKeyInfo)
	}
	if err := db.RecordIntent(ctx, c, now); err != nil {
		t.Fatal(err)
	}
	if err := db.StoreIssued(ctx, s, der, now); err != nil {
		t.Fatal(err)
	}
	return s
}

func keyHash(t *testing.T, key *ecdsa.PrivateKey) []byte {
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return core.KeyHash(spki)
}

func serialsOf(cs []core.Certificate) []core.Serial {
	var out []core.Serial
	for _, c := range cs {
		out = append(out, c.Serial)
	}
	slices.Sort(out)
	return out
}

func TestBlockedKeys(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		later := time.Now().Add(24 * time.Hour)
		reported := keyed(t, db, k1, later, false)
		sibling := keyed(t, db, k1, later, false)
		expired := keyed(t, db, k1, time.Now().Add(-time.Hour), false)
		legacy := keyed(t, db, k1, later, true)
		other := keyed(t, db, k2, later, false)

		if blocked, err := db.KeyBlocked(ctx, keyHash(t, k1)); err != nil || blocked {
			t.Fatalf("KeyBlocked before any report = %v, %v", blocked, err)
		}
		superseded := keyed(t, db, k1, later, false)
		if err := db.RevokeCertificate(ctx, superseded, core.ReasonSuperseded, time.Now().UTC(), time.Time{}); err != nil {
			t.Fatal(err)
		}
		// A keyCompromise claim alone blocks nothing.
		inv := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
		if err := db.RevokeCertificate(ctx, reported, core.ReasonKeyCompromise, time.Now().UTC(), inv); err != nil {
			t.Fatal(err)
		}
		if keys, err := db.BlockedKeys(ctx); err != nil || len(keys) != 0 {
			t.Fatalf("RevokeCertificate(keyCompromise) blocked %d keys (%v)", len(keys), err)
		}
		// RevokeAndBlockKey of a certificate revoked for keyCompromise
		// already blocks its key (not a conflict).
		if err := db.RevokeAndBlockKey(ctx, reported, time.Now().UTC(), inv); err != nil {
			t.Fatal(err)
		}
		keys, err := db.BlockedKeys(ctx)
		if err != nil || len(keys) != 1 || string(keys[0].Hash) != string(keyHash(t, k1)) || keys[0].Serial != reported ||
			!keys[0].InvalidityDate.Equal(inv) {
			t.Fatalf("BlockedKeys after a keyCompromise revocation = %+v, %v", keys, err)
		}

		// The sweep revokes the other unexpired certificate with a recorded
		// key hash, with the report's invalidity date; not the expired one,
		// not another key's.
		at := time.Now().UTC().Truncate(time.Microsecond)
		got, err := db.RevokeBlockedKeys(ctx, at)
		want := []core.Serial{sibling, superseded}
		slices.Sort(want)
		if err != nil || !slices.Equal(serialsOf(got), want) || got[0].IssuerID != "int" {
			t.Fatalf("RevokeBlockedKeys = %v, %v; want %v", serialsOf(got), err, want)
		}
		// One revoked for another reason gets keyCompromise, its date kept.
		if rec, _ := db.GetCertificate(ctx, superseded); rec.RevocationReason != core.ReasonKeyCompromise || rec.RevokedAt.Equal(at) {
			t.Fatalf("superseded sibling after the sweep: %s revoked at %s", rec.RevocationReason, rec.RevokedAt)
		}
		rec, _ := db.GetCertificate(ctx, sibling)
		if rec.Status != core.StatusRevoked || rec.RevocationReason != core.ReasonKeyCompromise || !rec.InvalidityDate.Equal(inv) || !rec.RevokedAt.Equal(at) {
			t.Fatalf("sibling after the sweep: %+v", rec)
		}
		for _, s := range []core.Serial{expired, legacy, other} {
			if rec, _ := db.GetCertificate(ctx, s); rec.Status != core.StatusValid {
				t.Fatalf("%s is %s after the sweep, want valid", s, rec.Status)
			}
		}
		if got, err := db.RevokeBlockedKeys(ctx, at); err != nil || len(got) != 0 {
			t.Fatalf("second sweep = %v, %v; want nothing", serialsOf(got), err)
		}

		// A row from before key hashes is found once the backfill has read
		// its certificate's key.
		filled, bad, err := db.BackfillKeyHashes(ctx)
		if err != nil || filled != 1 || bad != 0 {
			t.Fatalf("BackfillKeyHashes = %d filled, %d unparsable, %v; want 1, 0", filled, bad, err)
		}
		if got, err := db.RevokeBlockedKeys(ctx, at); err != nil || !slices.Equal(serialsOf(got), []core.Serial{legacy}) {
			t.Fatalf("sweep after backfill = %v, %v; want [%s]", serialsOf(got), err, legacy)
		}

		// No intent is recorded for a blocked key, directly or through the
		// group-commit writer (on PostgreSQL its pipelined batch diverges
		// and reruns), and the other operations of the batch stand.
		intent := func(w interface {
			ReserveSerial(context.Context, *core.Certificate) error
			RecordIntent(context.Context, *core.Certificate, time.Time) error
		}, hash []byte) error {
			now := time.Now().UTC()
			c := &core.Certificate{Serial: newSerial(t), IssuerID: "int", Profile: "tls-server", Requester: "test", CreatedAt: now}
			if err := w.ReserveSerial(ctx, c); err != nil {
				t.Fatal(err)
			}
			c.TBS, c.KeyHash, c.Names = []byte("tbs"), hash, []string{"k.example"}
			return w.RecordIntent(ctx, c, now)
		}
		if err := intent(db, keyHash(t, k1)); !errors.Is(err, core.ErrKeyBlocked) || core.KindOf(err) != core.KindBadCSR {
			t.Fatalf("intent for a blocked key = %v, want ErrKeyBlocked", err)
		}
		w := storage.NewCertWriter(db)
		defer w.Close()
		errs := make(chan error, 2)
		go func() { errs <- intent(w, keyHash(t, k1)) }()
		go func() { errs <- intent(w, keyHash(t, k2)) }()
		var blocked, ok int
		for range 2 {
			switch err := <-errs; {
			case errors.Is(err, core.ErrKeyBlocked):
				blocked++
			case err == nil:
				ok++
			default:
				t.Fatalf("writer intent: %v", err)
			}
		}
		if blocked != 1 || ok != 1 {
			t.Fatalf("through the writer: %d blocked, %d recorded; want 1 and 1", blocked, ok)
		}

		// An operator may block a key with no certificate; once.
		k3, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k := storage.BlockedKey{Hash: keyHash(t, k3), BlockedAt: time.Now(), Comment: "leaked in a CI log"}
		if added, err := db.BlockKey(ctx, k); err != nil || !added {
			t.Fatalf("BlockKey = %v, %v", added, err)
		}
		if added, err := db.BlockKey(ctx, k); err != nil || added {
			t.Fatalf("BlockKey again = %v, %v; want false", added, err)
		}
		if _, err := db.BlockKey(ctx, storage.BlockedKey{Hash: []byte("short")}); err == nil {
			t.Fatal("BlockKey took a 5-byte hash")
		}
		// An operator may undo a block, once.
		if removed, err := db.UnblockKey(ctx, k.Hash); err != nil || !removed {
			t.Fatalf("UnblockKey = %v, %v", removed, err)
		}
		if removed, err := db.UnblockKey(ctx, k.Hash); err != nil || removed {
			t.Fatalf("UnblockKey again = %v, %v; want false", removed, err)
		}
		if blocked, _ := db.KeyBlocked(ctx, k.Hash); blocked {
			t.Fatal("the key is still blocked after UnblockKey")
		}

		// A damaged stored certificate still gets revoked: there is no key
		// to block, and the revocation must stand.
		damaged := issue(t, db, "int", []string{"d.example"}, later)
		if err := db.RevokeAndBlockKey(ctx, damaged, time.Now().UTC(), time.Time{}); err != nil {
			t.Fatalf("keyCompromise revocation of a row whose DER does not parse: %v", err)
		}
		// The backfill reads such a row once, not at every sweep.
		for i, want := range []int{1, 0} {
			if filled, bad, err := db.BackfillKeyHashes(ctx); err != nil || filled != 0 || bad != want {
				t.Fatalf("backfill %d with a damaged row: %d filled, %d unparsable, %v; want 0, %d", i, filled, bad, err, want)
			}
		}
	})
}

// TestBlockedKeysQueryIndexed: the periodic search for certificates of
// blocked keys starts from the blocked keys and looks certificates up by
// key hash; it walked every valid certificate on SQLite before.
func TestBlockedKeysQueryIndexed(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	if p := sqlitePlan(t, db, storage.BlockedCertsQuery, "valid", "revoked", 1, 0); !strings.Contains(p, "SEARCH c USING INDEX certificates_key_hash") || strings.Contains(p, "status_created") {
		t.Fatalf("plan:\n%swant certificates looked up by key hash", p)
	}
}
