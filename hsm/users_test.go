package hsm

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestDeleteUserWhoOwnsAKey: deleting a user who owns a key is refused
// with ErrExists, in one message that ends with what to do (a review saw
// "…; destroy it first: object already exists", the sentinel's text
// appended).
func TestDeleteUserWhoOwnsAKey(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	carol := f.newUser(t, "carol")
	k, err := carol.GenerateKey(ctx, KeySpec{Type: P256})
	if err != nil {
		t.Fatal(err)
	}
	err = f.officer.DeleteUser(ctx, "carol")
	if !errors.Is(err, ErrExists) {
		t.Fatalf("deleting a user who owns a key: %v, want ErrExists", err)
	}
	want := `deleting user "carol": the user still owns key ` + k.ID + "; a user is deleted only once its keys are destroyed, " +
		"which loses them (the CA's own keys cannot be). To recover a user without losing its keys: `ca hsm users reset`"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if strings.Contains(err.Error(), ErrExists.Detail) {
		t.Fatalf("error %q carries the sentinel's text", err)
	}
}
