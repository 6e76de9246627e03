package storage_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// logRecords keeps the messages logged through it.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// count returns how many messages start with prefix.
func (l *logRecords) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if strings.HasPrefix(r.Message, prefix) {
			n++
		}
	}
	return n
}

// attr returns the attribute key of the last message starting with prefix.
func (l *logRecords) attr(prefix, key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := ""
	for _, r := range l.recs {
		if strings.HasPrefix(r.Message, prefix) {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == key {
					v = a.Value.String()
				}
				return true
			})
		}
	}
	return v
}

// TestRedisSubscriptionOutage: while Redis refuses connections, the
// subscription retries with a growing pause, not in a loop that spins
// (each attempt is a connection the proxy sees), and the outage is logged
// once when it starts and once when it ends, with its length; messages
// flow again afterwards.
func TestRedisSubscriptionOutage(t *testing.T) {
	proxy := storagetest.NewRedisProxy(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("test:outage:%d:", time.Now().UnixNano())
	logs := &logRecords{}
	sub := storage.NewRedisEvents(redis.NewClient(&redis.Options{Addr: proxy.Addr}), prefix, slog.New(logs))
	pub := storage.NewRedisEvents(redisClient(t), prefix, nil)
	got := make(chan []byte, 1000)
	stop, err := sub.Subscribe(ctx, storage.TopicRevoked, func(m []byte) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	proxy.Set(storagetest.ProxyRefuse)
	before := proxy.Accepted()
	time.Sleep(2 * time.Second)
	// Unthrottled, the loop reconnects as fast as go-redis fails (over 30
	// connections in two seconds here, thousands a second against a
	// closed port); with pauses from 100 ms doubling, five or six.
	if n := proxy.Accepted() - before; n >= 20 {
		t.Fatalf("%d connection attempts in 2 s while Redis refuses them: the subscription loop does not back off", n)
	}
	if n := logs.count("event subscription interrupted"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once", n)
	}

	proxy.Set(storagetest.ProxyPass)
	deadline := time.Now().Add(15 * time.Second) // the pause is at most 5 s
	for logs.count("event subscription restored") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription was not restored after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := logs.attr("event subscription restored", "down_for"); d == "" {
		t.Fatal("the restoration does not say how long the subscription was down")
	}
	if n := logs.count("event subscription interrupted"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once", n)
	}
	if err := pub.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked("int", "abc")); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case m := <-got:
			if m == nil {
				continue // the interruption and the restoration
			}
			if iss, s, err := storage.DecodeRevoked(m); err != nil || iss != "int" || s != "abc" {
				t.Fatalf("after the outage got %q", m)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("no message delivered after the outage")
		}
	}
}

// TestRedisHangBounded: while Redis hangs (connections open, nothing
// answered), the OCSP cache and the event bus give up within their short
// bounds, not go-redis's own (several seconds per attempt, with
// retries), so an OCSP request or a revocation is answered meanwhile.
func TestRedisHangBounded(t *testing.T) {
	proxy := storagetest.NewRedisProxy(t)
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: proxy.Addr})
	defer rc.Close()
	prefix := fmt.Sprintf("test:hang:%d:", time.Now().UnixNano())
	cache := storage.NewRedisOCSPCache(rc, prefix+"ocsp:", 0)
	events := storage.NewRedisEvents(rc, prefix+"event:", nil)
	if err := cache.Put(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	proxy.Set(storagetest.ProxyHang)
	done := make(chan error, 4)
	go func() {
		_, _, err := cache.Get(context.Background(), "k")
		done <- err
		done <- cache.Put(context.Background(), "k2", []byte("v"), time.Minute)
		dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
		defer dcancel()
		done <- cache.Delete(dctx, "k")
		done <- events.Publish(context.Background(), storage.TopicRevoked, storage.EncodeRevoked("int", "abc"))
	}()
	for _, op := range []string{"Get", "Put", "Delete", "Publish"} {
		// A generous deadline, well above the bounds (at most 2 s) and
		// below what go-redis alone takes here (5 to 40 s).
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("%s succeeded while Redis hangs", op)
			}
		case <-time.After(4 * time.Second):
			t.Fatalf("%s did not return while Redis hangs", op)
		}
	}
	// The next publishes do not wait again (a blocked key's certificates
	// are revoked and published one by one).
	err := events.Publish(context.Background(), storage.TopicRevoked, storage.EncodeRevoked("int", "def"))
	if err == nil || !strings.Contains(err.Error(), "not waiting again") {
		t.Fatalf("a publish right after one Redis did not answer: %v", err)
	}
	proxy.Set(storagetest.ProxyPass)
	direct := redisClient(t)
	for _, k := range []string{"k", "k2"} {
		direct.Del(ctx, prefix+"ocsp:{"+k+"}", prefix+"ocsp:{"+k+"}:deleted")
	}
}
