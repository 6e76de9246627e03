package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// brokenBody fails like a client whose connection drops mid-body.
type brokenBody struct{}

func (brokenBody) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }
func (brokenBody) Close() error             { return nil }

func TestBrokenBodyIsClientError(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	e := newEnv(t, db, nil)
	for _, path := range []string{"/api/v1/certificates", "/api/v1/certificates/1/revoke"} {
		req := httptest.NewRequest("POST", path, nil)
		req.Body = brokenBody{}
		req.Header.Set("Authorization", "Bearer "+e.keys["admin"])
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.engine.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("POST %s with a broken body: %d %s; want 400", path, rec.Code, rec.Body)
		}
	}
}

// DER whose last byte is ASCII whitespace must reach the parser whole.
func TestCSRDERNotTrimmed(t *testing.T) {
	for _, last := range []byte{' ', '\n', '\t', '\r', '\v', '\f'} {
		der := []byte{0x30, 0x03, 0x02, 0x01, last}
		got, err := csrDER(der)
		if err != nil || len(got) != len(der) {
			t.Fatalf("DER ending in %#x: got %d bytes, %v; want all %d", last, len(got), err, len(der))
		}
	}
}
