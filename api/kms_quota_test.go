package api

import (
	"context"
	"strings"
	"testing"
)

// TestKeyServiceQuotas: a credential keeps at most KeysPerCredential keys
// (created or imported) and a key at most VersionsPerKey versions; over
// either is a 409 saying which limit; other credentials are not counted,
// and destroying a key makes room.
func TestKeyServiceQuotas(t *testing.T) {
	e := newKeyEnv(t, func(o *Options) { o.KeysPerCredential, o.VersionsPerKey = 2, 3 })
	wrap := e.create(t, "wrap", "aes256")
	k := e.create(t, "k", "p256")
	refused := func(what, path, body, detail string) {
		t.Helper()
		st, got := e.raw(t, path, body)
		if st != 409 || !strings.Contains(got, detail) {
			t.Errorf("%s: %d %s, want 409 with %q", what, st, got, detail)
		}
	}
	refused("a third key", "/keys", `{"label": "third", "type": "aes256"}`, "already has 2 keys, its limit (api.keys_per_credential)")
	refused("a third key by import", "/keys/import", `{"label": "third", "type": "aes256", "wrapping_key": "`+wrap.ID+`", "wrapped": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, "api.keys_per_credential")

	otherSecret, _, err := CreateKey(context.Background(), e.db, "other-app", []string{ScopeKeys})
	if err != nil {
		t.Fatal(err)
	}
	e.keys["other"] = otherSecret
	if r, b := e.do(t, "POST", "/keys", "other", "application/json", jsonBody(t, map[string]any{"label": "mine", "type": "aes256"})); r.StatusCode != 201 {
		t.Fatalf("another credential's first key: %d %s", r.StatusCode, b)
	}

	for v := 2; v <= 3; v++ {
		var r KeyResponse
		if st := e.call(t, "POST", "/keys/"+k.ID+"/rotate", nil, &r); st != 200 || r.Version != v {
			t.Fatalf("rotation to v%d: %d %+v", v, st, r)
		}
	}
	refused("a fourth version", "/keys/"+k.ID+"/rotate", "", "has 3 versions, the limit (api.versions_per_key)")

	if st := e.call(t, "DELETE", "/keys/"+k.ID, nil, nil); st != 204 {
		t.Fatalf("destroy: %d", st)
	}
	e.create(t, "after-destroy", "aes256")
}

// TestVersionLimitCountsVersions: api.versions_per_key counts the versions
// a key holds, not its version number, so a copy imported as version 2
// (one version held) may still rotate under a limit of 2.
func TestVersionLimitCountsVersions(t *testing.T) {
	e := newKeyEnv(t, func(o *Options) { o.VersionsPerKey = 2 })
	var unwrap, src KeyResponse
	e.call(t, "POST", "/keys", map[string]any{"label": "import", "type": "rsa2048", "usage": []string{"wrap", "unwrap"}}, &unwrap)
	e.call(t, "POST", "/keys", map[string]any{"label": "src", "type": "aes256", "extractable": true}, &src)
	if st := e.call(t, "POST", "/keys/"+src.ID+"/rotate", nil, nil); st != 200 {
		t.Fatalf("rotation to v2: %d", st)
	}
	if st, detail := e.raw(t, "/keys/"+src.ID+"/rotate", ""); st != 409 || !strings.Contains(detail, "has 2 versions") {
		t.Fatalf("a third version: %d %s, want 409", st, detail)
	}
	var out ExportKeyResponse
	e.call(t, "POST", "/keys/"+src.ID+"/export", map[string]any{"wrapping_key": unwrap.ID}, &out)
	var back, rotated KeyResponse
	if st := e.call(t, "POST", "/keys/import", map[string]any{"label": "back", "type": "aes256", "wrapping_key": unwrap.ID, "wrapped": out.Wrapped, "version": out.Version}, &back); st != 201 || back.Version != 2 {
		t.Fatalf("import as v2: %d %+v", st, back)
	}
	if st := e.call(t, "POST", "/keys/"+back.ID+"/rotate", nil, &rotated); st != 200 || rotated.Version != 3 {
		t.Fatalf("rotating the copy imported as v2 (one version held): %d %+v, want 200 and v3", st, rotated)
	}
}
