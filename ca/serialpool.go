package ca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// BatchReserver is a Store that can reserve many serials in one
// transaction (*storage.DB and *storage.CertWriter). With it, the CA keeps
// a pool of serials reserved ahead of use, so an issuance does not wait for
// a commit of its own just to reserve its serial.
type BatchReserver interface {
	// ReserveSerials inserts a reserved row (no profile, requester or TBS
	// yet) for each serial of issuerID and returns those inserted; a
	// serial that already has a row is skipped, not overwritten.
	ReserveSerials(ctx context.Context, issuerID string, serials []core.Serial, at time.Time) ([]core.Serial, error)
}

// serialPool hands out serials whose rows are already committed as
// reserved. The guarantees are those of one-at-a-time reservation:
// reserved (durably, by INSERT on the primary key) before the certificate
// is built, and never reused — each pooled serial is handed out once, and a
// pool lost in a crash leaves rows that stay reserved with no TBS forever,
// so their serials can never be drawn again.
//
// Measured (BenchmarkIssueHTTP, SQLite through CertWriter): reservation was
// one of the three group commits each issuance waited for.
type serialPool struct {
	store BatchReserver
	size  int
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex
	free map[string][]core.Serial // by issuer id
	fill sync.Mutex               // one refill at a time
}

func newSerialPool(store Store, size int, log *slog.Logger, now func() time.Time) *serialPool {
	br, ok := store.(BatchReserver)
	if !ok || size <= 1 {
		return nil
	}
	return &serialPool{store: br, size: size, log: log, now: now, free: map[string][]core.Serial{}}
}

func (p *serialPool) pop(issuerID string) (core.Serial, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.free[issuerID]
	if len(f) == 0 {
		return "", false
	}
	s := f[len(f)-1]
	p.free[issuerID] = f[:len(f)-1]
	return s, true
}

// take returns a reserved serial of issuerID, refilling the pool with one
// transaction when it is empty.
func (p *serialPool) take(ctx context.Context, issuerID string) (core.Serial, error) {
	if s, ok := p.pop(issuerID); ok {
		return s, nil
	}
	p.fill.Lock()
	defer p.fill.Unlock()
	if s, ok := p.pop(issuerID); ok { // another caller refilled it
		return s, nil
	}
	for attempt := 0; attempt < 3; attempt++ {
		drawn := make([]core.Serial, p.size)
		for i := range drawn {
			s, err := core.NewSerial()
			if err != nil {
				return "", err
			}
			drawn[i] = s
		}
		got, err := p.store.ReserveSerials(ctx, issuerID, drawn, p.now().UTC())
		if err != nil {
			return "", fmt.Errorf("reserving serials: %w", err)
		}
		if len(got) < len(drawn) {
			// 128-bit random serials do not collide unless the random
			// source is broken or the database was replayed.
			p.log.WarnContext(ctx, "serial collisions while filling the pool", "issuer", issuerID, "collisions", len(drawn)-len(got))
		}
		if len(got) == 0 {
			continue
		}
		p.mu.Lock()
		p.free[issuerID] = append(p.free[issuerID], got[1:]...)
		p.mu.Unlock()
		return got[0], nil
	}
	return "", errors.New("reserving serials: every serial collided three times")
}
