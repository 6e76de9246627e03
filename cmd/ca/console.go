package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/web"
)

// consoleKeyLabel is the HMAC key in the HSM that signs console sessions
// and CSRF tokens; every node finds the same one.
const consoleKeyLabel = "console-sessions"

// hsmMAC is web.MAC over an HSM HMAC key.
type hsmMAC struct {
	sess *hsm.Session
	id   string
}

func (m hsmMAC) HMAC(ctx context.Context, data []byte) ([]byte, error) {
	return m.sess.HMAC(ctx, m.id, data)
}

func (m hsmMAC) VerifyHMAC(ctx context.Context, data, mac []byte) error {
	return m.sess.VerifyHMAC(ctx, m.id, data, mac)
}

// consoleKey finds the session key, or makes it; a node that loses the
// race to make it uses the winner's.
func consoleKey(ctx context.Context, sess *hsm.Session) (string, error) {
	for range 2 {
		k, err := sess.FindKey(ctx, consoleKeyLabel)
		if err == nil {
			return k.ID, nil
		}
		if !core.IsNotFound(err) && !errors.Is(err, hsm.ErrNotFound) {
			return "", err
		}
		k, err = sess.GenerateKey(ctx, hsm.KeySpec{Type: hsm.HMACSHA256, Label: consoleKeyLabel})
		if err == nil {
			return k.ID, nil
		}
		if !errors.Is(err, hsm.ErrExists) {
			return "", err
		}
	}
	return "", fmt.Errorf("the console key %q appears and disappears", consoleKeyLabel)
}

// mountConsole serves the operator console at /ui.
func (a *app) mountConsole(ctx context.Context, defaultProfile string) error {
	id, err := consoleKey(ctx, a.sess)
	if err != nil {
		return fmt.Errorf("console session key: %w", err)
	}
	var names []string
	for _, p := range a.pipeline.Profiles() {
		names = append(names, p.Name)
	}
	if defaultProfile == "" {
		defaultProfile = "tls-server"
	}
	if i := slices.Index(names, defaultProfile); i > 0 {
		names[0], names[i] = names[i], names[0]
	}
	con, err := web.New(web.Options{Authority: a.ra, Store: a.n.db, Issuers: a.pipeline,
		MAC: hsmMAC{sess: a.sess, id: id}, Profiles: names, Logger: a.n.log,
		Audit: a.n.db, VerifyAudit: a.n.hsm.VerifyAudit, WithinCap: a.rest.WithinCap,
		Touch: a.rest.Touch, RateLimiter: a.shared.limiter})
	if err != nil {
		return err
	}
	con.Register(a.srv.Engine().Group("/ui"))
	a.srv.Unmatched("/ui/", con.Unmatched)
	return nil
}
