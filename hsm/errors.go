package hsm

import (
	"errors"
	"fmt"

	"github.com/strongroom-pki/strongroom/core"
)

// Errors callers branch on. Each is a core.Error, so front ends can map the
// kind; HSM methods wrap them with what was being done. None carries a PIN or
// key byte.
var (
	ErrSealed         = core.Errorf(core.KindUnavailable, "hsm is sealed")
	ErrNotInitialized = core.Errorf(core.KindUnavailable, "hsm is not initialised")
	ErrInitialized    = core.Errorf(core.KindConflict, "hsm is already initialised")
	ErrSelfTestFailed = core.Errorf(core.KindUnavailable, "hsm self-test failed; the module refuses all operations")
	ErrNotLoggedIn    = core.Errorf(core.KindUnauthenticated, "session is closed or the module was sealed")
	// ErrBadPIN is every failed login: a wrong PIN, an unknown user and a
	// locked user look the same to the caller, so a login attempt does not
	// tell whether a user exists or is locked; the audit entry has the
	// reason.
	ErrBadPIN = core.Errorf(core.KindUnauthenticated, "wrong user name or PIN, or the user is locked; an officer or the unseal holders can unlock it")
	// ErrPINFinalTry refuses a program's login with a stored PIN when one
	// more failure would lock the user (Module.LoginStored).
	ErrPINFinalTry     = core.Errorf(core.KindUnavailable, "a stored PIN is not tried on a user's last login before it locks: check the PIN (was it changed on another node?), then log in once with it by hand or have an officer unlock the user")
	ErrForbidden       = core.Errorf(core.KindForbidden, "operation not permitted for this user or key")
	ErrNotFound        = core.Errorf(core.KindNotFound, "no such object")
	ErrNotExtractable  = core.Errorf(core.KindForbidden, "key is not extractable")
	ErrCorrupt         = core.Errorf(core.KindInternal, "stored object fails its integrity check")
	ErrBadUnseal       = core.Errorf(core.KindUnauthenticated, "unseal material is wrong")
	ErrInvalid         = core.Errorf(core.KindMalformed, "invalid argument")
	ErrExists          = core.Errorf(core.KindConflict, "object already exists")
	ErrVerification    = core.Errorf(core.KindRejected, "verification failed")
	ErrUnsupported     = core.Errorf(core.KindRejected, "operation not supported by this key")
	ErrAuditFailed     = core.Errorf(core.KindUnavailable, "audit log could not be written; operation refused")
	ErrWrongKeyVersion = core.Errorf(core.KindNotFound, "no such key version")
)

// errf is a sentinel with a formatted reason: errors.Is(err, sentinel)
// holds, and the message says what happened, to logs and (except for
// internal kinds) to clients. Reasons name keys, users and limits, never
// a PIN or key byte. For these sentinels the reason says all of it (what
// is wrong, what is taken, why the session ended, which material failed),
// so their text is not appended ("…; use an id: object already exists").
var saidByReason = map[*core.Error]bool{ErrInvalid: true, ErrExists: true, ErrNotLoggedIn: true, ErrBadUnseal: true}

func errf(sentinel *core.Error, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	if saidByReason[sentinel] {
		return core.Restate(sentinel, reason)
	}
	return core.Because(sentinel, reason)
}

func isNotFound(err error) bool { return errors.Is(err, core.ErrNotFound) || core.IsNotFound(err) }
