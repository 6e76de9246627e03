package main

import (
	"context"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// publishRevoked is ra's OnRevoke hook: after a revocation is recorded it
// publishes storage.TopicRevoked, so every node's OCSP responder drops its
// cached answers for the serial at once and the CRL builders schedule a
// rebuild. A failure to publish does not undo the revocation (OCSP caches
// expire and the CRL schedule picks it up, only later); it is logged.
func (a *app) publishRevoked(ctx context.Context, issuerID string, serial core.Serial) {
	if err := a.shared.events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked(issuerID, serial)); err != nil {
		a.n.log.Error("publishing revocation event", "serial", serial, "issuer", issuerID, "err", err)
	}
}
