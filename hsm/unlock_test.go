package hsm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnlockWithUnseal(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	for range maxFailed {
		f.m.Login(ctx, "co", "wrong-pin-1")
	}
	if _, err := f.m.Login(ctx, "co", officerPIN); err == nil {
		t.Fatal("the officer is not locked")
	}
	other := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(other, make([]byte, 32), 0o600)
	if err := f.m.UnlockWithUnseal(ctx, "co", UnsealInput{KeyFile: other}); !errors.Is(err, ErrBadUnseal) {
		t.Fatalf("unlock with another key file: %v", err)
	}
	f.m.Seal()
	if err := f.m.UnlockWithUnseal(ctx, "co", UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatalf("unlock of a sealed module: %v", err)
	}
	if _, err := f.m.Login(ctx, "co", officerPIN); err != nil {
		t.Fatalf("login after the unlock: %v", err)
	}
	es, _ := f.db.HSMAudit(ctx, 1, 0)
	var unlocks []string
	for _, e := range es {
		if e.Action == "user.unlock" {
			unlocks = append(unlocks, e.Details)
		}
	}
	if len(unlocks) != 1 || !strings.Contains(unlocks[0], "by=unseal-holders") {
		t.Fatalf("unlock audit entries: %q", unlocks)
	}
}

func TestChangePINWrongOldPINCounts(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	if err := f.alice.ChangePIN(ctx, "not-alices-pin", "alice-pin-2"); !errors.Is(err, ErrBadPIN) {
		t.Fatalf("ChangePIN with a wrong old PIN: %v", err)
	}
	u, _ := f.db.HSMUser(ctx, "alice")
	es, _ := f.db.HSMAudit(ctx, 1, 0)
	if u.Failures != 1 || es[len(es)-1].Action != "login.fail" || !strings.Contains(es[len(es)-1].Details, "during=pin-change") {
		t.Fatalf("failures %d, last audit entry %+v", u.Failures, es[len(es)-1])
	}
	if err := f.alice.ChangePIN(ctx, alicePIN, "alice-pin-2"); err != nil {
		t.Fatal(err)
	}
	if u, _ := f.db.HSMUser(ctx, "alice"); u.Failures != 0 {
		t.Fatalf("failures %d after a successful change", u.Failures)
	}
	f.login(t, "alice", "alice-pin-2")
}

func TestPINPolicy(t *testing.T) {
	for pin, ok := range map[string]bool{
		"aaaaaaaa": false, "        ": false, " pin-with-space": false, "pin-12\n": false, "short": false,
		"ééééééé": false, "pin-1234": true, "é-pin-1": true,
	} {
		if err := validPIN(pin); (err == nil) != ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("validPIN(%q): %v", pin, err)
		}
	}
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	if err := f.officer.CreateUser(ctx, "dora", RoleUser, "11111111"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CreateUser with a repeated-character PIN: %v", err)
	}
	if err := f.alice.ChangePIN(ctx, alicePIN, "   \t   "); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ChangePIN to white space: %v", err)
	}
}
