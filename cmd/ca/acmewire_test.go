package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/acme/challenge"
)

// onlyPolicy accepts one DNS name.
type onlyPolicy struct{ name string }

func (p onlyPolicy) CheckIdentifiers(_ context.Context, _ string, ids []acme.Identifier, _ string) error {
	var errs []error
	for _, id := range ids {
		if id.Type != "dns" || id.Value != p.name {
			errs = append(errs, &acme.IdentifierError{Identifier: id, Detail: "is not " + p.name})
		}
	}
	return errors.Join(errs...)
}

func (onlyPolicy) CheckKey(context.Context, crypto.PublicKey, string) error { return nil }

// TestEndpointValidatorFollowsPolicy: the validator an endpoint is given
// refuses an http-01 redirect to a host outside the endpoint's policy, and
// never connects to it.
func TestEndpointValidatorFollowsPolicy(t *testing.T) {
	const token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
	keyAuth := token + ".nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"
	var mu sync.Mutex
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.URL.Path)
		mu.Unlock()
		port := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr).Port
		http.Redirect(w, r, fmt.Sprintf("http://127.0.0.1:%d/secret", port), http.StatusFound)
	}))
	defer srv.Close()
	v, err := newValidator(validationConfig{Resolver: "127.0.0.1:1", HTTPPort: srv.Listener.Addr().(*net.TCPAddr).Port,
		HostOverride: map[string]string{"app.corp.example": "127.0.0.1"}}, "default", onlyPolicy{name: "app.corp.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = v.Validate(context.Background(), challenge.HTTP01, challenge.IdentDNS, "app.corp.example", token, keyAuth)
	var ce *challenge.Error
	if !errors.As(err, &ce) || ce.Type != challenge.ErrConnection || !strings.Contains(ce.Detail, "ip 127.0.0.1: is not app.corp.example") {
		t.Fatalf("got %v, want a connection error refusing 127.0.0.1", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(requests) != 1 {
		t.Errorf("server got requests %q, want only the challenge: the refused target was fetched", requests)
	}
}
