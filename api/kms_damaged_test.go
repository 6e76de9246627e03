package api

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/strongroom-pki/strongroom/hsm"
)

// restartKeyService gives the API a fresh module's apps session over the
// same keystore, as a node that starts after the database was altered
// (the running module keeps the keys it opened), and returns it.
func (e *keyEnv) restartKeyService(t testing.TB) *hsm.Session {
	t.Helper()
	ctx := context.Background()
	m, err := hsm.New(ctx, hsm.Options{Store: e.db, KeySyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	if err := m.Unseal(ctx, hsm.UnsealInput{KeyFile: e.keyFile}); err != nil {
		t.Fatal(err)
	}
	apps, err := m.Login(ctx, "apps", "apps-pin-1234")
	if err != nil {
		t.Fatal(err)
	}
	e.api.SetKeyService(apps)
	return apps
}

// listed is GET /keys as the named API key: each entry by its id, as
// generic JSON, so that fields the answer leaves out are seen missing.
func (e *keyEnv) listed(t *testing.T, key string) map[string]map[string]any {
	t.Helper()
	resp, b := e.do(t, "GET", "/keys", key, "", nil)
	var out struct{ Keys []map[string]any }
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("GET /keys as %s: %d %s", key, resp.StatusCode, b)
	}
	byID := map[string]map[string]any{}
	for _, k := range out.Keys {
		byID[k["id"].(string)] = k
	}
	return byID
}

// TestDamagedKeysListed: an application's damaged key was left out of
// GET /keys while every call on it answered keyDamaged, so its owner could
// not see from the listing that a key of its own was damaged. It is listed
// (and described by GET /keys/{id}) as damaged, with a reason naming no
// key id or HSM detail, to its owner and admin keys only; intact keys say
// they are enabled; to another application it does not exist.
func TestDamagedKeysListed(t *testing.T) {
	ctx := context.Background()
	e := newKeyEnv(t)
	secret, _, err := CreateKey(ctx, e.db, "other", []string{ScopeKeys})
	if err != nil {
		t.Fatal(err)
	}
	e.keys["other"] = secret
	intact, damaged := e.create(t, "intact", "p256"), e.create(t, "damaged", "aes256")
	if _, err := e.db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE id = ?`, make([]byte, 64), damaged.ID); err != nil {
		t.Fatal(err)
	}
	e.restartKeyService(t)

	want := map[string]any{"id": damaged.ID, "label": "damaged", "state": "damaged", "reason": damagedKeyReason}
	for _, who := range []string{"apps", "admin"} {
		keys := e.listed(t, who)
		if len(keys) != 2 || keys[intact.ID]["state"] != "enabled" {
			t.Fatalf("GET /keys as %s: %v, want the intact key enabled and the damaged one", who, keys)
		}
		got := keys[damaged.ID]
		if who == "admin" {
			want["label"] = "apikey:" + e.appsID + "/damaged"
		}
		if len(got) != len(want) {
			t.Errorf("GET /keys as %s lists the damaged key as %v, want %v", who, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("GET /keys as %s lists the damaged key as %v, want %v", who, got, want)
			}
		}
		resp, b := e.do(t, "GET", "/keys/"+damaged.ID, who, "", nil)
		var one map[string]any
		if resp.StatusCode != 200 || json.Unmarshal(b, &one) != nil || one["state"] != "damaged" || one["label"] != want["label"] {
			t.Errorf("GET /keys/{id} of the damaged key as %s: %d %s", who, resp.StatusCode, b)
		}
	}
	if strings.Contains(damagedKeyReason, damaged.ID) {
		t.Fatal("the reason names the key")
	}
	if keys := e.listed(t, "other"); len(keys) != 0 {
		t.Fatalf("another application lists %v", keys)
	}
	for _, path := range []string{"/keys/" + damaged.ID, "/keys/" + damaged.ID + "/encrypt"} {
		method, body := "GET", []byte(nil)
		if strings.HasSuffix(path, "/encrypt") {
			method, body = "POST", []byte(`{"plaintext":""}`)
		}
		if resp, b := e.do(t, method, path, "other", "application/json", body); resp.StatusCode != 404 {
			t.Errorf("%s %s as another application: %d %s, want 404 as for a key that does not exist", method, path, resp.StatusCode, b)
		}
	}
	// Its owner's calls are still refused as keyDamaged.
	resp, b := e.do(t, "POST", "/keys/"+damaged.ID+"/encrypt", "apps", "application/json", []byte(`{"plaintext":""}`))
	if resp.StatusCode != 500 || !strings.Contains(string(b), "keyDamaged") {
		t.Fatalf("encrypt with the damaged key: %d %s", resp.StatusCode, b)
	}
}

// TestKeySchemaFields: the Key schema of openapi.json (additionalProperties
// false) names every field an intact or a damaged key's JSON has, and no
// other; nothing else compares the document's fields with the answers.
func TestKeySchemaFields(t *testing.T) {
	props := schema(parseOAS(t, openAPIDocument), "Key")["properties"].(map[string]any)
	var fields []string
	for _, v := range []any{KeyResponse{}, DamagedKeyResponse{}} {
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if _, ok := props[name]; !ok {
				t.Errorf("%s's field %q is not in the Key schema", rt.Name(), name)
			}
			fields = append(fields, name)
		}
	}
	for name := range props {
		if !slices.Contains(fields, name) {
			t.Errorf("the Key schema's %q is no field of a key's JSON", name)
		}
	}
}

// scanCount counts the key service's reads of every damaged key.
type scanCount struct {
	KeyService
	scans atomic.Int64
}

func (s *scanCount) DamagedKeys(ctx context.Context) ([]hsm.DamagedKey, error) {
	s.scans.Add(1)
	return s.KeyService.DamagedKeys(ctx)
}

// TestDamagedKeyNotScanned: a call on one key id that the HSM refuses as
// damaged is answered — keyDamaged or the damaged key to its owner, 404
// to anyone else — from that key alone. It scanned the keystore for the
// damaged keys (hsm DamagedKeys), which made another application's damaged
// id about 4 ms slower to refuse than an id that does not exist, so the
// 404's timing told which ids were damaged keys; and cost a scan per call.
func TestDamagedKeyNotScanned(t *testing.T) {
	ctx := context.Background()
	e := newKeyEnv(t)
	secret, _, err := CreateKey(ctx, e.db, "other", []string{ScopeKeys})
	if err != nil {
		t.Fatal(err)
	}
	e.keys["other"] = secret
	damaged := e.create(t, "damaged", "aes256")
	if _, err := e.db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE id = ?`, make([]byte, 64), damaged.ID); err != nil {
		t.Fatal(err)
	}
	sc := &scanCount{KeyService: e.restartKeyService(t)}
	e.api.SetKeyService(sc)
	encrypt := []byte(`{"plaintext":""}`)
	for _, c := range []struct {
		who, method, path string
		status            int
		has               string
	}{
		{"other", "GET", "/keys/" + damaged.ID, 404, "no such key"},
		{"other", "POST", "/keys/" + damaged.ID + "/encrypt", 404, "no such key"},
		{"apps", "GET", "/keys/" + damaged.ID, 200, `"state":"damaged"`},
		{"apps", "POST", "/keys/" + damaged.ID + "/encrypt", 500, "keyDamaged"},
		{"admin", "GET", "/keys/" + damaged.ID, 200, `"state":"damaged"`},
	} {
		var body []byte
		if c.method == "POST" {
			body = encrypt
		}
		resp, b := e.do(t, c.method, c.path, c.who, "application/json", body)
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.has) {
			t.Errorf("%s %s as %s: %d %s, want %d with %s", c.method, c.path, c.who, resp.StatusCode, b, c.status, c.has)
		}
	}
	if n := sc.scans.Load(); n != 0 {
		t.Errorf("calls on one damaged key scanned the keystore %d times", n)
	}
	// The listing still scans, and is the only call that does.
	e.listed(t, "apps")
	if n := sc.scans.Load(); n != 1 {
		t.Errorf("GET /keys scanned the keystore %d times, want 1", n)
	}
}

// TestKeyPathSecretNotRepeated: an API key's secret pasted into a key
// path is not repeated in the 404 (found by a review: "no such key
// \"srk_…\"" carried the whole secret back).
func TestKeyPathSecretNotRepeated(t *testing.T) {
	e := newKeyEnv(t)
	secret := e.keys["apps"]
	resp, b := e.do(t, "GET", "/keys/"+secret, "apps", "application/json", nil)
	if resp.StatusCode != 404 || strings.Contains(string(b), secret[4:]) || !strings.Contains(string(b), "not repeated") {
		t.Fatalf("GET /keys/SECRET: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "GET", "/keys/0123456789abcdef0123456789abcdef", "apps", "application/json", nil)
	if resp.StatusCode != 404 || !strings.Contains(string(b), `no such key \"0123456789abcdef0123456789abcdef\"`) {
		t.Fatalf("GET /keys/ID: %d %s", resp.StatusCode, b)
	}
}
