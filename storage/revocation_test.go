package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// insertCert writes a certificates row directly: the issuance code owns the
// real writes, these tests only need rows to read.
func insertCert(t *testing.T, db *storage.DB, serial, issuer string, status core.CertStatus, revokedAt time.Time, reason int) {
	t.Helper()
	now, changed := storage.Micros(time.Now()), storage.Micros(time.Now())
	if !revokedAt.IsZero() {
		changed = storage.Micros(revokedAt) // as revoking does
	}
	_, err := db.Exec(context.Background(), `INSERT INTO certificates (serial, issuer_id, profile, requester, not_after, status,
		revoked_at, revocation_reason, created_at, updated_at) VALUES (?, ?, 'tls', 'test', ?, ?, ?, ?, ?, ?)`,
		serial, issuer, storage.Micros(time.Now().Add(time.Hour)), string(status), storage.Micros(revokedAt), reason, now, changed)
	if err != nil {
		t.Fatal(err)
	}
}

func TestRevokedAndStatus(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		insertCert(t, db, "a1", "int", core.StatusValid, time.Time{}, 0)
		insertCert(t, db, "b2", "int", core.StatusRevoked, t0, 1)
		insertCert(t, db, "c3", "int", core.StatusRevoked, t0.Add(time.Hour), 4)
		insertCert(t, db, "d4", "other", core.StatusRevoked, t0, 1)
		insertCert(t, db, "e5", "int", core.StatusReserved, time.Time{}, 0)

		collect := func(since time.Time) []core.Revocation {
			var got []core.Revocation
			if err := db.EachRevoked(ctx, "int", since, func(r core.Revocation) error { got = append(got, r); return nil }); err != nil {
				t.Fatal(err)
			}
			return got
		}
		all := collect(time.Time{})
		want := []core.Revocation{{Serial: "b2", RevokedAt: t0, Reason: 1, ChangedAt: t0},
			{Serial: "c3", RevokedAt: t0.Add(time.Hour), Reason: 4, ChangedAt: t0.Add(time.Hour)}}
		if fmt.Sprint(all) != fmt.Sprint(want) {
			t.Fatalf("EachRevoked = %v, want %v", all, want)
		}
		if got := collect(t0.Add(time.Minute)); len(got) != 1 || got[0].Serial != "c3" {
			t.Fatalf("EachRevoked since = %v", got)
		}
		stop := fmt.Errorf("stop")
		if err := db.EachRevoked(ctx, "int", time.Time{}, func(core.Revocation) error { return stop }); err != stop {
			t.Fatalf("callback error not returned: %v", err)
		}

		for _, tc := range []struct {
			serial, issuer string
			status         core.CertStatus
			reason         core.RevocationReason
			notFound       bool
		}{
			{"a1", "int", core.StatusValid, 0, false},
			{"b2", "int", core.StatusRevoked, 1, false},
			{"e5", "int", core.StatusReserved, 0, false},
			{"d4", "int", "", 0, true}, // another issuer's serial
			{"ff", "int", "", 0, true},
		} {
			c, err := db.CertStatus(ctx, tc.issuer, core.Serial(tc.serial))
			if tc.notFound {
				if !core.IsNotFound(err) {
					t.Errorf("%s: err = %v, want not found", tc.serial, err)
				}
				continue
			}
			if err != nil || c.Status != tc.status || c.RevocationReason != tc.reason {
				t.Errorf("%s: %+v, %v", tc.serial, c, err)
			}
			if tc.status == core.StatusRevoked && !c.RevokedAt.Equal(t0) {
				t.Errorf("%s: revoked at %v, want %v", tc.serial, c.RevokedAt, t0)
			}
		}
	})
}

func TestCRLStore(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		if _, err := db.LatestCRL(ctx, "int", false); !core.IsNotFound(err) {
			t.Fatalf("no CRL yet: %v", err)
		}
		if _, err := db.LatestCRLNumber(ctx, "int", false); !core.IsNotFound(err) {
			t.Fatalf("no CRL number yet: %v", err)
		}
		// Concurrent callers never get the same number.
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := db.NextCRLNumber(ctx, "int", 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[n] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(seen) != 8 || !seen[1] || !seen[8] {
			t.Fatalf("numbers %v, want 1..8 once each", seen)
		}
		if n, _ := db.NextCRLNumber(ctx, "other", 0); n != 1 {
			t.Fatalf("other issuer starts at %d", n)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		for n := int64(10); n <= 13; n++ {
			if err := db.SaveCRL(ctx, storage.CRL{IssuerID: "int", Number: n, ThisUpdate: now, NextUpdate: now.Add(time.Hour),
				DER: []byte{byte(n)}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.SaveCRL(ctx, storage.CRL{IssuerID: "int", Delta: true, Number: 14, BaseNumber: 12, ThisUpdate: now,
			NextUpdate: now.Add(time.Hour), DER: []byte{14}}); err != nil {
			t.Fatal(err)
		}
		c, err := db.LatestCRL(ctx, "int", false)
		if err != nil || c.Number != 13 || !bytes.Equal(c.DER, []byte{13}) || !c.ThisUpdate.Equal(now) {
			t.Fatalf("latest full = %+v, %v", c, err)
		}
		d, err := db.LatestCRL(ctx, "int", true)
		if err != nil || d.Number != 14 || d.BaseNumber != 12 || !d.Delta {
			t.Fatalf("latest delta = %+v, %v", d, err)
		}
		var kept int
		db.QueryRow(ctx, `SELECT COUNT(*) FROM crls WHERE issuer_id = 'int' AND kind = 'full'`).Scan(&kept)
		if kept != 2 {
			t.Fatalf("kept %d full CRLs, want the current and the previous", kept)
		}
		if n, err := db.LatestCRLNumber(ctx, "int", true); err != nil || n != 14 {
			t.Fatalf("LatestCRLNumber = %d, %v", n, err)
		}
	})
}

// TestNextCRLNumberAtLeast: a number is the larger of the last one plus one
// and atLeast, so a database restored with a lower last number, or one
// upgraded from small sequential numbers, still hands out numbers above
// every one published before; a clock behind the sequence (another node's,
// or a second build within the same second) cannot take it back either.
func TestNextCRLNumberAtLeast(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		next := func(atLeast int64) int64 { return nextOf(t, db, "int", atLeast) }
		const t0 = int64(1_767_225_600_000_000_000) // 2026-01-01 in Unix nanoseconds
		if n := next(t0); n != t0 {
			t.Fatalf("first number %d, want the floor %d", n, t0)
		}
		if n := next(t0); n != t0+1 {
			t.Fatalf("same floor again: %d, want %d", n, t0+1)
		}
		if n := next(t0 - 1e9); n != t0+2 {
			t.Fatalf("a clock behind the sequence: %d, want %d", n, t0+2)
		}
		// A restore of a backup taken when the sequence was at 5 (the
		// numbering before floors, or a backup taken long before).
		if _, err := db.Exec(ctx, `UPDATE crl_numbers SET last_number = 5 WHERE issuer_id = 'int'`); err != nil {
			t.Fatal(err)
		}
		if n := next(t0 + 60e9); n != t0+60e9 {
			t.Fatalf("after the restore: %d, want the floor %d, above every number published before", n, t0+60e9)
		}
		if n := next(0); n != t0+60e9+1 {
			t.Fatalf("no floor: %d, want the last plus one", n)
		}
		// A clock before 1970 gives no floor: the sequence starts at 1.
		if n := nextOf(t, db, "other", -7); n != 1 {
			t.Fatalf("another issuer with a negative floor starts at %d, want 1", n)
		}
	})
}

func nextOf(t *testing.T, db *storage.DB, issuer string, atLeast int64) int64 {
	t.Helper()
	n, err := db.NextCRLNumber(context.Background(), issuer, atLeast)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type ocspCache interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Put(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Delete(ctx context.Context, keys ...string) error
}

func TestOCSPCaches(t *testing.T) {
	clock := time.Now()
	for name, mk := range map[string]func(t *testing.T) ocspCache{
		"memory": func(t *testing.T) ocspCache {
			return storage.NewMemoryOCSPCache(64, time.Minute, func() time.Time { return clock })
		},
		"redis": func(t *testing.T) ocspCache {
			return storage.NewRedisOCSPCache(redisClient(t), fmt.Sprintf("test:ocsp:%d:", time.Now().UnixNano()), time.Second)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := mk(t)
			if _, ok, err := c.Get(ctx, "k"); ok || err != nil {
				t.Fatalf("empty cache hit: %v %v", ok, err)
			}
			if err := c.Put(ctx, "k", []byte("v1"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if v, ok, err := c.Get(ctx, "k"); !ok || err != nil || string(v) != "v1" {
				t.Fatalf("Get = %q %v %v", v, ok, err)
			}
			if err := c.Delete(ctx, "k", "never-set"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := c.Get(ctx, "k"); ok {
				t.Fatal("deleted key still cached")
			}
			// A Put racing a revocation must not bring the old answer back.
			c.Put(ctx, "k", []byte("stale"), time.Minute)
			if _, ok, _ := c.Get(ctx, "k"); ok {
				t.Fatal("Put after Delete cached within the tombstone period")
			}
			c.Put(ctx, "short", []byte("x"), 50*time.Millisecond)
			if name == "memory" {
				clock = clock.Add(2 * time.Minute) // past the TTL and the tombstone
			} else {
				time.Sleep(1100 * time.Millisecond)
			}
			if _, ok, _ := c.Get(ctx, "short"); ok {
				t.Fatal("expired value returned")
			}
			c.Put(ctx, "k", []byte("v2"), time.Minute)
			if v, ok, _ := c.Get(ctx, "k"); !ok || string(v) != "v2" {
				t.Fatalf("after the tombstone expired: %q %v", v, ok)
			}
		})
	}
	t.Run("memory bound", func(t *testing.T) {
		c := storage.NewMemoryOCSPCache(64, 0, nil)
		for i := 0; i < 1000; i++ {
			c.Put(context.Background(), fmt.Sprint(i), []byte("v"), time.Hour)
		}
		hits := 0
		for i := 0; i < 1000; i++ {
			if _, ok, _ := c.Get(context.Background(), fmt.Sprint(i)); ok {
				hits++
			}
		}
		if hits == 0 || hits > 64 {
			t.Fatalf("%d entries kept, want 1..64", hits)
		}
	})
	// A full cache making room must not evict a tombstone: the stale
	// answer of a Put racing the revocation would be cached again.
	t.Run("memory bound keeps tombstones", func(t *testing.T) {
		ctx := context.Background()
		c := storage.NewMemoryOCSPCache(32, time.Minute, nil) // one entry per shard
		c.Delete(ctx, "revoked")
		for i := 0; i < 1000; i++ {
			c.Put(ctx, fmt.Sprint(i), []byte("v"), time.Hour)
		}
		c.Put(ctx, "revoked", []byte("stale"), time.Hour)
		if _, ok, _ := c.Get(ctx, "revoked"); ok {
			t.Fatal("stale answer cached after its tombstone was evicted")
		}
	})
}

type bus interface {
	Publish(ctx context.Context, topic string, msg []byte) error
	Subscribe(ctx context.Context, topic string, fn func([]byte)) (func(), error)
}

func TestEvents(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T) (pub, sub bus){
		"memory": func(t *testing.T) (bus, bus) { b := storage.NewMemoryEvents(); return b, b },
		"redis": func(t *testing.T) (bus, bus) {
			prefix := fmt.Sprintf("test:ev:%d:", time.Now().UnixNano())
			// Two clients: two nodes.
			return storage.NewRedisEvents(redisClient(t), prefix, nil), storage.NewRedisEvents(redisClient(t), prefix, nil)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			pub, sub := mk(t)
			got := make(chan string, 10)
			stop, err := sub.Subscribe(ctx, storage.TopicRevoked, func(m []byte) {
				iss, s, err := storage.DecodeRevoked(m)
				if err != nil {
					got <- "error: " + err.Error()
					return
				}
				got <- iss + "/" + string(s)
			})
			if err != nil {
				t.Fatal(err)
			}
			other, _ := sub.Subscribe(ctx, "other", func([]byte) { got <- "wrong topic" })
			defer other()
			if err := pub.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked("int", "abc")); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if m != "int/abc" {
					t.Fatalf("got %q", m)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("event not delivered")
			}
			stop()
			pub.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked("int", "def"))
			select {
			case m := <-got:
				t.Fatalf("delivered after stop: %q", m)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
	for _, bad := range []string{"", "int", "\nabc", "int\nxyz"} {
		if _, _, err := storage.DecodeRevoked([]byte(bad)); err == nil {
			t.Errorf("DecodeRevoked(%q) accepted", bad)
		}
	}
}

// proxiedSubscriber subscribes to revocation events through a test Redis
// proxy, so a test can break that one connection; it returns the proxy, a
// publisher reaching Redis directly, and the messages received.
func proxiedSubscriber(t *testing.T, name string) (*storagetest.Proxy, *storage.RedisEvents, chan []byte) {
	t.Helper()
	prefix := fmt.Sprintf("test:%s:%d:", name, time.Now().UnixNano())
	pub := storage.NewRedisEvents(redisClient(t), prefix, nil)
	proxy := storagetest.NewRedisProxy(t)
	subClient := redis.NewClient(&redis.Options{Addr: proxy.Addr, MaxRetries: -1})
	t.Cleanup(func() { subClient.Close() })
	got := make(chan []byte, 100)
	stop, err := storage.NewRedisEvents(subClient, prefix, nil).Subscribe(context.Background(), storage.TopicRevoked, func(m []byte) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return proxy, pub, got
}

// gapThenDelivery checks that the next message is the gap (nil), then
// publishes until a message arrives again.
func gapThenDelivery(t *testing.T, pub *storage.RedisEvents, got chan []byte, what string) {
	t.Helper()
	select {
	case m := <-got:
		if m != nil {
			t.Fatalf("first message after %s is %q, want nil", what, m)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was not reported", what)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pub.Publish(context.Background(), storage.TopicRevoked, storage.EncodeRevoked("int", "abc"))
		select {
		case m := <-got:
			if m == nil {
				continue
			}
			if iss, s, err := storage.DecodeRevoked(m); err != nil || iss != "int" || s != "abc" {
				t.Fatalf("after %s got %q", what, m)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery did not resume after %s", what)
		}
	}
}

// A broken subscription tells the subscriber (a nil message) and resumes:
// what was published while it was down is lost, and consumers must know.
// The subscriber reaches Redis through a proxy that breaks only its own
// connections (killing every pub/sub client of the shared Redis, as this
// test once did, broke other packages' tests running beside it).
func TestRedisEventsReportGap(t *testing.T) {
	proxy, pub, got := proxiedSubscriber(t, "gap")
	proxy.Set(storagetest.ProxyRefuse)
	time.Sleep(50 * time.Millisecond)
	proxy.Set(storagetest.ProxyPass)
	gapThenDelivery(t, pub, got, "the break")
}

// TestRaisedReasonIsAChange: a reason raised to keyCompromise keeps its
// revocation date but is a status change: delta CRLs (RFC 5280 §5.2.4),
// the CRL catch-up and the OCSP sweep must all see it, from an index.
func TestRaisedReasonIsAChange(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
		t1 := t0.Add(30 * time.Minute)
		insertCert(t, db, "f6", "int", core.StatusValid, time.Time{}, 0)
		if err := db.RevokeCertificate(ctx, "f6", core.ReasonSuperseded, t0, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeCertificate(ctx, "f6", core.ReasonKeyCompromise, t1, time.Time{}); err != nil {
			t.Fatal(err)
		}
		var got []core.Revocation
		if err := db.EachRevoked(ctx, "int", t0.Add(time.Minute), func(r core.Revocation) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []core.Revocation{{Serial: "f6", RevokedAt: t0, Reason: core.ReasonKeyCompromise, ChangedAt: t1}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("EachRevoked after the raise = %v, want %v", got, want)
		}
		if at, err := db.LatestRevocation(ctx, "int"); err != nil || !at.Equal(t1) {
			t.Fatalf("LatestRevocation = %v, %v; want the raise, %v", at, err, t1)
		}
	})
}

// TestRevocationQueriesIndexed: SQLite answers the revocation readers, of
// this release and of the previous one (during a rolling upgrade), and the
// listings by issuer from an index, not a scan, since migration 00190 made
// the revocation indexes partial (WHERE status = 'revoked', which issuance
// never writes). The previous release binds the status as a parameter:
// SQLite still matches it against the partial index's WHERE.
func TestRevocationQueriesIndexed(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	const list = `SELECT serial FROM certificates c WHERE `
	for _, x := range []struct {
		q     string
		args  []any
		index string
	}{
		// EachRevoked and LatestRevocation.
		{`SELECT serial FROM certificates WHERE issuer_id = ? AND status = 'revoked' AND updated_at >= ? ORDER BY updated_at`,
			[]any{"int", 0}, "INDEX certificates_revoked_updated (issuer_id=? AND updated_at>?)"},
		{`SELECT COALESCE(MAX(updated_at), 0) FROM certificates WHERE issuer_id = ? AND status = 'revoked'`,
			[]any{"int"}, "COVERING INDEX certificates_revoked_updated (issuer_id=?)"},
		// The same, as the previous release and 00160's wrote them.
		{`SELECT serial FROM certificates WHERE issuer_id = ? AND status = ? AND updated_at >= ? ORDER BY updated_at`,
			[]any{"int", "revoked", 0}, "INDEX certificates_revoked_updated (issuer_id=? AND updated_at>?)"},
		{`SELECT COALESCE(MAX(updated_at), 0) FROM certificates WHERE issuer_id = ? AND status = ?`,
			[]any{"int", "revoked"}, "COVERING INDEX certificates_revoked_updated (issuer_id=?)"},
		{`SELECT serial FROM certificates WHERE issuer_id = ? AND status = ? AND revoked_at >= ? ORDER BY revoked_at`,
			[]any{"int", "revoked", 0}, "INDEX certificates_revoked_at (issuer_id=? AND revoked_at>?)"},
		{`SELECT COALESCE(MAX(revoked_at), 0) FROM certificates WHERE issuer_id = ? AND status = ?`,
			[]any{"int", "revoked"}, "COVERING INDEX certificates_revoked_at (issuer_id=?)"},
		// ListCertificates by issuer, and by issuer and status revoked
		// (the partial index is created after the issuer index so that
		// SQLite, without statistics, takes it).
		{list + `c.status <> ? AND c.issuer_id = ? ORDER BY c.serial LIMIT ?`,
			[]any{"reserved", "int", 101}, "INDEX certificates_issuer (issuer_id=?)"},
		{list + `c.status = ? AND c.issuer_id = ? ORDER BY c.serial LIMIT ?`,
			[]any{"revoked", "int", 101}, "INDEX certificates_revoked_at (issuer_id=?)"},
	} {
		if plan := sqlitePlan(t, db, x.q, x.args...); !strings.Contains(plan, "USING "+x.index) {
			t.Errorf("%s\nplan:\n%swant it to use %s", x.q, plan, x.index)
		}
	}
}

// TestRedisEventsDeadConnection: a subscription whose connection stops
// answering without a reset (a NAT or load balancer dropping it) is found
// out by a ping, reported as a gap, and made again on a new connection
// (found by a code review: go-redis waited on it forever, silently).
func TestRedisEventsDeadConnection(t *testing.T) {
	t.Cleanup(storage.SetSubscribeIdle(200 * time.Millisecond)) // after the subscription stops: cleanups run last first
	proxy, pub, got := proxiedSubscriber(t, "dead")
	proxy.Set(storagetest.ProxyHang)
	// The gap is reported while Redis still hangs; delivery resumes once
	// it answers.
	select {
	case m := <-got:
		if m != nil {
			t.Fatalf("first message on a dead connection is %q, want nil", m)
		}
		got <- nil // for gapThenDelivery
	case <-time.After(5 * time.Second):
		t.Fatal("a connection that stopped answering was not noticed")
	}
	proxy.Set(storagetest.ProxyPass)
	gapThenDelivery(t, pub, got, "the dead connection")
}

// sqlitePlan is SQLite's EXPLAIN QUERY PLAN of q, one step a line.
func sqlitePlan(t *testing.T, db *storage.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query(context.Background(), `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "\n")
	}
	return plan.String()
}
