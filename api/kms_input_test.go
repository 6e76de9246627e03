package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// raw posts body as it is, as the apps key, and returns the status and the
// answer (a problem document's detail, or the body).
func (e *keyEnv) raw(t *testing.T, path, body string) (int, string) {
	t.Helper()
	r, b := e.do(t, "POST", path, "apps", "application/json", []byte(body))
	var p Problem
	if json.Unmarshal(b, &p) == nil && p.Detail != "" {
		return r.StatusCode, p.Detail
	}
	return r.StatusCode, string(b)
}

// TestKeyServiceJWTClaimsExact: claims are signed as sent — a number
// beyond float64's exact range keeps every digit; a claim named twice is
// refused rather than one of them signed; exp, nbf and iat given by the
// caller must be numbers (RFC 7519 §4.1.4).
func TestKeyServiceJWTClaimsExact(t *testing.T) {
	e := newKeyEnv(t)
	k := e.create(t, "tokens", "p256")
	path := "/keys/" + k.ID + "/jwt"
	st, out := e.raw(t, path, `{"claims":{"sub":9007199254740993,"n":1.50,"big":123456789012345678901234567890,"nbf":1e9}}`)
	if st != 200 {
		t.Fatalf("jwt: %d %s", st, out)
	}
	var tok struct{ Token string }
	json.Unmarshal([]byte(out), &tok)
	body, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.Token, ".")[1])
	for _, want := range []string{`"sub":9007199254740993`, `"n":1.50`, `"big":123456789012345678901234567890`, `"nbf":1e9`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("signed claims %s lack %s", body, want)
		}
	}
	for _, c := range []struct{ body, detail string }{
		{`{"claims":{"dup":1,"dup":2}}`, `"claims.dup" appears more than once`},
		{`{"claims":{"exp":"1700000000"}}`, "claim exp must be a JSON number"},
		{`{"claims":{"nbf":null}}`, "claim nbf must be a JSON number"},
		{`{"claims":{"iat":true}}`, "claim iat must be a JSON number"},
		{`{"claims":[]}`, "claims is required"},
		{`{"claims":"x"}`, "claims is required"},
	} {
		if st, detail := e.raw(t, path, c.body); st != 400 || !strings.Contains(detail, c.detail) {
			t.Errorf("jwt %s: %d %s, want 400 with %q", c.body, st, detail, c.detail)
		}
	}
}

// TestDuplicateMembersRefused: a member named twice anywhere in a body is
// refused, named by its path, rather than the last one taken.
func TestDuplicateMembersRefused(t *testing.T) {
	e := newKeyEnv(t)
	k := e.create(t, "enc", "aes256")
	for _, c := range []struct{ path, body, name string }{
		{"/keys/" + k.ID + "/encrypt", `{"plaintext":"eA==","plaintext":"eQ=="}`, `"plaintext"`},
		{"/keys", `{"label":"a","type":"aes256","usage":["encrypt"],"label":"b"}`, `"label"`},
		{"/random", `{"bytes":1,"bytes":2}`, `"bytes"`},
	} {
		if st, detail := e.raw(t, c.path, c.body); st != 400 || !strings.Contains(detail, c.name+" appears more than once") {
			t.Errorf("POST %s %s: %d %s, want 400 naming %s", c.path, c.body, st, detail, c.name)
		}
	}
	for _, c := range []struct{ body, path string }{
		{`{"a":{"b":[{"c":1,"c":2}]}}`, "a.b[0].c"},
		{`[{"x":1},{"x":1,"y":{"x":2,"x":3}}]`, "[1].y.x"},
	} {
		if err := uniqueMembers([]byte(c.body)); err == nil || !strings.Contains(err.Error(), `"`+c.path+`"`) {
			t.Errorf("uniqueMembers(%s) = %v, want it to name %s", c.body, err, c.path)
		}
	}
	if err := uniqueMembers([]byte(`{"a":{"x":1},"b":{"x":1e999},"c":[{"x":1},{"x":2}]}`)); err != nil {
		t.Errorf("the same name in different objects: %v", err)
	}
}

// TestKeyServiceBodiesStrict: rotate takes no body or an empty object, not
// anything; a JSON null is not an empty request; usage entries are names
// from the list, exactly.
func TestKeyServiceBodiesStrict(t *testing.T) {
	e := newKeyEnv(t)
	k := e.create(t, "k", "aes256")
	for _, body := range []string{"", " ", "{}"} {
		if st, out := e.raw(t, "/keys/"+k.ID+"/rotate", body); st != 200 {
			t.Errorf("rotate with body %q: %d %s", body, st, out)
		}
	}
	for _, body := range []string{"{", "not json", "null", "[]", `{"x":1}`, "{} {}", `"x"`} {
		if st, out := e.raw(t, "/keys/"+k.ID+"/rotate", body); st != 400 {
			t.Errorf("rotate with body %q: %d %s, want 400", body, st, out)
		}
	}
	var got KeyResponse
	if e.call(t, "GET", "/keys/"+k.ID, nil, &got); got.Version != 4 {
		t.Errorf("after 3 rotations with a good body and 7 refused: version %d, want 4", got.Version)
	}
	for _, path := range []string{"/encrypt", "/mac", "/data-key", "/sign", "/jwt", "/rotate"} {
		if st, out := e.raw(t, "/keys/"+k.ID+path, " null "); st != 400 || !strings.Contains(out, "JSON object") {
			t.Errorf("%s with a null body: %d %s, want 400", path, st, out)
		}
	}
	for _, p := range []string{"/random", "/hash", "/keys"} {
		if st, _ := e.raw(t, p, "null"); st != 400 {
			t.Errorf("%s with a null body: %d, want 400", p, st)
		}
	}
	for _, usage := range []string{`[""]`, `["sign,verify"]`, `[" sign"]`, `["Sign"]`, `["sign "]`, `["fly"]`} {
		if st, out := e.raw(t, "/keys", `{"label":"u","type":"p256","usage":`+usage+`}`); st != 400 || !strings.Contains(out, "unknown key usage") {
			t.Errorf("usage %s: %d %s, want 400", usage, st, out)
		}
	}
	var u KeyResponse
	if st := e.call(t, "POST", "/keys", map[string]any{"label": "u", "type": "p256", "usage": []string{"verify", "sign"}}, &u); st != 201 || strings.Join(u.Usage, ",") != "sign,verify" {
		t.Errorf("usage [verify sign]: %d %v", st, u.Usage)
	}
}

// TestKeyServiceSmallAnswers: the empty message signs (absent is not
// empty); the label limit said is the caller's real one, and a label
// taken is said without the HSM's internal names; answers that carry
// secrets are not to be cached.
func TestKeyServiceSmallAnswers(t *testing.T) {
	e := newKeyEnv(t)
	for _, typ := range []string{"p256", "ed25519"} {
		k := e.create(t, "s-"+typ, typ)
		var sig struct{ Signature string }
		if st := e.call(t, "POST", "/keys/"+k.ID+"/sign", map[string]any{"message": ""}, &sig); st != 200 {
			t.Fatalf("%s: sign the empty message: %d", typ, st)
		}
		var v struct{ Valid bool }
		if e.call(t, "POST", "/keys/"+k.ID+"/verify", map[string]any{"message": "", "signature": sig.Signature}, &v); !v.Valid {
			t.Errorf("%s: the empty message's signature does not verify", typ)
		}
		for _, body := range []string{`{}`, `{"message":null}`, `{"message":"","digest":""}`} {
			if st, detail := e.raw(t, "/keys/"+k.ID+"/sign", body); st != 400 || !strings.Contains(detail, "one of message and digest") {
				t.Errorf("%s: sign %s: %d %s", typ, body, st, detail)
			}
		}
	}

	max := 128 - len("apikey:"+e.appsID+"/")
	if st := e.call(t, "POST", "/keys", map[string]any{"label": strings.Repeat("x", max), "type": "aes256"}, nil); st != 201 {
		t.Fatalf("a label of %d characters: %d", max, st)
	}
	for _, l := range []string{strings.Repeat("y", max+1), "two\nlines"} {
		if st, detail := e.raw(t, "/keys", string(jsonBody(t, map[string]any{"label": l, "type": "aes256"}))); st != 400 || !strings.Contains(detail, fmt.Sprintf("at most %d characters", max)) {
			t.Errorf("label %q: %d %s, want 400 saying %d", l, st, detail, max)
		}
	}
	if st, detail := e.raw(t, "/keys", `{"label":"s-p256","type":"aes256"}`); st != 409 || detail != `a key labelled "s-p256" already exists` {
		t.Errorf("a taken label: %d %q", st, detail)
	}

	k := e.create(t, "enc", "aes256")
	var ct struct{ Ciphertext string }
	e.call(t, "POST", "/keys/"+k.ID+"/encrypt", map[string]any{"plaintext": "eA=="}, &ct)
	var dk DataKeyResponse
	e.call(t, "POST", "/keys/"+k.ID+"/data-key", map[string]any{}, &dk)
	var x KeyResponse
	e.call(t, "POST", "/keys", map[string]any{"label": "out", "type": "aes256", "extractable": true}, &x)
	for path, body := range map[string]any{
		"/keys/" + k.ID + "/data-key":         map[string]any{},
		"/keys/" + k.ID + "/decrypt":          map[string]any{"ciphertext": ct.Ciphertext},
		"/keys/" + k.ID + "/decrypt-data-key": map[string]any{"ciphertext": dk.Ciphertext},
		"/random":                             map[string]any{"bytes": 8},
		"/keys/" + x.ID + "/export":           map[string]any{"wrapping_key": k.ID},
	} {
		r, b := e.do(t, "POST", path, "apps", "application/json", jsonBody(t, body))
		if r.StatusCode != 200 || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("POST %s: %d, Cache-Control %q, want 200 no-store (%s)", path, r.StatusCode, r.Header.Get("Cache-Control"), b)
		}
	}
}
