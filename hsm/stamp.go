package hsm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
)

// UserStamp is an opaque digest of what decides whether a user can log
// in: whether it exists, when it was created, its role, whether it is
// locked, whether it is on its last try (LoginStored refuses then), its
// PIN hash and its MAC (usermac.go). Two stamps of one user are equal
// until one of these changes. The failed-login counter itself is left
// out, so a failed login that neither locks the user nor leaves it one
// try leaves the stamp as it was; an unlock or a correct login that clears
// a last try changes it. The PIN hash goes in whole (salt and all) and only through
// SHA-256: the stamp gives no way to test a PIN.
type UserStamp [sha256.Size]byte

// absentStamp is the stamp of a user that does not exist.
var absentStamp = UserStamp(sha256.Sum256([]byte("absent")))

// Absent reports whether the stamp is of a user that does not exist.
func (s UserStamp) Absent() bool { return s == absentStamp }

// UserStamp reads name's stored row and returns its stamp. It needs no
// session and works sealed: a process that could not log in watches with
// it for the change (an unlock, a new PIN, a re-created user) after which
// one more login may succeed, instead of retrying logins that each count
// toward the lockout. A missing user has a stamp too.
func (m *Module) UserStamp(ctx context.Context, name string) (UserStamp, error) {
	u, err := m.store.HSMUser(ctx, name)
	if isNotFound(err) {
		return absentStamp, nil
	}
	if err != nil {
		return UserStamp{}, fmt.Errorf("reading hsm user %q: %w", name, err)
	}
	h := sha256.New()
	// Each field on its own line: no role or hash contains a newline.
	for _, f := range []string{"present", strconv.FormatInt(viewOf(u).created.UnixMicro(), 10), u.Role,
		strconv.FormatBool(u.Locked), strconv.FormatBool(u.Failures >= maxFailed-1), u.PINHash, hex.EncodeToString(u.MAC)} {
		h.Write([]byte(f + "\n"))
	}
	return UserStamp(h.Sum(nil)), nil
}

// Alive reports whether the session still works: nil, or ErrNotLoggedIn
// when it was closed or its user was deleted or given another role since
// it began (userview.go), ErrSealed, or the module's self-test failure.
// It reads nothing from the database.
func (s *Session) Alive() error {
	_, err := s.live()
	return err
}
