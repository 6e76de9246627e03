package ca

import (
	"context"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// An issuer whose own certificate is revoked (`ca cert revoke --ca`) issues
// nothing more: every certificate it signed would fail revocation checks.
// The CA learns of it at start, at once when the revocation goes through
// this node's ra, and within WatchIssuers' interval when another node or an
// offline command revoked it.

// CheckIssuers reads the status of each issuer's certificate and
// remembers the revoked ones. An issuer whose certificate has no record
// (a CA made outside a ceremony of this CA) counts as not revoked.
func (c *CA) CheckIssuers(ctx context.Context) error {
	revoked := map[string]bool{}
	for _, id := range c.issuerIDs {
		serial := core.SerialFromBig(c.issuers[id].Certificate().SerialNumber)
		rec, err := c.store.GetCertificate(ctx, serial)
		if core.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if rec.Status == core.StatusRevoked {
			revoked[id] = true
		}
	}
	for id := range revoked {
		if !c.issuerRevoked(id) {
			c.log.Warn("issuer certificate is revoked: this issuer issues nothing more", "issuer", id)
		}
	}
	c.revokedIssuers.Store(&revoked)
	return nil
}

// WatchIssuers runs CheckIssuers every interval until ctx ends; a failed
// check keeps what the last one found.
func (c *CA) WatchIssuers(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.CheckIssuers(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("checking the issuers' certificates", "err", err)
		}
	}
}

func (c *CA) issuerRevoked(id string) bool {
	m := c.revokedIssuers.Load()
	return m != nil && (*m)[id]
}
