package hsm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"

	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestNoKeyBytesAtRestOrInLogs imports known keys, then searches the SQLite
// file (after a WAL checkpoint and close) and the captured debug log for
// their secret bytes.
func TestNoKeyBytesAtRestOrInLogs(t *testing.T) {
	ctx := context.Background()
	db, path := storagetest.SQLite(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := New(ctx, Options{Store: db, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	kf := t.TempDir() + "/k"
	if _, err := m.Initialize(ctx, InitOptions{Method: MethodKeyFile, KeyFile: kf, OfficerName: "co", OfficerPIN: officerPIN}); err != nil {
		t.Fatal(err)
	}
	co, _ := m.Login(ctx, "co", officerPIN)
	if err := co.CreateUser(ctx, "alice", RoleUser, alicePIN); err != nil {
		t.Fatal(err)
	}
	alice, err := m.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	aes := make([]byte, 32)
	rand.Read(aes)
	secrets := map[string][]byte{
		"ecdsa D":      ec.D.FillBytes(make([]byte, 32)),
		"ed25519 seed": ed.Seed(),
		"rsa D":        rk.D.Bytes(),
		"rsa P":        rk.Primes[0].Bytes(),
		"aes secret":   aes,
		"PIN":          []byte(alicePIN),
	}
	for i, k := range []struct {
		t   KeyType
		key any
	}{{P256, ec}, {Ed25519, ed}, {RSA2048, rk}, {AES256, aes}} {
		if _, err := alice.ImportKey(ctx, KeySpec{Type: k.t, Label: string(rune('a' + i)), Extractable: true}, k.key); err != nil {
			t.Fatalf("import %s: %v", k.t, err)
		}
	}
	// A failing login and the seal add log output to search.
	m.Login(ctx, "alice", "wrong-pin")
	m.Close(ctx)
	if _, err := db.Exec(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	var files []byte
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if err == nil {
			files = append(files, b...)
		}
	}
	if len(files) < 4096 {
		t.Fatalf("database file is only %d bytes", len(files))
	}
	for name, s := range secrets {
		// 16 bytes of a secret anywhere is a leak; shorter runs occur by chance.
		for off := 0; off+16 <= len(s); off += 8 {
			if bytes.Contains(files, s[off:off+16]) {
				t.Errorf("%s bytes found in the database file", name)
				break
			}
			if bytes.Contains(logs.Bytes(), s[off:off+16]) || bytes.Contains(logs.Bytes(), []byte(hex.EncodeToString(s[off:off+16]))) {
				t.Errorf("%s bytes found in the log", name)
				break
			}
		}
	}
	if bytes.Contains(logs.Bytes(), []byte(alicePIN)) || bytes.Contains(files, []byte(alicePIN)) {
		t.Error("PIN found")
	}
	if logs.Len() == 0 {
		t.Error("nothing was logged; the log search proves nothing")
	}
}
