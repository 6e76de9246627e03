package api

import "testing"

// TestSetKeyService: cmd/ca turns the key service on after the API is
// mounted (its HSM user could log in only later) and off again (that
// user's session ended). Requests that begin after the change see it,
// the unauthenticated JWKS too.
func TestSetKeyService(t *testing.T) {
	e := newKeyEnv(t)
	k := e.create(t, "jwt-signing", "p256")
	ks := e.api.keysNow()
	e.api.SetKeyService(nil)
	if st := e.call(t, "GET", "/keys", nil, nil); st != 503 {
		t.Fatalf("GET /keys with the key service off: %d", st)
	}
	if r, b := e.do(t, "GET", "/jwks/"+k.ID, "", "", nil); r.StatusCode != 503 {
		t.Fatalf("GET /jwks with the key service off: %d %s", r.StatusCode, b)
	}
	e.api.SetKeyService(ks)
	if st := e.call(t, "GET", "/keys/"+k.ID, nil, nil); st != 200 {
		t.Fatalf("GET /keys/{id} with the key service on again: %d", st)
	}
	if r, b := e.do(t, "GET", "/jwks/"+k.ID, "", "", nil); r.StatusCode != 200 {
		t.Fatalf("GET /jwks with the key service on again: %d %s", r.StatusCode, b)
	}
}
