package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// Fuzz targets for everything that reads client bytes. `go test` runs the
// seeds; `go test -fuzz FuzzRequest ./acme` (etc.) runs them for long.

var jwsSeeds = []string{
	``, `{}`, `[]`, `null`, `{"protected":"","payload":"","signature":""}`,
	`{"protected":"eyJhbGciOiJub25lIn0","payload":"","signature":""}`,
	`{"protected":"eyJhbGciOiJIUzI1NiIsIm5vbmNlIjoieCIsInVybCI6InkiLCJraWQiOiJ6In0","payload":"e30","signature":"AAAA"}`,
	`{"protected":"eyJhbGciOiJFUzI1NiIsImp3ayI6eyJrdHkiOiJFQyJ9fQ","payload":"e30","signature":"AAAA"}`,
	`{"protected":"e30","payload":"e30","signature":"AAAA","signatures":[{}]}`,
	`{"protected":"e30","payload":"e30","signature":"AAAA","header":{"alg":"none"}}`,
	`eyJhbGciOiJFUzI1NiJ9.e30.AAAA`,
	`{"protected":"e30","payload":"","signature":"","Protected":"eyJBTEciOiJub25lIn0"}`,
}

func FuzzParseFlat(f *testing.F) {
	for _, s := range jwsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		flat, hdr, err := parseFlat(body)
		if err == nil && (flat == nil || hdr == nil || flat.Payload == nil) {
			t.Fatal("no error but nothing parsed")
		}
		if err != nil && toProblem(err).Status != http.StatusBadRequest {
			t.Fatalf("parse error %v is not a 400", err)
		}
	})
}

type stubIssuer struct{}

func (stubIssuer) Issue(context.Context, *x509.CertificateRequest, string, string) (*Issued, error) {
	return nil, core.Errorf(core.KindUnavailable, "stub")
}
func (stubIssuer) Revoke(context.Context, core.Serial, core.RevocationReason, string, bool) error {
	return nil
}
func (stubIssuer) Certificate(context.Context, core.Serial) (*core.Certificate, error) {
	return nil, core.ErrNotFound
}

type stubValidator struct{}

func (stubValidator) Validate(context.Context, string, Identifier, string, string) error { return nil }

// FuzzRequest sends arbitrary bodies to every POST resource and arbitrary
// certIDs to renewal-info: the answer is never a 5xx and always a problem
// document with a fresh nonce.
func FuzzRequest(f *testing.F) {
	db, _ := storagetest.SQLite(f)
	s, err := New(Options{Name: "fz", BaseURL: "https://ca.test/acme/fz", Store: db,
		Nonces: storage.NewMemoryNonces(1000, 0, nil), Issuer: stubIssuer{}, Validator: stubValidator{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	paths := []string{"new-account", "new-order", "revoke-cert", "key-change", "account/x", "order/x",
		"order/x/finalize", "authz/x", "chall/x", "cert/ab", "renewal-info/x"}
	for i, seed := range jwsSeeds {
		f.Add(uint8(i), []byte(seed))
	}
	f.Add(uint8(10), []byte("AQID.AQID"))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		p := paths[int(which)%len(paths)]
		method := http.MethodPost
		target := "https://ca.test/acme/fz/" + p
		if strings.HasPrefix(p, "renewal-info/") {
			method, target = http.MethodGet, target[:len(target)-1]+urlSafe(body)
		}
		req := httptest.NewRequest(method, target, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/jose+json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, p, rec.Code, rec.Body)
		}
		if rec.Header().Get("Replay-Nonce") == "" {
			t.Fatal("response without Replay-Nonce")
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("error %d is not a problem document", rec.Code)
		}
	})
}

func urlSafe(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

func FuzzIdentifiers(f *testing.F) {
	for _, s := range [][2]string{{"dns", "www.example.com"}, {"dns", "*.Example.COM"}, {"ip", "::ffff:192.0.2.1"},
		{"ip", "2001:DB8::1"}, {"dns", "a..b"}, {"dns", "-a.b"}, {"email", "x"}, {"dns", "1.2.3.4"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		out, err := normalizeIdentifiers([]Identifier{{Type: typ, Value: value}})
		if err != nil {
			if p := toProblem(err); p.Status != http.StatusBadRequest {
				t.Fatalf("status %d for a bad identifier", p.Status)
			}
			return
		}
		again, err := normalizeIdentifiers(out)
		if err != nil || again[0] != out[0] {
			t.Fatalf("normalizing is not idempotent: %v → %v, %v", out, again, err)
		}
	})
}

func FuzzCertID(f *testing.F) {
	for _, s := range []string{"AQID.AQID", "AQID.gA", ".", "a.b.c", "AQID.AAAA", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		aki, serial, err := parseCertID(id)
		if err == nil && (len(aki) == 0 || serial.Big() == nil || serial.Big().Sign() <= 0) {
			t.Fatalf("accepted %q as %x/%s", id, aki, serial)
		}
	})
}
