package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// freshDB opens an empty database of the same dialect as db.
func freshDB(t *testing.T, db *storage.DB) *storage.DB {
	if db.Dialect() == storage.Postgres {
		return storagetest.Postgres(t)
	}
	return sqliteDB(t)
}

// source is a module with users and keys, ready to back up.
type source struct {
	m        *Module
	unseal   UnsealInput
	keys     map[string]crypto.PublicKey // key id → public key (asymmetric keys)
	rotated  string                      // id of a key with two versions
	aesID    string
	sigV1    []byte // signature by the rotated key's first version
	ct       []byte // AES-GCM ciphertext made by the source
	ecD      []byte // the imported P-256 key's private scalar
	edSeed   []byte
	aesKey   []byte
	auditLen int
}

func newSource(t *testing.T, db *storage.DB, o InitOptions) *source {
	t.Helper()
	ctx := context.Background()
	m := newModule(t, db)
	o.OfficerName, o.OfficerPIN = "co", officerPIN
	res, err := m.Initialize(ctx, o)
	if err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	s := &source{m: m, keys: map[string]crypto.PublicKey{}}
	switch o.Method {
	case MethodKeyFile:
		s.unseal.KeyFile = o.KeyFile
	case MethodPassphrase:
		s.unseal.Passphrase = o.Passphrase
	case MethodShamir:
		s.unseal.Shares = []string{res.Shares[0], res.Shares[len(res.Shares)-1]}
	}
	co, err := m.Login(ctx, "co", officerPIN)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ n, p string }{{"alice", alicePIN}, {"bob", bobPIN}} {
		if err := co.CreateUser(ctx, u.n, RoleUser, u.p); err != nil {
			t.Fatal(err)
		}
	}
	for range maxFailed { // bob is locked out: the lock must survive the restore
		m.Login(ctx, "bob", "wrong-pin")
	}
	alice, err := m.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	s.ecD, s.edSeed = ec.D.FillBytes(make([]byte, 32)), ed.Seed()
	s.aesKey = make([]byte, 32)
	rand.Read(s.aesKey)
	for _, k := range []struct {
		t   KeyType
		key any
	}{{P256, ec}, {Ed25519, ed}, {AES256, s.aesKey}} {
		ki, err := alice.ImportKey(ctx, KeySpec{Type: k.t, Label: "imported-" + string(k.t)}, k.key)
		if err != nil {
			t.Fatalf("import %s: %v", k.t, err)
		}
		if ki.PublicKey != nil {
			s.keys[ki.ID] = ki.PublicKey
		} else {
			s.aesID = ki.ID
		}
	}
	gen, err := alice.GenerateKey(ctx, KeySpec{Type: P384, Label: "generated"})
	if err != nil {
		t.Fatal(err)
	}
	d := sha512.Sum384([]byte("signed by version 1"))
	if s.sigV1, err = alice.Sign(ctx, gen.ID, d[:], crypto.SHA384); err != nil {
		t.Fatal(err)
	}
	rot, err := alice.RotateKey(ctx, gen.ID)
	if err != nil {
		t.Fatal(err)
	}
	s.keys[gen.ID], s.rotated = rot.PublicKey, gen.ID
	if s.ct, err = alice.Encrypt(ctx, s.aesID, []byte("sealed before the backup"), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *source) backup(t *testing.T, o BackupOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.m.Backup(context.Background(), &buf, o); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	rep, err := s.m.VerifyAudit(context.Background())
	if err != nil || rep.FirstBad != 0 {
		t.Fatalf("source audit after backup: %+v %v", rep, err)
	}
	es, _ := s.m.store.HSMAudit(context.Background(), 1, 0)
	if es[len(es)-1].Action != "hsm.backup" {
		t.Fatalf("last source audit entry is %q, want hsm.backup", es[len(es)-1].Action)
	}
	s.auditLen = len(es)
	return buf.Bytes()
}

// checkRestored unseals target with the source's material and checks keys,
// users and the audit chain.
func (s *source) checkRestored(t *testing.T, target *Module) {
	t.Helper()
	ctx := context.Background()
	es, _ := target.store.HSMAudit(ctx, 1, 0)
	if len(es) != s.auditLen+1 || es[len(es)-1].Action != "hsm.restore" || !strings.Contains(es[len(es)-1].Details, "restored from backup") {
		t.Fatalf("target audit: %d entries (source %d), last %+v", len(es), s.auditLen, es[len(es)-1])
	}
	if err := target.Unseal(ctx, s.unseal); err != nil {
		t.Fatalf("unsealing the restored module with the original material: %v", err)
	}
	rep, err := target.VerifyAudit(ctx)
	if err != nil || rep.FirstBad != 0 || rep.Entries != s.auditLen+2 {
		t.Fatalf("restored audit: %+v %v", rep, err)
	}
	// The backup carries audit_auth_from, bound into the wrapped KEK: the
	// restored keystore keeps where authentication began.
	if rep.AuthBound != 1 || !rep.AuthBoundByUnseal || rep.AuthFrom != 1 || !rep.MACChecked {
		t.Fatalf("restored audit authentication: %+v", rep)
	}
	// The restore's own entry is authenticated too (an upgrade review
	// found it listed as from the previous release or written outside the
	// HSM after every restore).
	if len(rep.Unauthenticated) != 0 {
		t.Fatalf("restored audit lists entries as not authenticated: %+v", rep.UnauthEntries)
	}
	if _, err := target.Login(ctx, "co", officerPIN); err != nil {
		t.Fatalf("officer login after restore: %v", err)
	}
	if u, _ := target.store.HSMUser(ctx, "bob"); !u.Locked {
		t.Fatalf("bob was locked in the source; after restore: %v", err)
	}
	if _, err := target.Login(ctx, "alice", "wrong-pin"); !errors.Is(err, ErrBadPIN) {
		t.Fatalf("wrong PIN after restore: %v", err)
	}
	alice, err := target.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatalf("alice login after restore: %v", err)
	}
	for id, pub := range s.keys {
		ki, err := alice.GetKey(ctx, id)
		if err != nil {
			t.Fatalf("key %s after restore: %v", id, err)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(ki.PublicKey) {
			t.Fatalf("key %s has a different public key after restore", id)
		}
		msg := []byte("signed after restore")
		var digest []byte
		var opts crypto.SignerOpts = crypto.Hash(0)
		switch pub.(type) {
		case *ecdsa.PublicKey:
			h := crypto.SHA256
			if pub.(*ecdsa.PublicKey).Curve == elliptic.P384() {
				h = crypto.SHA384
			}
			hh := h.New()
			hh.Write(msg)
			digest, opts = hh.Sum(nil), h
		default:
			digest = msg
		}
		sig, err := alice.Sign(ctx, id, digest, opts)
		if err != nil {
			t.Fatalf("sign with %s after restore: %v", id, err)
		}
		// Verified with the public key recorded from the source module.
		if err := verifyWith(pub, digest, sig, opts); err != nil {
			t.Fatalf("signature by restored key %s does not verify under the source public key: %v", id, err)
		}
		if id == s.rotated {
			if ki.Version != 2 {
				t.Fatalf("rotated key restored at version %d", ki.Version)
			}
			if err := alice.Verify(ctx, id, 2, digest, sig, opts); err != nil {
				t.Fatalf("verify with current version: %v", err)
			}
			if err := alice.Verify(ctx, id, 1, digest, sig, opts); !errors.Is(err, ErrVerification) {
				t.Fatalf("old version verified a new-version signature: %v", err)
			}
			d1 := sha512.Sum384([]byte("signed by version 1"))
			if err := alice.Verify(ctx, id, 1, d1[:], s.sigV1, crypto.SHA384); err != nil {
				t.Fatalf("version 1 signature made before the backup: %v", err)
			}
		}
	}
	pt, err := alice.Decrypt(ctx, s.aesID, s.ct, nil)
	if err != nil || string(pt) != "sealed before the backup" {
		t.Fatalf("decrypting a source ciphertext after restore: %q %v", pt, err)
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	methods := []struct {
		name string
		init func(t *testing.T) InitOptions
		opts BackupOptions
		in   func(s *source) RestoreInput
	}{
		{"keyfile", func(t *testing.T) InitOptions {
			return InitOptions{Method: MethodKeyFile, KeyFile: filepath.Join(t.TempDir(), "k")}
		}, BackupOptions{Actor: "co"}, func(s *source) RestoreInput { return RestoreInput{Unseal: s.unseal} }},
		{"passphrase", func(t *testing.T) InitOptions {
			return InitOptions{Method: MethodPassphrase, Passphrase: []byte("correct horse battery")}
		}, BackupOptions{}, func(s *source) RestoreInput { return RestoreInput{Unseal: s.unseal} }},
		{"shamir", func(t *testing.T) InitOptions {
			return InitOptions{Method: MethodShamir, Threshold: 2, Shares: 3}
		}, BackupOptions{}, func(s *source) RestoreInput { return RestoreInput{Unseal: s.unseal} }},
		{"backup-passphrase", func(t *testing.T) InitOptions {
			return InitOptions{Method: MethodKeyFile, KeyFile: filepath.Join(t.TempDir(), "k")}
		}, BackupOptions{Passphrase: []byte("backup passphrase 1")}, func(s *source) RestoreInput {
			return RestoreInput{BackupPassphrase: []byte("backup passphrase 1"), Actor: "restorer"}
		}},
	}
	for _, mt := range methods {
		t.Run(mt.name, func(t *testing.T) {
			storagetest.Each(t, func(t *testing.T, db *storage.DB) {
				s := newSource(t, db, mt.init(t))
				file := s.backup(t, mt.opts)
				target := newModule(t, freshDB(t, db))
				if mt.opts.Passphrase != nil {
					// The module's own material does not open a passphrase backup.
					err := target.Restore(ctx, bytes.NewReader(file), RestoreInput{Unseal: s.unseal})
					if !errors.Is(err, ErrInvalid) {
						t.Fatalf("passphrase backup without the passphrase: %v", err)
					}
					err = target.Restore(ctx, bytes.NewReader(file), RestoreInput{BackupPassphrase: []byte("not the passphrase")})
					if !errors.Is(err, ErrBadUnseal) {
						t.Fatalf("wrong backup passphrase: %v", err)
					}
				}
				if err := target.Restore(ctx, bytes.NewReader(file), mt.in(s)); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				s.checkRestored(t, target)
			})
		})
	}
}

func TestRestoreRefusesWrongMaterial(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	s := newSource(t, db, InitOptions{Method: MethodKeyFile, KeyFile: filepath.Join(t.TempDir(), "k")})
	file := s.backup(t, BackupOptions{})
	otherKey := filepath.Join(t.TempDir(), "other")
	newSource(t, sqliteDB(t), InitOptions{Method: MethodKeyFile, KeyFile: otherKey})
	target := newModule(t, sqliteDB(t))
	err := target.Restore(ctx, bytes.NewReader(file), RestoreInput{Unseal: UnsealInput{KeyFile: otherKey}})
	if !errors.Is(err, ErrBadUnseal) {
		t.Fatalf("restore with another module's key file: %v", err)
	}
	assertEmpty(t, target)
}

func assertEmpty(t *testing.T, m *Module) {
	t.Helper()
	ctx := context.Background()
	ok, err := m.Initialized(ctx)
	us, _ := m.store.HSMUsers(ctx)
	objs, _ := m.store.HSMObjects(ctx)
	seq, _, _ := m.store.HSMAuditHead(ctx)
	if ok || err != nil || len(us) != 0 || len(objs) != 0 || seq != 0 {
		t.Fatalf("target is not empty: initialised=%v users=%d objects=%d audit=%d err=%v", ok, len(us), len(objs), seq, err)
	}
}
