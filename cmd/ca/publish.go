package main

import (
	"context"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// publishingAuthority is the registration authority every front end uses:
// after a revocation is recorded it publishes storage.TopicRevoked, so every
// node's OCSP responder drops its cached answers for the serial at once and
// the CRL builders schedule a rebuild.
type publishingAuthority struct {
	*ra.Authority
	events events
	log    interface {
		Error(msg string, args ...any)
	}
}

func (p *publishingAuthority) Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, who string) error {
	if err := p.Authority.Revoke(ctx, serial, reason, who); err != nil {
		return err
	}
	rec, err := p.Authority.Certificate(ctx, serial)
	if err == nil {
		err = p.events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked(rec.IssuerID, serial))
	}
	if err != nil {
		// The revocation is recorded; OCSP caches expire and the CRL
		// schedule picks it up, only later. Say so, do not fail the call.
		p.log.Error("publishing revocation event", "serial", serial, "err", err)
	}
	return nil
}
