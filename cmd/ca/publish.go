package main

import (
	"context"
	"errors"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/storage"
)

// publishRevoked is ra's OnRevoke hook: after a revocation is recorded it
// drops this node's cached OCSP answers for the serial, before the
// revocation is answered, then publishes storage.TopicRevoked, so every
// other node's responder drops its own and the CRL builders schedule a
// rebuild. The local drop cannot wait for the event: through Redis it comes
// back asynchronously, and a client asking this node's OCSP right after the
// revocation was answered "good" from the cache (1 in 7 revocations in a
// soak on PostgreSQL and Redis). Neither step waits long for Redis: the
// responder stops serving the serial's cached answers whatever Redis does
// and retries the shared cache's deletion in the background
// (ocsp.Responder.Invalidate), and a publish waits at most two seconds
// (storage.RedisEvents), so a hung Redis does not hold the answer to a
// revocation that is committed. A failure to publish does not undo the
// revocation (the other nodes' OCSP sweepers and the CRL catch-up pick it
// up within seconds); it is logged, at most once per 10 s while Redis
// fails (revoking thousands of certificates of a blocked key would
// otherwise log each). Both steps run even if the client that asked for
// the revocation has gone: it is committed.
func (a *app) publishRevoked(ctx context.Context, issuerID string, serial core.Serial) {
	ctx = context.WithoutCancel(ctx)
	if a.responder != nil {
		if err := a.responder.Invalidate(ctx, issuerID, serial); err != nil && !errors.Is(err, ocsp.ErrDropQueued) {
			a.publishFailures.Warn(ctx, a.n.log, "dropping shared cached OCSP answers of a revoked certificate; this node answers revoked, the shared cache is retried",
				"serial", serial, "issuer", issuerID, "err", err)
		}
	}
	if err := a.shared.events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked(issuerID, serial)); err != nil {
		a.publishFailures.Warn(ctx, a.n.log, "publishing revocation event (the other nodes' sweep picks the revocation up)", "serial", serial, "issuer", issuerID, "err", err)
	}
}

// watchBlockedKeys revokes the certificates whose key is blocked every 15
// s, publishing each revocation. Each round first records the key hashes
// of certificates stored without one — all of them at the first start on
// this release, then those a node still on the previous release writes
// during a rolling upgrade — so the sweep finds them (cheap when there are
// none: an index lookup).
func (a *app) watchBlockedKeys(ctx context.Context) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		filled, unparsable, err := a.n.db.BackfillKeyHashes(ctx)
		if err != nil && ctx.Err() == nil {
			a.n.log.Error("recording the key hashes of older certificates", "err", err)
		}
		if filled > 0 || unparsable > 0 {
			a.n.log.Info("recorded the key hashes of older certificates", "filled", filled, "unparsable", unparsable)
		}
		if _, err := a.ra.SweepBlockedKeys(ctx); err != nil && ctx.Err() == nil {
			a.n.log.Warn("revoking certificates with blocked keys", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
