package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/strongroom-pki/strongroom/core"
)

// TopicRevoked carries one message per revoked certificate, made by
// EncodeRevoked. The OCSP responder drops its cached answers for the serial
// and the CRL builder schedules a rebuild.
const TopicRevoked = "revoked"

// EncodeRevoked makes the TopicRevoked message for a certificate.
func EncodeRevoked(issuerID string, serial core.Serial) []byte {
	return []byte(issuerID + "\n" + string(serial))
}

// DecodeRevoked reads a TopicRevoked message.
func DecodeRevoked(msg []byte) (issuerID string, serial core.Serial, err error) {
	iss, s, ok := strings.Cut(string(msg), "\n")
	if !ok || iss == "" {
		return "", "", fmt.Errorf("bad revocation event %q", msg)
	}
	serial, err = core.ParseSerial(s)
	return iss, serial, err
}

// MemoryEvents is publish/subscribe within one process. Handlers run
// synchronously in Publish, in subscription order, so a revocation's
// effects are in place when Publish returns.
type MemoryEvents struct {
	mu   sync.RWMutex
	next int
	subs map[string]map[int]func([]byte)
}

// NewMemoryEvents returns an empty event bus.
func NewMemoryEvents() *MemoryEvents {
	return &MemoryEvents{subs: map[string]map[int]func([]byte){}}
}

// Publish delivers msg to every subscriber of topic.
func (m *MemoryEvents) Publish(ctx context.Context, topic string, msg []byte) error {
	m.mu.RLock()
	fns := make([]func([]byte), 0, len(m.subs[topic]))
	for _, fn := range m.subs[topic] {
		fns = append(fns, fn)
	}
	m.mu.RUnlock()
	for _, fn := range fns {
		fn(msg)
	}
	return nil
}

// Subscribe calls fn for every message published on topic until stop is
// called.
func (m *MemoryEvents) Subscribe(ctx context.Context, topic string, fn func(msg []byte)) (stop func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.next
	m.next++
	if m.subs[topic] == nil {
		m.subs[topic] = map[int]func([]byte){}
	}
	m.subs[topic][id] = fn
	return func() {
		m.mu.Lock()
		delete(m.subs[topic], id)
		m.mu.Unlock()
	}, nil
}

// RedisEvents is publish/subscribe across nodes over Redis channels named
// prefix+topic. Delivery is at most once: a node that is disconnected when a
// message is published misses it (go-redis reconnects by itself). So when a
// subscription is interrupted, fn is called with a nil message, meaning
// "messages may have been lost": consumers then drop what they cannot check
// (the OCSP responder its node-local answers) or redo what the messages
// would have asked for (the CRL builder rebuilds).
type RedisEvents struct {
	c      redis.UniversalClient
	prefix string
	log    *slog.Logger
}

// NewRedisEvents returns a bus on c. prefix "" means "strongroom:event:";
// a nil log discards.
func NewRedisEvents(c redis.UniversalClient, prefix string, log *slog.Logger) *RedisEvents {
	if prefix == "" {
		prefix = "strongroom:event:"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RedisEvents{c: c, prefix: prefix, log: log}
}

// Publish sends msg to every node subscribed to topic.
func (r *RedisEvents) Publish(ctx context.Context, topic string, msg []byte) error {
	if err := r.c.Publish(ctx, r.prefix+topic, msg).Err(); err != nil {
		return fmt.Errorf("publishing %s event: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn, from one goroutine, for every message on topic until
// stop is called. It returns once Redis has confirmed the subscription, so
// a message published after Subscribe returns is delivered.
func (r *RedisEvents) Subscribe(ctx context.Context, topic string, fn func(msg []byte)) (stop func(), err error) {
	ps := r.c.Subscribe(ctx, r.prefix+topic)
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribing to %s events: %w", topic, err)
	}
	done := make(chan struct{})
	var stopped atomic.Bool
	go func() {
		defer close(done)
		for {
			m, err := ps.ReceiveMessage(context.Background())
			if err != nil {
				if errors.Is(err, redis.ErrClosed) || stopped.Load() {
					return
				}
				// go-redis reconnects and resubscribes on the next call;
				// what was published meanwhile is lost.
				r.log.Warn("event subscription interrupted; messages may be lost", "topic", topic, "err", err)
				fn(nil)
				continue
			}
			fn([]byte(m.Payload))
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			stopped.Store(true)
			ps.Close()
			<-done
		})
	}, nil
}
