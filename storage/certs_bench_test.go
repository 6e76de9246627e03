package storage_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

type certStore interface {
	ReserveSerial(ctx context.Context, c *core.Certificate) error
	RecordIntent(ctx context.Context, c *core.Certificate, at time.Time) error
	StoreIssued(ctx context.Context, serial core.Serial, der []byte, at time.Time) error
}

// BenchmarkCertWrites measures the three writes of one issuance (reserve,
// intent, store) on SQLite and PostgreSQL, directly and through the
// group-commit writer, at concurrency 1 and 32.
func BenchmarkCertWrites(b *testing.B) {
	for _, conc := range []int{1, 32} {
		for _, kind := range []string{"sqlite-db", "sqlite-writer", "postgres-db", "postgres-writer"} {
			b.Run(fmt.Sprintf("%s-c%d", kind, conc), func(b *testing.B) {
				var db *storage.DB
				if strings.HasPrefix(kind, "postgres") {
					db = storagetest.Postgres(b)
				} else {
					db, _ = storagetest.SQLite(b)
				}
				var s certStore = db
				if strings.HasSuffix(kind, "writer") {
					w := storage.NewCertWriter(db)
					defer w.Close()
					s = w
				}
				ctx := context.Background()
				tbs := make([]byte, 500)
				var n atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				for g := 0; g < conc; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for n.Add(1) <= int64(b.N) {
							now := time.Now()
							c := &core.Certificate{Serial: newSerialNoT(), IssuerID: "i", Profile: "p", Requester: "r", CreatedAt: now}
							if err := s.ReserveSerial(ctx, c); err != nil {
								b.Error(err)
								return
							}
							// A distinct key per certificate, as issuance records it
							// (the key_hash index and the blocked-key check).
							c.Names, c.TBS, c.NotAfter, c.KeyHash = []string{"a.example", "10.0.0.1"}, tbs, now, core.KeyHash([]byte(c.Serial))
							if err := s.RecordIntent(ctx, c, now); err != nil {
								b.Error(err)
								return
							}
							if err := s.StoreIssued(ctx, c.Serial, tbs, now); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "issuances/s")
			})
		}
	}
}
