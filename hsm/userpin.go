package hsm

import (
	"context"
	"fmt"

	"github.com/strongroom-pki/strongroom/storage"
)

// A PIN is checked here, against the hash read before (Argon2id takes tens
// of milliseconds, too long to hold a database lock for), but what the
// check does to the user is decided by the database, in one conditional
// statement in the transaction that appends the audit entry
// (storage.HSMPINCheck): processes and nodes sharing the keystore each
// hold only their own m.mu, so a row computed here from that read and
// written back would lose their writes. Counted that way, N wrong PINs
// tried at once anywhere count exactly min(N, maxFailed) failures before
// the lockout, the entries say failures=1 to 5 once each, a lockout is
// never undone by a login, a failure or a PIN change read before it, and a
// failure never writes back a PIN hash another process has replaced.
//
// The counter and the lock are plain columns the statement can change:
// the user rows' MAC leaves them out (usermac.go).

// recordPIN records a check of name's PIN against hash (right: it
// matched) with its audit entry, which reports the outcome as stored, and
// returns it. during says what the PIN was given for ("login",
// "pin-change"). A right PIN whose row, as it stands in the transaction,
// no longer verifies (altered outside the HSM since it was read and
// checked: a role raised meanwhile) is refused as tampered. Callers hold
// m.mu, with the module unsealed under the state the row was checked with.
// spareLast leaves a wrong PIN uncounted when it would lock the user
// (storage.HSMPINSpared; LoginStored).
func (m *Module) recordPIN(ctx context.Context, name, hash string, right bool, during string, spareLast bool) (*storage.HSMPINCheck, error) {
	st := m.state.Load()
	c := &storage.HSMPINCheck{Name: name, PINHash: hash, Right: right, Limit: maxFailed, SpareLast: spareLast}
	var tampered bool
	err := m.applyDescribed(ctx, st, storage.HSMChange{PINCheck: c}, name, name, "recording PIN check",
		func() (string, string) {
			tampered = c.Outcome == storage.HSMPINAccepted && st != nil && !st.userVerifies(c.User)
			if tampered {
				return "login.fail", withDuring("reason=tampered-user", during)
			}
			return pinAudit(c, during)
		})
	if err == nil && tampered {
		err = tamperedUser(name)
	}
	return c, err
}

// pinAudit is the audit action and details of c's outcome.
func pinAudit(c *storage.HSMPINCheck, during string) (action, details string) {
	switch c.Outcome {
	case storage.HSMPINAccepted:
		return "login", "role=" + c.User.Role
	case storage.HSMPINCounted:
		action = "login.fail"
		if c.User.Locked {
			action = "user.lockout"
		}
		return action, fmt.Sprintf("reason=bad-pin during=%s failures=%d", during, c.User.Failures)
	case storage.HSMPINLocked:
		return "login.fail", withDuring("reason=locked", during)
	case storage.HSMPINSpared:
		return "login.fail", withDuring("reason=last-try-spared", during)
	case storage.HSMPINStale:
		// A right PIN checked against a hash replaced meanwhile: refused,
		// not counted (the PIN was right when read).
		return "login.fail", withDuring("reason=pin-changed", during)
	default:
		return "login.fail", withDuring("reason=unknown-user", during)
	}
}

// withDuring names what a refused PIN was for, when not a login (whose
// entries have always read reason=… alone).
func withDuring(details, during string) string {
	if during == "login" {
		return details
	}
	return details + " during=" + during
}
