package acme_test

import (
	"encoding/json"
	"net/http"
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
