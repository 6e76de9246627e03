package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// TestKeyExpiry: a key made with a lifetime works until then and is a 401
// problem that says so afterwards; lifetimes are validated.
func TestKeyExpiry(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	secret, id, err := CreateKeyWith(ctx, e.db, KeySpec{Name: "short", Scopes: []string{ScopeRead}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.keys["short"] = secret
	if r, b := e.do(t, "GET", "/certificates", "short", "", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("before expiry: %d %s", r.StatusCode, b)
	}
	keys, _ := ListKeys(ctx, e.db)
	for _, k := range keys {
		if k.ID == id && (k.ExpiresAt.Sub(k.CreatedAt) != time.Hour) {
			t.Fatalf("listed expiry %v for a key created %v", k.ExpiresAt, k.CreatedAt)
		}
	}
	// An hour later (moved in the database: the check uses the wall clock).
	if _, err := e.db.Exec(ctx, `UPDATE api_keys SET expires_at = ? WHERE id = ?`, storage.Micros(time.Now().Add(-time.Second)), id); err != nil {
		t.Fatal(err)
	}
	r, b := e.do(t, "GET", "/certificates", "short", "", nil)
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "expired at") {
		t.Fatalf("after expiry: %d %s", r.StatusCode, b)
	}
	if _, _, err := CreateKeyWith(ctx, e.db, KeySpec{Name: "neg", Scopes: []string{ScopeRead}, TTL: -time.Hour}); core.KindOf(err) != core.KindMalformed {
		t.Fatalf("a negative lifetime: %v", err)
	}
	for _, s := range []string{"90d", "720h", "1h30m"} {
		if d, err := ParseDuration("expires", s); err != nil || d <= 0 {
			t.Errorf("ParseDuration(%q) = %v, %v", s, d, err)
		}
	}
	for _, s := range []string{"x", "-1h", "1.5d", "99999999d"} {
		if _, err := ParseDuration("expires", s); core.KindOf(err) != core.KindMalformed {
			t.Errorf("ParseDuration(%q): %v, want malformed", s, err)
		}
	}
}
