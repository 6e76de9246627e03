package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/strongroom-pki/strongroom/ra"
)

// External account binding keys, for `ca acme eab create|revoke`. The HMAC
// key is made here, put into the HSM, shown once to the operator and never
// stored anywhere else: the database keeps only the key id.

// EABKeys puts EAB HMAC keys into the HSM and destroys them (wiring
// implements it with an HSM session).
type EABKeys interface {
	ImportHMAC(ctx context.Context, kid string, key []byte) error
	DestroyHMAC(ctx context.Context, kid string) error
}

// EABStore records EAB key ids; *storage.DB implements it.
type EABStore interface {
	CreateACMEEABKey(ctx context.Context, kid, endpoint string, names []string, created time.Time) error
	RevokeACMEEABKey(ctx context.Context, endpoint, kid string, at time.Time) error
}

// CreateEAB makes a key id and a 256-bit HMAC key for endpoint, imports the
// key into the HSM and records the id. It returns the id and the key,
// base64url, which the caller shows once (certbot --eab-hmac-key, lego
// --eab --hmac) and must not log.
//
// names, if any, limit what the account bound with the key may order (DNS
// suffixes and IP prefixes, as `ca apikey create --names`), inside the
// endpoint's policy.
func CreateEAB(ctx context.Context, store EABStore, keys EABKeys, endpoint string, names []string, now time.Time) (kid, hmacKey string, err error) {
	lim, err := ra.ParseLimits(names, nil)
	if err != nil {
		return "", "", err
	}
	kid, err = randomID()
	if err != nil {
		return "", "", err
	}
	// A prefix: operators type key ids on command lines, and a bare
	// base64url id starts with "-" one time in 64 (`ca acme eab revoke
	// -3x…` then reads as flags; e2e hit it).
	kid = "eab_" + kid
	key := make([]byte, 32)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return "", "", fmt.Errorf("reading random EAB key: %w", err)
	}
	if err := keys.ImportHMAC(ctx, kid, key); err != nil {
		return "", "", fmt.Errorf("importing EAB key into the HSM: %w", err)
	}
	if err := store.CreateACMEEABKey(ctx, kid, endpoint, lim.Names(), now); err != nil {
		if derr := keys.DestroyHMAC(ctx, kid); derr != nil {
			err = fmt.Errorf("%w (and destroying the imported key failed: %v)", err, derr)
		}
		return "", "", fmt.Errorf("recording EAB key id: %w", err)
	}
	return kid, base64.RawURLEncoding.EncodeToString(key), nil
}

// RevokeEAB stops kid from binding new accounts and destroys its key.
// Accounts already bound with it stay valid.
func RevokeEAB(ctx context.Context, store EABStore, keys EABKeys, endpoint, kid string, now time.Time) error {
	if err := store.RevokeACMEEABKey(ctx, endpoint, kid, now); err != nil {
		return fmt.Errorf("revoking EAB key id %s: %w", kid, err)
	}
	if err := keys.DestroyHMAC(ctx, kid); err != nil {
		return fmt.Errorf("destroying EAB key %s in the HSM (the id is already revoked): %w", kid, err)
	}
	return nil
}
