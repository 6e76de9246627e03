package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
// message is published misses it. So when a subscription is interrupted,
// and again when it is restored, fn is called with a nil message, meaning
// "messages may have been lost": consumers then drop what they cannot check
// (the OCSP responder its node-local answers) or redo what the messages
// would have asked for (the CRL builder rebuilds).
type RedisEvents struct {
	c          redis.UniversalClient
	prefix     string
	log        *slog.Logger
	unanswered atomic.Int64 // when a publish last went unanswered (Unix ns), or 0
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

// redisPublishWait bounds Publish: a revocation is answered after its
// event is published, and a hung Redis must not hold that answer (the
// other nodes' database sweep is the backstop of a lost event). After a
// publish that Redis did not answer in time, those of the next
// redisPublishHold fail at once: revoking the certificates of a blocked
// key publishes one event each.
const (
	redisPublishWait = 2 * time.Second
	redisPublishHold = 5 * time.Second
)

// Publish sends msg to every node subscribed to topic, waiting at most
// redisPublishWait.
func (r *RedisEvents) Publish(ctx context.Context, topic string, msg []byte) error {
	if at := r.unanswered.Load(); at != 0 {
		if since := time.Since(time.Unix(0, at)); since < redisPublishHold {
			return fmt.Errorf("publishing %s event: Redis did not answer a publish %s ago; not waiting again yet", topic, since.Round(time.Millisecond))
		}
	}
	_, err := redisWithin(ctx, redisPublishWait, func(ctx context.Context) (int64, error) {
		return r.c.Publish(ctx, r.prefix+topic, msg).Result()
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			r.unanswered.Store(time.Now().UnixNano())
		}
		return fmt.Errorf("publishing %s event: %w", topic, err)
	}
	r.unanswered.Store(0)
	return nil
}

// How a broken subscription is retried: go-redis reconnects on the next
// receive, which fails at once while Redis refuses connections, so the
// loop waits between attempts, doubling from subscribeRetryMin to
// subscribeRetryMax; an outage after subscribeHealthy of service starts
// again from the minimum.
const (
	subscribeRetryMin = 100 * time.Millisecond
	subscribeRetryMax = 5 * time.Second
	subscribeHealthy  = 30 * time.Second
)

// subscribeIdle is how long a subscription may stay silent before it is
// pinged; a ping without an answer within as long again means a dead
// connection (one a NAT or load balancer dropped without a reset), which
// go-redis would wait on forever: the subscription is made again on a new
// connection, and the gap reported. A variable for tests.
var subscribeIdle = 30 * time.Second

// Subscribe calls fn, from one goroutine, for every message on topic until
// stop is called. It returns once Redis has confirmed the subscription, so
// a message published after Subscribe returns is delivered. An
// interruption is logged once when it starts and once when the
// subscription is restored, not at every attempt.
func (r *RedisEvents) Subscribe(ctx context.Context, topic string, fn func(msg []byte)) (stop func(), err error) {
	ps := r.c.Subscribe(ctx, r.prefix+topic)
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribing to %s events: %w", topic, err)
	}
	var cur atomic.Pointer[redis.PubSub] // the subscription in use (receive replaces a dead one)
	cur.Store(ps)
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		r.receive(&cur, topic, fn, quit)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			cur.Load().Close()
			<-done
		})
	}, nil
}

// receive delivers the subscription's messages to fn until quit is
// closed, pinging it when it is silent and making it again on a new
// connection when a ping goes unanswered.
func (r *RedisEvents) receive(cur *atomic.Pointer[redis.PubSub], topic string, fn func(msg []byte), quit chan struct{}) {
	var downSince time.Time // zero while subscribed
	upSince := time.Now()
	wait := subscribeRetryMin
	pinged, dead := false, false
	for {
		ps := cur.Load()
		m, err := ps.ReceiveTimeout(context.Background(), subscribeIdle)
		select {
		case <-quit:
			return
		default:
		}
		if isTimeout(err) {
			if !pinged {
				pinged = true
				if err = ps.Ping(context.Background()); err == nil {
					continue
				}
			} else {
				// Reported now; made again after the wait below.
				err, dead = fmt.Errorf("no answer to a ping within %s: the connection is dead", subscribeIdle), true
			}
		}
		pinged = false
		if err != nil {
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			if downSince.IsZero() {
				downSince = time.Now()
				if downSince.Sub(upSince) >= subscribeHealthy {
					wait = subscribeRetryMin
				}
				r.log.Warn("event subscription interrupted; messages may be lost until it is restored", "topic", topic, "err", err)
				fn(nil)
			}
			t := time.NewTimer(wait)
			select {
			case <-quit:
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, subscribeRetryMax)
			if dead {
				// A new connection (go-redis would keep waiting on the
				// dead one). Making it may wait while Redis still hangs.
				dead = false
				fresh := r.c.Subscribe(context.Background(), r.prefix+topic)
				cur.Swap(fresh).Close()
				select {
				case <-quit:
					fresh.Close()
					return
				default:
				}
			}
			continue
		}
		switch m := m.(type) {
		case *redis.Subscription:
			// go-redis resubscribed on a new connection.
			if !downSince.IsZero() {
				upSince = time.Now()
				r.log.Info("event subscription restored; messages published meanwhile were lost", "topic", topic,
					"down_for", upSince.Sub(downSince).Round(time.Millisecond).String())
				downSince = time.Time{}
				fn(nil)
			}
		case *redis.Message:
			fn([]byte(m.Payload))
		}
	}
}

// isTimeout reports whether err is a read that timed out (nothing came).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
