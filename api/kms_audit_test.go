package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

// TestKeyServiceAuditNamesRequester: every key the service makes, rotates,
// imports, exports or destroys is audited by the HSM with the principal
// that asked, not only the HSM user "apps" all applications share.
func TestKeyServiceAuditNamesRequester(t *testing.T) {
	e := newKeyEnv(t)
	var unwrap, src, back KeyResponse
	e.call(t, "POST", "/keys", map[string]any{"label": "import", "type": "rsa2048", "usage": []string{"wrap", "unwrap"}}, &unwrap)
	e.call(t, "POST", "/keys", map[string]any{"label": "leaving", "type": "p256", "extractable": true}, &src)
	e.call(t, "POST", "/keys/"+src.ID+"/rotate", nil, nil)
	var out ExportKeyResponse
	e.call(t, "POST", "/keys/"+src.ID+"/export", map[string]any{"wrapping_key": unwrap.ID}, &out)
	outside, _ := rsa.GenerateKey(rand.Reader, 2048)
	spki, _ := x509.MarshalPKIXPublicKey(&outside.PublicKey)
	e.call(t, "POST", "/keys/"+src.ID+"/export", map[string]any{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))}, nil)
	e.call(t, "POST", "/keys/import", map[string]any{"label": "returned", "type": "p256", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped}, &back)
	if st := e.call(t, "DELETE", "/keys/"+src.ID, nil, nil); st != 204 {
		t.Fatalf("destroy: %d", st)
	}

	entries, err := e.db.HSMAudit(context.Background(), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	by := `by="apikey:` + e.appsID + `"`
	count := map[string]int{}
	for _, a := range entries {
		if a.Actor != "apps" || !strings.HasPrefix(a.Action, "key.") || a.Action == "key.usage" {
			continue
		}
		if !strings.HasSuffix(a.Details, by) {
			t.Errorf("%s %s: details %q do not end with %s", a.Action, a.Object, a.Details, by)
		}
		count[a.Action]++
	}
	for action, n := range map[string]int{"key.generate": 2, "key.rotate": 1, "key.export": 2, "key.import": 1, "key.destroy": 1} {
		if count[action] != n {
			t.Errorf("%d %s entries, want %d (all: %v)", count[action], action, n, count)
		}
	}
}
