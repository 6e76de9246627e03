package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
)

// The key service runs in a session of its own HSM user (hsm.apps_user).
// When that user cannot log in — locked after wrong PINs, missing, given
// another role, its record altered outside the HSM, or the node's PIN for
// it is wrong — the node serves without
// the key service, and appsLogin turns it on again once an operator fixes
// the cause while the node runs. Every appsLoginEvery it compares the
// user's stored row (hsm.UserStamp) and the node's PIN for it with what
// its last login attempt saw, and tries ONE login when either changed. It
// never retries in a loop: every failed login counts toward the user's
// lockout, so a node with a wrong PIN would lock the user by retrying. A
// failed login by anyone only raises the failure counter, which the stamp
// leaves out, so it triggers nothing. The same watch brings the service
// back after its session ended because its user was deleted or given
// another role (hsm/userview.go), once the user changes again.

// appsLoginEvery is how often the watch looks. While the key service is
// on, a look is a map lookup (Session.Alive); while it is off, one row
// read and the PIN file.
const appsLoginEvery = 2 * time.Second

// appsLogin holds the key service's session and watches for the change
// that makes another login worth one attempt.
type appsLogin struct {
	n *node
	// key keys the digest of the PIN in seen, so that what stays in memory
	// cannot be checked against guesses.
	key []byte

	// fails bounds the log of failures that repeat every look (the
	// database down).
	fails core.FailureLog

	mu   sync.Mutex
	sess *hsm.Session // nil: the key service is off
	// seen is what the last login attempt saw (appsState); known is false
	// until it could be read.
	seen  [sha256.Size]byte
	known bool
}

func newAppsLogin(n *node) *appsLogin {
	return &appsLogin{n: n, key: []byte(rand.Text())}
}

// start makes the first login, at assembly. It returns the session, or
// nil (logged) when the user cannot log in now.
func (l *appsLogin) start(ctx context.Context) *hsm.Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	l.seen, err = l.state(ctx)
	l.known = err == nil
	if l.sess, err = l.n.appsSession(ctx); err != nil && l.absent(ctx) {
		l.warnAbsent(ctx)
	} else if err != nil {
		l.n.log.Warn("the key service (/api/v1/keys) is off: its HSM user cannot log in; one login is tried again after the user or the node's PIN for it changes",
			"user", l.n.cfg.HSM.AppsUser, "err", err)
	}
	return l.sess
}

// watch looks every appsLoginEvery until ctx ends; serve gives the API the
// key service in a session, or turns it off (nil).
func (l *appsLogin) watch(ctx context.Context, serve func(*hsm.Session)) {
	t := time.NewTicker(appsLoginEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.check(ctx, serve)
		}
	}
}

// check turns the key service off if its session ended, and tries one
// login if it is off and the user or the PIN changed since the last try.
func (l *appsLogin) check(ctx context.Context, serve func(*hsm.Session)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	user := l.n.cfg.HSM.AppsUser
	if l.sess != nil {
		// Sealed or failed self-tests are not this session's end: a
		// seal rebuilds the app, and no login works then anyway.
		err := l.sess.Alive()
		if !errors.Is(err, hsm.ErrNotLoggedIn) {
			return
		}
		l.n.log.Warn("the key service (/api/v1/keys) is off: its HSM session ended", "user", user, "err", err)
		serve(nil)
		l.sess.Close()
		l.sess = nil
	}
	now, err := l.state(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.fails.Warn(ctx, l.n.log, "the key service is off and its HSM user could not be read", "user", user, "err", err)
		}
		return
	}
	if l.known && now == l.seen {
		return
	}
	l.seen, l.known = now, true
	if l.absent(ctx) {
		l.warnAbsent(ctx)
		return
	}
	if _, err := l.n.cfg.AppsPIN(l.n.dir); err != nil {
		l.n.log.Warn("the key service (/api/v1/keys) stays off: this node has no PIN for its HSM user (no login tried)", "user", user, "err", err)
		return
	}
	s, err := l.n.appsSession(ctx)
	if err != nil {
		// ErrCorrupt: the user's record was altered outside the HSM, a
		// verdict on the user like a wrong PIN (each try is audited).
		if !errors.Is(err, hsm.ErrBadPIN) && !errors.Is(err, errNotCryptoUser) && !errors.Is(err, hsm.ErrCorrupt) && !errors.Is(err, hsm.ErrPINFinalTry) {
			// Not a verdict on the user or its PIN (the database or the
			// audit log failed): such a failure counts toward no
			// lockout, so the next look tries again.
			l.known = false
			if ctx.Err() == nil {
				l.fails.Warn(ctx, l.n.log, "the key service (/api/v1/keys) stays off: its login failed for another reason than the user or its PIN; retrying", "user", user, "err", err)
			}
			return
		}
		if ctx.Err() == nil {
			l.n.log.Warn("the key service (/api/v1/keys) stays off: its HSM user or PIN changed, but the one login tried failed; the next change gets another",
				"user", user, "err", err)
		}
		return
	}
	l.sess = s
	serve(s)
	l.n.log.Info("the key service (/api/v1/keys) is on: its HSM user logged in", "user", user)
}

// state is what decides whether a login can succeed: the user's stamp and
// the node's PIN for it (a digest: an operator may correct the PIN file).
// absent reports whether the key service's HSM user does not exist, as in
// a keystore made before the key service was.
func (l *appsLogin) absent(ctx context.Context) bool {
	s, err := l.n.hsm.UserStamp(ctx, l.n.cfg.HSM.AppsUser)
	return err == nil && s.Absent()
}

func (l *appsLogin) warnAbsent(ctx context.Context) {
	user := l.n.cfg.HSM.AppsUser
	// A user deleted outside the HSM is re-created by the unseal holders,
	// with its keys; an officer may not create it (found by a review: this
	// message sent operators to create it).
	if mus, err := l.n.hsm.MissingUsers(ctx); err == nil && slices.ContainsFunc(mus, func(u hsm.MissingUser) bool { return u.Name == user }) {
		l.n.log.Warn("the key service (/api/v1/keys) is off: its HSM user "+user+" was deleted outside the HSM (ca hsm status); the unseal holders re-create it, with its keys; the service starts without a restart",
			"user", user, "recreate", "ca hsm users reset "+user+" --role user")
		return
	}
	l.n.log.Warn("the key service (/api/v1/keys) is off: the HSM has no user "+user+" (a keystore from before the key service); create it on a node and give every node its PIN (apps.pin or STRONGROOM_APPS_PIN); the service starts without a restart",
		"user", user, "create", "STRONGROOM_NEW_PIN=… ca hsm users create "+user+" --role user")
}

func (l *appsLogin) state(ctx context.Context) ([sha256.Size]byte, error) {
	stamp, err := l.n.hsm.UserStamp(ctx, l.n.cfg.HSM.AppsUser)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	mac := hmac.New(sha256.New, l.key)
	mac.Write(stamp[:])
	if pin, err := l.n.cfg.AppsPIN(l.n.dir); err == nil {
		mac.Write([]byte{1})
		mac.Write([]byte(pin))
	}
	return [sha256.Size]byte(mac.Sum(nil)), nil
}

// close ends the key service's session, whichever it is now.
func (l *appsLogin) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess != nil {
		l.sess.Close()
	}
}
