package acme_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestFlowPostgres runs a whole order on PostgreSQL.
func TestFlowPostgres(t *testing.T) {
	e := newEnvDB(t, storagetest.Postgres(t), nil)
	c := newRawClient(e)
	c.register(nil)
	chain, _ := c.issue("pg.example.com", "*.pg.example.com")
	if len(chain) == 0 {
		t.Fatal("empty chain")
	}
}

// TestTwoNodesShareRedis: two endpoint instances over one database and one
// Redis, as two nodes would be. A nonce from one node is good once at the
// other, and the rate limit counts across both.
func TestTwoNodesShareRedis(t *testing.T) {
	rc := redis.NewClient(&redis.Options{Addr: storagetest.RedisAddr(), MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		storagetest.ServiceMissing(t, "Redis", err)
	}
	t.Cleanup(func() { rc.Close() })
	prefix := "test:acme:" + time.Now().Format(time.RFC3339Nano) + ":"
	shared := func(o *acme.Options) {
		o.Nonces = storage.NewRedisNonces(rc, prefix+"nonce:", time.Minute)
		o.RateLimiter = storage.NewRedisLimiter(rc, prefix+"limit:", nil)
		o.Limits.NewOrdersPerAccountPerHour = 2
	}
	a := newEnv(t, shared)
	// Node B serves the same external URL (as behind a load balancer) from
	// its own listener.
	ob := acme.Options{Name: "test", BaseURL: a.base, Store: a.db, Issuer: a.issuer, Validator: a.val}
	shared(&ob)
	nodeB, err := acme.New(ob)
	if err != nil {
		t.Fatal(err)
	}
	defer nodeB.Close()
	tsB := httptest.NewTLSServer(nodeB)
	defer tsB.Close()

	c := newRawClient(a)
	c.register(nil)
	order := map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "n.example.com"}}}
	// Nonce from node A, request to node B.
	body := c.sign(a.url("new-order"), mustJSON(order), nil)
	if r := c.postBody(tsB.URL+"/acme/test/new-order", body, "application/jose+json"); r.StatusCode != http.StatusCreated {
		t.Fatalf("node B with node A's nonce: %d %s", r.StatusCode, r.body)
	}
	// Replaying the same request at node A: the nonce is spent.
	wantProblem(t, c.postBody(a.url("new-order"), body, "application/jose+json"), "badNonce", 400)
	if r := c.post(a.url("new-order"), order, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("second order at node A: %d %s", r.StatusCode, r.body)
	}
	body = c.sign(a.url("new-order"), mustJSON(order), nil)
	wantProblem(t, c.postBody(tsB.URL+"/acme/test/new-order", body, "application/jose+json"), "rateLimited", 429)
}
