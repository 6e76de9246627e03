package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestListTimeBoundsBefore1970: a bound given is a bound, even the zero
// time (it read as "no bound" and listed everything).
func TestListTimeBoundsBefore1970(t *testing.T) {
	e := newEnv(t, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", jsonBody(t, map[string]any{"csr": pemCSR(newCSR(t, k, "", "a.example.com"))})); r.StatusCode != 201 {
		t.Fatalf("issue: %d %s", r.StatusCode, b)
	}
	for q, want := range map[string]int{
		"expiring_before=0001-01-01T00:00:00Z": 0, "expiring_before=1969-12-31T00:00:00Z": 0,
		"expiring_after=0001-01-01T00:00:00Z": 1, "expiring_before=9999-01-01T00:00:00Z": 1,
	} {
		r, b := e.do(t, "GET", "/certificates?"+q, "reader", "", nil)
		var out ListResponse
		if r.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Certificates) != want {
			t.Errorf("%s: %d %s, want %d certificates", q, r.StatusCode, b, want)
		}
	}
}

// TestListBadTextPostgres: text PostgreSQL refuses is the client's
// mistake, 400, wherever it reaches the database (it was a 500).
func TestListBadTextPostgres(t *testing.T) {
	db := storagetest.Postgres(t)
	_, _, err := db.ListCertificates(context.Background(), storage.CertFilter{Name: "a\x00"})
	if err == nil {
		t.Fatal("PostgreSQL took a NUL byte")
	}
	if k := core.KindOf(storage.Classify(err)); k != core.KindMalformed {
		t.Errorf("a NUL byte: kind %v (%v), want malformed", k, err)
	}
	_, _, err = db.ListCertificates(context.Background(), storage.CertFilter{IssuerID: "\xff\xfe"})
	if k := core.KindOf(storage.Classify(err)); err == nil || k != core.KindMalformed {
		t.Errorf("bytes that are not UTF-8: kind %v (%v), want malformed", k, err)
	}
	if p := problemFor(err); p.Status != http.StatusBadRequest {
		t.Errorf("problem %+v, want 400", p)
	}
}

// TestClientGoneIsNotAFailure: a request whose client went away is logged
// and counted as 499, not as the server's 500 failure.
func TestClientGoneIsNotAFailure(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/api/v1/certificates?limit=10", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+e.keys["reader"])
	w := httptest.NewRecorder()
	e.engine.ServeHTTP(w, req)
	if w.Code != core.StatusClientClosed || strings.Contains(w.Body.String(), "internal") {
		t.Errorf("%d %s, want %d and no body", w.Code, w.Body, core.StatusClientClosed)
	}
}
