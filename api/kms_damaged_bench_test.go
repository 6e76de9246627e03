package api

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkDamagedKeyLookup times GET /keys/{id} over a keystore of 300
// keys, one of them damaged: for an id that does not exist and for another
// application's damaged key (both 404, which should not tell them apart),
// for another application's intact key (404 too; the HSM has it cached),
// and for the caller's own damaged key (200, state damaged):
//
//	go test -run - -bench DamagedKeyLookup ./api
func BenchmarkDamagedKeyLookup(b *testing.B) {
	ctx := context.Background()
	e := newKeyEnv(b)
	secret, _, err := CreateKey(ctx, e.db, "other", []string{ScopeKeys})
	if err != nil {
		b.Fatal(err)
	}
	e.keys["other"] = secret
	var intact KeyResponse
	for i := range 299 {
		intact = e.create(b, fmt.Sprintf("k%d", i), []string{"aes256", "p256", "hmac-sha256"}[i%3])
	}
	damaged := e.create(b, "damaged", "aes256")
	if _, err := e.db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE id = ?`, make([]byte, 64), damaged.ID); err != nil {
		b.Fatal(err)
	}
	e.restartKeyService(b)
	for _, c := range []struct{ name, id, who string }{
		{"nonexistent-404", "k-does-not-exist", "other"},
		{"others-damaged-404", damaged.ID, "other"},
		{"others-intact-404", intact.ID, "other"},
		{"own-damaged-200", damaged.ID, "apps"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				resp, body := e.do(b, "GET", "/keys/"+c.id, c.who, "", nil)
				if want := map[bool]int{true: 200, false: 404}[c.who == "apps"]; resp.StatusCode != want {
					b.Fatalf("GET /keys/%s as %s: %d %s", c.id, c.who, resp.StatusCode, body)
				}
			}
		})
	}
}
