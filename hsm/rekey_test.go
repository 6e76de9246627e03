package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// tokenWrapper stands in for a PKCS#11 token's AES key.
type tokenWrapper struct{ key []byte }

func newTokenWrapper() *tokenWrapper {
	k := make([]byte, 32)
	rand.Read(k)
	return &tokenWrapper{key: k}
}

func (w *tokenWrapper) Seal(plaintext, aad []byte) ([]byte, error) {
	return sealKEKAAD(w.key, aad, plaintext)
}
func (w *tokenWrapper) Open(sealed, aad []byte) ([]byte, error) {
	return openKEKAAD(w.key, aad, sealed)
}

// newMaterialFor is new unseal material of method and the input that
// unseals with it once the Material is in place (shares filled in by
// withShares).
func newMaterialFor(t *testing.T, method UnsealMethod) (Material, UnsealInput) {
	switch method {
	case MethodKeyFile:
		kf := filepath.Join(t.TempDir(), "new.key")
		return Material{Method: method, KeyFile: kf}, UnsealInput{KeyFile: kf}
	case MethodPassphrase:
		p := []byte("a new passphrase for the module")
		return Material{Method: method, Passphrase: p}, UnsealInput{Passphrase: p}
	case MethodShamir:
		return Material{Method: method, Threshold: 2, Shares: 3}, UnsealInput{}
	case MethodPKCS11:
		w := newTokenWrapper()
		return Material{Method: method, Wrapper: w}, UnsealInput{Wrapper: w}
	}
	t.Fatalf("no material for %q", method)
	return Material{}, UnsealInput{}
}

func withShares(in UnsealInput, shares []string) UnsealInput {
	if len(shares) > 0 {
		in.Shares = []string{shares[2], shares[0]}
	}
	return in
}

// checkUnsealsOnlyWith opens a fresh module over db and checks that old no
// longer unseals it, that in does, that the source's keys still work
// (nothing was sealed again) and that the audit log verifies, every entry
// authenticated, with its start bound to the new material.
func (s *source) checkUnsealsOnlyWith(t *testing.T, db Store, old, in UnsealInput) {
	t.Helper()
	ctx := context.Background()
	m := newModule(t, db)
	if err := m.Unseal(ctx, old); err == nil {
		t.Fatal("the old unseal material still unseals the module")
	}
	if err := m.Unseal(ctx, in); err != nil {
		t.Fatalf("unsealing with the new material: %v", err)
	}
	rep, err := m.VerifyAudit(ctx)
	// Only the refused unseals, written while sealed, carry no MAC.
	delete(rep.Unauthenticated, "unseal.fail")
	if err != nil || rep.FirstBad != 0 || !rep.MACChecked || !rep.AuthBoundByUnseal || len(rep.Unauthenticated) != 0 {
		t.Fatalf("audit after rekey: %+v %v", rep, err)
	}
	alice, err := m.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatalf("alice after rekey: %v", err)
	}
	if pt, err := alice.Decrypt(ctx, s.aesID, s.ct, nil); err != nil || string(pt) != "sealed before the backup" {
		t.Fatalf("decrypting after rekey: %q %v", pt, err)
	}
	if _, err := alice.Sign(ctx, s.rotated, make([]byte, 48), crypto.SHA384); err != nil {
		t.Fatalf("signing after rekey: %v", err)
	}
}

func TestRekey(t *testing.T) {
	ctx := context.Background()
	for _, to := range []UnsealMethod{MethodKeyFile, MethodPassphrase, MethodShamir, MethodPKCS11} {
		t.Run(string(to), func(t *testing.T) {
			storagetest.Each(t, func(t *testing.T, db *storage.DB) {
				s := newSource(t, db, InitOptions{Method: MethodPassphrase, Passphrase: []byte("the original passphrase")})
				old := s.unseal
				co, err := s.m.Login(ctx, "co", officerPIN)
				if err != nil {
					t.Fatal(err)
				}
				mat, in := newMaterialFor(t, to)
				res, err := co.Rekey(ctx, old, mat)
				if err != nil {
					t.Fatalf("Rekey: %v", err)
				}
				if (to == MethodShamir) != (len(res.Shares) == 3) {
					t.Fatalf("%d shares for %s", len(res.Shares), to)
				}
				in = withShares(in, res.Shares)
				e := lastAudit(t, db)
				if e.Action != "hsm.rekey" || e.Actor != "co" || !strings.HasPrefix(e.Details, "from=passphrase to method="+string(to)) || len(e.MAC) == 0 {
					t.Fatalf("rekey audit entry: %+v", e)
				}
				if strings.Contains(e.Details, "passphrase for the module") || strings.Contains(e.Details, "srs1-") {
					t.Fatalf("the audit entry holds material: %q", e.Details)
				}
				meta, _ := db.HSMMeta(ctx)
				if _, ok := meta[metaKDF]; ok != (to == MethodPassphrase) {
					t.Fatalf("after a rekey to %s the keystore keeps kdf: %v", to, ok)
				}
				if _, ok := meta[metaShamir]; ok != (to == MethodShamir) {
					t.Fatalf("after a rekey to %s the keystore has shamir: %v", to, ok)
				}
				// The module keeps running on the KEK it holds.
				if _, err := s.m.Login(ctx, "alice", alicePIN); err != nil {
					t.Fatalf("login on the rekeyed module: %v", err)
				}
				s.checkUnsealsOnlyWith(t, db, old, in)
				// And again, from the new method back to a passphrase.
				co2, err := s.m.Login(ctx, "co", officerPIN)
				if err != nil {
					t.Fatal(err)
				}
				back := []byte("a third passphrase")
				if _, err := co2.Rekey(ctx, in, Material{Method: MethodPassphrase, Passphrase: back}); err != nil {
					t.Fatalf("second rekey: %v", err)
				}
				s.checkUnsealsOnlyWith(t, db, in, UnsealInput{Passphrase: back})
			})
		})
	}
}

func TestRekeyRefused(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	s := newSource(t, db, InitOptions{Method: MethodKeyFile, KeyFile: filepath.Join(t.TempDir(), "unseal.key")})
	metaBefore, _ := db.HSMMeta(ctx)
	unchanged := func(t *testing.T) {
		t.Helper()
		meta, _ := db.HSMMeta(ctx)
		for k, v := range metaBefore {
			if !bytes.Equal(meta[k], v) {
				t.Fatalf("meta %s changed", k)
			}
		}
		s.checkUnsealsOnlyWith(t, db, UnsealInput{Passphrase: []byte("not the material")}, s.unseal)
	}
	newKey := filepath.Join(t.TempDir(), "new.key")
	to := Material{Method: MethodKeyFile, KeyFile: newKey}
	noNewKey := func(t *testing.T) {
		t.Helper()
		if _, err := os.Stat(newKey); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused rekey left its key file: %v", err)
		}
	}

	t.Run("not an officer", func(t *testing.T) {
		alice, err := s.m.Login(ctx, "alice", alicePIN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Rekey(ctx, s.unseal, to); !errors.Is(err, ErrForbidden) {
			t.Fatalf("crypto user rekeyed: %v", err)
		}
		noNewKey(t)
		unchanged(t)
	})
	t.Run("wrong current material", func(t *testing.T) {
		co, _ := s.m.Login(ctx, "co", officerPIN)
		wrong := filepath.Join(t.TempDir(), "wrong.key")
		os.WriteFile(wrong, make([]byte, 32), 0o600)
		if _, err := co.Rekey(ctx, UnsealInput{KeyFile: wrong}, to); !errors.Is(err, ErrBadUnseal) {
			t.Fatalf("rekey with a wrong key file: %v", err)
		}
		if _, err := co.Rekey(ctx, UnsealInput{}, to); !errors.Is(err, ErrInvalid) {
			t.Fatalf("rekey without the current material: %v", err)
		}
		noNewKey(t)
		unchanged(t)
	})
	t.Run("new key file exists", func(t *testing.T) {
		co, _ := s.m.Login(ctx, "co", officerPIN)
		if _, err := co.Rekey(ctx, s.unseal, Material{Method: MethodKeyFile, KeyFile: s.unseal.KeyFile}); err == nil {
			t.Fatal("rekey over the current key file succeeded")
		}
		unchanged(t)
	})
	t.Run("bad new material", func(t *testing.T) {
		co, _ := s.m.Login(ctx, "co", officerPIN)
		for _, bad := range []Material{{Method: MethodPassphrase, Passphrase: []byte("short")},
			{Method: MethodShamir, Threshold: 1, Shares: 3}, {Method: MethodPKCS11}, {Method: "vault"}} {
			if _, err := co.Rekey(ctx, s.unseal, bad); !errors.Is(err, ErrInvalid) {
				t.Fatalf("rekey to %+v: %v", bad, err)
			}
		}
		unchanged(t)
	})
}

// failingStore refuses its next keystore write, as a database that went
// away between the rekey's read and its write.
type failingStore struct {
	Store
	fail bool
}

func (f *failingStore) ApplyHSM(ctx context.Context, ch storage.HSMChange) error {
	if f.fail {
		f.fail = false
		return errors.New("database went away")
	}
	return f.Store.ApplyHSM(ctx, ch)
}

// TestRekeyFailureKeepsOldMaterial: a rekey whose write fails, or that
// finds the keystore rekeyed meanwhile by another node, changes nothing,
// and its new key file is removed.
func TestRekeyFailureKeepsOldMaterial(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		kf := filepath.Join(t.TempDir(), "unseal.key")
		fs := &failingStore{Store: db}
		m := newModule(t, fs)
		if _, err := m.Initialize(ctx, InitOptions{Method: MethodKeyFile, KeyFile: kf, OfficerName: "co", OfficerPIN: officerPIN}); err != nil {
			t.Fatal(err)
		}
		co, err := m.Login(ctx, "co", officerPIN)
		if err != nil {
			t.Fatal(err)
		}
		newKey := filepath.Join(t.TempDir(), "new.key")
		fs.fail = true
		if _, err := co.Rekey(ctx, UnsealInput{KeyFile: kf}, Material{Method: MethodKeyFile, KeyFile: newKey}); !errors.Is(err, ErrAuditFailed) {
			t.Fatalf("rekey with a failing write: %v", err)
		}
		if _, err := os.Stat(newKey); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the failed rekey left its key file: %v", err)
		}
		// Another node rekeys first: this one's conditional write is refused.
		other := newModule(t, db)
		if err := other.Unseal(ctx, UnsealInput{KeyFile: kf}); err != nil {
			t.Fatal(err)
		}
		oco, err := other.Login(ctx, "co", officerPIN)
		if err != nil {
			t.Fatal(err)
		}
		hs := &hookStore{Store: db}
		m.store = hs
		pass := []byte("the other node's passphrase")
		hs.setBeforeApply(func() {
			if _, err := oco.Rekey(ctx, UnsealInput{KeyFile: kf}, Material{Method: MethodPassphrase, Passphrase: pass}); err != nil {
				t.Errorf("the other node's rekey: %v", err)
			}
		})
		if _, err := co.Rekey(ctx, UnsealInput{KeyFile: kf}, Material{Method: MethodKeyFile, KeyFile: newKey}); err == nil {
			t.Fatal("a rekey over another node's rekey succeeded")
		}
		if _, err := os.Stat(newKey); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the refused rekey left its key file: %v", err)
		}
		fresh := newModule(t, db)
		if err := fresh.Unseal(ctx, UnsealInput{Passphrase: pass}); err != nil {
			t.Fatalf("the other node's passphrase: %v", err)
		}
		if rep, err := fresh.VerifyAudit(ctx); err != nil || rep.FirstBad != 0 || !rep.MACChecked || len(rep.Unauthenticated) != 0 {
			t.Fatalf("audit: %+v %v", rep, err)
		}
	})
}

// TestRestoreRekeyed is the disaster path: the module's key file is lost,
// a passphrase backup is restored with new material, which then unseals it;
// the backup's own material does not.
func TestRestoreRekeyed(t *testing.T) {
	ctx := context.Background()
	for _, to := range []UnsealMethod{MethodKeyFile, MethodPassphrase, MethodShamir, MethodPKCS11} {
		t.Run(string(to), func(t *testing.T) {
			storagetest.Each(t, func(t *testing.T, db *storage.DB) {
				kf := filepath.Join(t.TempDir(), "unseal.key")
				s := newSource(t, db, InitOptions{Method: MethodKeyFile, KeyFile: kf})
				file := s.backup(t, BackupOptions{Passphrase: []byte("backup passphrase")})
				old := s.unseal
				tdb := freshDB(t, db)
				target := newModule(t, tdb)
				mat, in := newMaterialFor(t, to)
				if _, err := target.RestoreRekeyed(ctx, bytes.NewReader(file), RestoreInput{BackupPassphrase: []byte("wrong passphrase")}, mat); !errors.Is(err, ErrBadUnseal) {
					t.Fatalf("restore with a wrong backup passphrase: %v", err)
				}
				if to == MethodKeyFile {
					if _, err := os.Stat(mat.KeyFile); !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("a refused restore wrote the key file: %v", err)
					}
				}
				assertEmpty(t, target)
				res, err := target.RestoreRekeyed(ctx, bytes.NewReader(file), RestoreInput{BackupPassphrase: []byte("backup passphrase"), Actor: "cli"}, mat)
				if err != nil {
					t.Fatalf("RestoreRekeyed: %v", err)
				}
				in = withShares(in, res.Shares)
				e := lastAudit(t, tdb)
				if e.Action != "hsm.restore" || !strings.Contains(e.Details, "rekeyed from=keyfile to method="+string(to)) || len(e.MAC) == 0 {
					t.Fatalf("restore entry: %+v", e)
				}
				s.unseal = in
				s.checkRestored(t, target)
				if err := newModule(t, tdb).Unseal(ctx, old); err == nil {
					t.Fatal("the backed-up module's material unseals the rekeyed restore")
				}
			})
		})
	}
}

// The backed-up module's material still works for a restore without new
// material (Restore is unchanged).
func TestRestoreRekeyedKeepsBackupMeta(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	s := newSource(t, db, InitOptions{Method: MethodShamir, Threshold: 2, Shares: 3})
	file := s.backup(t, BackupOptions{})
	target := newModule(t, sqliteDB(t))
	mat, in := newMaterialFor(t, MethodPassphrase)
	// A backup wrapped for the module opens with its own material, then
	// takes the new.
	if _, err := target.RestoreRekeyed(ctx, bytes.NewReader(file), RestoreInput{Unseal: s.unseal}, mat); err != nil {
		t.Fatal(err)
	}
	meta, _ := target.store.HSMMeta(ctx)
	if string(meta[metaMethod]) != "passphrase" || meta[metaShamir] != nil || !slices.Equal(meta[metaAuditAuthFrom], []byte("1")) {
		t.Fatalf("restored meta: method %q shamir %v audit_auth_from %q", meta[metaMethod], meta[metaShamir] != nil, meta[metaAuditAuthFrom])
	}
	s.unseal = in
	s.checkRestored(t, target)
}
