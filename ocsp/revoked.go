package ocsp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/strongroom-pki/strongroom/core"
)

// A node learns of a revocation three ways: its own revoke (Invalidate,
// from ra's hook), the event, the database sweep. The shared cache (Redis)
// may be unreachable just then, refusing connections or, worse, hung, so
// whether a cached "good" is served again must not hang on a Redis DEL:
//
//   - this node's own copies (the answers kept ready for the fast lane)
//     are dropped first, before the shared cache is touched;
//   - the node remembers the serials revoked within the last Validity
//     (no answer cached before a revocation outlives it) and serves no
//     cached answer for one of them that does not say revoked: it signs
//     afresh from the StatusSource instead;
//   - the shared cache's deletion waits at most sharedDropTimeout; what
//     fails is kept and retried by RunSweeper (on every tick) until the
//     cache takes it.
//
// The cached GET pays one atomic load while no revocation is remembered,
// and one map read when one is.

// sharedDropTimeout bounds the wait for the shared cache when a
// revocation drops its answers: the revocation is answered meanwhile.
const sharedDropTimeout = time.Second

// sharedDropHold is how long after a failed deletion new ones are queued
// without trying the shared cache (so revoking many certificates while it
// hangs does not wait sharedDropTimeout for each); after it, a deletion is
// tried again, and one that succeeds retries the queue at once.
const sharedDropHold = 2 * time.Second

// ErrDropQueued is returned by Invalidate when the shared cache failed
// moments ago: the deletion is queued without waiting for it again (this
// node answers revoked meanwhile).
var ErrDropQueued = errors.New("the shared OCSP cache failed lately; its answers are dropped later")

type revokedKey struct {
	issuer string
	serial core.Serial
}

// revokedSet holds the serials known revoked, each with when this node
// learnt of the revocation (or of its last change: a reason raised to
// keyCompromise), until no answer cached before then can be served.
type revokedSet struct {
	n  atomic.Int64 // len(m), read without the lock
	mu sync.RWMutex
	m  map[revokedKey]learnt
}

type learnt struct{ at, until time.Time }

func (s *revokedSet) add(issuerID string, serial core.Serial, at, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[revokedKey]learnt{}
	}
	s.m[revokedKey{issuerID, serial}] = learnt{at, until}
	s.n.Store(int64(len(s.m)))
}

// learnt returns when this node learnt serial was revoked (or its
// revocation changed), if it is remembered at now.
func (s *revokedSet) learnt(issuerID string, serial core.Serial, now time.Time) (time.Time, bool) {
	s.mu.RLock()
	l, ok := s.m[revokedKey{issuerID, serial}]
	s.mu.RUnlock()
	return l.at, ok && now.Before(l.until)
}

// prune forgets the entries past their time.
func (s *revokedSet) prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, l := range s.m {
		if !now.Before(l.until) {
			delete(s.m, k)
		}
	}
	s.n.Store(int64(len(s.m)))
}

// pendingDrops holds the shared cache keys whose deletion failed, each
// until the value it would delete has expired anyway.
type pendingDrops struct {
	mu       sync.Mutex
	keys     map[string]time.Time
	failedAt time.Time // the last failed deletion
}

// holding reports whether deletions are queued and the last one failed
// within sharedDropHold: a new one is then queued without waiting.
func (p *pendingDrops) holding(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys) > 0 && now.Sub(p.failedAt) < sharedDropHold
}

func (p *pendingDrops) failed(now time.Time) {
	p.mu.Lock()
	p.failedAt = now
	p.mu.Unlock()
}

func (p *pendingDrops) add(keys []string, until time.Time) (first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys == nil {
		p.keys = map[string]time.Time{}
	}
	first = len(p.keys) == 0
	for _, k := range keys {
		p.keys[k] = until
	}
	return first
}

func (p *pendingDrops) any() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys) > 0
}

// forget does a revocation's local part: responder certificate checks,
// the serial remembered as revoked, the fast lane's answers dropped. It
// returns the shared cache keys to delete.
func (r *Responder) forget(issuerID string, serial core.Serial) []string {
	now := r.now()
	if iss := r.byID[issuerID]; iss != nil {
		met := iss.kr.revokeSigner(serial, now)
		if !r.retire(iss, serial) && met {
			r.fast.dropAll() // the answers kept ready may be signed under it
			r.log.Warn("an OCSP responder certificate that signed cached answers was revoked; they are signed again",
				"issuer", issuerID, "serial", serial)
		}
	}
	// Remembered before the fast lane's answers are dropped: an answer
	// read from the shared cache before the drop is refused by the
	// generation, one read after it by the set.
	r.revoked.add(issuerID, serial, now, now.Add(r.validity))
	keys := make([]string, 0, len(hashOIDs))
	for _, h := range hashOIDs {
		keys = append(keys, cacheKey(issuerID, h.hash, serial))
	}
	r.fast.drop(keys...)
	return keys
}

// dropShared deletes keys from the shared cache, waiting at most
// sharedDropTimeout, or queues them for RunSweeper when it fails, or when
// an earlier deletion failed within sharedDropHold. A deletion that
// succeeds while others are queued retries those at once.
func (r *Responder) dropShared(ctx context.Context, keys []string) error {
	now := r.now()
	until := now.Add(r.validity)
	if r.pending.holding(now) {
		r.pending.add(keys, until)
		return ErrDropQueued
	}
	dctx, cancel := context.WithTimeout(ctx, sharedDropTimeout)
	defer cancel()
	err := r.cache.Delete(dctx, keys...)
	if err == nil {
		if r.pending.any() {
			r.retryDrops(ctx)
		}
		return nil
	}
	r.pending.failed(now)
	if r.pending.add(keys, until) {
		r.log.Warn("the shared OCSP cache could not drop the answers of a revoked certificate; retrying in the background (this node answers revoked meanwhile)", "err", err)
	}
	return fmt.Errorf("%w (retried in the background)", err)
}

// retryDrops tries the queued deletions again, in batches, and reports
// whether none is left.
func (r *Responder) retryDrops(ctx context.Context) bool {
	const batch = 3000
	now := r.now()
	r.pending.mu.Lock()
	keys := make([]string, 0, len(r.pending.keys))
	for k, until := range r.pending.keys {
		if now.Before(until) {
			keys = append(keys, k)
		} else {
			delete(r.pending.keys, k) // the value has expired by now
		}
	}
	r.pending.mu.Unlock()
	for len(keys) > 0 {
		n := min(batch, len(keys))
		dctx, cancel := context.WithTimeout(ctx, sharedDropTimeout)
		err := r.cache.Delete(dctx, keys[:n]...)
		cancel()
		if err != nil {
			r.pending.failed(now)
			r.failures.Warn(ctx, r.log, "the shared OCSP cache still cannot drop the answers of revoked certificates; retrying (this node answers revoked meanwhile)",
				"queued", len(keys), "err", err)
			return false
		}
		r.pending.mu.Lock()
		for _, k := range keys[:n] {
			delete(r.pending.keys, k)
		}
		left := len(r.pending.keys)
		r.pending.mu.Unlock()
		keys = keys[n:]
		if len(keys) == 0 && left == 0 {
			r.log.Info("the shared OCSP cache dropped the answers of the certificates revoked while it failed")
		}
	}
	return !r.pending.any()
}

// refusesCached reports whether a cached answer for serial must not be
// served: the serial is known revoked and the answer does not say so, or
// was made no later than this node learnt of the revocation or its last
// change (a reason raised to keyCompromise), to the second of its
// thisUpdate. Either way it may predate what the database says, and its
// deletion from the shared cache may not have happened.
func (r *Responder) refusesCached(issuerID string, serial core.Serial, a answer) bool {
	if r.revoked.n.Load() == 0 {
		return false
	}
	at, ok := r.revoked.learnt(issuerID, serial, r.now())
	return ok && (answerStatus(a.der) != statusRevoked || !a.thisUpdate.After(at))
}

const statusRevoked = 1 // certStatus revoked [1], RFC 6960 §4.2.1

// answerStatus reads the certStatus tag number of the first SingleResponse
// of a successful OCSPResponse (RFC 6960 §4.2.1: 0 good, 1 revoked, 2
// unknown); -1 when it cannot.
func answerStatus(resp []byte) int {
	basic, ok := basicResponse(resp)
	var tbs, skip, responses, single cryptobyte.String
	var tag cbasn1.Tag
	if !ok || !basic.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!tbs.ReadAnyASN1(&skip, &tag) || // responderID, a CHOICE
		!tbs.SkipASN1(cbasn1.GeneralizedTime) || // producedAt
		!tbs.ReadASN1(&responses, cbasn1.SEQUENCE) || !responses.ReadASN1(&single, cbasn1.SEQUENCE) ||
		!single.SkipASN1(cbasn1.SEQUENCE) || // certID
		!single.ReadAnyASN1(&skip, &tag) {
		return -1
	}
	if tag&0xc0 != 0x80 { // not context-specific
		return -1
	}
	return int(tag & 0x1f)
}
