package core

import (
	"errors"
	"testing"
)

// TestRestate: a restated sentinel says only its own detail, keeps the
// sentinel's kind and matches it with errors.Is; Because appends the
// sentinel's detail.
func TestRestate(t *testing.T) {
	sentinel := Errorf(KindConflict, "object already exists")
	err := Restate(sentinel, "the user still owns a key; destroy it first")
	if err.Error() != "the user still owns a key; destroy it first" || !errors.Is(err, sentinel) ||
		KindOf(err) != KindConflict || DetailOf(err) != err.Detail {
		t.Fatalf("Restate: %q, kind %v, errors.Is %v", err, KindOf(err), errors.Is(err, sentinel))
	}
	if err := Because(sentinel, "creating user"); err.Error() != "creating user: object already exists" || !errors.Is(err, sentinel) {
		t.Fatalf("Because: %q", err)
	}
}
