package acme_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/acme"
)

// TestJWSHeaderConfusion: encoding/json matches object keys without
// regard to case, the JOSE library does not. A captured request with a
// second, unsigned "Protected" member must not pass the url and nonce
// checks on that member while the signature is checked on the original:
// that would let anyone replay a signed request with a fresh nonce, to
// any URL (§6.4, §6.5).
func TestJWSHeaderConfusion(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	newOrder := e.url("new-order")
	captured := c.sign(newOrder, mustJSON(map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}), nil)
	if r := c.postBody(newOrder, captured, "application/jose+json"); r.StatusCode != http.StatusCreated {
		t.Fatalf("original request: %d %s", r.StatusCode, r.body)
	}
	var m map[string]string
	if err := json.Unmarshal(captured, &m); err != nil {
		t.Fatal(err)
	}
	forged := b64(mustJSON(map[string]any{"alg": "ES256", "nonce": c.nonce(), "url": newOrder, "kid": c.kid}))
	for _, key := range []string{"Protected", "PROTECTED"} {
		body := []byte(`{"protected":"` + m["protected"] + `","payload":"` + m["payload"] + `","signature":"` +
			m["signature"] + `","` + key + `":"` + forged + `"}`)
		r := c.postBody(newOrder, body, "application/jose+json")
		if r.StatusCode < 400 {
			t.Fatalf("replay with an unsigned %q member accepted: %d %s", key, r.StatusCode, r.body)
		}
		if r.StatusCode >= 500 {
			t.Fatalf("replay answered %d %s", r.StatusCode, r.body)
		}
	}
}

// TestJWSCritRefused: a JWS whose protected header names critical
// extensions must be refused (RFC 7515 §4.1.11); ACME has none. It was, as
// "signature invalid", which sends a client looking at its key.
func TestJWSCritRefused(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	newOrder := e.url("new-order")
	body := c.sign(newOrder, mustJSON(map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}),
		func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 })
	r := c.postBody(newOrder, body, "application/jose+json")
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(string(r.body), "malformed") || strings.Contains(string(r.body), "signature") {
		t.Fatalf("a JWS with crit: %d %s", r.StatusCode, r.body)
	}
	body = c.sign(newOrder, mustJSON(map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}),
		func(h map[string]any) { h["crit"] = []string{"b64"}; h["b64"] = false })
	if r := c.postBody(newOrder, body, "application/jose+json"); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("a JWS with crit b64: %d %s", r.StatusCode, r.body)
	}
}
