package hsm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/strongroom-pki/strongroom/storage"
)

// craftedKDFs are Argon2 parameters a review found accepted unchecked: zero
// passes or threads panicked, 64 GiB of memory was allocated, all before
// anything was authenticated.
var craftedKDFs = map[string]passphraseKDF{
	"zero passes":      {Salt: make([]byte, 16), Time: 0, Memory: 64 * 1024, Threads: 4},
	"zero threads":     {Salt: make([]byte, 16), Time: 3, Memory: 64 * 1024, Threads: 0},
	"64 GiB":           {Salt: make([]byte, 16), Time: 3, Memory: 67108864, Threads: 4},
	"a million passes": {Salt: make([]byte, 16), Time: 1 << 20, Memory: 64 * 1024, Threads: 4},
	"1 KiB":            {Salt: make([]byte, 16), Time: 3, Memory: 1, Threads: 1},
}

func TestUnsealRefusesCraftedKDF(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	m := newModule(t, db)
	if _, err := m.Initialize(ctx, InitOptions{Method: MethodPassphrase, Passphrase: []byte("a passphrase"), OfficerName: "co", OfficerPIN: officerPIN}); err != nil {
		t.Fatal(err)
	}
	m.Seal()
	for name, kdf := range craftedKDFs {
		t.Run(name, func(t *testing.T) {
			raw, _ := json.Marshal(kdf)
			if err := db.ApplyHSM(ctx, storage.HSMChange{Meta: map[string][]byte{metaKDF: raw}}); err != nil {
				t.Fatal(err)
			}
			err := m.Unseal(ctx, UnsealInput{Passphrase: []byte("a passphrase")})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "Argon2 parameters out of range") {
				t.Fatalf("unseal with %s: %v", name, err)
			}
		})
	}
}

func TestRestoreRefusesCraftedKDF(t *testing.T) {
	ctx := context.Background()
	pass := []byte("backup passphrase")
	for _, wrap := range []string{"backup passphrase", "module passphrase"} {
		for name, kdf := range craftedKDFs {
			t.Run(wrap+"/"+name, func(t *testing.T) {
				db := sqliteDB(t)
				in := RestoreInput{BackupPassphrase: pass}
				o := BackupOptions{Passphrase: pass}
				if wrap == "module passphrase" {
					in, o = RestoreInput{Unseal: UnsealInput{Passphrase: pass}}, BackupOptions{}
				}
				s := newSource(t, db, InitOptions{Method: MethodPassphrase, Passphrase: pass})
				file := withHeader(t, s.backup(t, o), func(h *backupHeader) {
					if h.BackupKDF != nil {
						h.BackupKDF = &kdf
						return
					}
					h.Meta[metaKDF], _ = json.Marshal(kdf)
				})
				target := newModule(t, sqliteDB(t))
				err := target.Restore(ctx, bytes.NewReader(file), in)
				if err == nil || !strings.Contains(err.Error(), "the backup is damaged or not a Strongroom backup: Argon2 parameters out of range") {
					t.Fatalf("restore: %v", err)
				}
				assertEmpty(t, target)
			})
		}
	}
}

// withHeader rewrites a backup's (unauthenticated) header.
func withHeader(t *testing.T, file []byte, edit func(*backupHeader)) []byte {
	t.Helper()
	h, prefix, sealed, err := parseBackup(file)
	if err != nil {
		t.Fatal(err)
	}
	edit(&h)
	hdr, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte{}, prefix[:6]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(hdr)))
	out = append(out, hdr...)
	return append(out, sealed...)
}

// TestPINHashParameters: a new PIN hash is Argon2id at OWASP's minimum for
// 19 MiB (t=2; a review found t=1), and a hash an earlier release made with
// t=1 still verifies: the parameters travel in the stored hash.
func TestPINHashParameters(t *testing.T) {
	h, err := hashPIN("a-pin-123456")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "$m=19456,t=2,p=1$") || !checkPIN(h, "a-pin-123456") || checkPIN(h, "another-pin-1") {
		t.Fatalf("a new PIN hash: %s", h)
	}
	// An earlier release's hash of "old-pin-12345": t=1.
	salt := []byte("0123456789abcdef")
	enc := base64.RawStdEncoding
	old := "$argon2id$v=19$m=19456,t=1,p=1$" + enc.EncodeToString(salt) + "$" +
		enc.EncodeToString(argon2.IDKey([]byte("old-pin-12345"), salt, 1, 19456, 1, 32))
	if !checkPIN(old, "old-pin-12345") || checkPIN(old, "a-pin-123456") {
		t.Fatal("a hash of the earlier parameters does not verify its PIN alone")
	}
}
