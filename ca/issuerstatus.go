package ca

import (
	"context"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// An issuer whose own certificate is revoked (`ca cert revoke --ca`) issues
// nothing more: every certificate it signed would fail revocation checks.
// It still signs OCSP answers and CRLs for what it issued. The CA learns
// of it at start, at once when the revocation goes through this node's
// ra, and within WatchIssuers' interval when another node or an offline
// command revoked it. A request that names no issuer then goes to the next
// usable one (DefaultIssuer).

// revocation is when and why an issuer's certificate was revoked.
type revocation struct {
	at     time.Time
	reason core.RevocationReason
}

// IssuerStatus says whether an issuer may sign new certificates.
type IssuerStatus struct {
	// Revoked: the issuer's own certificate is revoked, at RevokedAt for
	// Reason.
	Revoked   bool
	RevokedAt time.Time
	Reason    core.RevocationReason
	// Expired: the issuer's chain has ended (Issuer.NotAfter).
	Expired bool
}

// Usable reports whether the issuer may sign new certificates.
func (s IssuerStatus) Usable() bool { return !s.Revoked && !s.Expired }

// String is "valid", "revoked" or "expired" (revoked when both).
func (s IssuerStatus) String() string {
	switch {
	case s.Revoked:
		return "revoked"
	case s.Expired:
		return "expired"
	}
	return "valid"
}

// IssuerStatus is the status of issuer id as the last CheckIssuers found
// it, and its expiry now. An unknown id is the zero status.
func (c *CA) IssuerStatus(id string) IssuerStatus { return c.statusAt(id, c.now()) }

func (c *CA) statusAt(id string, now time.Time) IssuerStatus {
	var st IssuerStatus
	if m := c.revokedIssuers.Load(); m != nil {
		if r, ok := (*m)[id]; ok {
			st.Revoked, st.RevokedAt, st.Reason = true, r.at, r.reason
		}
	}
	if is, ok := c.issuers[id]; ok && !now.Before(is.NotAfter()) {
		st.Expired = true
	}
	return st
}

// CheckIssuers reads the status of each issuer's certificate and
// remembers the revoked ones. An issuer whose certificate has no record
// (a CA made outside a ceremony of this CA) counts as not revoked. It logs
// a change of the default issuer (noteDefault).
func (c *CA) CheckIssuers(ctx context.Context) error {
	revoked := map[string]revocation{}
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
			revoked[id] = revocation{at: rec.RevokedAt, reason: rec.RevocationReason}
		}
	}
	for id := range revoked {
		if !c.issuerRevoked(id) {
			c.log.Warn("issuer certificate is revoked: this issuer issues nothing more", "issuer", id)
		}
	}
	c.revokedIssuers.Store(&revoked)
	c.noteDefault()
	return nil
}

// noteDefault logs, once per change, that the default issuer is not the
// preferred one (naming those passed over and why) or that there is none.
func (c *CA) noteDefault() {
	now := c.now()
	cur := c.DefaultIssuer()
	if prev := c.loggedDefault.Swap(&cur); prev != nil && *prev == cur {
		return
	}
	var passed []string
	for _, id := range c.order {
		if id == cur {
			break
		}
		st := c.statusAt(id, now)
		why := st.String()
		if st.Revoked {
			why += ": " + st.Reason.String()
		}
		if st.Usable() {
			why += ", its chain does not allow serverAuth"
		}
		passed = append(passed, id+" ("+why+")")
	}
	switch {
	case cur == "":
		c.log.Error("no issuer can sign new TLS certificates: every intermediate whose chain allows serverAuth is revoked or expired; "+
			"OCSP answers and CRLs are still served. Add one with `ca issuer add ID --default` and restart ca serve",
			"passed_over", strings.Join(passed, ", "))
	case len(passed) > 0:
		c.log.Warn("the default issuer cannot sign new certificates: they come from the next configured issuer "+
			"(make it the default with `ca issuer default "+cur+"`, or add one with `ca issuer add ID --default`)",
			"issuer", cur, "passed_over", strings.Join(passed, ", "))
	}
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
	if m == nil {
		return false
	}
	_, ok := (*m)[id]
	return ok
}
