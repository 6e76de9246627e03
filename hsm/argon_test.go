package hsm

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"

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
