package api

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
)

// TestDecryptOneAnswer: whatever is wrong with a ciphertext for an
// existing key — its version header (a version the key lacks, 0), its
// format byte, its length, its body — decrypt and decrypt-data-key answer
// the same 422; a missing key is still 404. /verify's key_version may not
// be negative.
func TestDecryptOneAnswer(t *testing.T) {
	e := newKeyEnv(t)
	k := e.create(t, "fields", "aes256")
	var ct struct{ Ciphertext string }
	e.call(t, "POST", "/keys/"+k.ID+"/encrypt", map[string]any{"plaintext": "eA=="}, &ct)
	var dk DataKeyResponse
	e.call(t, "POST", "/keys/"+k.ID+"/data-key", map[string]any{}, &dk)
	edit := func(s string, f func(b []byte) []byte) string {
		return base64.StdEncoding.EncodeToString(f(unb64(t, s)))
	}
	version := func(v uint32) func(b []byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[1:5], v); return b }
	}
	const want = "the ciphertext does not open with this key"
	for _, op := range []struct{ path, ct string }{{"decrypt", ct.Ciphertext}, {"decrypt-data-key", dk.Ciphertext}} {
		for name, bad := range map[string]string{
			"version 9":    edit(op.ct, version(9)),
			"version 2^31": edit(op.ct, version(1<<31)),
			"version 0":    edit(op.ct, version(0)),
			"format 7":     edit(op.ct, func(b []byte) []byte { b[0] = 7; return b }),
			"truncated":    edit(op.ct, func(b []byte) []byte { return b[:3] }),
			"altered":      edit(op.ct, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		} {
			st, detail := e.raw(t, "/keys/"+k.ID+"/"+op.path, string(jsonBody(t, map[string]any{"ciphertext": bad})))
			if st != 422 || !strings.Contains(detail, want) {
				t.Errorf("%s of a ciphertext with %s: %d %s, want 422 %q", op.path, name, st, detail, want)
			}
		}
		if st, _ := e.raw(t, "/keys/no-such-key/"+op.path, string(jsonBody(t, map[string]any{"ciphertext": op.ct}))); st != 404 {
			t.Errorf("%s with a missing key: %d, want 404", op.path, st)
		}
	}
	s := e.create(t, "sig", "p256")
	if st, detail := e.raw(t, "/keys/"+s.ID+"/verify", `{"message":"eA==","signature":"eA==","key_version":-1}`); st != 400 || !strings.Contains(detail, "key_version") {
		t.Errorf("verify with key_version -1: %d %s, want 400", st, detail)
	}
}
